//! The versioned catalog: append-only numbered versions of named items on any object store.
//!
//! Training-set versions, model versions and pipeline definitions all rest on this one
//! primitive. Data files are written first under unique names and never changed; a version
//! becomes visible only when its manifest is created with `PutMode::Create`, the atomic
//! create-if-absent that local disks, NFS and S3 offer. Two writers racing for the same
//! number cannot both win: the loser re-reads and retries with jittered backoff, up to a
//! bound, then reports [`Error::VersionConflict`]. Nothing rests on locks.
//!
//! Layout under the catalog root:
//!
//! ```text
//! items/<item>/versions/<00000000000000000001>.json   manifests, one per version
//! items/<item>/versions/_latest                        a hint: some committed version, maybe stale
//! items/<item>/data/<unique>-<file name>               data files, immutable
//! items/<item>/tags/<tag>.json                         fixed pointers, created once
//! items/<item>/aliases/<alias>/<00000000000000000001>.json   movable pointers; each move appends
//! items/<item>/index/<n>.json                          summaries of versions 1..=n (checkpoints)
//! items/<item>/deleted/<00000000000000000001>.json     a version's deletion, created once
//! items/<item>/drafts/<id>.json                        a draft's files, replaced as it grows
//! items/<item>/{access,audit,lease}/…                  permissions, audit log, lease (see
//!                                                      [`crate::governance`])
//! ```
//!
//! The newest entry of a numbered sequence is found without listing: start from the hint (or
//! 1), probe forward by doubling steps, then bisect. Sequences have no gaps, because an entry
//! is only ever created right after the newest one seen.
//!
//! Reading writes nothing, so archived and shared workspaces on read-only storage can be read.
//! The check that the store honours create-if-absent runs once, before the first write.
//! Data files are checked against their recorded SHA-256 the first time a process reads them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::{DatasetName, TagName, UserName, Version};
use crate::progress::Progress;
use crate::retry::Backoff;
use crate::storage::{ObjectStoreRef, probe_create_if_absent};
use crate::time::Timestamp;
use crate::versions::{FsckReport, VersionIndex, VersionStore, VersionSummary};

/// The manifest format this code writes and understands.
const MANIFEST_FORMAT: u32 = 1;

/// One immutable data file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the catalog root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex: what identifies it, and what `verify` and
    /// `fsck` check.
    pub sha256: String,
    /// XXH3-128 of the content, lower-case hex: what a read checks. It catches the same
    /// accidental damage at a twelfth of SHA-256's cost (a core hashes about 1.7 GB/s with
    /// SHA-256, 20 GB/s with XXH3), and deliberate tampering is out of a read's reach either
    /// way: whoever can rewrite a file can rewrite its manifest. Absent from entries recorded
    /// before it was kept; their reads check the SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
}

impl FileEntry {
    /// The entry of `content` stored at `path`.
    ///
    /// ```
    /// use trainstore_core::FileEntry;
    /// let entry = FileEntry::of("data/a.parquet".into(), b"rows");
    /// assert_eq!(entry.size, 4);
    /// assert_eq!(entry.sha256.len(), 64);
    /// assert_eq!(entry.xxh3.map(|h| h.len()), Some(32));
    /// ```
    pub fn of(path: String, content: &[u8]) -> FileEntry {
        let mut hasher = ContentHasher::default();
        hasher.update(content);
        hasher.entry(path)
    }
}

/// What a committed version records. Immutable once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub item: DatasetName,
    pub version: Version,
    pub parent: Option<Version>,
    pub author: UserName,
    pub created_at: Timestamp,
    pub files: Vec<FileEntry>,
    /// Free metadata, e.g. lineage and quality of a training set.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// The little a listing of many versions needs (a training set's quality score and
    /// size): copied into the item's index, see [`VersionStore::summaries`].
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub summary: serde_json::Value,
}

/// Where a new version may land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Take the next free number, whatever was committed meanwhile.
    #[default]
    Append,
    /// Only directly on top of this version (`None`: only as the first version); anything
    /// else committed meanwhile is a real conflict and fails at once.
    OnTopOf(Option<Version>),
}

/// A version about to be committed.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub author: UserName,
    pub files: Vec<FileEntry>,
    pub metadata: serde_json::Value,
    /// See [`Manifest::summary`]; keep it to a few hundred bytes.
    pub summary: serde_json::Value,
    pub mode: CommitMode,
}

impl NewVersion {
    /// An appended version by `author` with no files and null metadata.
    pub fn new(author: UserName) -> Self {
        NewVersion {
            author,
            files: Vec::new(),
            metadata: serde_json::Value::Null,
            summary: serde_json::Value::Null,
            mode: CommitMode::Append,
        }
    }
}

/// One position of an alias: which version it pointed at, since when, set by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasEntry {
    pub alias: TagName,
    pub seq: u64,
    pub version: Version,
    pub author: UserName,
    pub set_at: Timestamp,
}

/// A fixed tag on a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEntry {
    pub tag: TagName,
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
}

/// The record that a version was deleted: by whom and when. The manifest stays (numbers are
/// never reused, and the history shows what was there); the version is no longer listed or
/// resolved, and its files become collectable once nothing else lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub version: Version,
    pub by: UserName,
    pub at: Timestamp,
}

