//! Typed Parquet files read as stored (one column per feature, the layout Feast and most
//! feature tables use) as a [`DataSource`], next to [`crate::FileSource`] for raw snapshots.
//!
//! Only the columns a scan needs are decoded: the projection, the filters' columns and the
//! time column become a Parquet projection mask. Row groups are decoded in parallel, one task
//! per core, yet batches come out in file and row order (callers such as the point-in-time
//! join break ties by source order): each row group streams into its own small buffer, drained
//! in turn, so memory is bounded by the cores and the buffer, never by the file.
//!
//! Rows have fixed positions (files in order, rows in file order), so the source is a
//! [`PositionedScan`]: a second scan decodes only the rows a first one picked, skipping the
//! rest of each page without assembling it.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection, RowSelectionPolicy,
    RowSelector,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use tokio::sync::mpsc;
use trainstore_core::{
    DataSource, Error, Filter, MountTable, ObjectStoreRef, POSITION_COLUMN, PositionedScan,
    RecordBatchStream, Result, Scalar, ScanRequest, StorageOptions, apply_filters, local_dir,
};

use crate::file::{FileFormat, StoreReader, list_files, parquet_error, require_distinct_columns};
use crate::stream::limited;

const BATCH_ROWS: usize = 8192;
/// Batches a row group may decode ahead of its turn.
const AHEAD: usize = 16;

/// Parquet files on a mount, read column for column as stored.
///
/// ```no_run
/// # async fn demo() -> trainstore_core::Result<()> {
/// use trainstore_core::{MountTable, ScanRequest, StorageOptions};
/// use trainstore_doris::ParquetSource;
/// let source = ParquetSource::open(&MountTable::default(), "./features.parquet",
///                                  &StorageOptions::new(), Some("event_time")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ParquetSource {
    store: ObjectStoreRef,
    url: String,
    files: Arc<Vec<(Path, u64)>>,
    schema: SchemaRef,
    time_column: Option<String>,
}

impl fmt::Debug for ParquetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParquetSource({}, {} files)", self.url, self.files.len())
    }
}

impl ParquetSource {
    /// Opens the Parquet file or directory of Parquet files at `location`; time ranges apply
    /// to `time_column` (a timestamp, or Int64 epoch milliseconds). Every file must have the
    /// first file's schema.
    pub async fn open(
        mounts: &MountTable,
        location: &str,
        options: &StorageOptions,
        time_column: Option<&str>,
    ) -> Result<Self> {
        let (store, url, files) =
            list_files(mounts, location, options, Some(FileFormat::Parquet)).await?;
        let files: Vec<(Path, u64)> = files.into_iter().map(|(p, s, _)| (p, s)).collect();
        let (first, size) = &files[0];
        let schema = ParquetRecordBatchStreamBuilder::new(StoreReader {
            store: store.clone(),
            path: first.clone(),
            size: *size,
        })
        .await
        .map_err(|e| parquet_error(first, e))?
        .schema()
        .clone();
        let schema = Arc::new(
            schema
                .as_ref()
                .clone()
                .with_metadata(std::collections::HashMap::new()),
        );
        require_distinct_columns(first, &schema)?;
        if let Some(name) = time_column {
            let field = schema.field_with_name(name).map_err(|_| {
                Error::invalid(
                    "time column",
                    name,
                    format!("not a column of the Parquet files at {url}"),
                )
            })?;
            if !matches!(
                field.data_type(),
                DataType::Timestamp(_, _) | DataType::Int64
            ) {
                return Err(Error::invalid(
                    "time column",
                    name,
                    format!(
                        "is {}, expected a timestamp or Int64 epoch milliseconds",
                        field.data_type()
                    ),
                ));
            }
        }
        Ok(ParquetSource {
            store,
            url,
            files: Arc::new(files),
            schema,
            time_column: time_column.map(str::to_owned),
        })
    }

    /// The files read, in order.
    pub fn files(&self) -> Vec<String> {
        self.files.iter().map(|(p, _)| p.to_string()).collect()
    }

    fn index(&self, name: &str, what: &'static str) -> Result<usize> {
        self.schema.index_of(name).map_err(|_| {
            Error::invalid(
                what,
                name,
                format!("not a column of the Parquet files at {}", self.url),
            )
        })
    }

