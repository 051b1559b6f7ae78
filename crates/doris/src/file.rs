//! Snapshot files on any mount (Parquet, CSV, JSON lines) as a [`DataSource`], read with the
//! same snapshot parser as Doris, and writers for raw snapshot files.
//!
//! A location is one file (its extension names the format) or a directory, whose files with a
//! known extension are read in name order. Time ranges, filters, projection and limit apply to
//! the parsed snapshots.

use std::fmt;
use std::io::Cursor;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;
use trainstore_core::{
    DataSource, Error, Filter, MountTable, ObjectStoreRef, RecordBatchStream, Result, Scalar,
    ScanRequest, StorageOptions, apply_filters, repeated_column,
};

use crate::parse::{ParseReport, SnapshotParser};
use crate::scan::{Kind, Raw, for_each_member};
use crate::stream::limited;
use trainstore_core::snapshot::SnapshotSchema;

/// Rows per raw batch read from a file.
const BATCH_ROWS: usize = 8192;

/// A snapshot file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    JsonLines,
}

impl FileFormat {
    /// The format a file name's extension names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(FileFormat::Parquet),
            "csv" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::JsonLines),
            _ => None,
        }
    }

    /// Parses `parquet`, `csv` or `jsonl`.
    pub fn parse(text: &str) -> Result<Self> {
        FileFormat::from_name(&format!("x.{text}"))
            .ok_or_else(|| Error::invalid("file format", text, "expected parquet, csv or jsonl"))
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::JsonLines => "jsonl",
        })
    }
}

/// Snapshot files read through a [`SnapshotParser`].
///
/// ```no_run
/// # async fn demo() -> trainstore_core::Result<()> {
/// use trainstore_core::{MountTable, ScanRequest, StorageOptions};
/// use trainstore_doris::{FileSource, SnapshotSchema};
/// let source = FileSource::open(&MountTable::default(), "./snapshots", &StorageOptions::new(), None,
///                               SnapshotSchema::design_doc(), false).await?;
/// let batches = source.scan_all(&ScanRequest::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FileSource {
    store: ObjectStoreRef,
    url: String,
    files: Vec<(Path, u64, FileFormat)>,
    parser: SnapshotParser,
    last_report: Arc<Mutex<ParseReport>>,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileSource({}, {} files)", self.url, self.files.len())
    }
}

impl FileSource {
    /// Opens the snapshot file or directory at `location`; `format` overrides extensions.
    pub async fn open(
        mounts: &MountTable,
        location: &str,
        options: &StorageOptions,
        format: Option<FileFormat>,
        schema: SnapshotSchema,
        strict: bool,
    ) -> Result<Self> {
        let (store, url, files) = list_files(mounts, location, options, format).await?;
        Ok(FileSource {
            store,
            url,
            files,
            parser: SnapshotParser::new(schema).strict(strict),
            last_report: Arc::new(Mutex::new(ParseReport::default())),
        })
    }

    /// The files read, in order.
    pub fn files(&self) -> Vec<String> {
        self.files.iter().map(|(p, _, _)| p.to_string()).collect()
    }

    /// The parse report of the most recent scan (complete once its stream has ended).
    pub fn parse_report(&self) -> ParseReport {
        self.last_report.lock().expect("report lock").clone()
    }

    /// Collects a whole scan into memory.
    pub async fn scan_all(&self, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        self.scan(request).await?.try_collect().await
    }

