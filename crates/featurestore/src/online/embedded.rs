//! The embedded online store: one `redb` file in the workspace, no server.
//!
//! redb allows one open handle per file, so handles are shared per process (every
//! `FeatureStore` of the workspace uses the same one); another process holding the file gets a
//! clear error. Reads run inline (a lookup is a few microseconds of cached B-tree pages) on
//! a snapshot kept until the next commit, after the first read of the process has read the
//! views' rows into the cache; writes run on the blocking pool, one transaction per call,
//! checking versions inside it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, OnceLock, Weak};

use async_trait::async_trait;
use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    TableHandle,
};
use trainstore_core::{Error, Result, Timestamp};

use super::codec;
use super::{OnlineStore, RowVisitor};

const PROGRESS: TableDefinition<&str, i64> = TableDefinition::new("materialized_until");

const VIEW_TABLE_PREFIX: &str = "view/";

fn table_name(view: &str) -> String {
    format!("{VIEW_TABLE_PREFIX}{view}")
}

fn db_error(path: &Path, operation: &'static str, e: impl fmt::Display) -> Error {
    Error::Remote {
        service: format!("embedded online store {}", path.display()),
        operation,
        reason: e.to_string(),
        transient: false,
    }
}

/// Open databases of this process, by canonical path.
fn open_databases() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

type RowTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// One open store file of this process, and the tables it has open for reading.
struct Shared {
    db: Database,
    readers: Mutex<Readers>,
    /// Whether the read cache was warmed, which the first lookup does.
    warmed: Once,
}

/// Tables opened for reading since the last write, by view: a lookup reuses the snapshot
/// instead of beginning a transaction. Sound because every write to the file goes through
/// this process (redb lets one process open it), which drops them when it commits.
#[derive(Default)]
struct Readers {
    /// Bumped by every commit, so a snapshot taken before one is never kept after it.
    generation: u64,
    tables: HashMap<String, Arc<RowTable>>,
}

/// A `redb` file holding the latest row of each entity per view.
#[derive(Clone)]
pub struct EmbeddedOnlineStore {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl fmt::Debug for EmbeddedOnlineStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmbeddedOnlineStore({})", self.path.display())
    }
}

impl EmbeddedOnlineStore {
    /// Opens (or creates) the store file at `path`, creating its directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| db_error(path, "create directory", e))?;
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let canonical = match dir {
            Some(d) => d
                .canonicalize()
                .map_err(|e| db_error(path, "open", e))?
                .join(path.file_name().unwrap_or_default()),
            None => std::env::current_dir()
                .map_err(|e| db_error(path, "open", e))?
                .join(path),
        };
        let mut open = open_databases().lock().expect("online store registry");
        if let Some(shared) = open.get(&canonical).and_then(Weak::upgrade) {
            return Ok(EmbeddedOnlineStore {
                path: canonical,
                shared,
            });
        }
        let db = Database::create(&canonical).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => db_error(
                &canonical,
                "open",
                "another process has it open (the embedded store serves one process; use Redis to share)",
            ),
            e => db_error(&canonical, "open", e),
        })?;
        let shared = Arc::new(Shared {
            db,
            readers: Mutex::default(),
            warmed: Once::new(),
        });
        open.insert(canonical.clone(), Arc::downgrade(&shared));
        Ok(EmbeddedOnlineStore {
            path: canonical,
            shared,
        })
    }

    /// The process-wide in-memory store named `name` (`memory://name`), created on first use
    /// and kept for the life of the process, as `memory://` workspaces are: every handle to a
    /// name sees the same rows, and nothing outlives the process.
    pub fn in_memory(name: &str) -> Result<Self> {
        static MEMORY: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
        let path = PathBuf::from(format!("memory://{name}"));
        let mut held = MEMORY
            .get_or_init(Default::default)
            .lock()
            .expect("in-memory online stores");
        if let Some(shared) = held.get(name) {
            return Ok(EmbeddedOnlineStore {
                path,
                shared: shared.clone(),
            });
        }
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| db_error(&path, "create", e))?;
        let shared = Arc::new(Shared {
            db,
            readers: Mutex::default(),
            warmed: Once::new(),
        });
        held.insert(name.to_owned(), shared.clone());
        Ok(EmbeddedOnlineStore { path, shared })
    }
}

/// At most this many bytes of rows are read into the cache before the first lookup.
const WARM_BYTES: usize = 64 << 20;

