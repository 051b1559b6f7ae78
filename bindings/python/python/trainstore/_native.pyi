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
    def load(path: str | None) -> MountTable: ...
    @property
    def path(self) -> str: ...
    def add(
        self,
        name: str,
        url: str,
        options: dict[str, str] | None,
        allow_literal_secrets: bool,
    ) -> None: ...
    def remove(self, name: str) -> bool: ...
    def list(self) -> dict[str, tuple[str, str]]: ...
    def check(
        self,
        location: str,
        options: dict[str, str] | None,
        progress: _Progress | None,
    ) -> str: ...

@final
class Workspace:
    @staticmethod
    def open(
        location: str,
        storage_options: dict[str, str] | None,
        mounts: MountTable | None,
        create: bool,
        online_store: str | None,
        user: str | None,
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
    def verify(self, progress: _Progress | None) -> str: ...
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
        schema: SnapshotSchema | None,
        partitions: int,
        batch_rows: int,
        query_timeout: float,
        max_retries: int,
        strict: bool,
        flight_url: str | None,
        flight_rewrite: dict[str, str] | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> SnapshotSource: ...
    @staticmethod
    def open_files(
        location: str,
        schema: SnapshotSchema | None,
        format: str | None,
        storage_options: dict[str, str] | None,
        mounts: MountTable | None,
        strict: bool,
    ) -> SnapshotSource: ...
    def query(
        self,
        start: str | None,
        end: str | None,
        filters: dict[str, Any] | None,
        columns: list[str] | None,
        limit: int | None,
    ) -> pa.Table: ...
    def stream(
        self,
        start: str | None,
        end: str | None,
        filters: dict[str, Any] | None,
        columns: list[str] | None,
        limit: int | None,
    ) -> BatchIterator: ...
    def query_raw(
        self,
        start: str | None,
        end: str | None,
        filters: dict[str, Any] | None,
        limit: int | None,
    ) -> pa.Table: ...
    def file_names(self) -> list[str]: ...
    def parse_report_json(self) -> str: ...

def synthetic_snapshots(
    devices: int,
    nodes_per_device: int,
    snapshots: int,
    start: str,
    interval_ms: int,
    malformed_rate: float,
    seed: int,
) -> pa.Table: ...
def load_snapshots(
    url: str, table: str, data: Any, connect_timeout: float, read_timeout: float
) -> int: ...
def parse_snapshots(
    data: Any, schema: SnapshotSchema | None, strict: bool
) -> tuple[pa.Table, str]: ...
def write_back(
    url: str,
    table: str,
    data: Any,
    label: str,
    max_retries: int,
    timeout: float,
    connect_timeout: float,
    read_timeout: float,
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
        full_feature_names: bool,
        timestamp_column: str | None,
        engine: str,
    ) -> pa.RecordBatch: ...
    def materialize(self, end: str, start: str | None, views: list[str] | None) -> str: ...
    def ingest(self, view: str, start: str, end: str) -> str: ...
    def get_online_features(
        self,
        features: list[str],
        entity_rows: pa.RecordBatch | list[Any],
        full_feature_names: bool,
        ignore_ttl: bool,
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
        metadata: str | None,
        label: str | None,
        time_column: str | None,
    ) -> str: ...
    def create_from_features(
        self,
        features: FeatureStore,
        name: str,
        entity_rows: pa.RecordBatch,
        refs: builtins.list[str],
        metadata: str | None,
        label: str | None,
        full_feature_names: bool,
        timestamp_column: str | None,
        engine: str,
    ) -> str: ...
    def list(self, name: str) -> Listing: ...
    def names(self) -> builtins.list[str]: ...
    def get(self, name: str, reference: str) -> str: ...
    def select_best(self, name: str, criteria: str) -> str: ...
    def tag(self, name: str, reference: str, tag: str) -> int: ...
    def alias(self, name: str, reference: str, alias: str) -> int: ...
    def read(self, name: str, version: int) -> tuple[pa.Schema, builtins.list[pa.RecordBatch]]: ...
    def local_files(self, name: str, version: int) -> builtins.list[str]: ...
    def fsck(self, older_than_s: float, progress: _Progress | None) -> str: ...
    def gc(self, older_than_s: float, dry_run: bool) -> str: ...
    def diff(self, before: tuple[str, str], after: tuple[str, str]) -> str: ...
    def drift(
        self,
        baseline: tuple[str, str],
        current: tuple[str, str],
        bins: int,
        columns: builtins.list[str] | None,
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
    def lease(self, name: str, action: str, ttl_s: float | None) -> str: ...
    def delete(self, name: str, reference: str) -> int: ...
    def retain(
        self, name: str, keep_last: int | None, keep_within_s: float | None, dry_run: bool
    ) -> builtins.list[int]: ...
    def draft(self, name: str, base: str | None) -> str: ...
    def drafts(self, name: str) -> str: ...
    def append_to_draft(self, name: str, id: str, rows: pa.RecordBatchReader) -> str: ...
    def commit_draft(self, name: str, id: str, metadata: str | None, label: str | None) -> str: ...
    def discard_draft(self, name: str, id: str) -> None: ...