    async fn read_file(
        &self,
        path: &Path,
        size: u64,
        format: FileFormat,
        tx: &mpsc::Sender<Result<RecordBatch>>,
        job: &Job,
    ) -> Result<bool> {
        match format {
            FileFormat::Parquet => {
                let reader = StoreReader {
                    store: self.store.clone(),
                    path: path.clone(),
                    size,
                };
                let builder = ParquetRecordBatchStreamBuilder::new(reader)
                    .await
                    .map_err(|e| parquet_error(path, e))?;
                require_distinct_columns(path, builder.schema())?;
                let mut stream = builder
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| parquet_error(path, e))?;
                while let Some(raw) = stream.next().await {
                    if !job
                        .send(self, tx, raw.map_err(|e| parquet_error(path, e))?)
                        .await?
                    {
                        return Ok(false);
                    }
                }
            }
            FileFormat::Csv => {
                let bytes = self.get(path).await?;
                for raw in read_csv(path, bytes)? {
                    if !job.send(self, tx, raw?).await? {
                        return Ok(false);
                    }
                }
            }
            FileFormat::JsonLines => {
                let bytes = self.get(path).await?;
                let document = self.parser.schema().document_column().map(str::to_owned);
                for raw in read_json_lines(path, &bytes, document.as_deref())? {
                    if !job.send(self, tx, raw).await? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    async fn get(&self, path: &Path) -> Result<Bytes> {
        let r = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::storage("read", path, e))?;
        r.bytes().await.map_err(|e| Error::storage("read", path, e))
    }
}

/// The files at `location`: one file named by its extension, or a directory's files with a
/// known extension (or any, given `format`) in name order, skipping hidden `.`/`_` files.
pub(crate) async fn list_files(
    mounts: &MountTable,
    location: &str,
    options: &StorageOptions,
    format: Option<FileFormat>,
) -> Result<(ObjectStoreRef, String, Vec<(Path, u64, FileFormat)>)> {
    let trimmed = location.trim_end_matches('/');
    let (dir, single) = match trimmed.rsplit_once('/') {
        Some((dir, name)) if FileFormat::from_name(name).is_some() => (dir, Some(name)),
        // A bare file name lies in the current directory.
        None if FileFormat::from_name(trimmed).is_some() => (".", Some(trimmed)),
        _ => (trimmed, None),
    };
    let resolved = mounts.resolve_with(dir, options)?;
    let store = resolved.store;
    let mut files = Vec::new();
    match single {
        Some(name) => {
            let path = Path::from(name);
            let meta = store.head(&path).await.map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::NotFound {
                    what: "data file",
                    name: location.into(),
                },
                e => Error::storage("open", location, e),
            })?;
            let f = format
                .or_else(|| FileFormat::from_name(name))
                .expect("named by its extension");
            files.push((path, meta.size, f));
        }
        None => {
            let metas: Vec<_> = store
                .list(None)
                .try_collect()
                .await
                .map_err(|e| Error::storage("list", location, e))?;
            for m in metas {
                let name = m.location.filename().unwrap_or_default().to_owned();
                if name.starts_with('.') || name.starts_with('_') {
                    continue;
                }
                if let Some(f) = format.or_else(|| FileFormat::from_name(&name)) {
                    files.push((m.location, m.size, f));
                }
            }
            files.sort_by(|a, b| a.0.cmp(&b.0));
            if files.is_empty() {
                return Err(Error::NotFound {
                    what: "data files",
                    name: location.into(),
                });
            }
        }
    }
    Ok((store, resolved.url, files))
}

/// Fails when the file at `path` has two columns of one name: the parser would silently read
/// one of them.
pub(crate) fn require_distinct_columns(path: &Path, schema: &Schema) -> Result<()> {
    match repeated_column(schema) {
        Some(name) => Err(Error::Corrupt {
            path: path.to_string(),
            reason: format!("has two columns named {name:?}"),
        }),
        None => Ok(()),
    }
}

pub(crate) fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    Error::Corrupt {
        path: path.to_string(),
        reason: format!("cannot read as Parquet: {e}"),
    }
}

/// Writing a Parquet file failed: the store (a read-only directory, a full disk) or the
/// encoder, never a file to blame.
fn parquet_write_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    Error::storage(
        "write Parquet",
        path,
        object_store::Error::Generic {
            store: "parquet",
            source: Box::new(e),
        },
    )
}

/// What one scan does to each raw batch: parse (unless `raw`), filter, project.
struct Job {
    raw: bool,
    filters: Vec<Filter>,
    projection: Option<Vec<usize>>,
}

