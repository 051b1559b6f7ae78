//! Snapshot sources for Python (one native `SnapshotSource` behind the `DorisSource` and
//! `FileSource` wrappers), the snapshot schema, synthetic
//! snapshots and loading them into Doris. Batches cross to pyarrow through the Arrow C data
//! interface, without copies.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::pyarrow::{FromPyArrow, IntoPyArrow, Table, ToPyArrow};
use futures::StreamExt;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use trainstore::core::{
    DataSource, Error, Filter, MountTable as CoreMountTable, Operation, ProgressRef,
    RecordBatchStream, Scalar, ScanRequest, StorageOptions, TimeRange, Timestamp,
};
use trainstore::doris::flight::{FlightOptions, FlightSource as CoreFlight};
use trainstore::doris::load::{content_label, load_design_doc_rows};
use trainstore::doris::write::WriteOptions;
use trainstore::doris::{
    DorisSource as CoreDoris, FileFormat, FileSource as CoreFile, ReadOptions, SnapshotGenerator,
    SnapshotSchema as CoreSchema, SynthConfig, Timeouts,
};

use crate::errors::to_py;
use crate::export::batch_to_pyarrow;
use crate::runtime::run;
use crate::{MountTable, options};

/// A snapshot schema: the design document's layout or a flat table.
#[pyclass(module = "trainstore._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct SnapshotSchema {
    pub inner: CoreSchema,
}

#[pymethods]
impl SnapshotSchema {
    #[staticmethod]
    fn design_doc() -> Self {
        SnapshotSchema {
            inner: CoreSchema::design_doc(),
        }
    }

    #[staticmethod]
    fn from_yaml(text: &str) -> PyResult<Self> {
        Ok(SnapshotSchema {
            inner: CoreSchema::from_yaml(text).map_err(to_py)?,
        })
    }

    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner).expect("schemas serialize")
    }

    fn to_yaml(&self) -> String {
        self.inner.to_yaml()
    }

    /// The typed pyarrow schema of parsed snapshots.
    fn output_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.inner.output_schema().as_ref().to_pyarrow(py)
    }

    fn __repr__(&self) -> String {
        format!("SnapshotSchema({:?})", self.inner.to_yaml())
    }
}

/// One Python value as a filter scalar; `bool` is checked before `int` (it is a subclass).
fn scalar(value: &Bound<'_, PyAny>) -> PyResult<Scalar> {
    if value.is_instance_of::<PyBool>() {
        Ok(Scalar::Boolean(value.extract()?))
    } else if value.is_instance_of::<PyInt>() {
        Ok(Scalar::Int64(value.extract()?))
    } else if value.is_instance_of::<PyFloat>() {
        Ok(Scalar::Float64(value.extract()?))
    } else if value.is_instance_of::<PyString>() {
        Ok(Scalar::Utf8(value.extract()?))
    } else {
        Err(to_py(Error::invalid(
            "filter value",
            value.repr().map(|r| r.to_string()).unwrap_or_default(),
            "expected str, int, float, bool, None, or a list of those",
        )))
    }
}

/// `{column: value}` → equality, `{column: [values]}` → membership, `{column: None}` → is null.
fn filters(map: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<Filter>> {
    let mut out = Vec::new();
    for (key, value) in map.into_iter().flat_map(|m| m.iter()) {
        let column: String = key.extract()?;
        if value.is_none() {
            out.push(Filter::is_null(column));
        } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            let values = value
                .try_iter()?
                .map(|v| scalar(&v?))
                .collect::<PyResult<Vec<_>>>()?;
            out.push(Filter::is_in(column, values));
        } else {
            out.push(Filter::eq(column, scalar(&value)?));
        }
    }
    Ok(out)
}

fn request(
    start: Option<String>,
    end: Option<String>,
    filter: Option<&Bound<'_, PyDict>>,
    columns: Option<Vec<String>>,
    limit: Option<usize>,
) -> PyResult<ScanRequest> {
    let time_range = match (start, end) {
        (Some(s), Some(e)) => Some(TimeRange::parse(&s, &e).map_err(to_py)?),
        (None, None) => None,
        (s, e) => {
            return Err(to_py(Error::invalid(
                "time range",
                format!("start={s:?} end={e:?}"),
                "give both start and end (or neither)",
            )));
        }
    };
    Ok(ScanRequest {
        time_range,
        filters: filters(filter)?,
        projection: columns,
        limit,
    })
}

