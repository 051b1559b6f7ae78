//! How a training set's rows lie in storage: Snappy-compressed Parquet files of about
//! [`FILE_TARGET`] bytes, row groups of [`ROW_GROUP_ROWS`] rows, written while the rows
//! stream in and read back row group by row group on every core.
//!
//! Each row group is written by work items on every core: one per column (its Parquet
//! encoding) and one for the quality pass over its rows; then it is let go, so memory holds
//! one row group at a time. On a local disk each file is written straight to its place under a
//! unique name, hashed as it goes; on other stores it is made in memory and stored whole once
//! full, so memory holds at most one file in the making. A set larger than memory becomes
//! several files. Nothing is visible until the version's manifest is committed: a writer that
//! fails removes its files, and what a killed one leaves is found by `gc`.
//!
//! Small row groups cost a little compression and let a reader decode a single file on
//! every core, which is what makes reading a set as fast as `pyarrow.parquet.read_table`.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use trainstore_core::catalog::{ContentHasher, FileEntry, hex_sha256};
use trainstore_core::{DatasetName, Error, RecordBatchStream, Result, VersionStore, parallel};

use super::quality::{QualityAccumulator, QualityOptions};

/// By default, a file is closed and stored once its encoded size reaches this many bytes.
/// On stores other than a local disk a file is made in memory, so this is what a create
/// holds of encoded rows there; readers decode row groups, not files, so smaller files read
/// as fast.
pub const FILE_TARGET: usize = 64 << 20;

/// Rows per Parquet row group: the unit readers decode in parallel.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// What [`SetWriter::finish`] produced: the stored files, in row order, and the quality pass.
pub(crate) struct Written {
    pub files: Vec<FileEntry>,
    pub rows: u64,
    pub quality: QualityAccumulator,
    /// SHA-256 over the schema and the files' hashes in order: equal for equal rows written by
    /// the same format version.
    pub content_hash: String,
}

/// Streams batches of one schema into Parquet files of a future version of `item`.
pub(crate) struct SetWriter {
    store: Arc<dyn VersionStore>,
    item: DatasetName,
    schema: SchemaRef,
    file_target: usize,
    encoder: Option<Encoder>,
    files: Vec<FileEntry>,
    rows: u64,
    /// Rows waiting to make a whole row group, and how many.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// The quality pass, lent to each row group's work items.
    quality: Option<QualityAccumulator>,
}

impl SetWriter {
    pub fn new(
        store: Arc<dyn VersionStore>,
        item: DatasetName,
        schema: SchemaRef,
        file_target: usize,
        quality: QualityOptions,
    ) -> Result<Self> {
        let quality = QualityAccumulator::new(&schema, quality)?;
        Ok(SetWriter {
            store,
            item,
            schema,
            file_target,
            encoder: None,
            files: Vec::new(),
            rows: 0,
            pending: Vec::new(),
            pending_rows: 0,
            quality: Some(quality),
        })
    }

