"""Feature-snapshot sources: Doris over the MySQL protocol, and snapshot files on any mount.

Both parse raw snapshots (the design document's ``time`` + JSON ``feature`` layout, or a flat
table described by a :class:`SnapshotSchema`) into typed Arrow and return ``pyarrow`` tables or
record batches, handed over without copies. A value that cannot be read becomes null and is
counted in :attr:`DorisSource.parse_report`; with ``strict=True`` the first one raises
:class:`~trainstore.MalformedDataError` naming the row (uuid, nodeId, time) and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import _html, _native
from .exceptions import InvalidInputError
from .progress import _quick_bar

if TYPE_CHECKING:
    import pyarrow as pa

    from . import MountTable

TimeLike = str | int | datetime
FilterValue = str | int | float | bool | None | Sequence[str | int | float | bool]


def _utc(ms: int) -> datetime:
    """An epoch-milliseconds instant from the native side as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _time_text(value: TimeLike | None) -> str | None:
    """ISO-8601 text, epoch milliseconds, or a datetime (naive means UTC) as text for Rust."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return str(round(aware.timestamp() * 1000))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a time as str, int (epoch ms) or datetime, got {value!r}")


def _filter_dict(filters: Mapping[str, FilterValue] | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    out: dict[str, Any] = {}
    for column, value in filters.items():
        out[column] = list(value) if isinstance(value, (list, tuple, set)) else value
    return out


class SnapshotSchema:
    """Which fields snapshots have, of what kind, and where they are read from.

    >>> SnapshotSchema(keys=["device"], time="ts", features={"rms": "number"},
    ...                document_column=None).output_schema.names
    ['device', 'ts', 'rms']
    """

    def __init__(
        self,
        keys: Sequence[str],
        time: str = "time",
        tag: str | None = None,
        features: Mapping[str, str] | None = None,
        document_column: str | None = "feature",
        unknown_column: str = "_unknown",
    ) -> None:
        spec: dict[str, Any] = {
            "document_column": document_column,
            "keys": list(keys),
            "time": time,
            "tag": tag,
            "features": [{"name": n, "type": t} for n, t in (features or {}).items()],
            "unknown_column": unknown_column,
        }
        self._native = _native.SnapshotSchema.from_yaml(json.dumps(spec))

    @classmethod
    def _wrap(cls, native: _native.SnapshotSchema) -> SnapshotSchema:
        schema = cls.__new__(cls)
        schema._native = native
        return schema

    @classmethod
    def design_doc(cls) -> SnapshotSchema:
        """The design document's layout (the default everywhere)."""
        return cls._wrap(_native.SnapshotSchema.design_doc())

    @classmethod
    def from_yaml(cls, text: str) -> SnapshotSchema:
        """A schema from YAML (see the Rust ``SnapshotSchema::from_yaml`` for the format)."""
        return cls._wrap(_native.SnapshotSchema.from_yaml(text))

    def to_yaml(self) -> str:
        return self._native.to_yaml()

    @property
    def output_schema(self) -> pa.Schema:
        """The typed pyarrow schema of parsed snapshots."""
        return self._native.output_schema()

    def __repr__(self) -> str:
        return repr(self._native)


@dataclass(frozen=True)
class ColumnReport:
    """One column's values that could not be read (malformed) or were absent (missing)."""

    malformed: int
    missing: int

    def _repr_html_(self) -> str:
        return _html.title(
            "column report", f"{self.malformed} malformed", f"{self.missing} missing"
        )


@dataclass(frozen=True)
class ParseReport:
    """What a query found: rows parsed, and per column the malformed and missing values."""

    rows: int = 0
    columns: dict[str, ColumnReport] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def malformed(self) -> int:
        """Malformed values over all columns."""
        return sum(c.malformed for c in self.columns.values())

    @classmethod
    def _from_json(cls, text: str) -> ParseReport:
        raw = json.loads(text)
        columns = {name: ColumnReport(**c) for name, c in raw["columns"].items()}
        return cls(rows=raw["rows"], columns=columns, examples=raw["examples"])

    def _repr_html_(self) -> str:
        rows = [
            [n, c.malformed, c.missing] for n, c in self.columns.items() if c.malformed or c.missing
        ]
        return _html.title(
            "parse report",
            _html.count(self.rows, "row"),
            _html.count(self.malformed, "malformed value"),
        ) + _html.table(["column", "malformed", "missing"], rows)