/// The sources Python can query, behind one set of methods.
#[derive(Clone)]
enum Source {
    Doris(CoreDoris),
    Flight(CoreFlight),
    Files(Box<CoreFile>),
}

impl Source {
    fn as_dyn(&self) -> &dyn DataSource {
        match self {
            Source::Doris(s) => s,
            Source::Flight(s) => s,
            Source::Files(s) => s.as_ref(),
        }
    }

    fn report_json(&self) -> String {
        let report = match self {
            Source::Doris(s) => s.parse_report(),
            Source::Flight(s) => s.parse_report(),
            Source::Files(s) => s.parse_report(),
        };
        serde_json::to_string(&report).expect("reports serialize")
    }

    fn query<'py>(
        &self,
        py: Python<'py>,
        request: ScanRequest,
        progress: ProgressRef,
    ) -> PyResult<Bound<'py, PyAny>> {
        let source = self.clone();
        let (batches, schema) = run(py, "query", async move {
            let schema = source.as_dyn().schema().await?;
            let mut stream = source.as_dyn().scan(&request).await?;
            let rows = Operation::begin(&*progress, "query: snapshots read", None);
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b?;
                rows.advance(b.num_rows() as u64);
                batches.push(b);
            }
            drop(rows);
            let schema = batches
                .first()
                .map(RecordBatch::schema)
                .unwrap_or(project(&schema, &request)?);
            Ok((batches, schema))
        })?;
        Table::try_new(batches, schema)
            .map_err(|e| to_py(e.into()))?
            .into_pyarrow(py)
    }

    fn stream(&self, py: Python<'_>, request: ScanRequest) -> PyResult<BatchIterator> {
        let source = self.clone();
        let stream = run(
            py,
            "stream",
            async move { source.as_dyn().scan(&request).await },
        )?;
        Ok(BatchIterator::new(stream))
    }
}

/// The output schema after a request's projection (for empty results).
fn project(schema: &SchemaRef, request: &ScanRequest) -> trainstore::Result<SchemaRef> {
    match &request.projection {
        Some(names) => {
            let indices = names
                .iter()
                .map(|n| {
                    schema
                        .index_of(n)
                        .map_err(|_| Error::invalid("projected column", n, "no such column"))
                })
                .collect::<trainstore::Result<Vec<_>>>()?;
            Ok(Arc::new(schema.project(&indices)?))
        }
        None => Ok(schema.clone()),
    }
}

/// Iterates a scan's batches as `pyarrow.RecordBatch`es, fetching each with the GIL released.
#[pyclass(module = "trainstore._native")]
pub struct BatchIterator {
    stream: Arc<tokio::sync::Mutex<Option<RecordBatchStream>>>,
}

impl BatchIterator {
    pub(crate) fn new(stream: RecordBatchStream) -> Self {
        BatchIterator {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
        }
    }
}

#[pymethods]
impl BatchIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = self.stream.clone();
        let next = run(py, "stream", async move {
            let mut guard = stream.lock().await;
            let Some(s) = guard.as_mut() else {
                return Ok(None);
            };
            match s.next().await {
                Some(b) => b.map(Some),
                None => {
                    *guard = None;
                    Ok(None)
                }
            }
        })?;
        match next {
            Some(batch) => batch_to_pyarrow(py, &batch),
            None => Err(PyStopIteration::new_err(())),
        }
    }
}

/// A snapshot source: Doris over the MySQL protocol or Flight SQL, or snapshot files.
#[pyclass(module = "trainstore._native", frozen)]
pub struct SnapshotSource {
    source: Source,
}

