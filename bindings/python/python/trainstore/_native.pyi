"""Type stubs of the private native module; the public API is in ``trainstore``."""

import builtins
from typing import Any, Protocol, final

import pyarrow as pa

__all__ = [
    "LAYOUT_VERSION",
    "BatchIterator",
    "FeatureStore",
    "Listing",
    "MountTable",
    "SetGovernance",
    "SnapshotSchema",
    "SnapshotSource",
    "TrainingSets",
    "Workspace",
    "__version__",
    "load_snapshots",
    "parse_snapshots",
    "synthetic_snapshots",
    "write_back",
]

__version__: str
LAYOUT_VERSION: int

class _Progress(Protocol):
    def begin(self, label: str, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...

@final
class MountTable:
    @staticmethod
    def load(path: str | None = None) -> MountTable: ...
    @property
    def path(self) -> str: ...
    def add(
        self,
        name: str,
        url: str,
        options: dict[str, str] | None = None,
        allow_literal_secrets: bool = False,
    ) -> None: ...
    def remove(self, name: str) -> bool: ...
    def list(self) -> dict[str, tuple[str, str]]: ...
    def check(
        self,
        location: str,
        options: dict[str, str] | None = None,
        progress: _Progress | None = None,
    ) -> str: ...

@final
class Workspace:
    @staticmethod
    def open(
        location: str,
        storage_options: dict[str, str] | None = None,
        mounts: MountTable | None = None,
        create: bool = True,
        online_store: str | None = None,
        user: str | None = None,
    ) -> Workspace: ...
    def features(self) -> FeatureStore: ...
    def training_sets(self) -> TrainingSets: ...
    def training_sets_in(self, namespace: str) -> TrainingSets: ...
    def namespaces(self) -> builtins.list[str]: ...
    @property
    def url(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def layout_version(self) -> int: ...
    @property
    def created_at_ms(self) -> int: ...
    @property
    def created_by(self) -> str: ...
    def verify(self, progress: _Progress | None = None) -> str: ...
    def gc(self, older_than_s: float, dry_run: bool) -> str: ...
    def items(self) -> dict[str, int]: ...

@final
class SnapshotSchema:
    @staticmethod
    def design_doc() -> SnapshotSchema: ...
    @staticmethod
    def from_yaml(text: str) -> SnapshotSchema: ...
    def to_json(self) -> str: ...
    def to_yaml(self) -> str: ...
    def output_schema(self) -> pa.Schema: ...

@final
class BatchIterator:
    def __iter__(self) -> BatchIterator: ...
    def __next__(self) -> pa.RecordBatch: ...

@final
class SnapshotSource:
    @staticmethod
    def open_doris(
        url: str,
        table: str,
        schema: SnapshotSchema | None = None,
        partitions: int = 4,
        batch_rows: int = 8192,
        query_timeout: float = 300.0,
        max_retries: int = 3,
        strict: bool = False,
        flight_url: str | None = None,
        flight_rewrite: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> SnapshotSource: ...
    @staticmethod
    def open_files(
        location: str,
        schema: SnapshotSchema | None = None,
        format: str | None = None,
        storage_options: dict[str, str] | None = None,
        mounts: MountTable | None = None,
        strict: bool = False,
    ) -> SnapshotSource: ...
    def query(
        self,
        start: str | None = None,
        end: str | None = None,
        filters: dict[str, Any] | None = None,
        columns: list[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table: ...
    def stream(
        self,
        start: str | None = None,
        end: str | None = None,
        filters: dict[str, Any] | None = None,
        columns: list[str] | None = None,
        limit: int | None = None,
    ) -> BatchIterator: ...
    def query_raw(
        self,
        start: str | None = None,
        end: str | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> pa.Table: ...
    def file_names(self) -> list[str]: ...
    def parse_report_json(self) -> str: ...

def synthetic_snapshots(
    devices: int = 10,
    nodes_per_device: int = 2,
    snapshots: int = 100,
    start: str = "2022-12-07T00:00:00Z",
    interval_ms: int = 600000,
    malformed_rate: float = 0.005,
    seed: int = 42,
) -> pa.Table: ...
def load_snapshots(
    url: str, table: str, data: Any, connect_timeout: float = 10.0, read_timeout: float = 60.0
) -> int: ...
def parse_snapshots(
    data: Any, schema: SnapshotSchema | None = None, strict: bool = False
) -> tuple[pa.Table, str]: ...
def write_back(
    url: str,
    table: str,
    data: Any,
    label: str,
    max_retries: int = 3,
    timeout: float = 300.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
) -> tuple[int, bool, int]: ...
@final
class FeatureStore:
    def apply(self, definitions: str) -> str: ...
    def plan(self, definitions: str) -> str: ...
    def definitions(self) -> str: ...
    def history(self) -> str: ...
    def rollback(self, version: int) -> int: ...
    def get_historical_features(
        self,
        entity_rows: pa.RecordBatch,
        features: list[str],
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
        engine: str = "in-process",
    ) -> pa.RecordBatch: ...
    def materialize(
        self, end: str, start: str | None = None, views: list[str] | None = None
    ) -> str: ...
    def ingest(self, view: str, start: str, end: str) -> str: ...
    def get_online_features(
        self,
        features: list[str],
        entity_rows: pa.RecordBatch | list[Any],
        full_feature_names: bool = False,
        ignore_ttl: bool = False,
    ) -> pa.RecordBatch: ...
    def online_store(self) -> str: ...

@final
class Listing:
    def __len__(self) -> int: ...
    def rows(self, start: int, stop: int) -> str: ...

@final
class TrainingSets:
    def create(
        self,
        name: str,
        rows: pa.RecordBatchReader,
        metadata: str | None = None,
        label: str | None = None,
        time_column: str | None = None,
    ) -> str: ...
    def create_from_features(
        self,
        features: FeatureStore,
        name: str,
        entity_rows: pa.RecordBatch,
        refs: builtins.list[str],
        metadata: str | None = None,
        label: str | None = None,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
        engine: str = "in-process",
    ) -> str: ...
    def list(self, name: str) -> Listing: ...
    def names(self) -> builtins.list[str]: ...
    def get(self, name: str, reference: str) -> str: ...
    def select_best(self, name: str, criteria: str) -> str: ...
    def tag(self, name: str, reference: str, tag: str) -> int: ...
    def alias(self, name: str, reference: str, alias: str) -> int: ...
    def read(self, name: str, version: int) -> tuple[pa.Schema, builtins.list[pa.RecordBatch]]: ...
    def local_files(self, name: str, version: int) -> builtins.list[str]: ...
    def fsck(self, older_than_s: float, progress: _Progress | None = None) -> str: ...
    def gc(self, older_than_s: float, dry_run: bool) -> str: ...
    def diff(self, before: tuple[str, str], after: tuple[str, str]) -> str: ...
    def drift(
        self,
        baseline: tuple[str, str],
        current: tuple[str, str],
        bins: int = 10,
        columns: builtins.list[str] | None = None,
    ) -> str: ...
    def reproduce(self, features: FeatureStore, name: str, reference: str) -> str: ...
    def governance(self) -> SetGovernance: ...

@final
class SetGovernance:
    @property
    def user(self) -> str: ...
    def access(self, name: str) -> str: ...
    def grant(self, name: str, grantee: str, permission: str | None) -> str: ...
    def audit_log(self, name: str) -> str: ...
    def lease(self, name: str, action: str, ttl_s: float = 3600.0) -> str: ...
    def delete(self, name: str, reference: str) -> int: ...
    def retain(
        self, name: str, keep_last: int | None, keep_within_s: float | None, dry_run: bool
    ) -> builtins.list[int]: ...
    def draft(self, name: str, base: str | None = None) -> str: ...
    def drafts(self, name: str) -> str: ...
    def append_to_draft(self, name: str, id: str, rows: pa.RecordBatchReader) -> str: ...
    def commit_draft(
        self, name: str, id: str, metadata: str | None = None, label: str | None = None
    ) -> str: ...
    def discard_draft(self, name: str, id: str) -> None: ...
