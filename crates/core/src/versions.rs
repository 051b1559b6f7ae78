//! The one interface to versioned items: training sets, models and pipeline definitions are
//! all kept, listed and read through [`VersionStore`], implemented once by the
//! [`Catalog`](crate::Catalog) on any object store.
//!
//! A version is immutable: data files written first under unique names, then a manifest
//! created with create-if-absent, which is the moment the version exists. Tags are fixed
//! names of a version; aliases move and keep their history. See [`crate::catalog`] for how
//! this is laid out on storage and why nothing rests on locks.

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::catalog::{AliasEntry, Draft, FileEntry, Manifest, NewVersion, TagEntry, UnlistedFile};
use crate::error::Result;
use crate::governance::Governance;
use crate::ids::{DatasetName, TagName, UserName, Version};
use crate::progress::Progress;
use crate::time::Timestamp;

/// What listing a version needs, kept small so an index of many thousands reads at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
    /// Total size of the version's data files, in bytes.
    pub bytes: u64,
    /// The manifest's [`Manifest::summary`]: what its kind of item lists by (a training
    /// set's quality, a model's metrics).
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// The summaries of every live version of one item, ascending: one state of the version
/// index, shared by every listing until the next commit or deletion.
///
/// Kinds of items list by their own typed summaries (a training set's quality, a model's
/// metrics). Each derives its view once per state with [`VersionIndex::view`], so listing
/// or selecting again costs the same with ten thousand versions as with ten.
///
/// ```
/// use trainstore_core::{VersionIndex, VersionSummary};
/// let index = VersionIndex::new(Vec::new());
/// struct Count(usize);
/// let first = index.view(|s: &[VersionSummary]| Ok(Count(s.len()))).unwrap();
/// let again = index.view(|_: &[VersionSummary]| -> trainstore_core::Result<Count> { unreachable!() }).unwrap();
/// assert_eq!((first.0, again.0), (0, 0));
/// ```
pub struct VersionIndex {
    summaries: Vec<VersionSummary>,
    views: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl VersionIndex {
    pub fn new(summaries: Vec<VersionSummary>) -> Self {
        VersionIndex {
            summaries,
            views: Mutex::default(),
        }
    }

    /// Every live version's summary, ascending.
    pub fn summaries(&self) -> &[VersionSummary] {
        &self.summaries
    }

    /// The view of type `V` of this state, built by `build` the first time it is asked for
    /// (one view per type: a type stands for one way of reading the summaries).
    pub fn view<V: Any + Send + Sync>(
        &self,
        build: impl FnOnce(&[VersionSummary]) -> Result<V>,
    ) -> Result<Arc<V>> {
        let kept = self
            .views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&TypeId::of::<V>())
            .cloned();
        if let Some(view) = kept.and_then(|v| v.downcast::<V>().ok()) {
            return Ok(view);
        }
        // Built outside the lock: two callers racing both build, and either result is
        // the same view.
        let view = Arc::new(build(&self.summaries)?);
        self.views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(TypeId::of::<V>(), view.clone());
        Ok(view)
    }
}

impl fmt::Debug for VersionIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionIndex")
            .field("versions", &self.summaries.len())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for VersionIndex {
    type Target = [VersionSummary];
    fn deref(&self) -> &[VersionSummary] {
        &self.summaries
    }
}

impl VersionSummary {
    /// The summary of the version `manifest` records.
    pub fn of(manifest: &Manifest) -> Self {
        VersionSummary {
            version: manifest.version,
            author: manifest.author.clone(),
            created_at: manifest.created_at,
            bytes: manifest.files.iter().map(|f| f.size).sum(),
            summary: manifest.summary.clone(),
        }
    }
}