#[pymethods]
impl SnapshotSource {
    /// Doris (or a MySQL-protocol server), over the MySQL protocol or Flight SQL.
    #[staticmethod]
    #[pyo3(signature = (url, table, schema, partitions, batch_rows, query_timeout, max_retries, strict, flight_url, flight_rewrite, connect_timeout, read_timeout))]
    #[allow(clippy::too_many_arguments)]
    fn open_doris(
        py: Python<'_>,
        url: String,
        table: String,
        schema: Option<SnapshotSchema>,
        partitions: usize,
        batch_rows: usize,
        query_timeout: f64,
        max_retries: u32,
        strict: bool,
        flight_url: Option<String>,
        flight_rewrite: Option<std::collections::HashMap<String, String>>,
        connect_timeout: f64,
        read_timeout: f64,
    ) -> PyResult<Self> {
        let schema = schema.map_or_else(CoreSchema::design_doc, |s| s.inner);
        let options = ReadOptions {
            partitions,
            batch_rows,
            query_timeout: seconds("query_timeout", query_timeout)?,
            timeouts: timeouts(connect_timeout, read_timeout)?,
            max_retries,
            strict,
        };
        let url = trainstore::sources::database_url(&url).map_err(to_py)?;
        if let Some(flight_url) = flight_url {
            let options = FlightOptions {
                read: options,
                rewrite: flight_rewrite.unwrap_or_default(),
            };
            let source = run(py, "DorisSource", async move {
                CoreFlight::connect_with_mysql_url(&flight_url, &url, &table, schema, options).await
            })?;
            return Ok(SnapshotSource {
                source: Source::Flight(source),
            });
        }
        let source = run(py, "DorisSource", async move {
            CoreDoris::connect(&url, &table, schema, options).await
        })?;
        Ok(SnapshotSource {
            source: Source::Doris(source),
        })
    }

    #[pyo3(signature = (start, end, filters, columns, limit, progress))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        start: Option<String>,
        end: Option<String>,
        filters: Option<&Bound<'py, PyDict>>,
        columns: Option<Vec<String>>,
        limit: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = request(start, end, filters, columns, limit)?;
        self.source
            .query(py, request, crate::progress::sink(progress))
    }

    #[pyo3(signature = (start, end, filters, columns, limit))]
    fn stream(
        &self,
        py: Python<'_>,
        start: Option<String>,
        end: Option<String>,
        filters: Option<&Bound<'_, PyDict>>,
        columns: Option<Vec<String>>,
        limit: Option<usize>,
    ) -> PyResult<BatchIterator> {
        self.source
            .stream(py, request(start, end, filters, columns, limit)?)
    }

    /// The stored columns, unparsed (MySQL protocol only): what a raw-column reader returns.
    #[pyo3(signature = (start, end, filters, limit))]
    fn query_raw<'py>(
        &self,
        py: Python<'py>,
        start: Option<String>,
        end: Option<String>,
        filters: Option<&Bound<'py, PyDict>>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Source::Doris(source) = &self.source else {
            return Err(to_py(Error::NotSupported {
                operation: "raw reads",
                implementer: self.source.as_dyn().describe(),
            }));
        };
        let request = request(start, end, filters, None, limit)?;
        let source = source.clone();
        let batches = run(py, "query_raw", async move {
            let mut stream = source.scan_raw(&request).await?;
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                batches.push(b?);
            }
            Ok(batches)
        })?;
        let schema = batches
            .first()
            .map(RecordBatch::schema)
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
        Table::try_new(batches, schema)
            .map_err(|e| to_py(e.into()))?
            .into_pyarrow(py)
    }

    /// Snapshot files (Parquet, CSV, JSON lines) on any mount.
    #[staticmethod]
    #[pyo3(signature = (location, schema, format, storage_options, mounts, strict))]
    fn open_files(
        py: Python<'_>,
        location: String,
        schema: Option<SnapshotSchema>,
        format: Option<String>,
        storage_options: Option<std::collections::BTreeMap<String, String>>,
        mounts: Option<PyRef<'_, MountTable>>,
        strict: bool,
    ) -> PyResult<Self> {
        let schema = schema.map_or_else(CoreSchema::design_doc, |s| s.inner);
        let format = format
            .map(|f| FileFormat::parse(&f))
            .transpose()
            .map_err(to_py)?;
        let table: CoreMountTable = mounts.map(|m| m.table.clone()).unwrap_or_default();
        let opts: StorageOptions = options(storage_options);
        let source = run(py, "FileSource", async move {
            CoreFile::open(&table, &location, &opts, format, schema, strict).await
        })?;
        Ok(SnapshotSource {
            source: Source::Files(Box::new(source)),
        })
    }

    /// The files a file source reads, in order (empty for database sources).
    fn file_names(&self) -> Vec<String> {
        match &self.source {
            Source::Files(f) => f.files(),
            Source::Doris(_) | Source::Flight(_) => Vec::new(),
        }
    }

    /// The parse report of the latest query, as JSON.
    fn parse_report_json(&self) -> String {
        self.source.report_json()
    }

    fn __repr__(&self) -> String {
        self.source.as_dyn().describe()
    }
}

