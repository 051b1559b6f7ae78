"""Training-set versions: immutable, quality-scored sets of rows, listed best first and
selected by criteria (``ws.training_sets``).

>>> import pyarrow as pa, trainstore as ts
>>> ws = ts.Workspace.open("memory://training-sets-doc")
>>> v = ws.training_sets.create("vibration", pa.table({"temperature": [20.5, 21.0, 22.5]}))
>>> v.id, v.rows
('vibration@v1', 3)
>>> ws.training_sets.select_best("vibration", min_data_size=2).version
1

A version's rows are stored as Parquet files with a manifest recording its schema, content
hash, quality (:class:`Quality`) and lineage; it becomes visible to everyone at once, when
complete, and never changes afterwards.
"""

from __future__ import annotations

import builtins
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

import pyarrow as pa

from . import _html, _native
from .features import FeatureService, FeatureStore, _feature_names, _to_batch
from .progress import _bar_if, _quick_bar
from .sharing import Access, AuditEvent, Draft, Lease, Permission, _events, _lease
from .sources import TimeLike, _time_text, _utc

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow.dataset


def _reader(data: Any) -> pa.RecordBatchReader:
    """Rows as an Arrow stream: pyarrow readers pass through, tables and frames without a
    copy, an iterable of record batches is streamed as it is consumed."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    is_frame = hasattr(data, "to_arrow") or type(data).__module__.startswith("pandas")
    if (
        not is_frame
        and isinstance(data, Iterable)
        and not isinstance(data, (str, bytes, dict, list))
    ):
        it = iter(data)
        first = next(it, None)
        if not isinstance(first, pa.RecordBatch):
            raise TypeError("an iterable of rows must yield pyarrow.RecordBatch objects")

        def chain() -> Iterable[pa.RecordBatch]:
            yield first
            yield from it

        return pa.RecordBatchReader.from_batches(first.schema, chain())
    table = pa.Table.from_batches([_to_batch(data)])
    return table.to_reader()


@dataclass(frozen=True)
class ColumnQuality:
    """The statistics of one column of a set."""

    name: str
    data_type: str
    count: int
    """Values present (not null)."""
    nulls: int
    completeness: float
    numeric: dict[str, Any] | None
    """``count``, ``min``, ``max``, ``mean``, ``std``, ``quantiles`` of the values (of every
    list item, for list columns); ``None`` for text."""
    list_length: dict[str, Any] | None
    """The same statistics over list lengths, for list columns."""

    def _repr_html_(self) -> str:
        numeric = self.numeric or {}
        lengths = self.list_length or {}
        return _html.title(f"column {self.name}", self.data_type) + _html.fields(
            [
                ("count", self.count),
                ("nulls", self.nulls),
                ("completeness", self.completeness),
                *((k, numeric.get(k)) for k in ("min", "mean", "max", "std")),
                ("mean length", lengths.get("mean")),
            ]
        )


class Quality:
    """The quality of a set, measured while it was written. ``overall_score`` is in [0, 1];
    the formula is in the project's ``docs/training-sets.md``."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self.overall_score: float = raw["overall_score"]
        self.data_size: int = raw["data_size"]
        self.completeness: float = raw["completeness"]
        self.duplicate_rows: int = raw["duplicate_rows"]
        self.duplicate_rate: float = raw["duplicate_rate"]
        self.malformed_rate: float | None = raw.get("malformed_rate")
        self.missing_rate: float | None = raw.get("missing_rate")
        self.label_balance: dict[str, Any] | None = raw.get("label_balance")
        self.time_coverage: dict[str, Any] | None = raw.get("time_coverage")
        self.freshness_seconds: float | None = raw.get("freshness_seconds")
        self.columns: list[ColumnQuality] = [
            ColumnQuality(
                c["name"],
                c["data_type"],
                c["count"],
                c["nulls"],
                c["completeness"],
                c.get("numeric"),
                c.get("list_length"),
            )
            for c in raw["columns"]
        ]

    def to_dict(self) -> dict[str, Any]:
        """Everything measured, as stored in the manifest."""
        return self._raw

    def report(self) -> pa.Table:
        """One row per column: count, nulls, completeness and value statistics."""

        def stat(c: ColumnQuality, key: str) -> Any:
            return None if c.numeric is None else c.numeric.get(key)

        return pa.table(
            {
                "column": [c.name for c in self.columns],
                "type": [c.data_type for c in self.columns],
                "count": [c.count for c in self.columns],
                "nulls": [c.nulls for c in self.columns],
                "completeness": [c.completeness for c in self.columns],
                "min": pa.array([stat(c, "min") for c in self.columns], pa.float64()),
                "mean": pa.array([stat(c, "mean") for c in self.columns], pa.float64()),
                "max": pa.array([stat(c, "max") for c in self.columns], pa.float64()),
                "std": pa.array([stat(c, "std") for c in self.columns], pa.float64()),
                "mean_length": pa.array(
                    [
                        None if c.list_length is None else c.list_length["mean"]
                        for c in self.columns
                    ],
                    pa.float64(),
                ),
            }
        )

    def __repr__(self) -> str:
        return (
            f"Quality(overall_score={self.overall_score:.3f}, data_size={self.data_size}, "
            f"completeness={self.completeness:.3f}, duplicate_rate={self.duplicate_rate:.3f})"
        )

    def _repr_html_(self) -> str:
        return _html.title(
            f"quality {self.overall_score:.3f}",
            _html.count(self.data_size, "row"),
            f"completeness {self.completeness:.3f}",
            f"duplicates {self.duplicate_rows}",
        ) + _html.arrow(self.report(), limit=None)


