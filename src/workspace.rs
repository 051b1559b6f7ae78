//! A workspace: one root on any mount holding the catalog, the feature registry and, later,
//! feature data, training sets, models and pipeline runs.
//!
//! A small config file at the root records the layout version, so a newer trainstore can
//! migrate and an older one refuses what it does not understand instead of corrupting it.

use std::sync::Arc;

use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};
use trainstore_core::VersionStore as _;
use trainstore_core::catalog::hex_sha256;
use trainstore_core::{
    Catalog, DatasetName, Error, MountTable, Namespace, ObjectStoreRef, Progress, Result,
    StorageOptions, Timestamp, UserName, Version,
};
use trainstore_featurestore::training::TrainingSets;
use trainstore_featurestore::{FeatureStore, SourceEnv};
use trainstore_train::ModelRegistry;

use crate::models::Models;

/// The layout this trainstore writes and understands.
pub const LAYOUT_VERSION: u32 = 1;

const CONFIG_FILE: &str = "trainstore.json";

/// Where training sets live in a workspace: the default namespace's catalog at this root,
/// every other namespace's under `<root>/namespaces/<name>/`.
const TRAINING_SETS: &str = "training-sets";
const NAMESPACES: &str = "namespaces";
/// Where models live: a catalog of their own.
const MODELS: &str = "models";

/// What the workspace's config file records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceConfig {
    pub layout_version: u32,
    pub created_at: Timestamp,
    /// The trainstore version that created the workspace.
    pub created_by: String,
}

/// An opened workspace.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ws = trainstore::Workspace::open("memory://doc-ws").await.unwrap();
/// assert_eq!(ws.config().layout_version, trainstore::LAYOUT_VERSION);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Workspace {
    url: String,
    store: ObjectStoreRef,
    config: WorkspaceConfig,
    catalog: Catalog,
    /// Training-set versions, a catalog of their own under `training-sets/`.
    training_sets: Catalog,
    /// Model versions, a catalog of their own under `models/`.
    models: Catalog,
    /// How feature-view sources are opened: the mounts and options the workspace was opened
    /// with.
    sources: SourceEnv,
    /// The online store's URL, when one is set or the workspace is on a local disk.
    online_store: Option<String>,
    /// Who acts: recorded as author, checked against permissions.
    user: UserName,
}

/// How old a data file no version lists must be before `gc` removes it by default: younger
/// ones may belong to a commit in progress.
pub const GC_GRACE: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Names the online store every workspace opened by this process uses (e.g.
/// `redis://host:6379/0`), instead of the embedded file in a local workspace.
pub const ONLINE_STORE_ENV: &str = "TRAINSTORE_ONLINE_STORE";

/// A summary of a workspace, for `workspace info`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceInfo {
    pub url: String,
    pub layout_version: u32,
    pub created_at: Timestamp,
    pub created_by: String,
    /// Each versioned item of the feature store with its newest version.
    pub items: Vec<(DatasetName, Version)>,
    /// Each training set with its newest version.
    pub training_sets: Vec<(DatasetName, Version)>,
    /// Each model with its newest version.
    pub models: Vec<(DatasetName, Version)>,
}