/// Reads the views' rows once, up to [`WARM_BYTES`], so that their B-tree pages are in redb's
/// cache: a serving process's first lookups then cost what its later ones do, instead of a
/// file read and a freshly allocated page each (which set the p99 of a cold process). Errors
/// end the warming quietly: the lookup that follows meets and reports them.
fn warm_read_cache(db: &Database) {
    let Ok(txn) = db.begin_read() else { return };
    let Ok(tables) = txn.list_tables() else {
        return;
    };
    let mut budget = WARM_BYTES;
    for handle in tables.filter(|t| t.name().starts_with(VIEW_TABLE_PREFIX)) {
        let Ok(table) = txn.open_table(TableDefinition::<&[u8], &[u8]>::new(handle.name())) else {
            return;
        };
        let Ok(rows) = table.iter() else { return };
        for (key, row) in rows.map_while(|entry| entry.ok()) {
            let read = key.value().len() + row.value().len();
            if read >= budget {
                return;
            }
            budget -= read;
        }
    }
}

impl EmbeddedOnlineStore {
    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        let db = &self.shared.db;
        db.begin_read().map_err(|e| db_error(&self.path, "read", e))
    }

    /// The table of `view` as of the last commit (`None` if it was never written).
    fn reader(&self, view: &str) -> Result<Option<Arc<RowTable>>> {
        let generation = {
            let readers = self.shared.readers.lock().expect("online store readers");
            if let Some(table) = readers.tables.get(view) {
                return Ok(Some(table.clone()));
            }
            readers.generation
        };
        let path = &self.path;
        let txn = self.begin_read()?;
        let name = table_name(view);
        let table = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => Arc::new(t),
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(path, "read", e)),
        };
        let mut readers = self.shared.readers.lock().expect("online store readers");
        if readers.generation == generation {
            readers.tables.insert(view.to_owned(), table.clone());
        }
        Ok(Some(table))
    }

    /// Runs `work` in one write transaction on the blocking pool, committing if it succeeds.
    async fn in_write_transaction<T: Send + 'static>(
        &self,
        work: impl FnOnce(&redb::WriteTransaction, &Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = &store.path;
            let txn = store
                .shared
                .db
                .begin_write()
                .map_err(|e| db_error(path, "write", e))?;
            let out = work(&txn, path)?;
            txn.commit().map_err(|e| db_error(path, "commit", e))?;
            let mut readers = store.shared.readers.lock().expect("online store readers");
            readers.generation += 1;
            readers.tables.clear();
            Ok(out)
        })
        .await
        .map_err(|e| db_error(&self.path, "write", e))?
    }
}

#[async_trait]
impl OnlineStore for EmbeddedOnlineStore {
    fn describe(&self) -> String {
        format!("embedded online store {}", self.path.display())
    }

    async fn write(&self, view: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<usize> {
        let view = view.to_owned();
        self.in_write_transaction(move |txn, path| {
            let mut written = 0;
            {
                let name = table_name(&view);
                let mut table = txn
                    .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                    .map_err(|e| db_error(path, "write", e))?;
                for (key, row) in &rows {
                    let version = codec::version(row)?;
                    // A held row too short to carry a version is corrupt: the new row repairs it.
                    let newer_held = table
                        .get(key.as_slice())
                        .map_err(|e| db_error(path, "read", e))?
                        .is_some_and(|held| {
                            codec::version(held.value()).is_ok_and(|v| v > version)
                        });
                    if !newer_held {
                        table
                            .insert(key.as_slice(), row.as_slice())
                            .map_err(|e| db_error(path, "write", e))?;
                        written += 1;
                    }
                }
            }
            Ok(written)
        })
        .await
    }

    async fn read(&self, view: &str, keys: &[Vec<u8>], each: &mut RowVisitor<'_>) -> Result<()> {
        let path = &self.path;
        self.shared
            .warmed
            .call_once(|| warm_read_cache(&self.shared.db));
        let Some(table) = self.reader(view)? else {
            return keys.iter().try_for_each(|_| each(None));
        };
        for k in keys {
            let row = table
                .get(k.as_slice())
                .map_err(|e| db_error(path, "read", e))?;
            each(row.as_ref().map(|r| r.value()))?;
        }
        Ok(())
    }

    async fn materialized_until(&self, view: &str) -> Result<Option<Timestamp>> {
        let path = &self.path;
        let txn = self.begin_read()?;
        let table = match txn.open_table(PROGRESS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(path, "read", e)),
        };
        Ok(table
            .get(view)
            .map_err(|e| db_error(path, "read", e))?
            .map(|v| Timestamp::from_millis(v.value())))
    }

    async fn set_materialized_until(&self, view: &str, end: Timestamp) -> Result<()> {
        let view = view.to_owned();
        self.in_write_transaction(move |txn, path| {
            let mut table = txn
                .open_table(PROGRESS)
                .map_err(|e| db_error(path, "write", e))?;
            let held = table
                .get(view.as_str())
                .map_err(|e| db_error(path, "read", e))?
                .map(|v| v.value());
            if held.is_none_or(|h| h < end.as_millis()) {
                table
                    .insert(view.as_str(), end.as_millis())
                    .map_err(|e| db_error(path, "write", e))?;
            }
            Ok(())
        })
        .await
    }
}