    /// Each file's row groups, in order, with the file's metadata read once.
    async fn row_groups(&self) -> Result<Vec<RowGroup>> {
        let mut units = Vec::new();
        let mut first = 0u64;
        for (path, size) in self.files.iter() {
            let mut reader = StoreReader {
                store: self.store.clone(),
                path: path.clone(),
                size: *size,
            };
            let metadata = ArrowReaderMetadata::load_async(&mut reader, Default::default())
                .await
                .map_err(|e| parquet_error(path, e))?;
            let file_schema = metadata
                .schema()
                .as_ref()
                .clone()
                .with_metadata(std::collections::HashMap::new());
            if file_schema.fields() != self.schema.fields() {
                return Err(Error::Corrupt {
                    path: path.to_string(),
                    reason: "its schema differs from the first file's".into(),
                });
            }
            let local = local_dir(&self.url).map(|dir| dir.join(path.as_ref()));
            for index in 0..metadata.metadata().num_row_groups() {
                let rows = u64::try_from(metadata.metadata().row_group(index).num_rows()).map_err(
                    |_| Error::Corrupt {
                        path: path.to_string(),
                        reason: format!("row group {index} has a negative number of rows"),
                    },
                )?;
                units.push(RowGroup {
                    local: local.clone(),
                    reader: StoreReader {
                        store: self.store.clone(),
                        path: path.clone(),
                        size: *size,
                    },
                    metadata: metadata.clone(),
                    index,
                    first,
                    rows,
                });
                first = first.checked_add(rows).ok_or_else(|| Error::Corrupt {
                    path: path.to_string(),
                    reason: "more rows than positions can count".into(),
                })?;
            }
        }
        Ok(units)
    }
}

/// One row group of one file.
struct RowGroup {
    /// The file's path when it lies on the local disk.
    local: Option<PathBuf>,
    reader: StoreReader,
    metadata: ArrowReaderMetadata,
    index: usize,
    /// The position of its first row in the source.
    first: u64,
    rows: u64,
}

impl RowGroup {
    /// Decodes the row group into `tx`; stops early once the receiver is gone.
    async fn read(
        self,
        columns: Arc<Vec<usize>>,
        job: Arc<Job>,
        tx: mpsc::Sender<Result<RecordBatch>>,
    ) {
        let span = Span {
            first: self.first,
            rows: self.rows,
        };
        let selection = match job.rows.selection(span) {
            Selection::Nothing => return,
            Selection::All => None,
            Selection::Rows(selection) => Some(selection),
        };
        if let Some(file) = self.local {
            let (metadata, index) = (self.metadata, self.index);
            // Blocking on purpose: see `read_local`.
            let _ = tokio::task::spawn_blocking(move || {
                let read = read_local(
                    &file,
                    metadata,
                    (index, span, selection),
                    &columns,
                    &job,
                    &tx,
                );
                if let Err(e) = read {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .await;
            return;
        }
        let path = self.reader.path.clone();
        let result = async {
            let builder =
                ParquetRecordBatchStreamBuilder::new_with_metadata(self.reader, self.metadata);
            let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
            let mut builder = builder
                .with_projection(mask)
                .with_row_groups(vec![self.index])
                .with_batch_size(BATCH_ROWS);
            if let Some(selection) = selection {
                builder = builder
                    .with_row_selection(selection)
                    .with_row_selection_policy(RowSelectionPolicy::Selectors);
            }
            let mut stream = builder.build().map_err(|e| parquet_error(&path, e))?;
            let mut next = span.first;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| parquet_error(&path, e))?;
                let batch = job.apply(batch, &mut next)?;
                if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
            job.rows.check_count(span, next, &path)
        }
        .await;
        if let Err(e) = result {
            let _ = tx.send(Err(e)).await;
        }
    }
}

/// Decodes row group `index` of the local file `file` into `tx`, reading it page by page.
///
/// The async reader fetches a row group's column chunks whole before decoding: a 2.7 GB row
/// group (10M design-doc rows in 4 groups) held that much per core in memory. Read from a
/// file, pages come in as decoded, so memory holds batches, not row groups.
fn read_local(
    file: &std::path::Path,
    metadata: ArrowReaderMetadata,
    (index, span, selection): (usize, Span, Option<RowSelection>),
    columns: &[usize],
    job: &Job,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let shown = Path::from(file.display().to_string());
    let handle = std::fs::File::open(file).map_err(|e| Error::Corrupt {
        path: file.display().to_string(),
        reason: format!("cannot open: {e}"),
    })?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, metadata);
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
    let mut builder = builder
        .with_projection(mask)
        .with_row_groups(vec![index])
        .with_batch_size(BATCH_ROWS);
    if let Some(selection) = selection {
        builder = builder
            .with_row_selection(selection)
            .with_row_selection_policy(RowSelectionPolicy::Selectors);
    }
    let reader = builder.build().map_err(|e| parquet_error(&shown, e))?;
    let mut next = span.first;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(&shown, e.into()))?;
        let batch = job.apply(batch, &mut next)?;
        if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
            return Ok(());
        }
    }
    job.rows.check_count(span, next, &shown)
}

