"""The feature store: entities, feature views and services, point-in-time training data, and
online serving, with Feast's semantics (see the project's ``docs/point-in-time.md``).

>>> import trainstore as ts
>>> from datetime import datetime, timedelta, timezone
>>> device = ts.Entity("device", join_keys=["uuid", "nodeId"])
>>> view = ts.FeatureView("basic_features", entities=[device], source="./features.parquet",
...                       ttl=timedelta(days=30), timestamp_field="ts",
...                       schema=[ts.Field("meanLf", ts.Float64)])
>>> view.to_dict()["ttl"]
'2592000000000us'

Definitions are applied to a workspace with ``ws.features.apply([...])``; each apply is a new
registry version, with :meth:`FeatureStore.history` and :meth:`FeatureStore.rollback`.
"""

from __future__ import annotations

import builtins
import json
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import pyarrow as pa

from . import _html, _native
from .exceptions import ConfigError, InvalidInputError
from .progress import _quick_bar
from .sources import FileSource, TimeLike, _Source, _time_text, _utc

if TYPE_CHECKING:
    from .training_sets import TrainingSets, TrainingSetVersion

_T = TypeVar("_T")


class OnlineResponse:
    """The answer of :meth:`FeatureStore.get_online_features`: one row per entity row, the join
    keys first, then each view's features (and its ``<view>__status`` column when asked for).

    Read it as Arrow (:meth:`to_arrow`, no copy), pandas (:meth:`to_df`) or Python values
    (:meth:`to_dict`), the spellings of Feast's ``OnlineResponse``; a column by name or
    position (``response["meanLf"]``) as from the table.
    """

    __slots__ = ("_table",)

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def to_arrow(self) -> pa.Table:
        """The answer as a pyarrow Table (the one it holds: no copy)."""
        return self._table

    def to_df(self) -> Any:
        """The answer as a pandas DataFrame."""
        return self._table.to_pandas()

    def to_pandas(self) -> Any:
        """The answer as a pandas DataFrame (the same as :meth:`to_df`)."""
        return self.to_df()

    def to_dict(self) -> dict[str, builtins.list[Any]]:
        """``column -> values``, as Feast's ``OnlineResponse.to_dict()`` answers."""
        values: dict[str, builtins.list[Any]] = self._table.to_pydict()
        return values

    @property
    def column_names(self) -> builtins.list[str]:
        names: builtins.list[str] = self._table.column_names
        return names

    @property
    def num_rows(self) -> int:
        rows: int = self._table.num_rows
        return rows

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, column: str | int) -> pa.ChunkedArray:
        return self._table[column]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OnlineResponse):
            same: bool = self._table.equals(other._table)
            return same
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OnlineResponse\n{self._table}"

    def _repr_html_(self) -> str:
        return _html.title("online features", _html.count(self.num_rows, "row")) + _html.arrow(
            self._table
        )


@dataclass(frozen=True)
class ValueType:
    """A feature's type: use the constants (:data:`Float64`, …) and :func:`Array`."""

    name: str

    def __repr__(self) -> str:
        """How to write it: ``ts.Float64``, ``ts.Array(ts.Float32)``."""
        if self.name.startswith("list<") and self.name.endswith(">"):
            return f"ts.Array({ValueType(self.name[5:-1])!r})"
        return f"ts.{_CONSTANTS.get(self.name, self.name)}"


String = ValueType("string")
Int32 = ValueType("int32")
Int64 = ValueType("int64")
Float32 = ValueType("float32")
Float64 = ValueType("float64")
Bool = ValueType("bool")
Timestamp = ValueType("timestamp")


# The constants' names, by the type they stand for.
_CONSTANTS = {
    "string": "String",
    "int32": "Int32",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "bool": "Bool",
    "timestamp": "Timestamp",
}


def Array(item: ValueType) -> ValueType:
    """A list of numbers, e.g. ``Array(Float32)`` for the design document's spectra."""
    return ValueType(f"list<{item.name}>")


@dataclass(frozen=True)
class Field:
    """A typed feature column of a view."""

    name: str
    dtype: ValueType

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.dtype.name}