class TrainingSetVersion:
    """One committed version of a training set: immutable, its rows read on demand."""

    def __init__(self, native: _native.TrainingSets, raw: dict[str, Any]) -> None:
        self._native = native
        self._raw = raw
        info = raw["info"]
        self.name: str = raw["name"]
        self.version: int = raw["version"]
        self.author: str = raw["author"]
        self.created_at: datetime = _utc(raw["created_at"])
        self.rows: int = info["rows"]
        self.content_hash: str = info["content_hash"]
        self.quality = Quality(info["quality"])
        self.metadata: dict[str, Any] = info.get("metadata") or {}
        self.lineage: dict[str, Any] = info["lineage"]
        self.label: str | None = info.get("label")
        self.schema: list[dict[str, Any]] = info["schema"]

    @property
    def id(self) -> str:
        """``name@vN``, how the version is referred to everywhere."""
        return f"{self.name}@v{self.version}"

    def to_batches(self) -> builtins.list[pa.RecordBatch]:
        """The rows as record batches, in the order they were written."""
        _, batches = self._native.read(self.name, self.version)
        return batches

    def to_arrow(self) -> pa.Table:
        """The rows as a pyarrow Table (buffers shared with Rust, not copied)."""
        schema, batches = self._native.read(self.name, self.version)
        return pa.Table.from_batches(batches, schema=schema)

    def to_reader(self, columns: Sequence[str] | None = None) -> pa.RecordBatchReader:
        """The rows streamed, a few thousand at a time, in the order they were written,
        with only ``columns`` (every column when ``None``): for versions larger than
        memory. Each file is checked against its hash as it is read; a file that does not
        match raises ``CorruptDataError`` when the reader reaches its end, so keep nothing
        of a read that raised."""
        chosen = None if columns is None else list(columns)
        batches = iter(self._native.scan(self.name, self.version, chosen))
        first = next(batches, None)
        if first is None:
            table = self.to_arrow()
            return (table if chosen is None else table.select(chosen)).to_reader()
        return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))

    def to_pandas(self) -> pandas.DataFrame:
        """The rows as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        """The rows as a polars DataFrame (needs polars installed)."""
        import polars

        frame = polars.from_arrow(self.to_arrow())
        assert isinstance(frame, polars.DataFrame)
        return frame

    def dataset(self) -> pyarrow.dataset.Dataset:
        """A ``pyarrow.dataset`` over the version's Parquet files, checked against their
        hashes first. Workspaces on a local disk only; elsewhere use :meth:`to_arrow`."""
        import pyarrow.dataset as ds

        return ds.dataset(self._native.local_files(self.name, self.version), format="parquet")

    def __repr__(self) -> str:
        return (
            f"TrainingSetVersion({self.id!r}, rows={self.rows}, "
            f"overall_score={self.quality.overall_score:.3f})"
        )

    def _repr_html_(self) -> str:
        return (
            _html.title(
                f"training set {self.id}",
                f"by {self.author}",
                self.created_at,
                _html.Html("content hash " + _html.code(f"{self.content_hash[:12]}…")),
            )
            + self.quality._repr_html_()
            + _html.title("lineage")
            + _html.fields(list(self.lineage.items()))
        )


@dataclass(frozen=True)
class ListedVersion:
    """A version as listed, from the version index (no manifest read)."""

    name: str
    version: int
    author: str
    created_at: datetime
    bytes: int
    rows: int
    overall_score: float
    time_coverage: tuple[datetime, datetime] | None
    content_hash: str

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"

    def _repr_html_(self) -> str:
        return _html.title(
            f"training set {self.id}", f"by {self.author}", self.created_at
        ) + _html.fields(
            [
                ("rows", self.rows),
                ("size", _html.size(self.bytes)),
                ("overall score", self.overall_score),
                (
                    "time coverage",
                    None
                    if self.time_coverage is None
                    else " to ".join(_html.iso(t) for t in self.time_coverage),
                ),
                ("content hash", _html.code(self.content_hash)),
            ]
        )


class VersionList(Sequence[ListedVersion]):
    """The versions of a set as :meth:`TrainingSets.list` ranks them, read on demand."""

    def __init__(self, name: str, native: _native.Listing) -> None:
        self._name = name
        self._native = native

    def __len__(self) -> int:
        return len(self._native)

    @overload
    def __getitem__(self, index: int) -> ListedVersion: ...
    @overload
    def __getitem__(self, index: slice) -> builtins.list[ListedVersion]: ...
    def __getitem__(self, index: int | slice) -> ListedVersion | builtins.list[ListedVersion]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._rows(start, stop)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"version list index {index} out of range ({n} versions)")
        position = index % n
        return self._rows(position, position + 1)[0]

    def __iter__(self) -> Iterator[ListedVersion]:
        page = 1024
        for start in range(0, len(self), page):
            yield from self._rows(start, start + page)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (VersionList, builtins.list)):
            return builtins.list(self) == builtins.list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = self._rows(0, 5)
        more = f", … {len(self) - len(shown)} more" if len(self) > len(shown) else ""
        return f"VersionList({self._name!r}: {', '.join(v.id for v in shown)}{more})"

    def _repr_html_(self) -> str:
        rows = [
            [f"v{v.version}", v.rows, v.overall_score, _html.size(v.bytes), v.author, v.created_at]
            for v in self._rows(0, _html.ROW_LIMIT)
        ]
        return _html.title(
            f"versions of {self._name}", _html.count(len(self), "version"), "best first"
        ) + (
            _html.table(["version", "rows", "score", "size", "author", "created"], rows, len(self))
        )

    def _rows(self, start: int, stop: int) -> builtins.list[ListedVersion]:
        out = []
        for r in json.loads(self._native.rows(start, stop)):
            tc = r["time_coverage"]
            out.append(
                ListedVersion(
                    self._name,
                    r["version"],
                    r["author"],
                    _utc(r["created_at"]),
                    r["bytes"],
                    r["rows"],
                    r["overall_score"],
                    None if tc is None else (_utc(tc[0]), _utc(tc[1])),
                    r["content_hash"],
                )
            )
        return out


def _criteria(
    criteria: Mapping[str, Any] | None,
    min_data_size: int | None,
    min_quality_score: float | None,
    time_range: Mapping[str, TimeLike] | tuple[TimeLike, TimeLike] | None,
    tags: Sequence[str] | None,
) -> str:
    merged: dict[str, Any] = dict(criteria or {})
    for key, value in (
        ("min_data_size", min_data_size),
        ("min_quality_score", min_quality_score),
        ("time_range", time_range),
        ("tags", tags),
    ):
        if value is not None:
            merged[key] = value
    if "time_range" in merged:
        tr = merged["time_range"]
        start, end = (tr["start"], tr["end"]) if isinstance(tr, Mapping) else tr
        merged["time_range"] = [_time_text(start), _time_text(end)]
    if "tags" in merged:
        if isinstance(merged["tags"], str):
            raise TypeError("tags must be a list of tag names, not one string")
        merged["tags"] = list(merged["tags"])
    return json.dumps(merged)


@dataclass(frozen=True)
class OrphanFile:
    """A data file no version lists: left by a failed or killed writer."""

    path: str
    size: int

    def _repr_html_(self) -> str:
        return _html.title(f"orphan file {self.path}", _html.size(self.size))


@dataclass(frozen=True)
class FsckReport:
    """What :meth:`TrainingSets.fsck` found."""

    versions: int
    files: int
    bytes: int
    problems: builtins.list[str]
    """One line per thing wrong: a missing or corrupt file or manifest, a tag or alias
    pointing at no version."""
    orphans: builtins.list[OrphanFile]
    """Collectable files, not a problem: :meth:`TrainingSets.gc` removes them."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def _repr_html_(self) -> str:
        head = _html.title(
            "fsck",
            "ok" if self.ok else _html.count(len(self.problems), "problem"),
            _html.count(self.versions, "version"),
            _html.count(self.files, "file"),
            _html.size(self.bytes),
            _html.count(len(self.orphans), "orphan file"),
        )
        problems = _html.table(["problem"], [[p] for p in self.problems])
        orphans = [[o.path, _html.size(o.size)] for o in self.orphans]
        return head + problems + _html.table(["orphan file", "size"], orphans)