/// What a scan does to each decoded batch: filter, then pick the output columns (indices into
/// the decoded columns, where the positions, when asked for, follow the decoded columns).
struct Job {
    filters: Vec<Filter>,
    output: Vec<usize>,
    rows: RowChoice,
}

impl Job {
    /// `batch` filtered and projected; `next` is the position of its first row (when every
    /// row is decoded), moved past it.
    fn apply(&self, batch: RecordBatch, next: &mut u64) -> Result<RecordBatch> {
        let n = batch.num_rows() as u64;
        let first = *next;
        *next += n;
        let batch = match self.rows {
            RowChoice::AllWithPositions => {
                let positions: ArrayRef = Arc::new(UInt64Array::from_iter_values(first..first + n));
                let mut fields = batch.schema().fields().to_vec();
                fields.push(Arc::new(Field::new(
                    POSITION_COLUMN,
                    DataType::UInt64,
                    false,
                )));
                let mut columns = batch.columns().to_vec();
                columns.push(positions);
                RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?
            }
            _ => batch,
        };
        Ok(apply_filters(&batch, &self.filters)?.project(&self.output)?)
    }
}

/// Which of the source's rows a scan decodes.
enum RowChoice {
    All,
    /// Every row, each with its position.
    AllWithPositions,
    /// The rows at these positions (ascending, distinct).
    Picked(Vec<u64>),
}

/// The rows of a row group: positions `first..first + rows`.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: u64,
    rows: u64,
}

/// What to decode of a row group.
enum Selection {
    Nothing,
    All,
    Rows(RowSelection),
}

impl RowChoice {
    /// Refuses a row group that decoded to another number of rows than its footer says:
    /// positions counted from the footer would name other rows.
    fn check_count(&self, span: Span, next: u64, path: &Path) -> Result<()> {
        let decoded = next - span.first;
        match self {
            RowChoice::Picked(_) => Ok(()),
            _ if decoded == span.rows => Ok(()),
            _ => Err(Error::Corrupt {
                path: path.to_string(),
                reason: format!(
                    "a row group of {} rows by the footer decoded to {decoded}",
                    span.rows
                ),
            }),
        }
    }

    fn selection(&self, span: Span) -> Selection {
        let RowChoice::Picked(positions) = self else {
            return Selection::All;
        };
        let end = span.first + span.rows;
        let picked = &positions[positions.partition_point(|&p| p < span.first)..];
        let picked = &picked[..picked.partition_point(|&p| p < end)];
        if picked.is_empty() {
            return Selection::Nothing;
        }
        // Runs of picked rows, each after the run of rows skipped before it; the rows after
        // the last pick are never read.
        let mut selectors = Vec::new();
        let mut next = span.first;
        for &p in picked {
            let skipped = (p - next) as usize;
            match selectors.last_mut() {
                Some(RowSelector {
                    row_count,
                    skip: false,
                }) if skipped == 0 => *row_count += 1,
                _ => {
                    if skipped > 0 {
                        selectors.push(RowSelector::skip(skipped));
                    }
                    selectors.push(RowSelector::select(1));
                }
            }
            next = p + 1;
        }
        Selection::Rows(RowSelection::from(selectors))
    }
}

#[async_trait]
impl DataSource for ParquetSource {
    fn describe(&self) -> String {
        format!("Parquet files at {}", self.url)
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        self.scan_rows(request, RowChoice::All).await
    }

    fn positioned(&self) -> Option<&dyn PositionedScan> {
        Some(self)
    }
}

