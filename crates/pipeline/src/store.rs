//! Where runs are kept: the [`RunStore`] trait, on a local directory ([`LocalRunStore`]) or
//! on any `object_store` ([`ObjectRunStore`]), and reading a run back ([`load_run`],
//! [`history`]).
//!
//! A store keeps, per run, bytes it does not interpret: a snapshot (replaced atomically),
//! a journal (appended to, one JSON event a line) and per-attempt task logs. What the bytes
//! mean is in `state.rs`. On a local directory:
//!
//! ```text
//! <root>/<run-id>/state.json                    snapshot: RunState as JSON (temp file + rename)
//! <root>/<run-id>/journal.jsonl                 one Event a line, appended
//! <root>/<run-id>/logs/<task>/<attempt>.log     the lines the task wrote, appended
//! ```
//!
//! On an object store, where nothing can be appended to, each append is an object of its own
//! named by its first sequence number (`journal/00000000000000000042.jsonl`,
//! `logs/<task>/<attempt>/00000000000000000007.log`), listed in order when read.
//!
//! Several processes may write one run at once: the pods of an Argo workflow each run one
//! task ([`crate::Executor::run_task`]) and share nothing but the store. So a run's first
//! snapshot is created only if absent ([`RunStore::create_snapshot`]: a hard link on a
//! directory, `PutMode::Create` on an object store), and of several pods creating it exactly
//! one wins. Journal objects are created only if absent too: a pod that numbered its events
//! from a state another pod has appended to since finds its number taken and takes the next
//! free one, so no append replaces another. Appends to the local journal file are single
//! `O_APPEND` writes, which do not overwrite each other on one machine's file system (pods on
//! several machines sharing an NFS volume should use an object store instead: NFS does not
//! make `O_APPEND` atomic across clients). Two events may then carry one number or come out
//! of order; [`load_run`] applies every event after the snapshot's number in journal order.
//!
//! A process killed mid-append leaves at most a torn last journal line, which reading
//! ignores: the change it described is then simply not recorded, and the task it concerned
//! runs again on resume.

use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use trainstore_core::object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutPayload, path::Path as ObjectPath,
};

use crate::error::{Error, Result};
use crate::state::{Event, RunState, RunSummary};

/// Storage for runs. Implementers move bytes; the executor decides what they are. Every
/// method is called with names already checked by [`check_name`] (no `/`, no `..`).
#[async_trait]
pub trait RunStore: Send + Sync + Debug {
    /// Replaces the run's snapshot, atomically: a reader sees the old one or the new one.
    async fn put_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<()>;

    /// Writes the run's first snapshot unless it has one, atomically: of several processes
    /// creating one run at once exactly one gets `true`, every other `false` (and may read
    /// the winner's with [`RunStore::get_snapshot`]); a reader never sees a partial snapshot.
    async fn create_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<bool>;

    /// The run's snapshot, `None` when the run does not exist.
    async fn get_snapshot(&self, run: &str) -> Result<Option<Vec<u8>>>;

    /// Appends `records` (whole lines) to the run's journal; `first_seq` is the sequence
    /// number of the first, for stores that name appended pieces by it. Processes may append
    /// to one run at once, so an append must never replace another: a store that names
    /// pieces by number creates them only if absent and, finding `first_seq` taken, takes
    /// the next free number.
    async fn append_journal(&self, run: &str, first_seq: u64, records: Vec<u8>) -> Result<()>;

    /// The run's journal, every appended piece in order (empty when none).
    async fn read_journal(&self, run: &str) -> Result<Vec<u8>>;

    /// The ids of every stored run, in no particular order.
    async fn list_runs(&self) -> Result<Vec<String>>;

    /// Appends one line (`line` counts from 0 within the attempt) to a task attempt's log.
    async fn append_log(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        line: u64,
        text: &str,
    ) -> Result<()>;

    /// A task attempt's log (empty when it wrote nothing).
    async fn read_log(&self, run: &str, task: &str, attempt: u32) -> Result<String>;
}

/// A shared run store.
pub type RunStoreRef = Arc<dyn RunStore>;

/// Checks that `value` can name a run or a file of one: 1 to 128 letters, digits, `-`, `_`
/// or `.`, starting with a letter or digit.
pub fn check_name(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            value: value.to_string(),
            reason: "expected 1 to 128 letters, digits, '-', '_' or '.', starting with a letter or digit",
        })
    }
}

