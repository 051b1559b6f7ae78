//! How a stored source description becomes a live [`DataSource`](crate::DataSource): the
//! persisted [`SourceSpec`], and the [`SourceFactory`]s that open it, registered by the kind
//! of source they open.
//!
//! The feature store keeps specs in its registry and opens them through a [`SourceFactories`]
//! it is given; it never names a source implementation. The `trainstore` facade registers
//! the Doris, Flight SQL and file sources; a new kind of source is a new factory registered
//! there, with no change to the feature store.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::snapshot::SnapshotSchema;
use crate::source::DataSourceRef;
use crate::storage::{MountTable, StorageOptions};

/// Where a feature view's rows come from. Stored in the registry, so it holds how to reopen
/// the source, never a live connection or a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// Files on a mount (a file or a directory; Parquet, CSV or JSON lines). With
    /// `snapshots`, rows are parsed as snapshots of that schema; without, the files' columns
    /// are read as stored (typed Parquet).
    Files {
        location: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshots: Option<SnapshotSchema>,
    },
    /// A Doris (or MySQL-protocol) table of snapshots. `url` may name its password only as a
    /// `${VARIABLE}` reference, resolved from the environment when the source is opened.
    Doris {
        url: String,
        table: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flight_url: Option<String>,
        #[serde(default = "SnapshotSchema::design_doc")]
        snapshots: SnapshotSchema,
    },
}

/// The kinds of [`SourceSpec`], each opened by the factory registered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Files,
    Doris,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Files => "files",
            SourceKind::Doris => "doris",
        })
    }
}

impl SourceSpec {
    /// Which factory opens this spec.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceSpec::Files { .. } => SourceKind::Files,
            SourceSpec::Doris { .. } => SourceKind::Doris,
        }
    }

    /// A short description for messages; never includes credentials.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Files { location, .. } => format!("files at {location}"),
            SourceSpec::Doris { table, .. } => format!("Doris table {table}"),
        }
    }

    /// Refuses a spec the registry must not store: a Doris URL with a literal password
    /// (`owner` names what the spec belongs to, for the message).
    pub fn validate(&self, owner: &str) -> Result<()> {
        if let SourceSpec::Doris { url, .. } = self {
            let userinfo = url
                .split_once("://")
                .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
                .and_then(|authority| authority.rsplit_once('@'))
                .map(|(info, _)| info);
            if let Some((_, password)) = userinfo.and_then(|i| i.split_once(':'))
                && !password.is_empty()
                && !(password.starts_with("${") && password.ends_with('}'))
            {
                return Err(Error::invalid(
                    "feature view source",
                    owner,
                    "the registry would store the Doris password; write it as a reference \
                     such as mysql://user:${DORIS_PASSWORD}@host:9030/db",
                ));
            }
        }
        Ok(())
    }
}

/// What opening a spec needs from its surroundings.
#[derive(Debug, Clone, Copy)]
pub struct OpenContext<'a> {
    /// Where mount names in file locations point.
    pub mounts: &'a MountTable,
    /// Options for the stores behind the mounts.
    pub options: &'a StorageOptions,
    /// The column the opener's user reads as the rows' time (typed files need it named).
    pub time_column: &'a str,
}

/// Opens the specs of the kinds it is registered for.
#[async_trait]
pub trait SourceFactory: Send + Sync {
    /// Opens `spec`, connecting where the source is remote.
    async fn open(&self, spec: &SourceSpec, context: OpenContext<'_>) -> Result<DataSourceRef>;
}

/// Shared handle to a source factory.
pub type SourceFactoryRef = Arc<dyn SourceFactory>;

/// The factories a program has registered, one per [`SourceKind`].
///
/// ```
/// use trainstore_core::{SourceFactories, SourceKind, SourceSpec, MountTable, StorageOptions, OpenContext};
///
/// let none = SourceFactories::default();
/// let spec = SourceSpec::Files { location: "./snapshots".into(), format: None, snapshots: None };
/// let context = OpenContext {
///     mounts: &MountTable::default(),
///     options: &StorageOptions::new(),
///     time_column: "ts",
/// };
/// let err = futures::executor::block_on(none.open(&spec, context)).unwrap_err();
/// assert!(err.to_string().contains("no source factory is registered for files"));
/// ```
#[derive(Clone, Default)]
pub struct SourceFactories {
    by_kind: HashMap<SourceKind, SourceFactoryRef>,
}

impl SourceFactories {
    /// These factories with `factory` opening specs of `kind` (in place of any before it).
    pub fn with(mut self, kind: SourceKind, factory: SourceFactoryRef) -> Self {
        self.by_kind.insert(kind, factory);
        self
    }

    /// Opens `spec` with the factory registered for its kind.
    pub async fn open(&self, spec: &SourceSpec, context: OpenContext<'_>) -> Result<DataSourceRef> {
        let factory = self
            .by_kind
            .get(&spec.kind())
            .ok_or_else(|| Error::NotSupported {
                operation: "opening a source",
                implementer: format!(
                    "this program: no source factory is registered for {} (the trainstore \
                     facade registers every kind)",
                    spec.kind()
                ),
            })?;
        factory.open(spec, context).await
    }
}

impl fmt::Debug for SourceFactories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<String> = self.by_kind.keys().map(ToString::to_string).collect();
        kinds.sort();
        f.debug_struct("SourceFactories")
            .field("kinds", &kinds)
            .finish()
    }
}