/// What [`VersionStore::fsck`] found. Problems make a store unhealthy; orphans do not: they
/// are what failed or killed writers left, and [`VersionStore::gc`] removes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Versions checked, of every item.
    pub versions: usize,
    /// Distinct data files read and hashed.
    pub files: usize,
    pub bytes: u64,
    /// One line per thing wrong: `item@vN: …` for a missing or corrupt manifest or file,
    /// `item@name: …` for a tag or alias pointing at no version.
    pub problems: Vec<String>,
    /// Data files no version lists, older than the grace period: collectable.
    pub orphans: Vec<UnlistedFile>,
}

impl FsckReport {
    /// Whether nothing is wrong (orphans are not wrong, only waste).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Versioned items with immutable data files: create, read, list, name, delete; and, through
/// [`Governance`], who may do so.
///
/// ```
/// use std::sync::Arc;
/// use trainstore_core::{Catalog, DatasetName, NewVersion, UserName, VersionStore};
/// use trainstore_core::object_store::memory::InMemory;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store: Arc<dyn VersionStore> =
///     Arc::new(Catalog::open(Arc::new(InMemory::new()), "memory://doc").await.unwrap());
/// let item = DatasetName::new("vibration").unwrap();
/// let mut new = NewVersion::new(UserName::new("alice").unwrap());
/// new.summary = serde_json::json!({"rows": 10});
/// store.commit(&item, new).await.unwrap();
/// let listed = store.summaries(&item).await.unwrap();
/// assert_eq!(listed[0].summary["rows"], 10);
/// # });
/// ```
#[async_trait]
pub trait VersionStore: Governance + Send + Sync + fmt::Debug {
    /// The URL the catalog was opened at.
    fn url(&self) -> &str;

    /// Writes one data file for a future version of `item` under a unique name and returns
    /// its entry (size and hash) for [`NewVersion::files`]. Never overwrites anything.
    async fn put_file(
        &self,
        item: &DatasetName,
        file_name: &str,
        content: Bytes,
    ) -> Result<FileEntry>;

    /// Reads a data file of a version, checked against its recorded size and SHA-256.
    async fn read_file(&self, entry: &FileEntry) -> Result<Bytes>;

    /// Checks `content`, read by other means (a memory map), against what `entry` records:
    /// the size always, the SHA-256 the first time this process sees the file.
    fn check_content(&self, entry: &FileEntry, content: &[u8]) -> Result<()>;

    /// Deletes a data file written by [`Self::put_file`] that no version lists, after the
    /// commit it was meant for failed. Best effort: what remains is found by
    /// [`Catalog::unlisted_files`](crate::Catalog::unlisted_files).
    async fn remove_unlisted_file(&self, entry: &FileEntry);

    /// Where a data file lies on the local disk, for catalogs on a local disk (`file://`):
    /// lets readers map it into memory instead of copying it.
    fn local_path(&self, entry: &FileEntry) -> Option<std::path::PathBuf>;

    /// For catalogs on a local disk, a place for a new data file of `item`: the path to
    /// record in its [`FileEntry`] and where that lies on disk, under a unique name as
    /// [`Self::put_file`] would choose. Lets a writer stream a large file to its place
    /// instead of holding it in memory. The writer creates the file (never replacing one),
    /// and until a version lists it, it is an orphan like any unlisted file.
    fn new_local_file(
        &self,
        item: &DatasetName,
        file_name: &str,
    ) -> Option<(String, std::path::PathBuf)>;

    /// Commits a new version of `item`; returns its manifest.
    ///
    /// Every listed file must exist with its recorded size. Under contention the commit
    /// retries with jittered backoff; in [`CommitMode::OnTopOf`](crate::catalog::CommitMode::OnTopOf) a newer version is a conflict
    /// at once.
    async fn commit(&self, item: &DatasetName, new: NewVersion) -> Result<Manifest>;

    /// The manifest of one version.
    async fn get(&self, item: &DatasetName, version: Version) -> Result<Manifest>;

    /// The newest manifest of `item`, or `None` when it has no version yet.
    async fn latest(&self, item: &DatasetName) -> Result<Option<Manifest>>;

    /// Every version number of `item`, ascending.
    async fn versions_of(&self, item: &DatasetName) -> Result<Vec<Version>>;

