//! The registry: every state of the definitions, one catalog version each.
//!
//! A state is the whole set of definitions, so any version can be read back as it was and a
//! rollback is just committing an old state again. Commits go on top of the state they were
//! planned from, so two people applying at once never lose either change: the second re-plans
//! on the first's result.
//!
//! Reads that serve requests (retrieval, online lookups) reuse a state read within the last
//! [`RECENT`], as Feast's registry cache does: a state applied through this registry is seen at
//! once, one applied by another process within that time.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use trainstore_core::VersionStore as _;
use trainstore_core::catalog::CommitMode;
use trainstore_core::{
    Catalog, DatasetName, Error, NewVersion, Result, Timestamp, UserName, Version,
};

use crate::definitions::{Definition, Definitions, Name};

/// How long a state read for serving stays fresh.
pub const RECENT: Duration = Duration::from_secs(10);

/// The catalog item holding the registry's states.
pub const REGISTRY_ITEM: &str = "feature-registry";

/// What one registry version stores.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    definitions: Definitions,
    summary: String,
}

/// One past state of the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryVersion {
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
    /// What changed, e.g. `+ entity device, ~ feature view basic_features`.
    pub summary: String,
}

/// The feature definitions' versioned home in a workspace catalog.
#[derive(Debug, Clone)]
pub struct Registry {
    catalog: Catalog,
    item: DatasetName,
    recent: Arc<Mutex<Option<Recent>>>,
}

/// A state read for serving, and when.
type Recent = (Instant, Arc<Definitions>);

impl Registry {
    /// The catalog the registry lives in.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn new(catalog: Catalog) -> Self {
        Registry {
            catalog,
            item: DatasetName::new(REGISTRY_ITEM).expect("valid item name"),
            recent: Arc::default(),
        }
    }

    /// The newest state as read within the last [`RECENT`], else read now.
    pub async fn recent(&self) -> Result<Arc<Definitions>> {
        if let Some((at, defs)) = self.recent.lock().expect("registry cache").as_ref()
            && at.elapsed() < RECENT
        {
            return Ok(defs.clone());
        }
        let defs = Arc::new(self.current().await?.1);
        *self.recent.lock().expect("registry cache") = Some((Instant::now(), defs.clone()));
        Ok(defs)
    }

    /// The newest state and its version (`None` and empty before the first apply).
    pub async fn current(&self) -> Result<(Option<Version>, Definitions)> {
        match self.catalog.latest(&self.item).await? {
            Some(m) => Ok((Some(m.version), self.decode(&m.metadata, m.version)?)),
            None => Ok((None, Definitions::default())),
        }
    }

    /// The newest version, without reading its state: what a rollback builds on, even when
    /// that state cannot be read.
    pub async fn latest_version(&self) -> Result<Option<Version>> {
        Ok(self.catalog.latest(&self.item).await?.map(|m| m.version))
    }

    /// The state as of `version`.
    pub async fn at(&self, version: Version) -> Result<Definitions> {
        let m = self.catalog.get(&self.item, version).await?;
        self.decode(&m.metadata, version)
    }

    fn decode(&self, metadata: &serde_json::Value, version: Version) -> Result<Definitions> {
        let stored: Stored =
            serde_json::from_value(metadata.clone()).map_err(|e| Error::Corrupt {
                path: format!("{}/{}@{version}", self.catalog.url(), self.item),
                reason: format!(
                    "not a feature registry state ({e}); `features rollback` to an earlier \
                     version still works"
                ),
            })?;
        Ok(stored.definitions)
    }

    /// Commits `definitions` directly on top of `base`; fails with
    /// [`Error::VersionConflict`] if anything else was committed since.
    pub async fn commit(
        &self,
        base: Option<Version>,
        definitions: &Definitions,
        summary: String,
        author: &UserName,
    ) -> Result<Version> {
        let mut new = NewVersion::new(author.clone());
        new.mode = CommitMode::OnTopOf(base);
        new.metadata = serde_json::to_value(Stored {
            definitions: definitions.clone(),
            summary,
        })
        .expect("definitions serialize");
        let version = self.catalog.commit(&self.item, new).await?.version;
        *self.recent.lock().expect("registry cache") = None;
        Ok(version)
    }

    /// Every state, oldest first.
    pub async fn history(&self) -> Result<Vec<RegistryVersion>> {
        let mut out = Vec::new();
        for v in self.catalog.versions_of(&self.item).await? {
            let m = self.catalog.get(&self.item, v).await?;
            let summary = m
                .metadata
                .get("summary")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_owned();
            out.push(RegistryVersion {
                version: v,
                author: m.author,
                created_at: m.created_at,
                summary,
            });
        }
        Ok(out)
    }
}

/// What applying a definition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Add,
    Update,
    Unchanged,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    pub kind: &'static str,
    pub name: Name,
    pub change: Change,
}

/// What an apply would do: each given definition's change, and the resulting state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The version the plan was made against.
    pub base: Option<Version>,
    pub changes: Vec<PlannedChange>,
    /// The definitions after the apply.
    #[serde(skip)]
    pub result: Definitions,
}

impl Plan {
    /// Merges `given` into `current`: a definition replaces the one of the same kind and name,
    /// or is added. The result is validated as a whole.
    pub fn new(
        base: Option<Version>,
        current: &Definitions,
        given: Vec<Definition>,
    ) -> Result<Self> {
        let given = Definitions::from_list(given)?;
        let mut result = current.clone();
        let mut changes = Vec::new();
        for d in given.into_list() {
            let (kind, name) = (d.kind(), d.name().clone());
            let change = match d {
                Definition::Entity(e) => upsert(&mut result.entities, e, |x| &x.name),
                Definition::FeatureView(v) => upsert(&mut result.feature_views, *v, |x| &x.name),
                Definition::OnDemandFeatureView(v) => {
                    upsert(&mut result.on_demand_feature_views, v, |x| &x.name)
                }
                Definition::FeatureService(s) => {
                    upsert(&mut result.feature_services, s, |x| &x.name)
                }
            };
            changes.push(PlannedChange { kind, name, change });
        }
        result.validate()?;
        Ok(Plan {
            base,
            changes,
            result,
        })
    }

    /// Whether applying changes nothing.
    pub fn is_noop(&self) -> bool {
        self.changes.iter().all(|c| c.change == Change::Unchanged)
    }

    /// The changes in one line, for the registry's history.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.change != Change::Unchanged)
            .map(|c| c.to_string())
            .collect();
        parts.join(", ")
    }
}

fn upsert<T: PartialEq>(list: &mut Vec<T>, item: T, name: impl Fn(&T) -> &Name) -> Change {
    match list.iter_mut().find(|x| name(x) == name(&item)) {
        Some(existing) if *existing == item => Change::Unchanged,
        Some(existing) => {
            *existing = item;
            Change::Update
        }
        None => {
            list.push(item);
            Change::Add
        }
    }
}

impl fmt::Display for PlannedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.change {
            Change::Add => '+',
            Change::Update => '~',
            Change::Unchanged => '=',
        };
        write!(f, "{sign} {} {}", self.kind, self.name)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}
