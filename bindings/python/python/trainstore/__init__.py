"""trainstore: point-in-time-correct, versioned training sets from Doris feature snapshots.

>>> import trainstore as ts
>>> ws = ts.Workspace.open("memory://example")
>>> ws.layout_version == ts.LAYOUT_VERSION
True

Locations are local paths, URLs (``file://``, ``memory://``, ``s3://bucket/prefix``) or named
mounts (``mount://name/path``, see :class:`MountTable`). Rust logs reach the ``trainstore``
logger of :mod:`logging`; set ``TRAINSTORE_LOG`` (e.g. ``debug``) before import to see more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import _html, _native
from .catalog import Catalog, CatalogVersion
from .exceptions import (
    AlreadyExistsError,
    CancelledError,
    ConfigError,
    CorruptDataError,
    InvalidInputError,
    LeasedError,
    MalformedDataError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    RemoteError,
    StorageError,
    TimeoutError,
    TrainstoreError,
    UnsupportedLayoutError,
    UnsupportedStoreError,
    VersionConflictError,
)
from .features import (
    Applied,
    Array,
    Bool,
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    Float32,
    Float64,
    Ingested,
    Int32,
    Int64,
    Materialized,
    OnDemandFeatureView,
    OnlineResponse,
    PlannedChange,
    RegistryVersion,
    String,
    Timestamp,
    ValueType,
)
from .models import (
    Backtest,
    ClassScore,
    ClassScores,
    Comparison,
    EpochMetrics,
    FeatureErrors,
    Forecast,
    ForecastReport,
    Gate,
    ListFeature,
    Models,
    ModelVersion,
    ScoreDistribution,
    TrainConfig,
)
from .pipelines import (
    AppliedPipeline,
    ArgoVolume,
    Issue,
    PipelineRun,
    Pipelines,
    PipelineVersion,
    RunSummary,
    SecretRef,
    TaskInvocation,
    TaskRun,
)
from .progress import ProgressBar, _bar_if
from .sharing import Access, AuditEvent, Draft, Lease
from .sources import (
    ColumnReport,
    DorisSource,
    FileSource,
    ParseReport,
    SnapshotFiles,
    SnapshotSchema,
    WriteOutcome,
    load_snapshots,
    parse_snapshots,
    synthetic_snapshots,
    write_back,
)
from .training_sets import (
    ColumnQuality,
    FsckReport,
    ListedVersion,
    OrphanFile,
    Quality,
    Reproduction,
    SetDiff,
    TrainingSets,
    TrainingSetVersion,
    VersionList,
)

__version__: str = _native.__version__
LAYOUT_VERSION: int = _native.LAYOUT_VERSION


class MountTable:
    """Named storage mounts kept in the settings file.

    The file is ``$TRAINSTORE_CONFIG``, else ``~/.config/trainstore/config.yaml``; the CLI's
    ``trainstore mounts`` commands edit the same file. Option values may reference secrets as
    ``${NAME}`` (environment, the settings' ``secrets_dir``, or the file itself).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._native = _native.MountTable.load(None if path is None else os.fspath(path))

    @property
    def path(self) -> str:
        """The settings file these mounts are read from and saved to."""
        return os.fspath(self._native.path)

    def add(
        self,
        name: str,
        url: str,
        options: Mapping[str, str] | None = None,
        allow_literal_secrets: bool = False,
    ) -> None:
        """Defines (or redefines) mount ``name`` at ``url`` and saves the settings (a file
        readable by its owner alone).

        Secret options (``aws_secret_access_key``, …) are given as ``${NAME}`` references,
        looked up in the environment or the secrets directory when the mount is used; a
        literal secret raises :class:`ConfigError` unless ``allow_literal_secrets`` is set.
        """
        self._native.add(name, url, dict(options) if options else None, allow_literal_secrets)

    def remove(self, name: str) -> bool:
        """Removes mount ``name``; returns whether it existed."""
        return self._native.remove(name)

    def list(self) -> dict[str, tuple[str, str]]:
        """``name -> (url, options)``, with secret option values redacted."""
        return self._native.list()

    def check(
        self,
        location: str,
        options: Mapping[str, str] | None = None,
        progress: bool = True,
    ) -> str:
        """Writes, reads and deletes a probe object and checks atomic create-if-absent.

        Returns the resolved URL; raises :class:`UnsupportedStoreError` if the store cannot be
        used for versioned writes.
        """
        bar = _bar_if(progress)
        return self._native.check(location, dict(options) if options else None, bar)

    def __repr__(self) -> str:
        return repr(self._native)


@dataclass(frozen=True)
class GcReport:
    """What :meth:`Workspace.gc` found, and whether it deleted it."""

    files: list[str]
    """Data files no version lists, relative to the workspace root."""
    bytes: int
    removed: bool
    """Whether they were deleted (``False`` for a dry run)."""

    def _repr_html_(self) -> str:
        outcome = "removed" if self.removed else "dry run, nothing removed"
        return _html.title(
            "gc", _html.count(len(self.files), "file"), _html.size(self.bytes), outcome
        ) + _html.table(["file"], [[f] for f in self.files])


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Workspace.verify` found."""

    versions: int
    """Versions checked, of every item."""
    files: int
    """Distinct data files read and hashed."""
    bytes: int
    problems: list[str]
    """One line per thing wrong: ``catalog: item@vN: what is wrong``."""
    orphans: list[str]
    """Data files no version lists, older than six hours: left by failed or killed writers,
    removed by :meth:`Workspace.gc`; not a problem."""

    @property
    def ok(self) -> bool:
        """Whether everything checked out."""
        return not self.problems

    def _repr_html_(self) -> str:
        verdict = "ok" if self.ok else _html.count(len(self.problems), "problem")
        head = _html.title(
            "verify",
            verdict,
            _html.count(self.versions, "version"),
            _html.count(self.files, "file"),
            _html.size(self.bytes),
            _html.count(len(self.orphans), "orphan file"),
        )
        problems = _html.table(["problem"], [[p] for p in self.problems])
        return head + problems + _html.table(["orphan file"], [[o] for o in self.orphans])


class Workspace:
    """A trainstore workspace on any mount: it holds the catalog of versioned items."""

    def __init__(self, native: _native.Workspace) -> None:
        self._native = native
        self._features: FeatureStore | None = None
        self._training_sets: TrainingSets | None = None
        self._models: Models | None = None
        self._pipelines: Pipelines | None = None

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str],
        storage_options: Mapping[str, str] | None = None,
        mounts: MountTable | None = None,
        create: bool = True,
        online_store: str | None = None,
        user: str | None = None,
    ) -> Workspace:
        """Creates or reopens the workspace at ``location``.

        ``storage_options`` are store settings such as ``aws_endpoint`` or
        ``aws_secret_access_key``; ``mounts`` resolves ``mount://`` locations. With
        ``create=False`` a missing workspace raises :class:`NotFoundError`.
        ``online_store`` (``redis://host:6379/0``, or a local file path) replaces the
        default: ``$TRAINSTORE_ONLINE_STORE``, else an embedded file in a local workspace.
        ``user`` is who acts (recorded as author, checked against permissions); by default
        ``$TRAINSTORE_USER``, else the settings file's ``user``, else ``$USER``.
        """
        native = _native.Workspace.open(
            os.fspath(location),
            dict(storage_options) if storage_options else None,
            None if mounts is None else mounts._native,
            create,
            online_store,
            user,
        )
        return cls(native)

    @property
    def url(self) -> str:
        """Where the workspace lives."""
        return self._native.url

    @property
    def user(self) -> str:
        """Who acts through this workspace."""
        return self._native.user

    @property
    def layout_version(self) -> int:
        """The on-disk layout version recorded in the workspace."""
        return self._native.layout_version

    @property
    def created_at(self) -> datetime:
        """When the workspace was created (UTC)."""
        return datetime.fromtimestamp(self._native.created_at_ms / 1000, tz=timezone.utc)

    @property
    def created_by(self) -> str:
        """The trainstore version that created the workspace."""
        return self._native.created_by

    @property
    def features(self) -> FeatureStore:
        """The feature store: definitions, training data, online serving. One per workspace
        object, so its online store is opened once, not on every read."""
        if self._features is None:
            self._features = FeatureStore(self._native.features(), lambda: self.training_sets)
        return self._features

    @property
    def training_sets(self) -> TrainingSets:
        """Training-set versions: create, list best first, select by criteria, tag."""
        if self._training_sets is None:
            self._training_sets = TrainingSets(self._native.training_sets(), self.features)
        return self._training_sets

    @property
    def models(self) -> Models:
        """Models: trained on training-set versions, versioned, promoted, rolled back."""
        if self._models is None:
            self._models = Models(self._native.models())
        return self._models

    @property
    def pipelines(self) -> Pipelines:
        """Pipelines: documents validated, versioned and run here, with ``python`` tasks
        calling Python functions; their runs kept beside them, to be resumed."""
        if self._pipelines is None:
            self._pipelines = Pipelines(self._native.pipelines(), self.url)
        return self._pipelines

    def training_sets_in(self, namespace: str) -> TrainingSets:
        """The training sets of ``namespace``: a team's or project's own sets, whose names
        never meet those of the default namespace (:attr:`training_sets`) or of others."""
        return TrainingSets(self._native.training_sets_in(namespace), self.features)

    def namespaces(self) -> list[str]:
        """The namespaces that hold training sets."""
        return self._native.namespaces()

    def items(self) -> dict[str, int]:
        """Every versioned item of the catalog with its newest version number."""
        return self._native.items()

    @property
    def catalog(self) -> Catalog:
        """The versioned items kept beside training sets and models: list, read, delete."""
        return Catalog(self._native)

    def gc(self, older_than: timedelta = timedelta(hours=6), dry_run: bool = False) -> GcReport:
        """Deletes data files that no version lists (left by failed or killed writers), last
        written at least ``older_than`` ago: younger ones may belong to a commit in progress.
        With ``dry_run`` nothing is deleted."""
        if not isinstance(older_than, timedelta):
            raise TypeError(f"older_than must be a timedelta, got {older_than!r}")
        return GcReport(**json.loads(self._native.gc(older_than.total_seconds(), dry_run)))

    def verify(self, progress: bool = True) -> VerifyReport:
        """Checks every version of every item: manifests readable, each data file of the size
        and SHA-256 its version records. Problems are listed in the report, not raised."""
        bar = _bar_if(progress)
        return VerifyReport(**json.loads(self._native.verify(bar)))

    def __repr__(self) -> str:
        return repr(self._native)

    def _repr_html_(self) -> str:
        items = sorted(self.items().items())
        return _html.title(
            "trainstore workspace",
            _html.code(self.url),
            f"layout {self.layout_version}",
            f"created {_html.iso(self.created_at)}",
        ) + _html.table(["item", "latest"], [[name, f"v{version}"] for name, version in items])


def delete_workspace(
    location: str | os.PathLike[str],
    storage_options: Mapping[str, str] | None = None,
    mounts: MountTable | None = None,
) -> int:
    """Deletes the workspace at ``location`` and everything in it (catalog, training sets,
    models, the embedded online store); returns how many objects were removed. Raises
    :class:`NotFoundError`, deleting nothing, where there is no workspace. An online store
    elsewhere (Redis) keeps what it holds."""
    return _native.Workspace.delete(
        os.fspath(location),
        dict(storage_options) if storage_options else None,
        None if mounts is None else mounts._native,
    )


__all__ = [
    "LAYOUT_VERSION",
    "Access",
    "AlreadyExistsError",
    "Applied",
    "AppliedPipeline",
    "ArgoVolume",
    "Array",
    "AuditEvent",
    "Backtest",
    "Bool",
    "CancelledError",
    "Catalog",
    "CatalogVersion",
    "ClassScore",
    "ClassScores",
    "ColumnQuality",
    "ColumnReport",
    "Comparison",
    "ConfigError",
    "CorruptDataError",
    "DorisSource",
    "Draft",
    "Entity",
    "EpochMetrics",
    "FeatureErrors",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "Float32",
    "Float64",
    "Forecast",
    "ForecastReport",
    "FsckReport",
    "Gate",
    "GcReport",
    "Ingested",
    "Int32",
    "Int64",
    "InvalidInputError",
    "Issue",
    "Lease",
    "LeasedError",
    "ListFeature",
    "ListedVersion",
    "MalformedDataError",
    "Materialized",
    "ModelVersion",
    "Models",
    "MountTable",
    "NotFoundError",
    "NotSupportedError",
    "OnDemandFeatureView",
    "OnlineResponse",
    "OrphanFile",
    "ParseReport",
    "PermissionDeniedError",
    "PipelineRun",
    "PipelineVersion",
    "Pipelines",
    "PlannedChange",
    "ProgressBar",
    "Quality",
    "RegistryVersion",
    "RemoteError",
    "Reproduction",
    "RunSummary",
    "ScoreDistribution",
    "SecretRef",
    "SetDiff",
    "SnapshotFiles",
    "SnapshotSchema",
    "StorageError",
    "String",
    "TaskInvocation",
    "TaskRun",
    "TimeoutError",
    "Timestamp",
    "TrainConfig",
    "TrainingSetVersion",
    "TrainingSets",
    "TrainstoreError",
    "UnsupportedLayoutError",
    "UnsupportedStoreError",
    "ValueType",
    "VerifyReport",
    "VersionConflictError",
    "VersionList",
    "Workspace",
    "WriteOutcome",
    "__version__",
    "delete_workspace",
    "load_snapshots",
    "parse_snapshots",
    "synthetic_snapshots",
    "write_back",
]