    /// Encodes `batch`, storing a file whenever one is full.
    ///
    /// Rows are encoded a whole row group at a time (the caller's batches gathered or cut to
    /// [`ROW_GROUP_ROWS`]), and a file is cut only where a row group ends, once it has reached
    /// its target size. So the bytes of every file, and the set's content hash, depend on the
    /// rows alone, never on how the caller batched them; and a file stays near its target
    /// however large the caller's batches.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(Error::invalid(
                "training-set batch",
                format!("{:?}", batch.schema().fields()),
                format!(
                    "has another schema than the set's first batch ({:?})",
                    self.schema.fields()
                ),
            ));
        }
        let mut start = 0;
        while start < batch.num_rows() {
            let len = (ROW_GROUP_ROWS - self.pending_rows).min(batch.num_rows() - start);
            self.pending.push(batch.slice(start, len));
            self.pending_rows += len;
            start += len;
            if self.pending_rows == ROW_GROUP_ROWS {
                self.write_group().await?;
            }
        }
        Ok(())
    }

    /// Encodes the pending rows as one row group, storing the file if it is full.
    async fn write_group(&mut self) -> Result<()> {
        let group = std::mem::take(&mut self.pending);
        self.rows += self.pending_rows as u64;
        self.pending_rows = 0;
        let mut encoder = match self.encoder.take() {
            Some(e) => e,
            None => self.new_encoder()?,
        };
        let mut quality = self
            .quality
            .take()
            .expect("a writer is lent its quality pass back");
        let (encoder, quality) = tokio::task::spawn_blocking(move || {
            encoder.write_group(&group, || {
                group.iter().try_for_each(|batch| quality.observe(batch))
            })?;
            Ok::<_, Error>((encoder, quality))
        })
        .await
        .map_err(join_error)??;
        self.quality = Some(quality);
        if encoder.bytes_written() >= self.file_target {
            self.store_file(encoder).await
        } else {
            self.encoder = Some(encoder);
            Ok(())
        }
    }

    /// An encoder for the set's next file: straight to its place on a local disk, else
    /// into memory, to be stored whole.
    fn new_encoder(&self) -> Result<Encoder> {
        let sink = match self
            .store
            .new_local_file(&self.item, &self.next_file_name())
        {
            Some((path, local)) => Sink::Disk(DiskFile::create(path, local)?),
            // Reserved whole: growing it by doubling would copy the file several times and,
            // while copying, hold it twice. (Reserved pages cost no memory until written.)
            None => Sink::Memory(Vec::with_capacity(self.file_target + self.file_target / 4)),
        };
        Encoder::new(&self.schema, sink)
    }

    /// The name the set's next file is stored under (made unique by the store).
    fn next_file_name(&self) -> String {
        format!("part-{:05}.parquet", self.files.len())
    }

    async fn store_file(&mut self, encoder: Encoder) -> Result<()> {
        let sink = tokio::task::spawn_blocking(move || encoder.finish())
            .await
            .map_err(join_error)??;
        let entry = match sink {
            Sink::Disk(file) => tokio::task::spawn_blocking(move || file.finish())
                .await
                .map_err(join_error)??,
            Sink::Memory(bytes) => {
                self.store
                    .put_file(&self.item, &self.next_file_name(), Bytes::from(bytes))
                    .await?
            }
        };
        self.files.push(entry);
        Ok(())
    }

    /// Writes every batch of `batches` and finishes; on any failure, removes the files
    /// stored so far.
    pub async fn write_all(mut self, mut batches: RecordBatchStream) -> Result<Written> {
        let streamed = async {
            while let Some(batch) = batches.next().await {
                self.write(batch?).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = streamed {
            self.abandon().await;
            return Err(e);
        }
        self.finish().await
    }

    /// Stores the last file.
    pub async fn finish(mut self) -> Result<Written> {
        if self.pending_rows > 0 {
            self.write_group().await?;
        }
        // A set of no rows is still one file: readers learn the schema from it.
        if let Some(encoder) = self.encoder.take() {
            self.store_file(encoder).await?;
        } else if self.files.is_empty() {
            let empty = self.new_encoder()?;
            self.store_file(empty).await?;
        }
        let quality = self
            .quality
            .take()
            .expect("a writer is lent its quality pass back");
        Ok(Written {
            content_hash: content_hash(&self.schema, &self.files),
            files: std::mem::take(&mut self.files),
            rows: self.rows,
            quality,
        })
    }

    /// Removes every file stored so far: the version they were for will not be committed.
    pub async fn abandon(mut self) {
        for f in std::mem::take(&mut self.files) {
            self.store.remove_unlisted_file(&f).await;
        }
    }
}

/// Where a file in the making goes.
enum Sink {
    /// Into memory, for stores that take whole objects.
    Memory(Vec<u8>),
    /// Straight to its place on the local disk.
    Disk(DiskFile),
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Memory(v) => v.write(buf),
            Sink::Disk(d) => d.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(v) => v.flush(),
            Sink::Disk(d) => d.flush(),
        }
    }
}

/// A data file written where it will stay, hashed as it is written. Removed when dropped
/// unfinished (a failed create); what a killed process leaves is an orphan `gc` collects.
struct DiskFile {
    /// The path its entry records, and where that is on disk.
    path: String,
    local: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    hasher: ContentHasher,
}