@dataclass(frozen=True)
class SetDiff:
    """What differs between two versions (:meth:`TrainingSets.diff`)."""

    before: str
    after: str
    same_content: bool
    """Equal content hashes: the same rows in the same order."""
    columns_added: builtins.list[dict[str, Any]]
    columns_removed: builtins.list[dict[str, Any]]
    columns_retyped: builtins.list[dict[str, str]]
    rows_before: int
    rows_after: int
    rows_removed: int
    """Rows (over the columns both have, with one type) only in ``before``."""
    rows_added: int
    columns_changed: builtins.list[dict[str, Any]]
    """Per common column, ``completeness``, ``mean``, ``std``, ``min``, ``max`` as
    ``{"before": …, "after": …}``."""

    def _repr_html_(self) -> str:
        stats = ("completeness", "mean", "std", "min", "max")

        def moved(change: dict[str, Any]) -> _html.Html:
            before, after = (_html.text(change[k]) or "none" for k in ("before", "after"))
            return _html.Html(f"{before} → {after}")

        columns = (
            [[c["name"], "added", c["data_type"]] for c in self.columns_added]
            + [[c["name"], "removed", c["data_type"]] for c in self.columns_removed]
            + [[c["column"], "retyped", moved(c)] for c in self.columns_retyped]
        )
        changed = [
            [c["column"], *(moved(c[k]) for k in stats)]
            for c in self.columns_changed
            if any(c[k]["before"] != c[k]["after"] for k in stats)
        ]
        return (
            _html.title(
                f"diff {self.before} → {self.after}",
                "same content" if self.same_content else None,
                f"rows {self.rows_before} → {self.rows_after}",
                f"{_html.count(self.rows_added, 'row')} added",
                f"{_html.count(self.rows_removed, 'row')} removed",
            )
            + _html.table(["column", "change", "type"], columns)
            + _html.table(["column", *stats], changed)
        )