/// Reads a run back: its snapshot with the journal's later events applied.
pub async fn load_run(store: &dyn RunStore, run: &str) -> Result<RunState> {
    check_name("run id", run)?;
    let snapshot = store
        .get_snapshot(run)
        .await?
        .ok_or_else(|| Error::RunNotFound(run.to_string()))?;
    let corrupt = |reason: String| Error::Corrupt {
        run: run.to_string(),
        reason,
    };
    let mut state: RunState =
        serde_json::from_slice(&snapshot).map_err(|e| corrupt(format!("state.json: {e}")))?;
    state.reindex();
    // Events up to the snapshot's number are in it; every later one applies, in journal
    // order, even when pods writing at once gave two of them one number.
    let base = state.seq;
    let journal = store.read_journal(run).await?;
    let mut lines = journal
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .peekable();
    while let Some(line) = lines.next() {
        match serde_json::from_slice::<Event>(line) {
            Ok(event) if event.seq > base => state.replay(&event),
            Ok(_) => {}
            // The last line may be torn by a killed process: the change it described did
            // not happen as far as the run knows.
            Err(_) if lines.peek().is_none() => break,
            Err(e) => return Err(corrupt(format!("journal: {e}"))),
        }
    }
    Ok(state)
}

/// Every stored run, newest first.
pub async fn history(store: &dyn RunStore) -> Result<Vec<RunSummary>> {
    let mut runs = Vec::new();
    for id in store.list_runs().await? {
        if check_name("run id", &id).is_err() {
            continue;
        }
        match load_run(store, &id).await {
            Ok(state) => runs.push(state.summary()),
            // A run whose first snapshot is not written yet is not history yet.
            Err(Error::RunNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    runs.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.run_id.cmp(&a.run_id))
    });
    Ok(runs)
}

/// Runs in a local directory (what a hostPath, PVC or NFS mount is to a process).
#[derive(Debug, Clone)]
pub struct LocalRunStore {
    root: PathBuf,
    sync: bool,
}

impl LocalRunStore {
    /// Runs under `root` (created when needed). Writes reach the operating system before a
    /// method returns, which survives a killed process; see [`LocalRunStore::with_sync`] for
    /// a lost machine.
    pub fn new(root: impl Into<PathBuf>) -> LocalRunStore {
        LocalRunStore {
            root: root.into(),
            sync: false,
        }
    }

    /// Also flushes every write to the disk before returning (`fsync`), so a power loss
    /// loses nothing acknowledged; slower by a disk flush per change.
    pub fn with_sync(mut self, sync: bool) -> LocalRunStore {
        self.sync = sync;
        self
    }

    /// The directory of runs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn run_dir(&self, run: &str) -> PathBuf {
        self.root.join(run)
    }

    fn log_path(&self, run: &str, task: &str, attempt: u32) -> PathBuf {
        self.run_dir(run)
            .join("logs")
            .join(task)
            .join(format!("{attempt}.log"))
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let io = |operation, e| Error::Io {
            operation,
            path: path.display().to_string(),
            source: e,
        };
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let mut file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io("creating", e))?;
                }
                open().map_err(|e| io("opening", e))?
            }
            Err(e) => return Err(io("opening", e)),
        };
        // One write of whole lines: with O_APPEND, concurrent readers see whole records
        // or a torn last one, never interleaving.
        file.write_all(bytes).map_err(|e| io("appending to", e))?;
        if self.sync {
            file.sync_data().map_err(|e| io("syncing", e))?;
        }
        Ok(())
    }
}

fn io_error(operation: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        operation,
        path: path.display().to_string(),
        source,
    }
}

fn join_error(run: &str, e: tokio::task::JoinError) -> Error {
    Error::Io {
        operation: "writing",
        path: run.to_string(),
        source: std::io::Error::other(e),
    }
}

/// Writes `bytes` to a new temporary file in `dir` (created when needed), named uniquely
/// so that writers in one process or several never share one.
fn write_temp(dir: &Path, bytes: &[u8], sync: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let temp = dir.join(format!(
        ".state.json.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut file = std::fs::File::create(&temp).map_err(|e| io_error("creating", &temp, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("writing", &temp, e))?;
    if sync {
        file.sync_all().map_err(|e| io_error("syncing", &temp, e))?;
    }
    Ok(temp)
}

fn read_or_empty(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            operation: "reading",
            path: path.display().to_string(),
            source: e,
        }),
    }
}

#[async_trait]
impl RunStore for LocalRunStore {
    async fn put_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<()> {
        let dir = self.run_dir(run);
        let sync = self.sync;
        // A snapshot of a large run is megabytes: written off the async threads.
        tokio::task::spawn_blocking(move || {
            let temp = write_temp(&dir, &bytes, sync)?;
            let target = dir.join("state.json");
            std::fs::rename(&temp, &target).map_err(|e| io_error("renaming", &target, e))
        })
        .await
        .map_err(|e| join_error(run, e))?
    }

