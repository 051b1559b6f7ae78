//! Typed Parquet files read as stored (one column per feature, the layout Feast and most
//! feature tables use) as a [`DataSource`], next to [`crate::FileSource`] for raw snapshots.
//!
//! Only the columns a scan needs are decoded: the projection, the filters' columns and the
//! time column become a Parquet projection mask.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use tokio::sync::mpsc;
use trainstore_core::{
    DataSource, Error, Filter, MountTable, ObjectStoreRef, RecordBatchStream, Result, Scalar,
    ScanRequest, StorageOptions, apply_filters,
};

use crate::file::{FileFormat, StoreReader, list_files, parquet_error};
use crate::stream::limited;

const BATCH_ROWS: usize = 8192;

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

    async fn read_file(
        &self,
        path: &Path,
        size: u64,
        columns: &[usize],
        job: &Job,
        tx: &mpsc::Sender<Result<arrow::array::RecordBatch>>,
    ) -> Result<bool> {
        let builder = ParquetRecordBatchStreamBuilder::new(StoreReader {
            store: self.store.clone(),
            path: path.clone(),
            size,
        })
        .await
        .map_err(|e| parquet_error(path, e))?;
        let file_schema = builder
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
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        let mut stream = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| parquet_error(path, e))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| parquet_error(path, e))?;
            let batch = apply_filters(&batch, &job.filters)?.project(&job.output)?;
            if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// What a scan does to each decoded batch: filter, then pick the output columns (indices into
/// the decoded columns).
struct Job {
    filters: Vec<Filter>,
    output: Vec<usize>,
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
        let job = Job {
            filters,
            output: wanted.iter().map(|&i| position(i)).collect(),
        };
        let (tx, rx) = mpsc::channel(2);
        let source = self.clone();
        tokio::spawn(async move {
            for (path, size) in source.files.iter() {
                match source.read_file(path, *size, &decoded, &job, &tx).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(limited(rx, request.limit))
    }
}