    /// The names of all items with at least one version, sorted.
    async fn items(&self) -> Result<Vec<DatasetName>>;

    /// A summary of every live version of `item`, ascending: what listing and selecting
    /// need, without reading every manifest (an index the commits maintain holds most of
    /// them, and the state last read is shared until the next commit or deletion).
    async fn summaries(&self, item: &DatasetName) -> Result<Arc<VersionIndex>>;

    /// Every tag of `item`, by name.
    async fn tags(&self, item: &DatasetName) -> Result<Vec<TagEntry>>;

    /// Where each alias of `item` points now, by name.
    async fn aliases_of(&self, item: &DatasetName) -> Result<Vec<AliasEntry>>;

    /// Resolves `latest`, `v3`, `3`, a tag or an alias to a version of `item`.
    async fn resolve(&self, item: &DatasetName, reference: &str) -> Result<Version>;

    /// Tags `version` of `item` as `tag`, once and for all.
    async fn create_tag(
        &self,
        item: &DatasetName,
        tag: &TagName,
        version: Version,
        author: &UserName,
    ) -> Result<TagEntry>;

    /// The tag `tag` of `item`, if it exists.
    async fn tag(&self, item: &DatasetName, tag: &TagName) -> Result<Option<TagEntry>>;

    /// Points alias `alias` of `item` at `version`, keeping the previous positions as history.
    async fn set_alias(
        &self,
        item: &DatasetName,
        alias: &TagName,
        version: Version,
        author: &UserName,
    ) -> Result<AliasEntry>;

    /// Where alias `alias` of `item` points now.
    async fn alias(&self, item: &DatasetName, alias: &TagName) -> Result<Option<AliasEntry>>;

    /// Every position alias `alias` of `item` has had, oldest first.
    async fn alias_history(&self, item: &DatasetName, alias: &TagName) -> Result<Vec<AliasEntry>>;

    /// Reads data file `entry` and checks its size and SHA-256, always (not once per process
    /// as reads do: a file checked earlier may have changed since).
    async fn verify_file(&self, entry: &FileEntry) -> Result<()>;

    /// Checks every version of every item (each distinct data file re-read and hashed),
    /// every tag and alias, and lists the data files no version lists that are older than
    /// `grace`. Problems are collected, not raised, so one run lists them all; errors
    /// reaching the store are raised.
    async fn fsck(&self, grace: Duration, progress: &dyn Progress) -> Result<FsckReport>;

    /// Deletes the data files no version lists that are older than `grace` (younger ones may
    /// belong to a commit in progress), unless `dry_run`; returns them.
    async fn gc(&self, grace: Duration, dry_run: bool) -> Result<Vec<UnlistedFile>>;

    /// Marks `version` of `item` deleted by `by`: it is no longer listed or resolved, and its
    /// files become collectable by [`Self::gc`] once no other version lists them. The number is
    /// never reused. A version a tag or alias names cannot be deleted; deleting twice is an
    /// [`crate::Error::AlreadyExists`].
    async fn delete(&self, item: &DatasetName, version: Version, by: &UserName) -> Result<()>;

    /// The deleted versions of `item`.
    async fn deleted(&self, item: &DatasetName) -> Result<BTreeSet<Version>>;

    /// Stores `draft`, replacing its earlier state. Its files must have been stored with
    /// [`Self::put_file`] first; from then on they are kept by [`Self::gc`] until the draft is
    /// discarded.
    async fn save_draft(&self, draft: &Draft) -> Result<()>;

    /// The drafts of `item` that `owner` owns, oldest first; others' are invisible.
    async fn drafts(&self, item: &DatasetName, owner: &UserName) -> Result<Vec<Draft>>;

    /// Removes `owner`'s draft `id` (after committing it, or to give it up); the files only
    /// it listed become collectable.
    async fn discard_draft(&self, item: &DatasetName, id: &str, owner: &UserName) -> Result<()>;
}