impl DiskFile {
    fn create(path: String, local: std::path::PathBuf) -> Result<Self> {
        let failed = |e: std::io::Error| Error::Internal {
            operation: format!("create training-set file {path}"),
            reason: e.to_string(),
        };
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&local)
            .map_err(failed)?;
        Ok(DiskFile {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            path,
            local,
            hasher: ContentHasher::default(),
        })
    }

    /// Flushes the file and returns its entry.
    fn finish(mut self) -> Result<FileEntry> {
        let file = self.file.take().expect("finished once");
        file.into_inner()
            .map_err(|e| e.into_error())
            .map_err(|e| Error::Internal {
                operation: format!("write training-set file {}", self.path),
                reason: e.to_string(),
            })?;
        Ok(std::mem::take(&mut self.hasher).entry(std::mem::take(&mut self.path)))
    }
}

impl std::io::Write for DiskFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let file = self.file.as_mut().expect("written before finish");
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.local);
        }
    }
}

/// One Parquet file in the making. Each row group's columns are encoded on every core at
/// once, then appended in order: the same bytes as one `ArrowWriter` writing them.
struct Encoder {
    file: SerializedFileWriter<Sink>,
    groups: ArrowRowGroupWriterFactory,
}

impl Encoder {
    fn new(schema: &SchemaRef, sink: Sink) -> Result<Self> {
        let (file, groups) = ArrowWriter::try_new(sink, schema.clone(), Some(properties()))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(write_error)?;
        Ok(Encoder { file, groups })
    }

    /// Encodes `pieces` (batches of the file's schema, in order) as the file's next row
    /// group, running `alongside` (the quality pass over the same rows) as one more work
    /// item.
    ///
    /// Each column is one work item: its pieces are put together, its leaves (the values with
    /// their nesting levels, as large as the values for a list) computed and encoded, and
    /// both dropped there; so the copying is spread over the cores too, and only the columns
    /// being encoded are held twice at once.
    fn write_group(
        &mut self,
        pieces: &[RecordBatch],
        alongside: impl FnOnce() -> Result<()> + Send,
    ) -> Result<()> {
        let Some(first) = pieces.first() else {
            return alongside();
        };
        let index = self.file.flushed_row_groups().len();
        let schema = self.file.schema_descr();
        // The writers of each column: one per Parquet leaf under it, in order.
        let mut by_column: Vec<Vec<_>> = (0..first.num_columns()).map(|_| Vec::new()).collect();
        for (leaf, writer) in self
            .groups
            .create_column_writers(index)
            .map_err(write_error)?
            .into_iter()
            .enumerate()
        {
            by_column[schema.get_column_root_idx(leaf)].push(writer);
        }
        let slots: Vec<Mutex<Vec<_>>> = by_column.into_iter().map(Mutex::new).collect();
        let alongside = Mutex::new(Some(alongside));
        let fields = first.schema_ref().fields().clone();
        // Item 0 is `alongside`, handed out first as the longest; item c + 1 is column c.
        let encoded = parallel::map_indexed(slots.len() + 1, |item| {
            let Some(column) = item.checked_sub(1) else {
                let work = alongside.lock().unwrap_or_else(|p| p.into_inner()).take();
                return work.map_or(Ok(Vec::new()), |w| w().map(|()| Vec::new()));
            };
            let writers =
                std::mem::take(&mut *slots[column].lock().unwrap_or_else(|p| p.into_inner()));
            let values = match pieces {
                [one] => one.column(column).clone(),
                _ => {
                    let parts: Vec<&dyn arrow::array::Array> =
                        pieces.iter().map(|p| p.column(column).as_ref()).collect();
                    arrow::compute::concat(&parts)?
                }
            };
            let leaves = compute_leaves(&fields[column], &values).map_err(write_error)?;
            let mut chunks = Vec::with_capacity(writers.len());
            for (mut writer, leaf) in writers.into_iter().zip(&leaves) {
                writer.write(leaf).map_err(write_error)?;
                chunks.push(writer.close().map_err(write_error)?);
            }
            Ok(chunks)
        });
        let mut group = self.file.next_row_group().map_err(write_error)?;
        for chunks in encoded {
            for chunk in chunks? {
                chunk.append_to_row_group(&mut group).map_err(write_error)?;
            }
        }
        group.close().map_err(write_error)?;
        Ok(())
    }

    fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// The whole file, footer included.
    fn finish(self) -> Result<Sink> {
        self.file.into_inner().map_err(write_error)
    }
}

fn write_error(e: parquet::errors::ParquetError) -> Error {
    Error::Internal {
        operation: "encode a training set as Parquet".into(),
        reason: e.to_string(),
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Internal {
        operation: "a training-set task".into(),
        reason: e.to_string(),
    }
}

/// Reads one stored file, checked against its recorded hash the first time this process
/// reads it (hashing off the async workers).
pub(crate) async fn read_file(store: Arc<dyn VersionStore>, entry: FileEntry) -> Result<Bytes> {
    let bytes = open_file(store.clone(), entry.clone()).await?;
    tokio::task::spawn_blocking(move || {
        store.check_content(&entry, &bytes)?;
        Ok(bytes)
    })
    .await
    .map_err(join_error)?
}

/// One stored file's bytes, its hash not yet checked where it lies on the local disk (the
/// caller checks it, with [`decode_checked`] or [`VersionStore::check_content`]). A local
/// file is mapped, not copied: decoding reads the page cache's pages in place.
pub(crate) async fn open_file(store: Arc<dyn VersionStore>, entry: FileEntry) -> Result<Bytes> {
    let Some(path) = store.local_path(&entry) else {
        return store.read_file(&entry).await;
    };
    tokio::task::spawn_blocking(move || {
        let missing = |e: std::io::Error| Error::NotFound {
            what: "training-set file",
            name: format!("{}: {e}", entry.path),
        };
        let file = std::fs::File::open(&path).map_err(missing)?;
        // SAFETY: a version's data files are written once under a unique name and never
        // modified or truncated; `gc` unlinks only files no version lists, and an unlinked
        // file stays mapped until the mapping is dropped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(missing)?;
        Ok(Bytes::from_owner(map))
    })
    .await
    .map_err(join_error)?
}

/// [`decode`], with each file checked against its recorded hash at the same time: a file
/// that does not match fails the read, whatever was decoded from it.
pub(crate) fn decode_checked(
    store: &dyn VersionStore,
    files: Vec<(FileEntry, Bytes)>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    std::thread::scope(|scope| {
        let checks = scope.spawn(|| {
            files
                .iter()
                .try_for_each(|(entry, bytes)| store.check_content(entry, bytes))
        });
        let decoded = decode(files.clone());
        checks.join().map_err(|_| Error::Internal {
            operation: "check a training set's files".into(),
            reason: "the check panicked".into(),
        })??;
        decoded
    })
}

/// Rows a streamed read hands on at a time: a row group's rows can be many megabytes once
/// list columns are wide, and a stream is for what does not fit in memory.
pub const SCAN_BATCH_ROWS: usize = 8 * 1024;

/// `files`' rows, file after file, [`SCAN_BATCH_ROWS`] at a time, with only the columns
/// `columns` names (every column when `None`), decoded on a blocking thread a few batches
/// ahead of the reader. Each file is checked against its recorded hash while it is decoded:
/// one that does not match ends the stream with an error after the rows read from it, so
/// whoever reads a stream keeps nothing of one that ends in an error. `described` names the
/// rows in errors (`name@vN`).
pub(crate) fn scan(
    store: Arc<dyn VersionStore>,
    files: Vec<FileEntry>,
    columns: Option<Vec<String>>,
    described: String,
) -> RecordBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    tokio::spawn(async move {
        for entry in files {
            let bytes = match open_file(store.clone(), entry.clone()).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let (store, tx, columns) = (store.clone(), tx.clone(), columns.clone());
            let described = described.clone();
            let scanned = tokio::task::spawn_blocking(move || {
                let columns = columns.as_deref().map(|c| (c, described.as_str()));
                let sent = scan_file(store.as_ref(), &entry, bytes, columns, &tx);
                sent.map_err(|e| {
                    let _ = tx.blocking_send(Err(e));
                })
            })
            .await;
            if !matches!(scanned, Ok(Ok(true))) {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Sends `entry`'s rows (`bytes`) down `tx` while its hash is checked beside; answers
/// whether the reader still listens. `columns`: the ones to read, and the rows' name.
fn scan_file(
    store: &dyn VersionStore,
    entry: &FileEntry,
    bytes: Bytes,
    columns: Option<(&[String], &str)>,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<bool> {
    std::thread::scope(|scope| {
        let check = scope.spawn(|| store.check_content(entry, &bytes));
        let sent = send_rows(entry, bytes.clone(), columns, tx);
        let checked = check.join().map_err(|_| Error::Internal {
            operation: "check a training set's file".into(),
            reason: "the check panicked".into(),
        })?;
        checked?;
        sent
    })
}

/// Decodes `bytes` (the Parquet file `entry`) batch by batch into `tx`; answers whether the
/// reader still listens.
fn send_rows(
    entry: &FileEntry,
    bytes: Bytes,
    columns: Option<(&[String], &str)>,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<bool> {
    let corrupt = |e: parquet::errors::ParquetError| Error::Corrupt {
        path: entry.path.clone(),
        reason: format!("not a readable Parquet file: {e}"),
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(corrupt)?;
    if let Some((columns, described)) = columns {
        let schema = builder.schema().clone();
        let roots = columns
            .iter()
            .map(|name| {
                schema.index_of(name).map_err(|_| {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    Error::invalid(
                        "column",
                        name,
                        format!(
                            "not a column of training set {described} (it has {})",
                            names.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .with_batch_size(SCAN_BATCH_ROWS)
        .build()
        .map_err(corrupt)?;
    for batch in reader {
        if tx.blocking_send(Ok(batch?)).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// SHA-256 over the schema and the files' hashes in order: equal for equal rows written by
/// the same format version, whichever way the files came together (one create, or a draft
/// adding to its parent's).
pub(crate) fn content_hash(schema: &SchemaRef, files: &[FileEntry]) -> String {
    let mut hashed = format!("trainstore training set, format 1\n{:?}\n", schema.fields());
    for f in files {
        hashed.push_str(&f.sha256);
        hashed.push('\n');
    }
    hex_sha256(hashed.as_bytes())
}

/// `schema` as the hex of an Arrow IPC stream without batches: exact, where a manifest's
/// column list is only descriptive.
pub(crate) fn schema_to_hex(schema: &SchemaRef) -> Result<String> {
    let mut buffer = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buffer, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The schema [`schema_to_hex`] encoded; `what` names where it was read from.
pub(crate) fn schema_from_hex(hex: &str, what: &str) -> Result<SchemaRef> {
    let corrupt = |reason: String| Error::Corrupt {
        path: what.to_owned(),
        reason: format!("its recorded schema is unreadable: {reason}"),
    };
    if !hex.len().is_multiple_of(2) {
        return Err(corrupt("odd length".into()));
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|e| corrupt(e.to_string()))?;
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(reader.schema())
}

/// Decodes stored files into batches in row order, every core busy: each row group on a
/// task of its own, and when there are fewer row groups than cores (a small set), each row
/// group's columns split among several tasks.
pub(crate) fn decode(files: Vec<(FileEntry, Bytes)>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let corrupt = |entry: &FileEntry, e: parquet::errors::ParquetError| Error::Corrupt {
        path: entry.path.clone(),
        reason: format!("not a readable Parquet file: {e}"),
    };
    let mut groups = Vec::new();
    let mut schema = None;
    for (entry, bytes) in &files {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .map_err(|e| corrupt(entry, e))?;
        schema.get_or_insert_with(|| builder.schema().clone());
        for group in 0..builder.metadata().num_row_groups() {
            groups.push((entry, bytes, group));
        }
    }
    let schema: SchemaRef = schema.ok_or_else(|| Error::Corrupt {
        path: "training set".into(),
        reason: "has no data files".into(),
    })?;
    let columns = schema.fields().len().max(1);
    // Several parts per core when there are too few row groups to keep every core busy:
    // columns differ in cost (a list column against a float column), and smaller parts
    // even the cores out.
    let splits = if groups.len() < parallel::threads() {
        (parallel::threads() * 4 / groups.len().max(1)).clamp(1, columns)
    } else {
        1
    };
    // Column ranges: `splits` contiguous, nearly equal parts.
    let ranges: Vec<std::ops::Range<usize>> = (0..splits)
        .map(|i| i * columns / splits..(i + 1) * columns / splits)
        .collect();
    let decoded = parallel::map_indexed(groups.len() * splits, |unit| {
        let (entry, bytes, group) = groups[unit / splits];
        let builder = ParquetRecordBatchReaderBuilder::try_new((*bytes).clone())
            .map_err(|e| corrupt(entry, e))?;
        let builder = if splits > 1 {
            let mask =
                ProjectionMask::roots(builder.parquet_schema(), ranges[unit % splits].clone());
            builder.with_projection(mask)
        } else {
            builder
        };
        let reader = builder
            .with_row_groups(vec![group])
            .with_batch_size(ROW_GROUP_ROWS)
            .build()
            .map_err(|e| corrupt(entry, e))?;
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::from)
    });
    let mut batches = Vec::new();
    let mut parts = decoded.into_iter();
    for _ in 0..groups.len() {
        let pieces: Vec<Vec<RecordBatch>> = parts.by_ref().take(splits).collect::<Result<_>>()?;
        if splits == 1 {
            batches.extend(pieces.into_iter().flatten());
            continue;
        }
        // A row group is at most one batch (it holds at most ROW_GROUP_ROWS rows); its
        // columns come back in parts, put side by side again.
        let mut arrays = Vec::with_capacity(columns);
        for piece in &pieces {
            for b in piece {
                arrays.extend(b.columns().iter().cloned());
            }
        }
        if arrays.len() != columns {
            return Err(Error::Corrupt {
                path: groups[batches.len().min(groups.len() - 1)].0.path.clone(),
                reason: format!("a row group of more than {ROW_GROUP_ROWS} rows"),
            });
        }
        batches.push(RecordBatch::try_new(schema.clone(), arrays)?);
    }
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float32Array, Int64Array, ListArray, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, Float32Type, Schema};

    /// Scalars, a list and a struct of two leaves: columns of one, one and two Parquet leaves.
    fn batch(rows: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(
            (0..rows).map(|i| (i % 5 != 0).then(|| (0..i % 7).map(|j| Some(j as f32)))),
        ));
        let names: ArrayRef = Arc::new(StringArray::from_iter(
            (0..rows).map(|i| (i % 3 != 0).then(|| format!("s{i}"))),
        ));
        let floats: ArrayRef = Arc::new(Float32Array::from_iter_values(
            (0..rows).map(|i| i as f32 / 3.0),
        ));
        let point: ArrayRef = Arc::new(StructArray::from(vec![
            (Arc::new(Field::new("name", DataType::Utf8, true)), names),
            (
                Arc::new(Field::new("weight", DataType::Float32, false)),
                floats,
            ),
        ]));
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("values", lists.data_type().clone(), true),
            Field::new("point", point.data_type().clone(), false),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![ids, lists, point]).unwrap()
    }

    #[test]
    fn columns_encoded_in_parallel_make_the_bytes_of_one_arrow_writer() {
        let whole = batch(3000);
        let groups = [whole.slice(0, 1000), whole.slice(1000, 2000)];
        let mut reference =
            ArrowWriter::try_new(Vec::new(), whole.schema(), Some(properties())).unwrap();
        let mut encoder = Encoder::new(&whole.schema(), Sink::Memory(Vec::new())).unwrap();
        for g in &groups {
            reference.write(g).unwrap();
            reference.flush().unwrap(); // one row group per write, as the encoder makes
        }
        // The second row group given in three pieces, as a caller's batches may come.
        encoder.write_group(&groups[..1], || Ok(())).unwrap();
        let second = &groups[1];
        let pieces = [
            second.slice(0, 7),
            second.slice(7, 993),
            second.slice(1000, 1000),
        ];
        encoder.write_group(&pieces, || Ok(())).unwrap();
        let Sink::Memory(bytes) = encoder.finish().unwrap() else {
            panic!("a memory sink stays one");
        };
        assert_eq!(bytes, reference.into_inner().unwrap());
    }
}