/// Work in progress towards a new version, seen only by its owner until committed.
///
/// Copy-on-write: a draft lists its parent's files it keeps plus the files written for it,
/// so starting one copies nothing. Saving a draft replaces its document whole (one owner
/// writes it); committing turns its files into a version through the ordinary commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// Random, unique within the item.
    pub id: String,
    pub item: DatasetName,
    pub owner: UserName,
    /// The version it started from (`None`: from nothing).
    pub parent: Option<Version>,
    pub files: Vec<FileEntry>,
    /// Free metadata of the draft's user (e.g. a training set's schema).
    #[serde(default)]
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Draft {
    /// A fresh random draft id.
    pub fn new_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }
}

/// A data file no version lists (see [`Catalog::unlisted_files`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnlistedFile {
    /// Path relative to the catalog root.
    pub path: String,
    pub size: u64,
}

/// Retry bounds and backoff for contended commits: a writer that keeps losing races retries
/// with full-jitter [`Backoff`] until it gets through, gives up only after `max_attempts` or
/// `deadline`, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// No retry starts once this long has passed since the first attempt.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1000,
            backoff: Backoff {
                base: Duration::from_millis(5),
                max: Duration::from_millis(400),
            },
            deadline: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Whether another attempt may start after `attempts` made since `started`.
    fn allows(&self, attempts: u32, started: std::time::Instant) -> bool {
        attempts < self.max_attempts && started.elapsed() < self.deadline
    }
}

/// Versioned items on one object store.
///
/// ```
/// use std::sync::Arc;
/// use trainstore_core::{Catalog, DatasetName, NewVersion, UserName, VersionStore};
/// use trainstore_core::object_store::memory::InMemory;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let catalog = Catalog::open(Arc::new(InMemory::new()), "memory://doc").await.unwrap();
/// let item = DatasetName::new("vibration").unwrap();
/// let author = UserName::new("alice").unwrap();
/// let v1 = catalog.commit(&item, NewVersion::new(author.clone())).await.unwrap();
/// let v2 = catalog.commit(&item, NewVersion::new(author)).await.unwrap();
/// assert_eq!((v1.version.get(), v2.version.get()), (1, 2));
/// assert_eq!(v2.parent, Some(v1.version));
/// assert_eq!(catalog.latest(&item).await.unwrap().unwrap().version, v2.version);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) store: ObjectStoreRef,
    url: String,
    retry: RetryPolicy,
    /// Set once the store has shown that create-if-absent never overwrites.
    writable: Arc<tokio::sync::OnceCell<()>>,
    /// The version index last read of recently listed items: manifests are immutable, so
    /// a later listing reads only the versions committed since, and one with nothing new
    /// shares the same [`VersionIndex`] (and the views derived from it).
    indexes: Arc<Mutex<HashMap<DatasetName, KnownIndex>>>,
}

/// The version index of one item as last read.
#[derive(Debug, Clone)]
struct KnownIndex {
    /// Every version's summary, 1..=latest, deleted ones included.
    all: Arc<Vec<VersionSummary>>,
    deleted: BTreeSet<Version>,
    /// `all` less `deleted`.
    live: Arc<VersionIndex>,
}

/// How many items' indexes a catalog keeps.
const INDEXES_KEPT: usize = 16;

/// Where the create-if-absent probe writes, under the catalog root.
const PROBE_DIR: &str = "_probe";

/// A probe file older than this was left by a process that died mid-probe.
const STALE_PROBE: Duration = Duration::from_secs(600);

/// Every this many versions, the committer writes an index checkpoint of all summaries so
/// far: listing then reads one checkpoint and fewer than this many manifests, whatever the
/// number of versions.
const INDEX_EVERY: u64 = 100;

/// How many checkpoints below the newest expected one are tried before reading every
/// manifest (a checkpoint is missing when its writer was killed after committing).
const INDEX_SEARCH: u64 = 3;

/// An index checkpoint: the summaries of versions 1..=n, in order. Immutable, like the
/// manifests it copies.
#[derive(Debug, Serialize, Deserialize)]
struct IndexCheckpoint {
    item: DatasetName,
    versions: Vec<VersionSummary>,
}

impl Catalog {
    /// Opens the catalog rooted at `store` (described by `url` in errors). Nothing is written:
    /// the store's create-if-absent is checked before the first write ([`Self::ensure_writable`]).
    pub async fn open(store: ObjectStoreRef, url: &str) -> Result<Self> {
        Ok(Catalog {
            store,
            url: url.to_owned(),
            retry: RetryPolicy::default(),
            writable: Arc::default(),
            indexes: Arc::default(),
        })
    }

    /// Checks, once per catalog, that the store really refuses to overwrite on
    /// create-if-absent writes, removing probe files that killed processes left behind.
    /// Every write of the catalog calls this first; so does anything else that writes to the
    /// same store on the catalog's guarantee.
    pub async fn ensure_writable(&self) -> Result<()> {
        self.writable
            .get_or_try_init(|| async {
                let dir = Path::from(PROBE_DIR);
                remove_stale_probes(self.store.as_ref(), &dir).await;
                probe_create_if_absent(self.store.as_ref(), &dir, &self.url).await
            })
            .await
            .map(|_| ())
    }