impl Workspace {
    /// Creates or reopens the workspace at `location` (a path, URL or `mount://` reference),
    /// with `AWS_*`-style settings taken from the environment.
    pub async fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &MountTable::default(), &StorageOptions::new()).await
    }

    /// Creates or reopens the workspace at `location`, resolved through `mounts` with extra
    /// store `options`.
    pub async fn open_with(
        location: &str,
        mounts: &MountTable,
        options: &StorageOptions,
    ) -> Result<Self> {
        Self::open_inner(location, mounts, options, true).await
    }

    /// Opens the workspace at `location`; fails with [`Error::NotFound`] if there is none.
    pub async fn open_existing(
        location: &str,
        mounts: &MountTable,
        options: &StorageOptions,
    ) -> Result<Self> {
        Self::open_inner(location, mounts, options, false).await
    }

    async fn open_inner(
        location: &str,
        mounts: &MountTable,
        options: &StorageOptions,
        create: bool,
    ) -> Result<Self> {
        let resolved = mounts.resolve_with(location, options)?;
        let store = resolved.store;
        let url = resolved.url;
        let catalog_store: ObjectStoreRef = Arc::new(PrefixStore::new(store.clone(), "catalog"));
        let catalog = Catalog::open(catalog_store, &format!("{url}/catalog")).await?;
        let sets_store: ObjectStoreRef = Arc::new(PrefixStore::new(store.clone(), TRAINING_SETS));
        let training_sets = Catalog::open(sets_store, &format!("{url}/{TRAINING_SETS}")).await?;
        let models_store: ObjectStoreRef = Arc::new(PrefixStore::new(store.clone(), MODELS));
        let models = Catalog::open(models_store, &format!("{url}/{MODELS}")).await?;
        let config = match read_config(&store, &url).await? {
            Some(config) => config,
            None if create => {
                // The catalog's probe runs first, so nothing is written to a store that
                // cannot guarantee create-if-absent.
                catalog.ensure_writable().await?;
                create_config(&store, &url).await?
            }
            None => {
                return Err(Error::NotFound {
                    what: "workspace",
                    name: url,
                });
            }
        };
        if config.layout_version > LAYOUT_VERSION {
            return Err(Error::UnsupportedLayout {
                url,
                found: config.layout_version,
                supported: LAYOUT_VERSION,
            });
        }
        tracing::info!(%url, layout = config.layout_version, "workspace opened");
        Ok(Workspace {
            store,
            config,
            catalog,
            training_sets,
            models,
            sources: SourceEnv {
                factories: crate::source_factories(),
                mounts: mounts.clone(),
                options: options.clone(),
            },
            online_store: std::env::var(ONLINE_STORE_ENV).ok().or_else(|| {
                if let Some(local) = url.strip_prefix("file://") {
                    return Some(format!("{local}/online/online.redb"));
                }
                // In memory as the workspace is, one store per workspace for the process.
                url.starts_with("memory://")
                    .then(|| format!("{url}/online"))
            }),
            url,
            user: UserName::current(),
        })
    }

    /// Deletes the workspace at `location` and everything in it (catalog, training sets,
    /// models, the embedded online store); returns how many objects were removed. Refused
    /// when no workspace is there, so a mistyped location deletes nothing. An online store
    /// elsewhere (Redis) keeps what it holds.
    pub async fn delete(
        location: &str,
        mounts: &MountTable,
        options: &StorageOptions,
    ) -> Result<usize> {
        use futures::TryStreamExt;
        let ws = Self::open_existing(location, mounts, options).await?;
        let listed: Vec<_> = ws
            .store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| Error::storage("list", &ws.url, e))?;
        // The config last: a delete cut short leaves a workspace that can be deleted again.
        let (config, rest): (Vec<_>, Vec<_>) = listed
            .into_iter()
            .partition(|m| m.location.as_ref() == CONFIG_FILE);
        for meta in rest.iter().chain(&config) {
            ws.store
                .delete(&meta.location)
                .await
                .map_err(|e| Error::storage("delete", &meta.location, e))?;
        }
        // A local store leaves the emptied directories; only empty ones are removed.
        if let Some(dir) = trainstore_core::storage::local_dir(&ws.url) {
            remove_empty_dirs(&dir);
        }
        tracing::info!(url = %ws.url, objects = rest.len() + config.len(), "workspace deleted");
        Ok(rest.len() + config.len())
    }

    /// Where the workspace lives.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The workspace's recorded configuration.
    pub fn config(&self) -> &WorkspaceConfig {
        &self.config
    }

    /// The versioned catalog of this workspace.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// This workspace acting as `user` (by default [`UserName::current`]; the CLI and Python
    /// resolve it with [`crate::Settings::user_name`]).
    pub fn with_user(mut self, user: UserName) -> Self {
        self.user = user;
        self
    }

    /// Who acts through this workspace.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// The feature store: definitions in this workspace's registry, changes recorded as made
    /// by [`Self::user`].
    ///
    /// Its online store is the one set with [`Workspace::with_online_store`], else the one
    /// `$TRAINSTORE_ONLINE_STORE` names, else an embedded file in a local workspace
    /// (`online/online.redb`), or an in-memory store beside a `memory://` workspace; a
    /// workspace elsewhere (S3) has none until one is set.
    pub fn features(&self) -> FeatureStore {
        let store = FeatureStore::new(
            self.catalog.clone(),
            self.sources.clone(),
            self.user.clone(),
        );
        match &self.online_store {
            Some(url) => store.with_online_store(url, &hex_sha256(self.url.as_bytes())[..16]),
            None => store,
        }
    }

    /// The pipelines: documents versioned in this workspace's catalog, run with the built-in
    /// task types, their runs kept beside them (`pipelines/runs/`).
    pub fn pipelines(&self) -> crate::pipelines::Pipelines {
        crate::pipelines::Pipelines::new(self.clone())
    }

    /// How sources named in definitions and pipeline tasks are opened here.
    pub(crate) fn source_env(&self) -> &SourceEnv {
        &self.sources
    }

    /// Training-set versions of the default namespace, acting as [`Self::user`]: created,
    /// listed best first, selected by criteria, shared under per-set permissions.
    pub fn training_sets(&self) -> TrainingSets {
        TrainingSets::new(Arc::new(self.training_sets.clone()), self.user.clone())
    }

    /// Models of this workspace, acting as [`Self::user`]: trained on its training sets,
    /// versioned, promoted and rolled back.
    pub fn models(&self) -> Models {
        Models::new(
            ModelRegistry::new(Arc::new(self.models.clone()), self.user.clone()),
            self.training_sets(),
            self.features(),
        )
    }

    /// Training-set versions of `namespace`: a team's or project's own sets, whose names do
    /// not meet those of the default namespace or of other namespaces. Kept under
    /// `training-sets/namespaces/<namespace>/`, with the same layout as the default's.
    pub async fn training_sets_in(&self, namespace: &Namespace) -> Result<TrainingSets> {
        let catalog = self.namespace_catalog(namespace).await?;
        Ok(TrainingSets::new(Arc::new(catalog), self.user.clone()))
    }

    async fn namespace_catalog(&self, namespace: &Namespace) -> Result<Catalog> {
        let prefix = format!("{TRAINING_SETS}/{NAMESPACES}/{namespace}");
        let store: ObjectStoreRef = Arc::new(PrefixStore::new(self.store.clone(), prefix.as_str()));
        Catalog::open(store, &format!("{}/{prefix}", self.url)).await
    }

    /// The namespaces that hold anything, by name.
    pub async fn namespaces(&self) -> Result<Vec<Namespace>> {
        let dir = Path::from_iter([TRAINING_SETS, NAMESPACES]);
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| Error::storage("list namespaces", &dir, e))?;
        let mut names: Vec<Namespace> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| Namespace::new(n).ok()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every catalog of the workspace: feature registry and offline store, training sets of
    /// the default namespace and of every other.
    async fn catalogs(&self) -> Result<Vec<Catalog>> {
        let mut out = vec![
            self.catalog.clone(),
            self.training_sets.clone(),
            self.models.clone(),
        ];
        for namespace in self.namespaces().await? {
            out.push(self.namespace_catalog(&namespace).await?);
        }
        Ok(out)
    }

    /// Uses the online store at `url` (`redis://…`, or a local path for an embedded file).
    pub fn with_online_store(mut self, url: impl Into<String>) -> Self {
        self.online_store = Some(url.into());
        self
    }

    /// The object store rooted at the workspace.
    pub fn store(&self) -> &ObjectStoreRef {
        &self.store
    }

    /// Checks every version of every item: its manifest reads, and each data file has the
    /// size and SHA-256 it records (each distinct file read once); every tag and alias points
    /// at a version. Problems are collected, not raised, so one run lists them all; errors
    /// reaching the store are raised. Data files no version lists, older than
    /// [`GC_GRACE`], are listed as orphans: `gc` removes them.
    pub async fn verify(&self, progress: &dyn Progress) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for catalog in &self.catalogs().await? {
            let found = catalog.fsck(GC_GRACE, progress).await?;
            let root = self.relative(catalog);
            report.versions += found.versions;
            report.files += found.files;
            report.bytes += found.bytes;
            report
                .problems
                .extend(found.problems.into_iter().map(|p| format!("{root}: {p}")));
            report.orphans.extend(
                found
                    .orphans
                    .into_iter()
                    .map(|f| format!("{root}/{}", f.path)),
            );
        }
        Ok(report)
    }

    /// Finds data files that no version lists, older than `grace` (what failed or killed
    /// writers left), and deletes them unless `dry_run`.
    pub async fn gc(&self, grace: std::time::Duration, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport {
            removed: !dry_run,
            ..GcReport::default()
        };
        for catalog in &self.catalogs().await? {
            let files = catalog.gc(grace, dry_run).await?;
            let root = self.relative(catalog);
            report.bytes += files.iter().map(|f| f.size).sum::<u64>();
            report
                .files
                .extend(files.into_iter().map(|f| format!("{root}/{}", f.path)));
        }
        Ok(report)
    }

    /// Where `catalog` lies, relative to the workspace root (`catalog`, `training-sets`).
    fn relative<'a>(&self, catalog: &'a Catalog) -> &'a str {
        catalog
            .url()
            .strip_prefix(self.url.as_str())
            .unwrap_or_default()
            .trim_start_matches('/')
    }

    /// A summary: layout, creation, and every versioned item with its newest version.
    pub async fn info(&self) -> Result<WorkspaceInfo> {
        let mut items = Vec::new();
        for item in self.catalog.items().await? {
            if let Some(m) = self.catalog.latest(&item).await? {
                items.push((item, m.version));
            }
        }
        let mut newest = Vec::new();
        for catalog in [&self.training_sets, &self.models] {
            let mut found = Vec::new();
            for item in catalog.items().await? {
                match catalog.resolve(&item, "latest").await {
                    Ok(v) => found.push((item, v)),
                    Err(Error::NotFound { .. }) => {} // every version deleted
                    Err(e) => return Err(e),
                }
            }
            newest.push(found);
        }
        let models = newest.pop().unwrap_or_default();
        let training_sets = newest.pop().unwrap_or_default();
        Ok(WorkspaceInfo {
            url: self.url.clone(),
            layout_version: self.config.layout_version,
            created_at: self.config.created_at,
            created_by: self.config.created_by.clone(),
            items,
            training_sets,
            models,
        })
    }
}

