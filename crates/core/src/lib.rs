//! The shared vocabulary of trainstore, depended on by every other crate and depending on none.
//!
//! - [`error`]: the one error type, with [`Error::retryable`].
//! - [`time`]: [`Timestamp`] and the half-open [`TimeRange`].
//! - [`ids`]: validated names and version numbers.
//! - [`source`]: the [`DataSource`] trait and its reference [`MemorySource`].
//! - [`snapshot`]: [`SnapshotSchema`], which fields a feature snapshot has and where they are
//!   read (the Doris sources parse by it; the feature store persists it in views' sources).
//! - [`config`]: configuration and secret providers, and the redacting [`Secret`].
//! - [`storage`]: mounts over `object_store` ([`MountTable`], [`StorageProvider`]).
//! - [`versions`]: [`VersionStore`], the one interface to versioned items.
//! - [`governance`]: per-item permissions, the audit log and leases ([`Governance`]).
//! - [`catalog`]: append-only numbered versions of named items, on any mount; the
//!   [`VersionStore`].
//! - [`progress`]: the one interface long operations report progress through.
//! - [`parallel`]: CPU-bound work spread over the cores.
//! - [`training`]: the [`Trainer`] models are trained through: training-set rows in, a
//!   [`ModelArtifact`] (weights and card) out.
//! - [`yaml`]: user YAML documents, parsed with bounds on size and nesting.

pub mod catalog;
pub mod config;
pub mod error;
pub mod governance;
pub mod ids;
pub mod parallel;
pub mod progress;
pub mod retry;
pub mod snapshot;
pub mod source;
pub mod source_spec;
pub mod storage;
pub mod time;
pub mod training;
pub mod versions;
pub mod yaml;

pub use catalog::{Catalog, Deletion, Draft, FileEntry, Manifest, NewVersion, UnlistedFile};
pub use config::{
    ConfigChain, ConfigProvider, ConfigProviderRef, DirConfig, EnvConfig, Secret, YamlConfig,
    expand_references, is_sensitive, redact_url,
};
pub use error::{Error, Result};
pub use governance::{Access, AuditEvent, Governance, Lease, LeaseState, Permission};
pub use ids::{DatasetName, Namespace, TagName, UserName, Version};
pub use progress::{NoProgress, Operation, Progress, ProgressRef};
pub use snapshot::{FeatureField, FeatureKind, SnapshotSchema};
pub use source::{
    AsOfScan, AsOfWindows, DataSource, DataSourceRef, Filter, MemorySource, POSITION_COLUMN,
    ParseCounts, PositionedScan, Predicate, RecordBatchStream, Scalar, ScanRequest, apply_filters,
    repeated_column,
};
pub use source_spec::{
    OpenContext, SourceFactories, SourceFactory, SourceFactoryRef, SourceKind, SourceSpec,
};
pub use storage::{
    Mount, MountTable, ObjectStoreRef, ResolvedStore, StorageOptions, StorageProvider,
    StorageProviderRef, check_store, local_dir, probe_create_if_absent,
};
pub use time::{TimeRange, Timestamp};
pub use training::{ModelArtifact, Trainer, TrainingRows, TrainingRun};
pub use versions::{FsckReport, VersionIndex, VersionStore, VersionSummary};

/// Re-exported so dependants use the same versions.
pub use arrow;
pub use object_store;