class _Source:
    _native: _native.SnapshotSource
    # How the feature registry reopens this source (see trainstore.FeatureView).
    _spec: dict[str, Any]

    def query(
        self,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        filters: Mapping[str, FilterValue] | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        progress: bool = True,
    ) -> pa.Table:
        """Snapshots with time in ``[start, end)`` passing every filter, as a pyarrow.Table.

        ``filters`` maps a column to a value (equality), a list (membership) or None (is
        null). Filters on table columns run in the database; others after parsing. A query
        that takes more than a second shows its progress (snapshots read) unless
        ``progress=False``.
        """
        return self._native.query(
            _time_text(start),
            _time_text(end),
            _filter_dict(filters),
            None if columns is None else list(columns),
            limit,
            _quick_bar(progress),
        )

    def stream(
        self,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        filters: Mapping[str, FilterValue] | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`query`, one ``pyarrow.RecordBatch`` at a time (memory stays flat)."""
        return iter(
            self._native.stream(
                _time_text(start),
                _time_text(end),
                _filter_dict(filters),
                None if columns is None else list(columns),
                limit,
            )
        )

    @property
    def parse_report(self) -> ParseReport:
        """The parse report of the latest query (complete once its stream is exhausted)."""
        return ParseReport._from_json(self._native.parse_report_json())

    def __repr__(self) -> str:
        return repr(self._native)


class DorisSource(_Source):
    """A snapshot table in Doris (or any MySQL-protocol server).

    ``url`` is ``mysql://user:password@host:9030/db``; write the password as a reference,
    ``mysql://user:${DORIS_PASSWORD}@host:9030/db``, and it is read from the environment each
    time the source is opened, here as in a definitions file (where a literal password is
    refused). ``load_snapshots`` and ``write_back`` read their URLs the same way.

    Read over the MySQL protocol by default; with ``flight_url="grpc://fe:8070"`` over Arrow
    Flight SQL (Doris 2.1+, the fast path), with the URL's user and password. Reads split the
    time range into ``partitions`` parts read in parallel. Over MySQL a dropped connection is
    retried, skipping the rows already returned, so no row is repeated or lost; over Flight a
    failure before any batch was returned starts over with a new ticket. The MySQL-protocol
    reader logs in to ``mysql_native_password`` accounts, as Doris has them.
    TLS: ``url`` takes ``?require_ssl=true`` (the server's certificate must chain to a public
    root) or ``?ssl_ca=/path/ca.pem`` (to that CA), with ``verify_identity=false`` or
    ``verify_ca=false`` to check less; ``flight_url="grpc+tls://fe:8070"`` encrypts Flight,
    trusting the public roots or the CA of ``?ssl_ca=/path/ca.pem``.
    ``flight_rewrite`` maps advertised BE addresses (``host:port``) to reachable ones.
    ``query_timeout`` bounds a whole query, retries included; ``connect_timeout`` (seconds to
    connect and log in) and ``read_timeout`` (seconds the server may stay silent) give up on a
    dead server quickly without cutting off a long read that keeps receiving rows. A timeout
    raises :class:`~trainstore.exceptions.TimeoutError` naming the server and the phase.
    """

    def __init__(
        self,
        url: str,
        table: str,
        schema: SnapshotSchema | None = None,
        partitions: int = 4,
        batch_rows: int = 8192,
        query_timeout: float = 300.0,
        max_retries: int = 3,
        strict: bool = False,
        flight_url: str | None = None,
        flight_rewrite: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self._spec = {"type": "doris", "url": url, "table": table}
        if flight_url is not None:
            self._spec["flight_url"] = flight_url
        if schema is not None:
            self._spec["snapshots"] = json.loads(schema._native.to_json())
        self._native = _native.SnapshotSource.open_doris(
            url,
            table,
            None if schema is None else schema._native,
            partitions,
            batch_rows,
            query_timeout,
            max_retries,
            strict,
            flight_url,
            None if flight_rewrite is None else dict(flight_rewrite),
            connect_timeout,
            read_timeout,
        )

    def query_raw(
        self,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        filters: Mapping[str, FilterValue] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """The stored columns, unparsed (MySQL protocol only; filters on table columns)."""
        return self._native.query_raw(
            _time_text(start), _time_text(end), _filter_dict(filters), limit
        )


class SnapshotFiles(_Source):
    """Raw snapshot files (Parquet, CSV, JSON lines) in the design document's layout, parsed
    like a snapshot table: one file, or a directory of them, on any mount. For a typed table
    (columns read as stored), Feast's spelling ``FileSource(path, timestamp_field=...)``
    applies instead."""

    def __init__(
        self,
        location: str | os.PathLike[str],
        schema: SnapshotSchema | None = None,
        format: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        mounts: MountTable | None = None,
        strict: bool = False,
    ) -> None:
        self._spec = {
            "type": "files",
            "location": os.fspath(location),
            "snapshots": json.loads(
                (
                    schema._native if schema is not None else _native.SnapshotSchema.design_doc()
                ).to_json()
            ),
        }
        if format is not None:
            self._spec["format"] = format
        self._native = _native.SnapshotSource.open_files(
            os.fspath(location),
            None if schema is None else schema._native,
            format,
            dict(storage_options) if storage_options else None,
            None if mounts is None else mounts._native,
            strict,
        )

    @property
    def files(self) -> list[str]:
        """The files read, in order."""
        return self._native.file_names()


class FileSource(SnapshotFiles):
    """Files on any mount, in one of two shapes, told apart by ``timestamp_field``:

    - ``FileSource(path, timestamp_field="ts")``, Feast's spelling: a typed table (Parquet)
      whose columns are read as stored, used as a :class:`FeatureView`'s source; the view takes
      its ``timestamp_field`` and ``created_timestamp_column`` from here.
    - ``FileSource(location)``: raw snapshot files, parsed; the same as
      :class:`SnapshotFiles`, which names them without doubt.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        schema: SnapshotSchema | None = None,
        format: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        mounts: MountTable | None = None,
        strict: bool = False,
        *,
        path: str | os.PathLike[str] | None = None,
        timestamp_field: str | None = None,
        created_timestamp_column: str | None = None,
    ) -> None:
        if (location is None) == (path is None):
            raise InvalidInputError(
                "FileSource: give the files' location once, as location or as path"
            )
        where = os.fspath(location if location is not None else path)  # type: ignore[arg-type]
        self.timestamp_field = timestamp_field
        self.created_timestamp_column = created_timestamp_column
        if timestamp_field is None:
            if created_timestamp_column is not None:
                raise InvalidInputError(
                    "FileSource: created_timestamp_column describes a typed table; give its "
                    "timestamp_field too (raw snapshot files have neither: ts.SnapshotFiles)"
                )
            super().__init__(where, schema, format, storage_options, mounts, strict)
            return
        if schema is not None or format is not None or strict:
            raise InvalidInputError(
                "FileSource: timestamp_field makes this a typed table (Feast's FileSource), "
                "read as stored; schema, format and strict describe raw snapshot files: use "
                "ts.SnapshotFiles(location, schema=...) for those"
            )
        if storage_options or mounts is not None:
            raise InvalidInputError(
                "FileSource: a typed table is read through the workspace's mounts (ws.mounts.add)"
                ", not options of its own"
            )
        self._spec = {"type": "files", "location": where}

    def _raw_snapshots(self) -> None:
        if self.timestamp_field is not None:
            raise InvalidInputError(
                f"FileSource({self._spec['location']!r}, timestamp_field=...) is a typed table, "
                "read by the feature views that name it (or by pyarrow.parquet.read_table); "
                "query, stream and parse reports are for raw snapshot files (ts.SnapshotFiles)"
            )

    def query(self, *args: Any, **kwargs: Any) -> pa.Table:
        self._raw_snapshots()
        return super().query(*args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        self._raw_snapshots()
        return super().stream(*args, **kwargs)

    @property
    def parse_report(self) -> ParseReport:
        self._raw_snapshots()
        return ParseReport._from_json(self._native.parse_report_json())

    @property
    def files(self) -> list[str]:
        self._raw_snapshots()
        return self._native.file_names()

    def __repr__(self) -> str:
        if self.timestamp_field is not None:
            return (
                f"FileSource(path={self._spec['location']!r}, "
                f"timestamp_field={self.timestamp_field!r})"
            )
        return super().__repr__()


def synthetic_snapshots(
    devices: int = 10,
    nodes_per_device: int = 2,
    snapshots: int = 100,
    start: str = "2022-12-07T00:00:00Z",
    interval_ms: int = 600_000,
    malformed_rate: float = 0.005,
    seed: int = 42,
) -> pa.Table:
    """Seeded synthetic snapshots in the design document's raw layout (``time``, ``feature``)."""
    return _native.synthetic_snapshots(
        devices, nodes_per_device, snapshots, start, interval_ms, malformed_rate, seed
    )


def load_snapshots(
    url: str,
    table: str,
    data: Any,
    label: str | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
) -> WriteOutcome:
    """Appends raw design-document rows (a pyarrow.Table or any Arrow stream with ``time`` and
    ``feature``) to ``table``, creating it when absent, exactly once per ``label`` as
    :func:`write_back` writes: by default the label names the rows' content, so loading the
    same rows again writes nothing and says so (``already_written``).

    A table created on MySQL/MariaDB keeps its rows in time order, as Doris keeps a duplicate-key
    table (primary key on ``time`` and an invisible sequence), so a time range reads only its own
    rows; each batch is written in time order, and batches are best given in time order too.
    ``connect_timeout`` and ``read_timeout`` (seconds) bound connecting and each statement."""
    rows, already, attempts = _native.load_snapshots(
        url, table, data, label, connect_timeout, read_timeout
    )
    return WriteOutcome(rows, already, attempts)


def parse_snapshots(
    data: Any, schema: SnapshotSchema | None = None, strict: bool = False
) -> tuple[pa.Table, ParseReport]:
    """Parses raw snapshot rows (a pyarrow.Table or any Arrow stream, e.g. the design
    document's ``time`` + ``feature`` columns) into typed Arrow, on every core."""
    table, report = _native.parse_snapshots(
        data, None if schema is None else schema._native, strict
    )
    return table, ParseReport._from_json(report)


@dataclass(frozen=True)
class WriteOutcome:
    """What :func:`write_back` or :func:`load_snapshots` did: rows written, whether its label
    had been written before, and how many attempts it took."""

    rows_written: int
    already_written: bool
    attempts: int

    def _repr_html_(self) -> str:
        outcome = "already written before" if self.already_written else None
        return _html.title(
            "write",
            f"{_html.count(self.rows_written, 'row')} written",
            outcome,
            _html.count(self.attempts, "attempt"),
        )


def write_back(
    url: str,
    table: str,
    data: Any,
    label: str,
    max_retries: int = 3,
    timeout: float = 300.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
) -> WriteOutcome:
    """Appends rows (a pyarrow.Table or any Arrow stream, e.g. predictions) to ``table`` under
    ``label``, creating the table when absent. Writing the same label again, or a retry after a
    dropped connection, never duplicates rows. ``timeout`` (seconds) bounds the whole write,
    retries included; ``connect_timeout`` and ``read_timeout`` bound connecting and each
    statement."""
    rows, already, attempts = _native.write_back(
        url, table, data, label, max_retries, timeout, connect_timeout, read_timeout
    )
    return WriteOutcome(rows, already, attempts)