/// The versioned items of the workspace's catalog (`catalog/`: snapshots committed by the
/// demo or a pipeline, the feature registry, the offline store's segments), read and deleted
/// by reference (`NAME`, `NAME@v3`, `NAME@TAG`). Training sets and models have catalogs and
/// accessors of their own ([`Workspace::training_sets`], [`Workspace::models`]).
impl Workspace {
    /// The manifests of `item`'s versions, oldest first, deleted ones left out.
    pub async fn catalog_versions(
        &self,
        item: &DatasetName,
    ) -> Result<Vec<trainstore_core::Manifest>> {
        let deleted = self.catalog.deleted(item).await?;
        let mut manifests = Vec::new();
        for version in self.catalog.versions_of(item).await? {
            if !deleted.contains(&version) {
                manifests.push(self.catalog.get(item, version).await?);
            }
        }
        Ok(manifests)
    }

    /// The manifest of the version `reference` names.
    pub async fn catalog_version(&self, reference: &str) -> Result<trainstore_core::Manifest> {
        let (item, reference) = trainstore_core::ids::split_reference(reference)?;
        let version = self.catalog.resolve(&item, &reference).await?;
        self.catalog.get(&item, version).await
    }

    /// The rows of the version `reference` names: its data files, each checked against its
    /// hash, read in order as Parquet or Arrow IPC files (what the catalog's items hold). A
    /// version of other files is refused, naming the file.
    pub async fn read_catalog_version(
        &self,
        reference: &str,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>)> {
        use arrow::array::RecordBatchReader as _;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let manifest = self.catalog_version(reference).await?;
        let mut schema = None;
        let mut batches = Vec::new();
        for entry in &manifest.files {
            let bytes = self.catalog.read_file(entry).await?;
            let unreadable = |e: String| Error::Corrupt {
                path: entry.path.clone(),
                reason: format!("not a Parquet or Arrow IPC file, so not readable as rows: {e}"),
            };
            let reader: Box<dyn arrow::array::RecordBatchReader> = if bytes.starts_with(b"ARROW1") {
                Box::new(
                    arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
                        .map_err(|e| unreadable(e.to_string()))?,
                )
            } else {
                Box::new(
                    ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .and_then(|b| b.build())
                        .map_err(|e| unreadable(e.to_string()))?,
                )
            };
            schema.get_or_insert_with(|| reader.schema());
            for batch in reader {
                batches.push(batch?);
            }
        }
        let schema = schema.ok_or_else(|| {
            Error::invalid(
                "catalog version",
                format!("{}@{}", manifest.item, manifest.version),
                "has no data files to read",
            )
        })?;
        Ok((schema, batches))
    }