@dataclass(frozen=True)
class Reproduction:
    """Whether a set rebuilt from its lineage is the set recorded
    (:meth:`TrainingSets.reproduce`)."""

    version: str
    matches: bool
    recorded_hash: str
    rebuilt_hash: str
    differences: SetDiff | None
    """What differs, when the hashes do not match."""

    def _repr_html_(self) -> str:
        return (
            _html.title(f"reproduction of {self.version}", "matches" if self.matches else "differs")
            + _html.fields(
                [
                    ("recorded hash", _html.code(self.recorded_hash)),
                    ("rebuilt hash", _html.code(self.rebuilt_hash)),
                ]
            )
            + ("" if self.differences is None else self.differences._repr_html_())
        )


def _ref(version: TrainingSetVersion | str) -> tuple[str, str]:
    name, ref = _reference(version)
    return name, ref


class TrainingSets:
    """A workspace's training-set versions (``ws.training_sets``)."""

    def __init__(self, native: _native.TrainingSets, features: FeatureStore) -> None:
        self._native = native
        self._governance = native.governance()
        self._features = features

    @property
    def user(self) -> str:
        """Who acts: recorded as author, checked against permissions (``Workspace.open(...,
        user=)``, else ``$TRAINSTORE_USER``, else the settings file's ``user``, else ``$USER``)."""
        return self._governance.user

    def _version(self, raw: str) -> TrainingSetVersion:
        return TrainingSetVersion(self._native, json.loads(raw))

    def create(
        self,
        name: str,
        data: Any,
        metadata: Mapping[str, Any] | None = None,
        label: str | None = None,
        time_column: str | None = None,
    ) -> TrainingSetVersion:
        """Creates a version of ``name`` from ``data``: a pyarrow Table, RecordBatch or
        RecordBatchReader, an iterable of record batches (streamed, never held whole), a
        pandas or polars DataFrame. Quality is measured while the rows are written;
        ``label`` names a label column (its class balance is measured), ``time_column`` the
        event times (default ``event_timestamp`` when present)."""
        meta = None if metadata is None else json.dumps(dict(metadata))
        return self._version(self._native.create(name, _reader(data), meta, label, time_column))

    def create_from_features(
        self,
        name: str,
        entity_df: Any,
        features: Sequence[str] | FeatureService,
        metadata: Mapping[str, Any] | None = None,
        label: str | None = None,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
        engine: Literal["in-process", "pushdown"] = "in-process",
        progress: bool = True,
    ) -> TrainingSetVersion:
        """Runs ``ws.features.get_historical_features(entity_df, features, …)`` and creates
        its answer as a version of ``name``, recording the request in the lineage (entity
        rows, feature references, registry version) so :meth:`reproduce` can rebuild it.
        A join that takes more than a second shows its progress unless ``progress=False``."""
        meta = None if metadata is None else json.dumps(dict(metadata))
        raw = self._native.create_from_features(
            self._features._native,
            name,
            _to_batch(entity_df),
            _feature_names(features),
            meta,
            label,
            full_feature_names,
            timestamp_column,
            engine,
            _quick_bar(progress),
        )
        return self._version(raw)

    def names(self) -> builtins.list[str]:
        """Every training set with at least one version."""
        return self._native.names()

    def list(self, name: str) -> VersionList:
        """Every version of ``name``, best quality first (the newer first on a tie), as a
        sequence that converts versions only as they are read: ``list(name)[0]`` is the best,
        and the call costs the same with 10,000 versions as with 100."""
        return VersionList(name, self._native.list(name))

    def get(self, name: str, version: int | str = "latest") -> TrainingSetVersion:
        """A version by number, ``"v3"``, ``"latest"``, a tag or an alias."""
        return self._version(self._native.get(name, str(version)))

    def select_best(
        self,
        name: str,
        criteria: Mapping[str, Any] | None = None,
        *,
        min_data_size: int | None = None,
        min_quality_score: float | None = None,
        time_range: Mapping[str, TimeLike] | tuple[TimeLike, TimeLike] | None = None,
        tags: Sequence[str] | None = None,
    ) -> TrainingSetVersion:
        """The best version meeting every criterion, given as keywords or as a dict (the
        design document's form). ``time_range`` (``{"start": …, "end": …}`` or a pair, both
        included) means the data's times all lie within it; ``tags`` names tags or aliases
        the version must carry. Raises :class:`NotFoundError` naming the criterion that
        excluded the most versions when none qualifies."""
        return self._version(
            self._native.select_best(
                name, _criteria(criteria, min_data_size, min_quality_score, time_range, tags)
            )
        )

    def tag(self, version: TrainingSetVersion | str, tag: str) -> int:
        """Tags a version (an object or ``"name@ref"``) once and for all; returns its number."""
        name, ref = _reference(version)
        return self._native.tag(name, ref, tag)

    def alias(self, version: TrainingSetVersion | str, alias: str) -> int:
        """Points a movable alias (``golden``, ``latest-good``) at a version; the previous
        positions stay in its history. Returns the version number."""
        name, ref = _reference(version)
        return self._native.alias(name, ref, alias)

    def diff(self, before: TrainingSetVersion | str, after: TrainingSetVersion | str) -> SetDiff:
        """What differs between two versions (objects or ``"name@ref"``): columns added,
        removed or retyped, rows added and removed (as multisets), statistics moved."""
        return SetDiff(**json.loads(self._native.diff(_ref(before), _ref(after))))

    def drift(
        self,
        baseline: TrainingSetVersion | str,
        current: TrainingSetVersion | str,
        bins: int = 10,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """How far each numeric feature (and each list feature's values and lengths) moved
        from ``baseline`` to ``current``: one row per feature and measure with ``psi``
        (``bins`` equal-frequency bins of the baseline), ``ks_statistic`` and ``ks_pvalue``
        (two-sample Kolmogorov-Smirnov, asymptotic p-value)."""
        cols = None if columns is None else list(columns)
        rows = json.loads(self._native.drift(_ref(baseline), _ref(current), bins, cols))
        schema = pa.schema(
            [
                ("column", pa.string()),
                ("measure", pa.string()),
                ("psi", pa.float64()),
                ("ks_statistic", pa.float64()),
                ("ks_pvalue", pa.float64()),
                ("baseline_count", pa.int64()),
                ("current_count", pa.int64()),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def reproduce(self, version: TrainingSetVersion | str) -> Reproduction:
        """Rebuilds a version from its lineage (its stored entity rows, by the feature
        registry version it was built with) and checks the content hash; when it differs,
        ``differences`` says what. Only sets built by :meth:`create_from_features` can be
        rebuilt (:class:`NotSupportedError` otherwise)."""
        name, ref = _ref(version)
        raw = json.loads(self._native.reproduce(self._features._native, name, ref))
        diff = raw.pop("differences")
        return Reproduction(**raw, differences=None if diff is None else SetDiff(**diff))

    def fsck(self, older_than: timedelta = timedelta(hours=6), progress: bool = True) -> FsckReport:
        """Checks every version (each file re-read and hashed against its manifest), tag
        and alias; files no version lists, older than ``older_than``, are listed as orphans.
        Problems are reported, not raised."""
        if not isinstance(older_than, timedelta):
            raise TypeError(f"older_than must be a timedelta, got {older_than!r}")
        raw = json.loads(self._native.fsck(older_than.total_seconds(), _bar_if(progress)))
        raw["orphans"] = [OrphanFile(**o) for o in raw["orphans"]]
        return FsckReport(**raw)

    def gc(
        self, older_than: timedelta = timedelta(hours=6), dry_run: bool = False
    ) -> builtins.list[OrphanFile]:
        """Deletes data files no version lists, last written at least ``older_than`` ago
        (younger ones may belong to a create in progress); with ``dry_run`` nothing is
        deleted. Returns the files."""
        if not isinstance(older_than, timedelta):
            raise TypeError(f"older_than must be a timedelta, got {older_than!r}")
        return [
            OrphanFile(**o)
            for o in json.loads(self._native.gc(older_than.total_seconds(), dry_run))
        ]

    def delete(self, version: TrainingSetVersion | str) -> int:
        """Deletes a version: no longer listed or resolved, its number never reused, its
        files removed by a later :meth:`gc`. Tagged or aliased versions cannot be deleted.
        Returns its number."""
        name, ref = _reference(version)
        return self._governance.delete(name, ref)

    def retain(
        self,
        name: str,
        keep_last: int | None = None,
        keep_within: timedelta | None = None,
        dry_run: bool = False,
    ) -> builtins.list[int]:
        """Deletes the versions of ``name`` that no rule keeps: the newest ``keep_last``,
        those created within ``keep_within``, and every tagged or aliased one always stay.
        With ``dry_run`` nothing is deleted. Returns the numbers, oldest first."""
        if keep_within is not None and not isinstance(keep_within, timedelta):
            raise TypeError(f"keep_within must be a timedelta, got {keep_within!r}")
        within = None if keep_within is None else keep_within.total_seconds()
        return self._governance.retain(name, keep_last, within, dry_run)

    def access(self, name: str) -> Access:
        """Who may do what with ``name``."""
        return Access._from(json.loads(self._governance.access(name)))

    def grant(self, name: str, user: str, permission: Permission | None) -> Access:
        """Gives ``user`` (or ``"*"``, everyone not named) ``read``, ``write`` or ``admin``
        permission on ``name``, or none (``None``). Only an admin may; a set always keeps an
        admin. Raises :class:`PermissionDeniedError` otherwise."""
        return Access._from(json.loads(self._governance.grant(name, user, permission)))

    def audit_log(self, name: str) -> builtins.list[AuditEvent]:
        """Every change to ``name`` and every refused attempt, oldest first."""
        return _events(self._governance.audit_log(name))

    def lease(self, name: str) -> Lease | None:
        """``name``'s lease, if one was ever taken."""
        return _lease(self._governance.lease(name, "show", None))

    def acquire_lease(self, name: str, ttl: timedelta = timedelta(hours=1)) -> Lease:
        """Takes (or renews) ``name``'s lease for ``ttl``: until it expires or is released,
        others' changes raise :class:`LeasedError`. Correctness never depends on a lease."""
        if not isinstance(ttl, timedelta):
            raise TypeError(f"ttl must be a timedelta, got {ttl!r}")
        return Lease._from(json.loads(self._governance.lease(name, "acquire", ttl.total_seconds())))

    def release_lease(self, name: str) -> Lease:
        """Gives up this user's lease on ``name``."""
        return Lease._from(json.loads(self._governance.lease(name, "release", None)))

    def break_lease(self, name: str) -> Lease:
        """Ends whoever's lease on ``name``; admins only."""
        return Lease._from(json.loads(self._governance.lease(name, "break", None)))

    def draft(self, name: str, base: int | str | None = None) -> Draft:
        """Starts a draft of a new version of ``name``, empty or holding version ``base``'s
        rows (not copied). Only this user sees it until it is committed."""
        raw = self._governance.draft(name, None if base is None else str(base))
        return Draft(self, json.loads(raw))

    def drafts(self, name: str) -> builtins.list[Draft]:
        """This user's drafts of ``name``, oldest first."""
        return [Draft(self, d) for d in json.loads(self._governance.drafts(name))]

    def __repr__(self) -> str:
        return f"TrainingSets(user={self.user!r})"


def _reference(version: TrainingSetVersion | str) -> tuple[str, str]:
    if isinstance(version, TrainingSetVersion):
        return version.name, str(version.version)
    if not isinstance(version, str):
        raise TypeError(f"expected a TrainingSetVersion or 'name@ref', got {version!r}")
    name, _, ref = version.partition("@")
    return name, ref or "latest"