    async fn create_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<bool> {
        let dir = self.run_dir(run);
        let sync = self.sync;
        tokio::task::spawn_blocking(move || {
            let temp = write_temp(&dir, &bytes, sync)?;
            let target = dir.join("state.json");
            // A hard link is created whole or not at all, and fails if the target exists
            // (on NFS too): the complete snapshot appears at once, and only one wins.
            let linked = std::fs::hard_link(&temp, &target);
            let _ = std::fs::remove_file(&temp);
            match linked {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io_error("creating", &target, e)),
            }
        })
        .await
        .map_err(|e| join_error(run, e))?
    }

    async fn get_snapshot(&self, run: &str) -> Result<Option<Vec<u8>>> {
        read_or_empty(&self.run_dir(run).join("state.json"))
    }

    async fn append_journal(&self, run: &str, _first_seq: u64, records: Vec<u8>) -> Result<()> {
        self.append(&self.run_dir(run).join("journal.jsonl"), &records)
    }

    async fn read_journal(&self, run: &str) -> Result<Vec<u8>> {
        Ok(read_or_empty(&self.run_dir(run).join("journal.jsonl"))?.unwrap_or_default())
    }

    async fn list_runs(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    operation: "listing",
                    path: self.root.display().to_string(),
                    source: e,
                });
            }
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    async fn append_log(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        _line: u64,
        text: &str,
    ) -> Result<()> {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.append(&self.log_path(run, task, attempt), &bytes)
    }

    async fn read_log(&self, run: &str, task: &str, attempt: u32) -> Result<String> {
        let bytes = read_or_empty(&self.log_path(run, task, attempt))?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Runs on an object store (S3, GCS, Azure, memory, …), under a prefix.
#[derive(Debug, Clone)]
pub struct ObjectRunStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl ObjectRunStore {
    /// Runs under `prefix` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> ObjectRunStore {
        ObjectRunStore {
            store,
            prefix: ObjectPath::from(prefix),
        }
    }

    fn path(&self, parts: &[&str]) -> ObjectPath {
        parts
            .iter()
            .fold(self.prefix.clone(), |p, part| p.clone().join(*part))
    }

    async fn get(&self, path: &ObjectPath) -> Result<Option<Vec<u8>>> {
        match self.store.get(path).await {
            Ok(result) => Ok(Some(result.bytes().await?.to_vec())),
            Err(trainstore_core::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the object at `path` unless one exists: `false` when one did.
    async fn create(&self, path: &ObjectPath, payload: PutPayload) -> Result<bool> {
        match self
            .store
            .put_opts(path, payload, PutMode::Create.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(trainstore_core::object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `dir`, concatenated in name order.
    async fn concat(&self, dir: &ObjectPath) -> Result<Vec<u8>> {
        let mut metas: Vec<_> = self.store.list(Some(dir)).try_collect().await?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out = Vec::new();
        for meta in metas {
            if let Some(bytes) = self.get(&meta.location).await? {
                out.extend_from_slice(&bytes);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl RunStore for ObjectRunStore {
    async fn put_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(&[run, "state.json"]), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    async fn create_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<bool> {
        self.create(&self.path(&[run, "state.json"]), PutPayload::from(bytes))
            .await
    }

    async fn get_snapshot(&self, run: &str) -> Result<Option<Vec<u8>>> {
        self.get(&self.path(&[run, "state.json"])).await
    }

    async fn append_journal(&self, run: &str, first_seq: u64, records: Vec<u8>) -> Result<()> {
        let payload = PutPayload::from(records);
        // Each number taken is an object another append created: the loop ends.
        let mut seq = first_seq;
        loop {
            let name = format!("{seq:020}.jsonl");
            if self
                .create(&self.path(&[run, "journal", &name]), payload.clone())
                .await?
            {
                return Ok(());
            }
            seq += 1;
        }
    }

    async fn read_journal(&self, run: &str) -> Result<Vec<u8>> {
        self.concat(&self.path(&[run, "journal"])).await
    }

    async fn list_runs(&self) -> Result<Vec<String>> {
        let listing = self.store.list_with_delimiter(Some(&self.prefix)).await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    async fn append_log(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        line: u64,
        text: &str,
    ) -> Result<()> {
        let name = format!("{line:020}.log");
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        self.store
            .put(
                &self.path(&[run, "logs", task, &attempt.to_string(), &name]),
                PutPayload::from(bytes),
            )
            .await?;
        Ok(())
    }

    async fn read_log(&self, run: &str, task: &str, attempt: u32) -> Result<String> {
        let bytes = self
            .concat(&self.path(&[run, "logs", task, &attempt.to_string()]))
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