@dataclass(frozen=True)
class Entity:
    """What feature rows are about, identified by one or more join keys."""

    name: str
    join_keys: Sequence[str]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "join_keys": _names(self.join_keys, "join_keys")}
        if self.description:
            out["description"] = self.description
        return out

    def _repr_html_(self) -> str:
        return _html.title(f"entity {self.name}", self.description) + _html.fields(
            [("join keys", list(self.join_keys))]
        )


def _ttl_text(ttl: timedelta | None) -> str:
    if ttl is None:
        return "0"
    micros = (ttl.days * 86_400 + ttl.seconds) * 1_000_000 + ttl.microseconds
    if micros < 0:
        raise ValueError(f"ttl must not be negative, got {ttl}")
    return "0" if micros == 0 else f"{micros}us"


def _source_spec(source: _Source | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, _Source):
        return dict(source._spec)
    if isinstance(source, str):
        return {"type": "files", "location": source}
    if isinstance(source, Mapping):
        return dict(source)
    raise TypeError(
        "source must be a DorisSource, a FileSource, a path to typed Parquet files, "
        f"or a source description, got {type(source).__name__}"
    )


def _source_text(spec: Mapping[str, Any]) -> str:
    """What a source description reads, for people: files' location, or a table and the
    server's address (never its credentials)."""
    if "table" in spec:
        host = urllib.parse.urlsplit(str(spec.get("url", ""))).netloc.rpartition("@")[2]
        return f"{spec.get('type', 'table')} table {spec['table']}" + (
            f" on {host}" if host else ""
        )
    return f"{spec.get('type', 'files')} {spec.get('location', '')}".strip()


@dataclass(frozen=True)
class FeatureView:
    """A group of features from one source, keyed by entities, valid for ``ttl``.

    ``source`` is a :class:`DorisSource` or :class:`SnapshotFiles` of snapshots, or a typed
    table (columns read as stored): a path to Parquet files, or Feast's
    ``FileSource(path, timestamp_field=...)``, from which the view takes its timestamp fields.
    ``timestamp_field`` is ``"time"`` (the snapshots') unless given here or by such a
    ``FileSource``. With an empty ``schema``, every source
    column besides the join keys and timestamps becomes a feature at apply time. A Doris
    password must be a ``${VARIABLE}`` reference: the registry stores how to reopen the source.
    ``online_rows`` is how many of each entity's latest rows the online store keeps: 1 serves
    the latest values, more also serve a model's window of recent rows
    (``ws.models.predict_online``).
    """

    name: str
    entities: Sequence[Entity | str]
    source: _Source | str | Mapping[str, Any]
    schema: Sequence[Field] = ()
    ttl: timedelta | None = None
    timestamp_field: str | None = None
    created_timestamp_field: str | None = None
    online: bool = True
    online_rows: int = 1
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "entities": [
                e.name if isinstance(e, Entity) else e for e in _names(self.entities, "entities")
            ],
            "source": _source_spec(self.source),
            "schema": [f.to_dict() for f in self.schema],
            "ttl": _ttl_text(self.ttl),
            "timestamp_field": self._timestamp_fields()[0],
            "online": self.online,
            "online_rows": self.online_rows,
            "tags": dict(self.tags),
            "description": self.description,
        }
        created = self._timestamp_fields()[1]
        if created is not None:
            out["created_timestamp_field"] = created
        return out

    def _timestamp_fields(self) -> tuple[str, str | None]:
        """The event and created timestamp fields: the view's own, else its typed
        :class:`FileSource`'s, else ``"time"`` and none."""
        source = self.source if isinstance(self.source, FileSource) else None
        pairs = [
            ("timestamp_field", self.timestamp_field, "timestamp_field", "time"),
            (
                "created_timestamp_field",
                self.created_timestamp_field,
                "created_timestamp_column",
                None,
            ),
        ]
        chosen: builtins.list[str | None] = []
        for mine, own, theirs, default in pairs:
            from_source = getattr(source, theirs, None) if source is not None else None
            if own is not None and from_source is not None and own != from_source:
                raise InvalidInputError(
                    f"feature view {self.name}: {mine}={own!r} but its FileSource says "
                    f"{theirs}={from_source!r}; give it in one place"
                )
            chosen.append(own if own is not None else from_source if from_source else default)
        return chosen[0] or "time", chosen[1]

    def _repr_html_(self) -> str:
        features = (
            _html.count(len(self.schema), "feature") if self.schema else "features from its source"
        )
        source = None
        if isinstance(self.source, (_Source, str, Mapping)):
            source = _source_text(_source_spec(self.source))
        online = f"latest {self.online_rows} rows per entity" if self.online else "no"
        return _html.title(f"feature view {self.name}", features, self.description) + _html.fields(
            [
                ("entities", [e.name if isinstance(e, Entity) else e for e in self.entities]),
                ("source", source),
                ("features", [f"{f.name} {f.dtype.name}" for f in self.schema]),
                ("timestamp field", self._timestamp_fields()[0]),
                ("created timestamp field", self._timestamp_fields()[1]),
                ("ttl", self.ttl),
                ("online", online),
                ("tags", dict(self.tags)),
            ]
        )