#[async_trait]
impl PositionedScan for ParquetSource {
    async fn scan_with_positions(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        self.scan_rows(request, RowChoice::AllWithPositions).await
    }

    async fn scan_positions(
        &self,
        request: &ScanRequest,
        positions: &[u64],
    ) -> Result<RecordBatchStream> {
        if let Some(at) = positions.windows(2).position(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "row positions",
                positions[at + 1].to_string(),
                format!("follows {}: positions must ascend", positions[at]),
            ));
        }
        self.scan_rows(request, RowChoice::Picked(positions.to_vec()))
            .await
    }
}

impl ParquetSource {
    /// The rows of `request` that `rows` chooses, row groups decoded in parallel and handed
    /// out in order.
    async fn scan_rows(&self, request: &ScanRequest, rows: RowChoice) -> Result<RecordBatchStream> {
        let mut filters = request.filters.clone();
        if let Some(range) = &request.time_range {
            let column = self
                .time_column
                .clone()
                .ok_or_else(|| Error::NotSupported {
                    operation: "a time range",
                    implementer: "Parquet files opened without a time column".into(),
                })?;
            filters.push(Filter::range(
                column,
                Bound::Included(Scalar::Timestamp(range.start())),
                Bound::Excluded(Scalar::Timestamp(range.end())),
            ));
        }
        let wanted: Vec<usize> = match &request.projection {
            Some(names) => names
                .iter()
                .map(|n| self.index(n, "projected column"))
                .collect::<Result<_>>()?,
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut decoded = BTreeSet::new();
        decoded.extend(wanted.iter().copied());
        for f in &filters {
            decoded.insert(self.index(&f.column, "filter column")?);
        }
        let decoded: Vec<usize> = decoded.into_iter().collect();
        let position = |i: usize| decoded.binary_search(&i).expect("decoded");
        let mut output: Vec<usize> = wanted.iter().map(|&i| position(i)).collect();
        if let RowChoice::AllWithPositions = rows {
            output.push(decoded.len());
        }
        let job = Job {
            filters,
            output,
            rows,
        };
        let units = self.row_groups().await?;
        let (columns, job) = (Arc::new(decoded), Arc::new(job));
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let mut units = units.into_iter();
            let mut start = || {
                units.next().map(|unit| {
                    let (unit_tx, unit_rx) = mpsc::channel(AHEAD);
                    tokio::spawn(unit.read(columns.clone(), job.clone(), unit_tx));
                    unit_rx
                })
            };
            let mut running: VecDeque<_> = std::iter::from_fn(&mut start).take(parallel).collect();
            while let Some(mut unit) = running.pop_front() {
                while let Some(item) = unit.recv().await {
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
                running.extend(start());
            }
        });
        Ok(limited(rx, request.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selectors(choice: &RowChoice, span: Span) -> Option<Vec<(bool, usize)>> {
        match choice.selection(span) {
            Selection::Rows(rows) => Some(rows.iter().map(|s| (s.skip, s.row_count)).collect()),
            Selection::Nothing => Some(Vec::new()),
            Selection::All => None,
        }
    }

    #[test]
    fn picks_become_runs_of_selected_rows_between_skips() {
        let span = Span {
            first: 100,
            rows: 50,
        };
        let picked = RowChoice::Picked(vec![5, 100, 101, 103, 149, 150]);
        assert_eq!(
            selectors(&picked, span),
            Some(vec![
                (false, 2),
                (true, 1),
                (false, 1),
                (true, 45),
                (false, 1)
            ])
        );
        let elsewhere = RowChoice::Picked(vec![5, 150]);
        assert_eq!(selectors(&elsewhere, span), Some(Vec::new()));
        assert_eq!(selectors(&RowChoice::All, span), None);
        assert_eq!(selectors(&RowChoice::AllWithPositions, span), None);
    }

    #[test]
    fn a_row_group_decoded_to_another_count_than_its_footer_is_corrupt() {
        let span = Span { first: 10, rows: 5 };
        let path = Path::from("f.parquet");
        RowChoice::All.check_count(span, 15, &path).unwrap();
        let err = RowChoice::AllWithPositions
            .check_count(span, 17, &path)
            .unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }) && err.to_string().contains("decoded to 7"),
            "{err}"
        );
        // A scan of picked rows decodes only those.
        RowChoice::Picked(vec![11])
            .check_count(span, 11, &path)
            .unwrap();
    }
}