impl Job {
    async fn send(
        &self,
        source: &FileSource,
        tx: &mpsc::Sender<Result<RecordBatch>>,
        raw: RecordBatch,
    ) -> Result<bool> {
        if self.raw {
            return Ok(tx.send(Ok(raw)).await.is_ok());
        }
        let (typed, report) = source.parser.parse_on_pool(raw).await?;
        source
            .last_report
            .lock()
            .expect("report lock")
            .merge(&report);
        let mut batch = apply_filters(&typed, &self.filters)?;
        if let Some(p) = &self.projection {
            batch = batch.project(p)?;
        }
        if batch.num_rows() == 0 {
            return Ok(true);
        }
        Ok(tx.send(Ok(batch)).await.is_ok())
    }
}

#[async_trait]
impl DataSource for FileSource {
    fn parse_counts(&self) -> Option<trainstore_core::ParseCounts> {
        Some(self.parse_report().counts())
    }

    fn describe(&self) -> String {
        format!("snapshot files at {}", self.url)
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.parser.schema().output_schema())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        let output = self.parser.schema().output_schema();
        let mut filters = request
            .filters
            .iter()
            .map(|f| f.typed(&output))
            .collect::<Result<Vec<_>>>()?;
        if let Some(range) = &request.time_range {
            filters.push(Filter::range(
                self.parser.schema().time(),
                Bound::Included(Scalar::Timestamp(range.start())),
                Bound::Excluded(Scalar::Timestamp(range.end())),
            ));
        }
        let projection = match &request.projection {
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        output.index_of(n).map_err(|_| {
                            Error::invalid("projected column", n, "not a snapshot column")
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        *self.last_report.lock().expect("report lock") = ParseReport::default();
        Ok(self.run(
            Job {
                raw: false,
                filters,
                projection,
            },
            request.limit,
        ))
    }
}

impl FileSource {
    /// The files' rows as stored, unparsed (e.g. to load them into Doris).
    pub fn scan_raw(&self) -> RecordBatchStream {
        self.run(
            Job {
                raw: true,
                filters: Vec::new(),
                projection: None,
            },
            None,
        )
    }

    fn run(&self, job: Job, limit: Option<usize>) -> RecordBatchStream {
        let (tx, rx) = mpsc::channel(2);
        let source = self.clone();
        tokio::spawn(async move {
            for (path, size, format) in &source.files {
                match source.read_file(path, *size, *format, &tx, &job).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        limited(rx, limit)
    }
}

/// CSV with a header row; every column read as text for the snapshot parser.
fn read_csv(path: &Path, bytes: Bytes) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let bad = |e: arrow::error::ArrowError| Error::Corrupt {
        path: path.to_string(),
        reason: format!("cannot read as CSV: {e}"),
    };
    let format = arrow::csv::reader::Format::default().with_header(true);
    let (inferred, _) = format
        .infer_schema(Cursor::new(&bytes), Some(1))
        .map_err(bad)?;
    require_distinct_columns(path, &inferred)?;
    let text: SchemaRef = Arc::new(Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let reader = arrow::csv::ReaderBuilder::new(text)
        .with_format(format)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(bytes))
        .map_err(bad)?;
    let path = path.to_string();
    Ok(reader.map(move |b| {
        b.map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: format!("cannot read as CSV: {e}"),
        })
    }))
}

/// JSON lines: each line an object of raw columns. Strings become their text, other values
/// their JSON text. With a document column, a line that is not a JSON object is kept whole as
/// that row's document, so the parser reports it as malformed instead of it vanishing.
fn read_json_lines(path: &Path, bytes: &[u8], document: Option<&str>) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    let flush = |names: &[String],
                 rows: &mut Vec<Vec<Option<String>>>,
                 batches: &mut Vec<RecordBatch>|
     -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let columns: Vec<ArrayRef> = (0..names.len())
            .map(|c| {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 32);
                for row in rows.iter() {
                    b.append_option(row.get(c).and_then(|v| v.as_deref()));
                }
                Arc::new(b.finish()) as ArrayRef
            })
            .collect();
        batches.push(RecordBatch::try_new(schema, columns)?);
        rows.clear();
        Ok(())
    };
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Corrupt {
        path: path.to_string(),
        reason: format!("not UTF-8: {e}"),
    })?;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut row: Vec<Option<String>> = vec![None; names.len()];
        let mut given = vec![false; names.len()];
        let mut repeated = None;
        let scanned = for_each_member(line, |key, value| {
            let unescaped = |raw: Raw<'_>| {
                let mut text = String::new();
                raw.unescape_into(&mut text).map(|()| text)
            };
            let key: String = match key.kind {
                Kind::String { escaped: false } => key.string_content().to_owned(),
                _ => unescaped(key).unwrap_or_default(),
            };
            let text = match value.kind {
                Kind::Null => None,
                Kind::String { escaped: false } => Some(value.string_content().to_owned()),
                Kind::String { escaped: true } => unescaped(value),
                _ => Some(value.text.to_owned()),
            };
            let index = match names.iter().position(|n| *n == key) {
                Some(i) => i,
                None => {
                    names.push(key);
                    row.push(None);
                    given.push(false);
                    names.len() - 1
                }
            };
            if given[index] && repeated.is_none() {
                repeated = Some(names[index].clone());
            }
            given[index] = true;
            row[index] = text;
        });
        if let (Ok(()), Some(name)) = (&scanned, repeated) {
            return Err(Error::Corrupt {
                path: path.to_string(),
                reason: format!("line {} has two columns named {name:?}", number + 1),
            });
        }
        if let Err(reason) = scanned {
            let Some(doc) = document else {
                return Err(Error::Malformed {
                    row: format!("{path}:{}", number + 1),
                    field: "line".into(),
                    reason: reason.into(),
                });
            };
            row = vec![None; names.len()];
            let index = match names.iter().position(|n| n == doc) {
                Some(i) => i,
                None => {
                    names.push(doc.to_owned());
                    row.push(None);
                    names.len() - 1
                }
            };
            row[index] = Some(line.to_owned());
        }
        rows.push(row);
        if rows.len() >= BATCH_ROWS {
            flush(&names, &mut rows, &mut batches)?;
        }
    }
    flush(&names, &mut rows, &mut batches)?;
    Ok(batches)
}