@dataclass(frozen=True)
class FeatureService:
    """A named set of feature references (``"view:feature"``)."""

    name: str
    features: Sequence[str]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": _names(self.features, "features"),
            "description": self.description,
        }

    def _repr_html_(self) -> str:
        features = [self.features] if isinstance(self.features, str) else list(self.features)
        return _html.title(
            f"feature service {self.name}", _html.count(len(features), "feature"), self.description
        ) + _html.table(["feature"], [[f] for f in features])


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed at retrieval time from other views' features, each an expression:
    ``mean``, ``std``, ``min``, ``max``, ``argmax``, ``energy``, ``len`` or
    ``band_ratio(view:feature, lo, hi)`` of a list feature, and ``+ - * /`` over numeric
    features and numbers, e.g. ``{"hf_lf": "basic:meanHf / basic:meanLf"}``. A null input, an
    empty list or a division by zero gives null. Referenced as ``"name:feature"``."""

    name: str
    features: Mapping[str, str]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": [{"name": n, "expression": e} for n, e in self.features.items()],
            "description": self.description,
        }

    def _repr_html_(self) -> str:
        return _html.title(
            f"on-demand feature view {self.name}",
            _html.count(len(self.features), "feature"),
            self.description,
        ) + _html.table(["feature", "expression"], list(self.features.items()))


Definition = Entity | FeatureView | OnDemandFeatureView | FeatureService


def _definitions_json(definitions: Sequence[Definition]) -> str:
    out: dict[str, list[dict[str, Any]]] = {
        "entities": [],
        "feature_views": [],
        "on_demand_feature_views": [],
        "feature_services": [],
    }
    for d in definitions:
        if isinstance(d, Entity):
            out["entities"].append(d.to_dict())
        elif isinstance(d, FeatureView):
            for e in d.entities:
                if isinstance(e, Entity) and e not in definitions:
                    out["entities"].append(e.to_dict())
            out["feature_views"].append(d.to_dict())
        elif isinstance(d, OnDemandFeatureView):
            out["on_demand_feature_views"].append(d.to_dict())
        elif isinstance(d, FeatureService):
            out["feature_services"].append(d.to_dict())
        else:
            raise TypeError(f"not a definition: {d!r}")
    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    for entity in out["entities"]:
        key = json.dumps(entity, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(entity)
    out["entities"] = unique
    return json.dumps(out)


@dataclass(frozen=True)
class PlannedChange:
    """What an apply does to one definition."""

    kind: str
    name: str
    change: str  # "add", "update" or "unchanged"

    def __str__(self) -> str:
        sign = {"add": "+", "update": "~", "unchanged": "="}[self.change]
        return f"{sign} {self.kind} {self.name}"

    def _repr_html_(self) -> str:
        return _html.title(f"{self.kind} {self.name}", self.change)


@dataclass(frozen=True)
class Applied:
    """An apply's outcome: what changed, and the new registry version (None if nothing did)."""

    version: int | None
    changes: list[PlannedChange]

    def _repr_html_(self) -> str:
        heading = (
            "apply: nothing changed"
            if self.version is None
            else f"applied as registry v{self.version}"
        )
        added = sum(c.change == "add" for c in self.changes)
        updated = sum(c.change == "update" for c in self.changes)
        return _html.title(heading, f"{added} added", f"{updated} updated") + _html.table(
            ["change", "kind", "name"], [[c.change, c.kind, c.name] for c in self.changes]
        )