/// Synthetic design-document snapshots (raw `time` and `feature` columns) as a pyarrow.Table.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn synthetic_snapshots<'py>(
    py: Python<'py>,
    devices: usize,
    nodes_per_device: usize,
    snapshots: usize,
    start: &str,
    interval_ms: i64,
    malformed_rate: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let config = SynthConfig {
        devices,
        nodes_per_device,
        snapshots,
        start: Timestamp::parse(start).map_err(to_py)?,
        interval_ms,
        malformed_rate,
        seed,
        ..SynthConfig::default()
    };
    let generator = SnapshotGenerator::new(config).map_err(to_py)?;
    let batches: Vec<RecordBatch> = py.detach(|| generator.batches(8192).collect());
    Table::try_new(batches, trainstore::doris::synth::raw_schema())
        .map_err(|e| to_py(e.into()))?
        .into_pyarrow(py)
}

/// A positive number of seconds passed as `what`.
fn seconds(what: &'static str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| to_py(Error::invalid(what, value.to_string(), "seconds, > 0")))
}

/// The connect and read deadlines from their keyword arguments.
fn timeouts(connect_timeout: f64, read_timeout: f64) -> PyResult<Timeouts> {
    Ok(Timeouts {
        connect: seconds("connect_timeout", connect_timeout)?,
        read: seconds("read_timeout", read_timeout)?,
    })
}

/// Appends raw design-document rows (any Arrow stream with `time` and `feature`) to a table
/// under `label` (by default one naming the rows' content), creating it when absent, exactly
/// once; returns (rows written, already written, attempts).
#[pyfunction]
#[pyo3(signature = (url, table, data, label, connect_timeout, read_timeout))]
pub fn load_snapshots(
    py: Python<'_>,
    url: String,
    table: String,
    data: &Bound<'_, PyAny>,
    label: Option<String>,
    connect_timeout: f64,
    read_timeout: f64,
) -> PyResult<(u64, bool, u32)> {
    let timeouts = timeouts(connect_timeout, read_timeout)?;
    let data = Table::from_pyarrow_bound(data)?;
    let (batches, _) = data.into_inner();
    let url = trainstore::sources::database_url(&url).map_err(to_py)?;
    let label = match label {
        Some(label) => label,
        None => content_label(&batches).map_err(to_py)?,
    };
    let outcome = run(py, "load_snapshots", async move {
        load_design_doc_rows(&url, &table, &label, batches, timeouts).await
    })?;
    Ok((
        outcome.rows_written,
        outcome.already_written,
        outcome.attempts,
    ))
}

/// Parses raw snapshot rows (any Arrow stream) on every core; returns the typed table and the
/// parse report as JSON.
#[pyfunction]
#[pyo3(signature = (data, schema, strict))]
pub fn parse_snapshots<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    schema: Option<SnapshotSchema>,
    strict: bool,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let (batches, _) = Table::from_pyarrow_bound(data)?.into_inner();
    let schema = schema.map_or_else(CoreSchema::design_doc, |s| s.inner);
    let output = schema.output_schema();
    let parser = trainstore::doris::SnapshotParser::new(schema).strict(strict);
    let (typed, report) = py
        .detach(|| parser.parse_batches(&batches, 8192))
        .map_err(to_py)?;
    let table = Table::try_new(typed, output)
        .map_err(|e| to_py(e.into()))?
        .into_pyarrow(py)?;
    Ok((
        table,
        serde_json::to_string(&report).expect("reports serialize"),
    ))
}

/// Appends rows (any Arrow stream) to a table under `label`, exactly once however often the
/// same label is written; returns (rows written, already written, attempts).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn write_back(
    py: Python<'_>,
    url: String,
    table: String,
    data: &Bound<'_, PyAny>,
    label: String,
    max_retries: u32,
    timeout: f64,
    connect_timeout: f64,
    read_timeout: f64,
) -> PyResult<(u64, bool, u32)> {
    let options = WriteOptions {
        max_retries,
        timeout: seconds("timeout", timeout)?,
        timeouts: timeouts(connect_timeout, read_timeout)?,
    };
    let (batches, _) = Table::from_pyarrow_bound(data)?.into_inner();
    let url = trainstore::sources::database_url(&url).map_err(to_py)?;
    let outcome = run(py, "write_back", async move {
        trainstore::doris::write::write_batches(&url, &table, &label, &batches, &options).await
    })?;
    Ok((
        outcome.rows_written,
        outcome.already_written,
        outcome.attempts,
    ))
}