    /// Replaces the retry policy for contended commits.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub(crate) fn item_dir(item: &DatasetName) -> Path {
        Path::from_iter(["items", item.as_str()])
    }

    /// A unique path for a new data file of `item`, keeping what is safe of `file_name`.
    fn new_data_path(item: &DatasetName, file_name: &str) -> Path {
        let base = file_name.rsplit('/').next().unwrap_or(file_name);
        let safe: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let unique: u128 = rand::random();
        Self::item_dir(item)
            .join("data")
            .join(format!("{unique:032x}-{safe}"))
    }

    fn versions(item: &DatasetName) -> Sequence {
        Sequence {
            dir: Self::item_dir(item).join("versions"),
            hinted: true,
        }
    }

    fn aliases(item: &DatasetName, alias: &TagName) -> Sequence {
        Sequence {
            dir: Self::item_dir(item).join("aliases").join(alias.as_str()),
            hinted: false,
        }
    }

    fn deletion_path(item: &DatasetName, version: Version) -> Path {
        Self::item_dir(item)
            .join("deleted")
            .join(format!("{:020}.json", version.get()))
    }

    fn draft_path(item: &DatasetName, id: &str) -> Result<Path> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::invalid(
                "draft id",
                id,
                "expected letters, digits and dashes",
            ));
        }
        Ok(Self::item_dir(item)
            .join("drafts")
            .join(format!("{id}.json")))
    }

    /// Every draft of `item`, of every owner.
    async fn all_drafts(&self, item: &DatasetName) -> Result<Vec<Draft>> {
        let dir = Self::item_dir(item).join("drafts");
        let mut out: Vec<Draft> = read_all_json(self.store.as_ref(), &dir).await?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn index_path(item: &DatasetName, upto: u64) -> Path {
        Self::item_dir(item)
            .join("index")
            .join(format!("{upto:020}.json"))
    }

    /// The summaries of versions 1..=n from the newest index checkpoint at or below
    /// `latest` (empty when there is none, or the few nearest are missing or unreadable:
    /// the manifests then answer, only slower).
    async fn newest_index(&self, item: &DatasetName, latest: u64) -> Result<Vec<VersionSummary>> {
        let newest = latest / INDEX_EVERY * INDEX_EVERY;
        for upto in (1..=INDEX_SEARCH)
            .map_while(|k| newest.checked_sub((k - 1) * INDEX_EVERY))
            .take_while(|&n| n > 0)
        {
            let path = Self::index_path(item, upto);
            match read_json::<IndexCheckpoint>(self.store.as_ref(), &path).await {
                Ok(Some(index))
                    if index.versions.len() as u64 == upto
                        && index
                            .versions
                            .iter()
                            .zip(1..)
                            .all(|(s, n)| s.version.get() == n) =>
                {
                    return Ok(index.versions);
                }
                Ok(None) => {}
                Ok(Some(_)) | Err(Error::Corrupt { .. }) => {
                    tracing::warn!(%path, "an index checkpoint does not hold what its name says; reading manifests instead");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Vec::new())
    }

    /// Every version's summary of `item`, 1..=`latest`, deleted ones included: what this
    /// catalog read before, then the newest checkpoint not yet read, then the manifests
    /// after it.
    async fn all_summaries(
        &self,
        item: &DatasetName,
        latest: u64,
        known: Option<&KnownIndex>,
    ) -> Result<Arc<Vec<VersionSummary>>> {
        let mut out = match known {
            Some(k) if k.all.len() as u64 == latest => return Ok(k.all.clone()),
            Some(k) => k.all[..k.all.len().min(latest as usize)].to_vec(),
            None => Vec::new(),
        };
        if (out.len() as u64) < latest / INDEX_EVERY * INDEX_EVERY {
            let index = self.newest_index(item, latest).await?;
            if index.len() > out.len() {
                out = index;
            }
        }
        let tail: Vec<VersionSummary> = futures::stream::iter(out.len() as u64 + 1..=latest)
            .map(|n| async move {
                let manifest = self.get(item, Version::new(n)?).await?;
                Ok::<_, Error>(VersionSummary::of(&manifest))
            })
            .buffered(16)
            .try_collect()
            .await?;
        out.extend(tail);
        Ok(Arc::new(out))
    }

    /// The index of `item` this catalog read last, if any.
    fn known_index(&self, item: &DatasetName) -> Option<KnownIndex> {
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(item)
            .cloned()
    }

    /// Writes the index checkpoint of versions 1..=`upto`, after the commit of `upto`. Best
    /// effort: a missing checkpoint only makes listing read more manifests.
    async fn write_index(&self, item: &DatasetName, upto: u64) {
        let written = async {
            let known = self.known_index(item);
            let all = self.all_summaries(item, upto, known.as_ref()).await?;
            let index = IndexCheckpoint {
                item: item.clone(),
                versions: all[..upto as usize].to_vec(),
            };
            create_json(self.store.as_ref(), &Self::index_path(item, upto), &index).await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(%item, upto, "could not write an index checkpoint: {e}");
        }
    }

    fn tag_path(&self, item: &DatasetName, tag: &TagName) -> Path {
        Self::item_dir(item)
            .join("tags")
            .join(format!("{tag}.json"))
    }

    /// Data files that no live version or draft of their item lists, last written more than
    /// `grace` ago: what writers that failed or were killed between writing and committing
    /// left behind, and the files of deleted versions. Younger files may belong to a commit
    /// in progress and are left alone.
    pub async fn unlisted_files(&self, grace: Duration) -> Result<Vec<UnlistedFile>> {
        let now = chrono::Utc::now();
        let mut out = Vec::new();
        for item in self.items().await? {
            // Data files first: a version committed after this listing is seen below.
            let dir = Self::item_dir(&item).join("data");
            let files: Vec<_> = self
                .store
                .list(Some(&dir))
                .try_collect()
                .await
                .map_err(|e| Error::storage("list", &dir, e))?;
            let mut listed = HashSet::new();
            let deleted = self.deleted(&item).await?;
            for version in self.versions_of(&item).await? {
                if deleted.contains(&version) {
                    continue;
                }
                listed.extend(
                    self.get(&item, version)
                        .await?
                        .files
                        .into_iter()
                        .map(|f| f.path),
                );
            }
            for draft in self.all_drafts(&item).await? {
                listed.extend(draft.files.into_iter().map(|f| f.path));
            }
            for meta in files {
                let old_enough = now
                    .signed_duration_since(meta.last_modified)
                    .to_std()
                    .is_ok_and(|age| age > grace);
                if old_enough && !listed.contains(meta.location.as_ref()) {
                    out.push(UnlistedFile {
                        path: meta.location.to_string(),
                        size: meta.size,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Deletes files found by [`Self::unlisted_files`].
    pub async fn remove_unlisted(&self, files: &[UnlistedFile]) -> Result<()> {
        for f in files {
            let path = Path::from(f.path.as_str());
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage("delete", &path, e)),
            }
        }
        Ok(())
    }

    /// Runs `attempt` again while it ends in [`Error::VersionConflict`], with the same backoff
    /// and bounds as commits. For writes that plan on the latest version and commit
    /// [`CommitMode::OnTopOf`] it: each attempt re-reads and re-plans, so nothing another
    /// writer committed in between is lost. The final error counts every attempt.
    pub async fn retry_conflicts<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = std::time::Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match attempt().await {
                Err(Error::VersionConflict { item, version, .. }) => {
                    if !self.retry.allows(attempts, started) {
                        return Err(Error::VersionConflict {
                            item,
                            version,
                            attempts,
                        });
                    }
                    tracing::debug!(%item, attempts, "lost a race; re-planning");
                    tokio::time::sleep(self.retry.backoff.delay(attempts - 1)).await;
                }
                other => return other,
            }
        }
    }

    /// Why `draft` cannot be committed any more, if it cannot: its parent is gone or one of
    /// its files is missing or has the wrong size (an orphaned draft, to discard).
    async fn draft_problem(
        &self,
        draft: &Draft,
        deleted: &BTreeSet<Version>,
    ) -> Result<Option<String>> {
        if let Some(parent) = draft.parent
            && deleted.contains(&parent)
        {
            return Ok(Some(format!("its parent {parent} was deleted")));
        }
        for file in &draft.files {
            let path = data_path(file)?;
            match self.store.head(&path).await {
                Ok(meta) if meta.size == file.size => {}
                Ok(meta) => {
                    return Ok(Some(format!(
                        "{} is {} bytes, the draft expects {}",
                        file.path, meta.size, file.size
                    )));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    return Ok(Some(format!("{} is missing", file.path)));
                }
                Err(e) => return Err(Error::storage("check draft file", &path, e)),
            }
        }
        Ok(None)
    }

    /// Re-reads every file of a version and checks its size and hash, reporting bytes read.
    pub async fn verify(
        &self,
        item: &DatasetName,
        version: Version,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        let manifest = self.get(item, version).await?;
        let total = manifest.files.iter().map(|f| f.size).sum();
        progress.begin(&format!("verifying {item}@{version}"), Some(total));
        let result = async {
            for f in &manifest.files {
                self.verify_file(f).await?;
                progress.advance(f.size);
            }
            Ok(())
        }
        .await;
        progress.finish();
        result.map(|()| manifest)
    }
}

#[async_trait]
impl VersionStore for Catalog {
    fn url(&self) -> &str {
        &self.url
    }

    async fn put_file(
        &self,
        item: &DatasetName,
        file_name: &str,
        content: Bytes,
    ) -> Result<FileEntry> {
        self.ensure_writable().await?;
        let path = Self::new_data_path(item, file_name);
        let entry = FileEntry::of(path.to_string(), &content);
        self.store
            .put_opts(
                &path,
                PutPayload::from_bytes(content),
                PutMode::Create.into(),
            )
            .await
            .map_err(|e| Error::storage("write data file", &path, e))?;
        Ok(entry)
    }

    async fn read_file(&self, entry: &FileEntry) -> Result<Bytes> {
        let content = read_bytes(self.store.as_ref(), &data_path(entry)?, "data file").await?;
        self.check_content(entry, &content)?;
        Ok(content)
    }

    fn check_content(&self, entry: &FileEntry, content: &[u8]) -> Result<()> {
        let (kind, expected) = match &entry.xxh3 {
            Some(xxh3) => ("xxh3", xxh3),
            None => ("sha256", &entry.sha256),
        };
        let corrupt = |found: String| Error::Corrupt {
            path: format!("{}/{}", self.url, entry.path),
            reason: format!(
                "expected {} bytes with {kind} {expected}, found {found}; `trainstore \
                 workspace verify` checks the whole workspace",
                entry.size
            ),
        };
        if content.len() as u64 != entry.size {
            return Err(corrupt(format!("{} bytes", content.len())));
        }
        static VERIFIED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        let key = format!("{}/{}#{}", self.url, entry.path, entry.sha256);
        let verified = VERIFIED.get_or_init(Default::default);
        if verified.lock().expect("verified files").contains(&key) {
            return Ok(());
        }
        let actual = match entry.xxh3 {
            Some(_) => hex_xxh3(content),
            None => hex_sha256(content),
        };
        if actual != *expected {
            return Err(corrupt(format!("{kind} {actual}")));
        }
        verified.lock().expect("verified files").insert(key);
        Ok(())
    }

    async fn remove_unlisted_file(&self, entry: &FileEntry) {
        if let Ok(path) = data_path(entry)
            && let Err(e) = self.store.delete(&path).await
        {
            tracing::warn!(path = %entry.path, "could not remove an uncommitted data file: {e}");
        }
    }

    fn local_path(&self, entry: &FileEntry) -> Option<std::path::PathBuf> {
        Some(crate::storage::local_dir(&self.url)?.join(&entry.path))
    }

    fn new_local_file(
        &self,
        item: &DatasetName,
        file_name: &str,
    ) -> Option<(String, std::path::PathBuf)> {
        let path = Self::new_data_path(item, file_name).to_string();
        let local = crate::storage::local_dir(&self.url)?.join(&path);
        Some((path, local))
    }

    async fn commit(&self, item: &DatasetName, new: NewVersion) -> Result<Manifest> {
        self.ensure_writable().await?;
        for f in &new.files {
            let path = Path::parse(&f.path)
                .map_err(|e| Error::invalid("file path", &f.path, e.to_string()))?;
            let meta = self
                .store
                .head(&path)
                .await
                .map_err(|e| Error::storage("check data file", &path, e))?;
            if meta.size != f.size {
                return Err(Error::Corrupt {
                    path: f.path.clone(),
                    reason: format!("manifest says {} bytes, store has {}", f.size, meta.size),
                });
            }
        }
        let seq = Self::versions(item);
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            let latest = seq
                .latest(self.store.as_ref())
                .await?
                .map(Version::new)
                .transpose()?;
            if let CommitMode::OnTopOf(base) = new.mode
                && base != latest
            {
                return Err(Error::VersionConflict {
                    item: item.to_string(),
                    version: latest.map_or(0, Version::get),
                    attempts: attempt + 1,
                });
            }
            let version = match latest {
                Some(v) => v.next()?,
                None => Version::FIRST,
            };
            let manifest = Manifest {
                format: MANIFEST_FORMAT,
                item: item.clone(),
                version,
                parent: latest,
                author: new.author.clone(),
                created_at: Timestamp::now(),
                files: new.files.clone(),
                metadata: new.metadata.clone(),
                summary: new.summary.clone(),
            };
            if seq
                .create(self.store.as_ref(), version.get(), &manifest)
                .await?
            {
                tracing::debug!(item = %item, version = %version, attempt, "committed");
                if version.get() % INDEX_EVERY == 0 {
                    self.write_index(item, version.get()).await;
                }
                return Ok(manifest);
            }
            attempt += 1;
            if !self.retry.allows(attempt, started) {
                return Err(Error::VersionConflict {
                    item: item.to_string(),
                    version: version.get(),
                    attempts: attempt,
                });
            }
            tracing::debug!(item = %item, version = %version, attempt, "commit lost a race; retrying");
            tokio::time::sleep(self.retry.backoff.delay(attempt - 1)).await;
        }
    }

    async fn get(&self, item: &DatasetName, version: Version) -> Result<Manifest> {
        let manifest: Manifest = Self::versions(item)
            .read(self.store.as_ref(), version.get())
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "version",
                name: format!("{item}@{version}"),
            })?;
        // A newer format may mean what this one reads differently: refuse, never misread.
        if manifest.format > MANIFEST_FORMAT {
            return Err(Error::Corrupt {
                path: format!("{}/{item}@{version}", self.url),
                reason: format!(
                    "written in manifest format {}, this trainstore reads up to {MANIFEST_FORMAT}: upgrade trainstore",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }

    async fn latest(&self, item: &DatasetName) -> Result<Option<Manifest>> {
        match Self::versions(item).latest(self.store.as_ref()).await? {
            Some(n) => Ok(Some(self.get(item, Version::new(n)?).await?)),
            None => Ok(None),
        }
    }

    async fn versions_of(&self, item: &DatasetName) -> Result<Vec<Version>> {
        let numbers = Self::versions(item).list(self.store.as_ref()).await?;
        numbers.into_iter().map(Version::new).collect()
    }

    async fn items(&self) -> Result<Vec<DatasetName>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&Path::from("items")))
            .await
            .map_err(|e| Error::storage("list items", "items", e))?;
        let mut names: Vec<DatasetName> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| DatasetName::new(n).ok()))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn summaries(&self, item: &DatasetName) -> Result<Arc<VersionIndex>> {
        let latest = Self::versions(item)
            .latest(self.store.as_ref())
            .await?
            .unwrap_or(0);
        let deleted = self.deleted(item).await?;
        let known = self.known_index(item);
        if let Some(k) = &known
            && k.all.len() as u64 == latest
            && k.deleted == deleted
        {
            return Ok(k.live.clone());
        }
        let all = self.all_summaries(item, latest, known.as_ref()).await?;
        let live = Arc::new(VersionIndex::new(
            all.iter()
                .filter(|s| !deleted.contains(&s.version))
                .cloned()
                .collect(),
        ));
        let mut kept = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= INDEXES_KEPT && !kept.contains_key(item) {
            kept.clear();
        }
        kept.insert(
            item.clone(),
            KnownIndex {
                all,
                deleted,
                live: live.clone(),
            },
        );
        Ok(live)
    }

    async fn tags(&self, item: &DatasetName) -> Result<Vec<TagEntry>> {
        let dir = Self::item_dir(item).join("tags");
        let mut out: Vec<TagEntry> = read_all_json(self.store.as_ref(), &dir).await?;
        out.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(out)
    }

    async fn aliases_of(&self, item: &DatasetName) -> Result<Vec<AliasEntry>> {
        let dir = Self::item_dir(item).join("aliases");
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| Error::storage("list", &dir, e))?;
        let mut out = Vec::new();
        for prefix in &listing.common_prefixes {
            if let Some(name) = prefix.filename().and_then(|n| TagName::new(n).ok()) {
                out.extend(self.alias(item, &name).await?);
            }
        }
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(out)
    }

    async fn resolve(&self, item: &DatasetName, reference: &str) -> Result<Version> {
        let not_found = || Error::NotFound {
            what: "version",
            name: format!("{item}@{reference}"),
        };
        let deleted = self.deleted(item).await?;
        let live = |v: Version| {
            if deleted.contains(&v) {
                Err(Error::NotFound {
                    what: "version (it was deleted)",
                    name: format!("{item}@{v}"),
                })
            } else {
                Ok(v)
            }
        };
        if reference == "latest" {
            let newest = Self::versions(item).latest(self.store.as_ref()).await?;
            return (1..=newest.unwrap_or(0))
                .rev()
                .map(Version::new)
                .find(|v| v.as_ref().map_or(true, |v| !deleted.contains(v)))
                .unwrap_or_else(|| Err(not_found()));
        }
        if let Ok(v) = reference.parse::<Version>() {
            self.get(item, v).await?;
            return live(v);
        }
        let name = TagName::new(reference)?;
        if let Some(tag) = self.tag(item, &name).await? {
            return live(tag.version);
        }
        if let Some(alias) = self.alias(item, &name).await? {
            return live(alias.version);
        }
        Err(not_found())
    }

    async fn create_tag(
        &self,
        item: &DatasetName,
        tag: &TagName,
        version: Version,
        author: &UserName,
    ) -> Result<TagEntry> {
        self.ensure_writable().await?;
        self.get(item, version).await?;
        if self.alias(item, tag).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: "alias with the tag's name",
                name: format!("{item}@{tag}"),
            });
        }
        let entry = TagEntry {
            tag: tag.clone(),
            version,
            author: author.clone(),
            created_at: Timestamp::now(),
        };
        let path = self.tag_path(item, tag);
        if !create_json(self.store.as_ref(), &path, &entry).await? {
            return Err(Error::AlreadyExists {
                what: "tag",
                name: format!("{item}@{tag}"),
            });
        }
        Ok(entry)
    }

    async fn tag(&self, item: &DatasetName, tag: &TagName) -> Result<Option<TagEntry>> {
        read_json(self.store.as_ref(), &self.tag_path(item, tag)).await
    }

    async fn set_alias(
        &self,
        item: &DatasetName,
        alias: &TagName,
        version: Version,
        author: &UserName,
    ) -> Result<AliasEntry> {
        self.ensure_writable().await?;
        self.get(item, version).await?;
        if self.tag(item, alias).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: "tag with the alias's name",
                name: format!("{item}@{alias}"),
            });
        }
        let seq = Self::aliases(item, alias);
        let started = std::time::Instant::now();
        let mut attempt = 0;
        while self.retry.allows(attempt, started) {
            let next = seq.latest(self.store.as_ref()).await?.unwrap_or(0) + 1;
            let entry = AliasEntry {
                alias: alias.clone(),
                seq: next,
                version,
                author: author.clone(),
                set_at: Timestamp::now(),
            };
            if seq.create(self.store.as_ref(), next, &entry).await? {
                return Ok(entry);
            }
            tokio::time::sleep(self.retry.backoff.delay(attempt)).await;
            attempt += 1;
        }
        Err(Error::VersionConflict {
            item: format!("{item}@{alias}"),
            version: version.get(),
            attempts: attempt,
        })
    }

    async fn alias(&self, item: &DatasetName, alias: &TagName) -> Result<Option<AliasEntry>> {
        let seq = Self::aliases(item, alias);
        match seq.latest(self.store.as_ref()).await? {
            Some(n) => seq.read(self.store.as_ref(), n).await,
            None => Ok(None),
        }
    }

    async fn alias_history(&self, item: &DatasetName, alias: &TagName) -> Result<Vec<AliasEntry>> {
        let seq = Self::aliases(item, alias);
        let mut out = Vec::new();
        for n in seq.list(self.store.as_ref()).await? {
            out.extend(seq.read::<AliasEntry>(self.store.as_ref(), n).await?);
        }
        Ok(out)
    }

    async fn delete(&self, item: &DatasetName, version: Version, by: &UserName) -> Result<()> {
        self.ensure_writable().await?;
        self.get(item, version).await?;
        let named: Vec<String> = self
            .tags(item)
            .await?
            .into_iter()
            .filter(|t| t.version == version)
            .map(|t| format!("tag {}", t.tag))
            .chain(
                self.aliases_of(item)
                    .await?
                    .into_iter()
                    .filter(|a| a.version == version)
                    .map(|a| format!("alias {}", a.alias)),
            )
            .collect();
        if !named.is_empty() {
            return Err(Error::invalid(
                "version to delete",
                format!("{item}@{version}"),
                format!(
                    "it is named by {}: tags are permanent, move an alias elsewhere first",
                    named.join(", ")
                ),
            ));
        }
        let deletion = Deletion {
            version,
            by: by.clone(),
            at: Timestamp::now(),
        };
        if !create_json(
            self.store.as_ref(),
            &Self::deletion_path(item, version),
            &deletion,
        )
        .await?
        {
            return Err(Error::AlreadyExists {
                what: "deletion of",
                name: format!("{item}@{version}"),
            });
        }
        Ok(())
    }

    async fn deleted(&self, item: &DatasetName) -> Result<BTreeSet<Version>> {
        let dir = Self::item_dir(item).join("deleted");
        let metas: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| Error::storage("list", &dir, e))?;
        Ok(metas
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok())
            .filter_map(|n: u64| Version::new(n).ok())
            .collect())
    }

    async fn save_draft(&self, draft: &Draft) -> Result<()> {
        self.ensure_writable().await?;
        let path = Self::draft_path(&draft.item, &draft.id)?;
        let body = serde_json::to_vec(draft).map_err(|e| Error::Internal {
            operation: "encode a draft".into(),
            reason: e.to_string(),
        })?;
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| Error::storage("write draft", &path, e))?;
        Ok(())
    }

    async fn drafts(&self, item: &DatasetName, owner: &UserName) -> Result<Vec<Draft>> {
        let mut drafts = self.all_drafts(item).await?;
        drafts.retain(|d| &d.owner == owner);
        Ok(drafts)
    }

    async fn discard_draft(&self, item: &DatasetName, id: &str, owner: &UserName) -> Result<()> {
        self.ensure_writable().await?;
        let path = Self::draft_path(item, id)?;
        match read_json::<Draft>(self.store.as_ref(), &path).await? {
            Some(d) if &d.owner == owner => {}
            _ => {
                return Err(Error::NotFound {
                    what: "draft",
                    name: format!("{item} draft {id} of {owner}"),
                });
            }
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage("delete draft", &path, e)),
        }
    }

    async fn fsck(&self, grace: Duration, progress: &dyn Progress) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let mut plan = Vec::new();
        for item in self.items().await? {
            let deleted = self.deleted(&item).await?;
            for version in self.versions_of(&item).await? {
                if !deleted.contains(&version) {
                    plan.push((item.clone(), version));
                }
            }
        }
        progress.begin(&format!("checking {}", self.url), Some(plan.len() as u64));
        let mut seen = HashSet::new();
        let checked = async {
            for (item, version) in &plan {
                report.versions += 1;
                let version_ok = async {
                    let manifest = self.get(item, *version).await?;
                    for file in &manifest.files {
                        if seen.insert((file.path.clone(), file.sha256.clone())) {
                            self.verify_file(file).await?;
                            report.files += 1;
                            report.bytes += file.size;
                        }
                    }
                    Ok::<_, Error>(())
                }
                .await;
                match version_ok {
                    Ok(()) => {}
                    Err(e @ (Error::Corrupt { .. } | Error::NotFound { .. })) => {
                        report.problems.push(format!("{item}@{version}: {e}"));
                    }
                    Err(e) => return Err(e),
                }
                progress.advance(1);
            }
            Ok(())
        }
        .await;
        progress.finish();
        checked?;
        let versions: HashSet<(&DatasetName, Version)> =
            plan.iter().map(|(i, v)| (i, *v)).collect();
        let mut items: Vec<&DatasetName> = plan.iter().map(|(i, _)| i).collect();
        items.dedup();
        for item in items {
            let named = self
                .tags(item)
                .await?
                .into_iter()
                .map(|t| (t.tag, t.version))
                .chain(
                    self.aliases_of(item)
                        .await?
                        .into_iter()
                        .map(|a| (a.alias, a.version)),
                );
            for (name, version) in named {
                if !versions.contains(&(item, version)) {
                    report.problems.push(format!(
                        "{item}@{name}: points at {version}, which does not exist"
                    ));
                }
            }
        }
        for item in self.items().await? {
            let deleted = self.deleted(&item).await?;
            for draft in self.all_drafts(&item).await? {
                if let Some(problem) = self.draft_problem(&draft, &deleted).await? {
                    report.problems.push(format!(
                        "{item} draft {} of {}: {problem}",
                        draft.id, draft.owner
                    ));
                }
            }
        }
        report.orphans = self.unlisted_files(grace).await?;
        Ok(report)
    }

    async fn gc(&self, grace: Duration, dry_run: bool) -> Result<Vec<UnlistedFile>> {
        let files = self.unlisted_files(grace).await?;
        if !dry_run {
            self.remove_unlisted(&files).await?;
        }
        Ok(files)
    }

    async fn verify_file(&self, entry: &FileEntry) -> Result<()> {
        let content = read_bytes(self.store.as_ref(), &data_path(entry)?, "data file").await?;
        let actual = hex_sha256(&content);
        if content.len() as u64 != entry.size || actual != entry.sha256 {
            return Err(Error::Corrupt {
                path: format!("{}/{}", self.url, entry.path),
                reason: format!(
                    "expected {} bytes with sha256 {}, found {} bytes with sha256 {actual}",
                    entry.size,
                    entry.sha256,
                    content.len()
                ),
            });
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    lower_hex(&Sha256::digest(bytes))
}

/// Lower-case hex XXH3-128 of `bytes`, as [`FileEntry::xxh3`] records it.
fn hex_xxh3(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// [`FileEntry::of`] for content that arrives in parts, for writers that stream a data file
/// to its place ([`VersionStore::new_local_file`]).
///
/// ```
/// use trainstore_core::catalog::{ContentHasher, FileEntry};
/// let mut h = ContentHasher::default();
/// h.update(b"row ");
/// h.update(b"groups");
/// assert_eq!(h.entry("a".into()), FileEntry::of("a".into(), b"row groups"));
/// ```
#[derive(Clone, Default)]
pub struct ContentHasher {
    sha256: Sha256,
    /// Boxed: its state is over half a kilobyte, kept inside every file writer.
    xxh3: Box<xxhash_rust::xxh3::Xxh3Default>,
    size: u64,
}

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.xxh3.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The entry of the content seen so far, stored at `path`.
    pub fn entry(self, path: String) -> FileEntry {
        FileEntry {
            path,
            size: self.size,
            sha256: lower_hex(&self.sha256.finalize()),
            xxh3: Some(format!("{:032x}", self.xxh3.digest128())),
        }
    }
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A gap-free numbered sequence of JSON entries `<dir>/<n:020>.json`, numbered from 1.
pub(crate) struct Sequence {
    pub(crate) dir: Path,
    /// Whether a `_latest` hint is kept to shorten the search for the newest entry.
    pub(crate) hinted: bool,
}

impl Sequence {
    fn path(&self, n: u64) -> Path {
        self.dir.clone().join(format!("{n:020}.json"))
    }

    fn hint_path(&self) -> Path {
        self.dir.clone().join("_latest")
    }

    async fn exists(&self, store: &dyn ObjectStore, n: u64) -> Result<bool> {
        let path = self.path(n);
        match store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::storage("look up", &path, e)),
        }
    }

    /// The newest entry's number: gallop forward from the hint, then bisect.
    pub(crate) async fn latest(&self, store: &dyn ObjectStore) -> Result<Option<u64>> {
        let mut known = 0u64; // highest number known to exist (0: none)
        if self.hinted
            && let Some(hint) = read_bytes_opt(store, &self.hint_path()).await?
            && let Ok(n) = std::str::from_utf8(&hint)
                .unwrap_or_default()
                .trim()
                .parse::<u64>()
            && n > 0
            && self.exists(store, n).await?
        {
            known = n;
        }
        let mut step = 1u64;
        let mut missing = loop {
            let probe = known.saturating_add(step);
            if !self.exists(store, probe).await? {
                break probe;
            }
            known = probe;
            step = step.saturating_mul(2);
        };
        while missing - known > 1 {
            let mid = known + (missing - known) / 2;
            if self.exists(store, mid).await? {
                known = mid;
            } else {
                missing = mid;
            }
        }
        Ok((known > 0).then_some(known))
    }

    /// Creates entry `n`; `false` if it exists already (someone else won the race).
    pub(crate) async fn create<T: Serialize>(
        &self,
        store: &dyn ObjectStore,
        n: u64,
        entry: &T,
    ) -> Result<bool> {
        let created = create_json(store, &self.path(n), entry).await?;
        if created && self.hinted {
            // Best effort: a stale or lost hint only costs a few extra lookups.
            let _ = store
                .put(
                    &self.hint_path(),
                    PutPayload::from(n.to_string().into_bytes()),
                )
                .await;
        }
        Ok(created)
    }

    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        store: &dyn ObjectStore,
        n: u64,
    ) -> Result<Option<T>> {
        read_json(store, &self.path(n)).await
    }

    /// Every entry number present, ascending.
    pub(crate) async fn list(&self, store: &dyn ObjectStore) -> Result<Vec<u64>> {
        let metas: Vec<_> = store
            .list(Some(&self.dir))
            .try_collect()
            .await
            .map_err(|e| Error::storage("list", &self.dir, e))?;
        let mut numbers: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }
}