@dataclass(frozen=True)
class RegistryVersion:
    """One version of the feature registry: who applied what, when."""

    version: int
    author: str
    created_at: datetime
    summary: str

    def _repr_html_(self) -> str:
        return _html.title(f"registry v{self.version}") + _html.fields(
            [("author", self.author), ("created", self.created_at), ("changes", self.summary)]
        )


@dataclass(frozen=True)
class Materialized:
    """One view's materialization: rows read, entities found, rows the store took."""

    view: str
    rows_read: int
    entities: int
    written: int

    def _repr_html_(self) -> str:
        return _html.title(f"materialized {self.view}") + _html.fields(
            [("rows read", self.rows_read), ("entities", self.entities), ("written", self.written)]
        )


@dataclass(frozen=True)
class Ingested:
    """One ingest into the offline store: the store's new version, rows and segments."""

    view: str
    version: int
    rows: int
    segments: int

    def _repr_html_(self) -> str:
        return _html.title(
            f"ingested {self.view}", f"offline store v{self.version}"
        ) + _html.fields([("rows", self.rows), ("segments", self.segments)])


def _changes(raw: list[dict[str, str]]) -> list[PlannedChange]:
    return [PlannedChange(c["kind"], c["name"], c["change"]) for c in raw]


def _to_batch(data: Any) -> pa.RecordBatch:
    """Entity rows from pyarrow, pandas, polars, a dict of columns or a list of dicts."""
    if isinstance(data, pa.RecordBatch):
        return data
    try:
        if isinstance(data, pa.Table):
            table = data
        elif isinstance(data, list):
            table = pa.Table.from_pylist(data)
        elif isinstance(data, dict):
            table = pa.Table.from_pydict(data)
        elif hasattr(data, "to_arrow"):  # polars
            table = data.to_arrow()
        elif type(data).__module__.startswith("pandas"):
            # A named index (``df.set_index("uuid")``) holds data, a join key perhaps: it
            # becomes a column; an unnamed one is only row numbers.
            named = any(name is not None for name in data.index.names)
            table = pa.Table.from_pandas(data, preserve_index=named)
        else:
            raise TypeError(
                "entity rows must be a pyarrow Table or RecordBatch, a pandas or polars "
                f"DataFrame, a dict of columns or a list of dicts, got {type(data).__name__}"
            )
    except (pa.ArrowException, OverflowError) as e:
        # Values pyarrow cannot put in one typed column (mixed types, integers beyond 64 bits).
        raise InvalidInputError(f"invalid entity rows: {e}") from e
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