    /// Deletes the version `reference` names, as this workspace's user. The items the feature
    /// store keeps for itself are refused: the registry rolls back (`features rollback`), and
    /// the offline store's segments belong to their view.
    pub async fn delete_catalog_version(&self, reference: &str) -> Result<Version> {
        let (item, reference) = trainstore_core::ids::split_reference(reference)?;
        let name = item.as_str();
        if name == trainstore_featurestore::REGISTRY_ITEM || name.starts_with("offline-") {
            return Err(Error::invalid(
                "catalog item",
                name,
                "is the feature store's own: roll the registry back with `features rollback`; \
                 the offline store's segments belong to their view",
            ));
        }
        let version = self.catalog.resolve(&item, &reference).await?;
        self.catalog.delete(&item, version, &self.user).await?;
        Ok(version)
    }
}

/// What [`Workspace::gc`] found, and whether it deleted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Data files no version lists, relative to the workspace root.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Whether they were deleted (`false` for a dry run).
    pub removed: bool,
}

/// What [`Workspace::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Versions checked, of every item.
    pub versions: usize,
    /// Distinct data files read and hashed.
    pub files: usize,
    pub bytes: u64,
    /// One line per thing wrong: `catalog: item@vN: what is wrong`.
    pub problems: Vec<String>,
    /// Data files no version lists, older than [`GC_GRACE`]: left by failed or killed
    /// writers, removed by `gc`; not a problem.
    pub orphans: Vec<String>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Removes `dir` and the directories under it that hold nothing else (best effort: what is
/// left is only empty directories, or files someone else put there).
fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

async fn read_config(store: &ObjectStoreRef, url: &str) -> Result<Option<WorkspaceConfig>> {
    let path = Path::from(CONFIG_FILE);
    let bytes = match store.get(&path).await {
        Ok(r) => r
            .bytes()
            .await
            .map_err(|e| Error::storage("read", &path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::storage("read", format!("{url}/{CONFIG_FILE}"), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path: format!("{url}/{CONFIG_FILE}"),
            reason: format!("not a trainstore workspace config: {e}"),
        })
}

/// Writes a fresh config with create-if-absent; if another process created the workspace at
/// the same moment, theirs wins and is returned.
async fn create_config(store: &ObjectStoreRef, url: &str) -> Result<WorkspaceConfig> {
    let config = WorkspaceConfig {
        layout_version: LAYOUT_VERSION,
        created_at: Timestamp::now(),
        created_by: format!("trainstore {}", env!("CARGO_PKG_VERSION")),
    };
    let body = serde_json::to_vec_pretty(&config).expect("config serializes");
    let path = Path::from(CONFIG_FILE);
    match store
        .put_opts(&path, PutPayload::from(body), PutMode::Create.into())
        .await
    {
        Ok(_) => {
            tracing::info!(%url, "workspace created");
            Ok(config)
        }
        Err(object_store::Error::AlreadyExists { .. }) => read_config(store, url)
            .await?
            .ok_or_else(|| Error::Corrupt {
                path: format!("{url}/{CONFIG_FILE}"),
                reason: "exists but cannot be read".into(),
            }),
        Err(e) => Err(Error::storage("create", format!("{url}/{CONFIG_FILE}"), e)),
    }
}