/// Where a data file lies in the store.
fn data_path(entry: &FileEntry) -> Result<Path> {
    Path::parse(&entry.path).map_err(|e| Error::Corrupt {
        path: entry.path.clone(),
        reason: e.to_string(),
    })
}

/// Deletes probe files older than [`STALE_PROBE`]: a live probe takes milliseconds, so these
/// were left by killed processes. Best effort: a store that cannot list or delete is reported
/// by the probe that follows.
async fn remove_stale_probes(store: &dyn ObjectStore, dir: &Path) {
    let Ok(found) = store.list(Some(dir)).try_collect::<Vec<_>>().await else {
        return;
    };
    let now = chrono::Utc::now();
    for meta in found {
        let age = now.signed_duration_since(meta.last_modified).to_std();
        if age.is_ok_and(|age| age > STALE_PROBE) {
            let _ = store.delete(&meta.location).await;
        }
    }
}

pub(crate) async fn create_json<T: Serialize>(
    store: &dyn ObjectStore,
    path: &Path,
    value: &T,
) -> Result<bool> {
    let body = serde_json::to_vec_pretty(value).expect("catalog entries serialize");
    let opts = PutOptions::from(PutMode::Create);
    match store.put_opts(path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(Error::storage("create", path, e)),
    }
}

async fn read_bytes_opt(store: &dyn ObjectStore, path: &Path) -> Result<Option<Bytes>> {
    match store.get(path).await {
        Ok(r) => Ok(Some(
            r.bytes()
                .await
                .map_err(|e| Error::storage("read", path, e))?,
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::storage("read", path, e)),
    }
}

async fn read_bytes(store: &dyn ObjectStore, path: &Path, what: &'static str) -> Result<Bytes> {
    read_bytes_opt(store, path)
        .await?
        .ok_or_else(|| Error::NotFound {
            what,
            name: path.to_string(),
        })
}

/// Every JSON entry directly or deeper under `dir`, in the order of their paths.
pub(crate) async fn read_all_json<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    dir: &Path,
) -> Result<Vec<T>> {
    let mut metas: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage("list", dir, e))?;
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::with_capacity(metas.len());
    for meta in metas {
        out.extend(read_json::<T>(store, &meta.location).await?);
    }
    Ok(out)
}

pub(crate) async fn read_json<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<Option<T>> {
    let Some(bytes) = read_bytes_opt(store, path).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path: path.to_string(),
            reason: format!("unreadable catalog entry: {e}"),
        })
}