class FeatureStore:
    """A workspace's feature store (``ws.features``)."""

    def __init__(
        self,
        native: _native.FeatureStore,
        training_sets: Callable[[], TrainingSets] | None = None,
    ) -> None:
        self._native = native
        self._training_sets = training_sets

    def apply(self, definitions: Sequence[Definition]) -> Applied:
        """Adds or replaces definitions by name, as one new registry version. Views are
        checked against their source's columns; an error changes nothing."""
        raw = json.loads(self._native.apply(_definitions_json(definitions)))
        return Applied(raw["version"], _changes(raw["changes"]))

    def plan(self, definitions: Sequence[Definition]) -> builtins.list[PlannedChange]:
        """What :meth:`apply` would change, without changing anything."""
        return _changes(json.loads(self._native.plan(_definitions_json(definitions))))

    def list(self) -> dict[str, Any]:
        """The current definitions: ``entities``, ``feature_views``, ``feature_services``."""
        result: dict[str, Any] = json.loads(self._native.definitions())
        return result

    def history(self) -> builtins.list[RegistryVersion]:
        """Every registry version, oldest first."""
        return [
            RegistryVersion(h["version"], h["author"], _utc(h["created_at"]), h["summary"])
            for h in json.loads(self._native.history())
        ]

    def delete(self, names: Sequence[str]) -> int:
        """Removes the definitions named ``names`` (entities, feature views, on-demand views,
        services) as one new registry version, which it returns. Refused, changing nothing,
        when a name is not defined or when what is left still refers to a removed definition
        (remove a view and the services that use it together)."""
        return self._native.remove(_names(names, "names"))

    def rollback(self, version: int) -> int:
        """Makes the definitions of ``version`` current again; returns the new version."""
        return self._native.rollback(version)

    @overload
    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str] | FeatureService,
        full_feature_names: bool = ...,
        timestamp_column: str | None = ...,
        engine: Literal["in-process", "pushdown"] = ...,
        *,
        save_as: None = ...,
        label: str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        progress: bool = ...,
    ) -> pa.Table: ...
    @overload
    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str] | FeatureService,
        full_feature_names: bool = ...,
        timestamp_column: str | None = ...,
        engine: Literal["in-process", "pushdown"] = ...,
        *,
        save_as: str,
        label: str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        progress: bool = ...,
    ) -> TrainingSetVersion: ...
    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str] | FeatureService,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
        engine: Literal["in-process", "pushdown"] = "in-process",
        *,
        save_as: str | None = None,
        label: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> pa.Table | TrainingSetVersion:
        """Point-in-time-correct feature values for each entity row.

        ``entity_df`` holds the join keys and an ``event_timestamp`` column (or exactly one
        timestamp column, or ``timestamp_column``), plus any labels, which pass through. Rows
        keep their order; features follow, grouped by view, then on-demand features; no
        match gives nulls. ``features`` lists ``"view:feature"`` references or feature service
        names, or is a :class:`FeatureService`. ``engine="pushdown"`` runs the join in the
        database (views over Doris or MySQL tables only); the answer is the same. The
        schema metadata ``trainstore.sources`` names, per view, what its rows were read from
        (JSON; ``offline store offline-<view>@v<N>`` when the ingested offline store answered).

        With ``save_as="name"``, the answer streams into a new version of that training set
        instead (never held whole; ``label`` and ``metadata`` as in
        :meth:`TrainingSets.create`), and the version is returned: the same as
        ``ws.training_sets.create_from_features(name, entity_df, features, …)``.

        A join that takes more than a second shows its progress (source rows read) unless
        ``progress=False``.
        """
        if save_as is not None:
            if self._training_sets is None:
                raise InvalidInputError(
                    "save_as needs the workspace's training sets: use ws.features of a Workspace"
                )
            return self._training_sets().create_from_features(
                save_as,
                entity_df,
                features,
                metadata=metadata,
                label=label,
                full_feature_names=full_feature_names,
                timestamp_column=timestamp_column,
                engine=engine,
                progress=progress,
            )
        if label is not None or metadata is not None:
            raise InvalidInputError("label and metadata describe a saved set: give save_as too")
        batch = self._native.get_historical_features(
            _to_batch(entity_df),
            _feature_names(features),
            full_feature_names,
            timestamp_column,
            engine,
            _quick_bar(progress),
        )
        return pa.Table.from_batches([batch])

    def materialize(
        self,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        views: Sequence[str] | None = None,
        *,
        start_date: TimeLike | None = None,
        end_date: TimeLike | None = None,
        feature_views: Sequence[str] | None = None,
        progress: bool = True,
    ) -> builtins.list[Materialized]:
        """Writes each entity's latest row with event time in ``[start, end]`` (both included)
        into the online store; an older row never replaces a newer one. Feast's spellings
        ``start_date``, ``end_date`` and ``feature_views`` are accepted for the same
        arguments (one spelling each). A view that takes more than a second shows its
        progress (source rows read) unless ``progress=False``."""
        start = _one_of("start", start, "start_date", start_date)
        end = _one_of("end", end, "end_date", end_date)
        views = _one_of("views", views, "feature_views", feature_views)
        raw = self._native.materialize(
            _required_time(end), _required_time(start), _views(views), _quick_bar(progress)
        )
        return _materialized(raw)

    def materialize_incremental(
        self, end: TimeLike, views: Sequence[str] | None = None, progress: bool = True
    ) -> builtins.list[Materialized]:
        """Materializes each online view from where its last materialization ended."""
        raw = self._native.materialize(
            _required_time(end), None, _views(views), _quick_bar(progress)
        )
        return _materialized(raw)

    def ingest(
        self,
        view: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        progress: bool = True,
    ) -> Ingested:
        """Copies ``view``'s rows with event times in ``[start, end]`` (both included; by
        default from the epoch to now) into the workspace's offline store, sorted for joins.
        Historical requests whose time span the store covers are answered from it, without
        reading the source; a range already ingested is refused. Progress (rows copied) shows
        after a second unless ``progress=False``."""
        first = _required_time(0 if start is None else start)
        last = _required_time(datetime.now(timezone.utc) if end is None else end)
        raw = json.loads(self._native.ingest(view, first, last, _quick_bar(progress)))
        return Ingested(
            view=raw["view"],
            version=raw["version"],
            rows=raw["rows"],
            segments=raw["segments"],
        )

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService,
        entity_rows: Any,
        full_feature_names: bool = False,
        ignore_ttl: bool = False,
        include_status: bool = False,
    ) -> OnlineResponse:
        """The latest values for each entity (join keys; a list of dicts works). Values older
        than their view's TTL read as null unless ``ignore_ttl`` (Feast's behaviour).
        ``include_status`` adds a ``<view>__status`` column after each view's features saying
        why its values are what they are: ``present``, ``expired`` (older than the TTL),
        ``unknown key`` (nothing materialized for the key) or ``not materialized`` (the view
        never was). Keys compare by value: an integer ``1465`` finds the rows of the text key
        ``"1465"``, and the other way round (rule 7.3 of ``docs/point-in-time.md``)."""
        # A list of dicts of keys is read natively: converting it through pyarrow costs more
        # than the lookup.
        rows = entity_rows if isinstance(entity_rows, list) else _to_batch(entity_rows)
        batch = self._native.get_online_features(
            _feature_names(features), rows, full_feature_names, ignore_ttl, include_status
        )
        return OnlineResponse(pa.Table.from_batches([batch]))

    @property
    def online_store(self) -> str:
        """Where online values are kept."""
        return self._native.online_store()

    def __repr__(self) -> str:
        views = [v["name"] for v in self.list()["feature_views"]]
        return f"FeatureStore(views={views})"

    def _repr_html_(self) -> str:
        listed = self.list()
        views, services = listed.get("feature_views", []), listed.get("feature_services", [])
        rows = (
            [["entity", e["name"], e["join_keys"], ""] for e in listed.get("entities", [])]
            + [
                [
                    "feature view",
                    v["name"],
                    [f["name"] for f in v.get("schema", [])],
                    _source_text(v["source"]),
                ]
                for v in views
            ]
            + [
                [
                    "on-demand feature view",
                    v["name"],
                    [f["name"] for f in v.get("features", [])],
                    "",
                ]
                for v in listed.get("on_demand_feature_views", [])
            ]
            + [["feature service", s["name"], s["features"], ""] for s in services]
        )
        try:
            online = _html.Html("online store " + _html.code(self.online_store))
        except ConfigError:  # none configured, and the workspace is not on a local disk
            online = _html.Html("no online store")
        return _html.title(
            "feature store",
            _html.count(len(views), "feature view"),
            _html.count(len(services), "feature service"),
            online,
        ) + _html.table(["kind", "name", "features or keys", "source"], rows)


def _names(names: Sequence[_T], what: str) -> list[_T]:
    """``names`` as a list; a bare string, which would read as its letters, is refused."""
    if isinstance(names, str):
        raise TypeError(f"{what} is a list of names; wrap a single name in a list")
    return list(names)


def _feature_names(features: Sequence[str] | FeatureService) -> list[str]:
    if isinstance(features, FeatureService):
        return [features.name]
    return _names(features, "features")


def _one_of(name: str, value: Any, alias: str, aliased: Any) -> Any:
    """The argument given as ``name`` or as its alias ``alias``; both at once is refused."""
    if value is not None and aliased is not None:
        raise TypeError(f"give {name} or {alias}, not both")
    return value if aliased is None else aliased


def _required_time(value: TimeLike | None) -> str:
    text = _time_text(value)
    if text is None:
        raise TypeError("a time is required here, got None")
    return text


def _views(views: Sequence[str] | None) -> list[str] | None:
    return None if views is None else list(views)


def _materialized(text: str) -> list[Materialized]:
    return [
        Materialized(m["view"], m["rows_read"], m["entities"], m["written"])
        for m in json.loads(text)
    ]