/// Writes raw snapshot batches to `path` in `format` (Parquet with Snappy, or JSON lines);
/// returns the bytes written. The file appears whole or not at all.
pub async fn write_snapshot_file(
    store: ObjectStoreRef,
    path: &Path,
    format: FileFormat,
    batches: impl IntoIterator<Item = RecordBatch>,
) -> Result<u64> {
    let mut batches = batches.into_iter().peekable();
    let Some(first) = batches.peek() else {
        return Err(Error::invalid(
            "snapshot batches",
            "none",
            "nothing to write",
        ));
    };
    let schema = first.schema();
    match format {
        FileFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let writer = BufWriter::new(store.clone(), path.clone());
            let mut w = AsyncArrowWriter::try_new(writer, schema, Some(props))
                .map_err(|e| parquet_write_error(path, e))?;
            for b in batches {
                w.write(&b)
                    .await
                    .map_err(|e| parquet_write_error(path, e))?;
            }
            w.close().await.map_err(|e| parquet_write_error(path, e))?;
        }
        FileFormat::JsonLines => {
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            for b in batches {
                writer.write(&b)?;
            }
            writer.finish()?;
            let out = writer.into_inner();
            store
                .put(path, PutPayload::from(out))
                .await
                .map_err(|e| Error::storage("write", path, e))?;
        }
        FileFormat::Csv => {
            return Err(Error::NotSupported {
                operation: "writing CSV",
                implementer: "snapshot files".into(),
            });
        }
    }
    let meta = store
        .head(path)
        .await
        .map_err(|e| Error::storage("write", path, e))?;
    Ok(meta.size)
}

/// Parquet reads through `object_store`: ranged gets, metadata from the known file size.
pub(crate) struct StoreReader {
    pub(crate) store: ObjectStoreRef,
    pub(crate) path: Path,
    pub(crate) size: u64,
}

fn external(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
