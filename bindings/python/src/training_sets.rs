//! Training-set versions for Python: rows arrive as an Arrow C stream (a pyarrow
//! `RecordBatchReader`, no copy) and leave as pyarrow record batches; manifests, listings
//! and criteria cross as JSON.

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::ffi_stream::RecordBatchStreamReader;
use arrow::pyarrow::{PyArrowType, ToPyArrow};
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyList;
use trainstore::core::{DatasetName, Error, Result, TagName, Timestamp};
use trainstore::featurestore::training::drift::DriftOptions;
use trainstore::featurestore::training::{
    CreateOptions, Criteria, Listing as CoreListing, TrainingSetVersion, TrainingSets as CoreSets,
};
use trainstore::featurestore::{Engine, HistoricalOptions};

use crate::errors::to_py;
use crate::export::batch_to_pyarrow;
use crate::features::FeatureStore;
use crate::runtime::run;
use crate::sources::BatchIterator;

/// Batches waiting between the thread reading the Python stream and the writer.
const STREAM_QUEUE: usize = 2;

pub(crate) fn metadata(json: Option<&str>) -> Result<serde_json::Value> {
    match json {
        None => Ok(serde_json::Value::Null),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::invalid("metadata", text, format!("not JSON: {e}"))),
    }
}

pub(crate) fn version_json(v: &TrainingSetVersion) -> String {
    serde_json::json!({
        "name": v.name,
        "version": v.version,
        "author": v.author,
        "created_at": v.created_at.as_millis(),
        "files": v.files,
        "info": v.info,
    })
    .to_string()
}

/// The versions of a set, best first, converted for Python only as they are read: a
/// listing of 10,000 versions costs no more to make than one of 100.
#[pyclass(module = "trainstore._native", frozen)]
pub struct Listing {
    inner: CoreListing,
}

#[pymethods]
impl Listing {
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Listed versions `start..stop` (clamped to the listing) as a JSON array.
    fn rows(&self, start: usize, stop: usize) -> String {
        let stop = stop.min(self.inner.len());
        let start = start.min(stop);
        serde_json::to_value(&self.inner[start..stop])
            .expect("listed versions serialize")
            .to_string()
    }
}

/// Criteria from JSON: `min_data_size`, `min_quality_score`, `time_range` as
/// `[start, end]` (texts), `tags`; anything else is refused by name.
fn criteria(json: &str) -> Result<Criteria> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| Error::invalid("criteria", json, format!("not a JSON object: {e}")))?;
    let mut out = Criteria::default();
    for (key, value) in map {
        let bad = |reason: &str| Error::invalid("criteria", format!("{key}={value}"), reason);
        match key.as_str() {
            "min_data_size" => {
                out = out.min_data_size(
                    value
                        .as_u64()
                        .ok_or_else(|| bad("expected a count of rows, 0 or more"))?,
                );
            }
            "min_quality_score" => {
                out = out.min_quality_score(
                    value
                        .as_f64()
                        .ok_or_else(|| bad("expected a number between 0 and 1"))?,
                )?;
            }
            "time_range" => {
                let pair: (String, String) = serde_json::from_value(value.clone())
                    .map_err(|_| bad("expected (start, end)"))?;
                out = out.time_range(Timestamp::parse(&pair.0)?, Timestamp::parse(&pair.1)?)?;
            }
            "tags" => {
                let tags: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|_| bad("expected a list of tag names"))?;
                for t in tags {
                    out = out.tag(TagName::new(t)?);
                }
            }
            _ => {
                return Err(bad(
                    "unknown criterion; known: min_data_size, min_quality_score, time_range, tags",
                ));
            }
        }
    }
    Ok(out)
}

/// A workspace's training-set versions.
#[pyclass(module = "trainstore._native", frozen)]
pub struct TrainingSets {
    pub inner: CoreSets,
}

#[pymethods]
impl TrainingSets {
    /// Creates a version from an Arrow stream; the version as JSON.
    #[pyo3(signature = (name, rows, metadata, label, time_column))]
    fn create(
        &self,
        py: Python<'_>,
        name: &str,
        rows: PyArrowType<RecordBatchStreamReader>,
        metadata: Option<&str>,
        label: Option<String>,
        time_column: Option<String>,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let options = CreateOptions {
            metadata: self::metadata(metadata).map_err(to_py)?,
            label,
            time_column,
            ..CreateOptions::default()
        };
        let sets = self.inner.clone();
        let v = run(py, "training_sets.create", async move {
            let (schema, stream) = stream_of(rows.0);
            sets.create(&name, schema, stream, options).await
        })?;
        Ok(version_json(&v))
    }

    /// Builds a set from a historical request and creates it as a version; JSON.
    #[pyo3(signature = (features, name, entity_rows, refs, metadata, label, full_feature_names, timestamp_column, engine, progress))]
    #[allow(clippy::too_many_arguments)]
    fn create_from_features(
        &self,
        py: Python<'_>,
        features: PyRef<'_, FeatureStore>,
        name: &str,
        entity_rows: PyArrowType<RecordBatch>,
        refs: Vec<String>,
        metadata: Option<&str>,
        label: Option<String>,
        full_feature_names: bool,
        timestamp_column: Option<String>,
        engine: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let options = CreateOptions {
            metadata: self::metadata(metadata).map_err(to_py)?,
            label,
            ..CreateOptions::default()
        };
        let historical = HistoricalOptions {
            full_feature_names,
            timestamp_column,
            engine: Engine::parse(engine).map_err(to_py)?,
        };
        let store = features
            .inner
            .clone()
            .with_progress(crate::progress::sink(progress));
        let sets = self.inner.clone();
        let rows = entity_rows.0;
        let v = run(py, "training_sets.create_from_features", async move {
            let refs = store.resolve_features(&refs).await?;
            sets.create_from_features(&store, &name, &rows, &refs, &historical, options)
                .await
        })?;
        Ok(version_json(&v))
    }

    /// Every version of `name`, best first, as JSON.
    fn list(&self, py: Python<'_>, name: &str) -> PyResult<Listing> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let inner = run(
            py,
            "training_sets.list",
            async move { sets.list(&name).await },
        )?;
        Ok(Listing { inner })
    }

    /// The names of every training set.
    fn names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let sets = self.inner.clone();
        let names = run(py, "training_sets.names", async move {
            sets.names_of_sets().await
        })?;
        Ok(names.into_iter().map(String::from).collect())
    }

    fn get(&self, py: Python<'_>, name: &str, reference: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let reference = reference.to_owned();
        let sets = self.inner.clone();
        let v = run(py, "training_sets.get", async move {
            sets.get(&name, &reference).await
        })?;
        Ok(version_json(&v))
    }

    fn select_best(&self, py: Python<'_>, name: &str, criteria: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let criteria = self::criteria(criteria).map_err(to_py)?;
        let sets = self.inner.clone();
        let v = run(py, "training_sets.select_best", async move {
            sets.select_best(&name, &criteria).await
        })?;
        Ok(version_json(&v))
    }

    /// Tags a version; the version number tagged.
    fn tag(&self, py: Python<'_>, name: &str, reference: &str, tag: &str) -> PyResult<u64> {
        let (name, tag) = (
            DatasetName::new(name).map_err(to_py)?,
            TagName::new(tag).map_err(to_py)?,
        );
        let reference = reference.to_owned();
        let sets = self.inner.clone();
        let entry = run(py, "training_sets.tag", async move {
            sets.tag(&name, &reference, &tag).await
        })?;
        Ok(entry.version.get())
    }

    /// Moves an alias to a version; the version number it points at.
    fn alias(&self, py: Python<'_>, name: &str, reference: &str, alias: &str) -> PyResult<u64> {
        let (name, alias) = (
            DatasetName::new(name).map_err(to_py)?,
            TagName::new(alias).map_err(to_py)?,
        );
        let reference = reference.to_owned();
        let sets = self.inner.clone();
        let entry = run(py, "training_sets.alias", async move {
            sets.alias(&name, &reference, &alias).await
        })?;
        Ok(entry.version.get())
    }

    /// A version's rows: `(pyarrow schema, [pyarrow.RecordBatch])`, buffers shared.
    fn read<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        version: u64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyList>)> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let (schema, batches) = run(py, "training_sets.read", async move {
            let v = sets.get(&name, &version.to_string()).await?;
            sets.read(&v).await
        })?;
        let list = PyList::empty(py);
        for b in &batches {
            list.append(batch_to_pyarrow(py, b)?)?;
        }
        Ok((schema.as_ref().to_pyarrow(py)?, list))
    }

    /// A version's rows streamed a few thousand at a time, only `columns` (all when `None`).
    fn scan(
        &self,
        py: Python<'_>,
        name: &str,
        version: u64,
        columns: Option<Vec<String>>,
    ) -> PyResult<BatchIterator> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let stream = run(py, "training_sets.scan", async move {
            let v = sets.get(&name, &version.to_string()).await?;
            sets.scan(&v, columns).await
        })?;
        Ok(BatchIterator::new(stream))
    }

    /// What differs between two versions (of possibly different sets), as JSON.
    fn diff(
        &self,
        py: Python<'_>,
        before: (String, String),
        after: (String, String),
    ) -> PyResult<String> {
        let sets = self.inner.clone();
        let d = run(py, "training_sets.diff", async move {
            let a = sets.get(&DatasetName::new(before.0)?, &before.1).await?;
            let b = sets.get(&DatasetName::new(after.0)?, &after.1).await?;
            sets.diff(&a, &b).await
        })?;
        Ok(serde_json::to_string(&d).expect("diff serializes"))
    }

    /// Drift of every numeric and list feature from `baseline` to `current`, as JSON.
    #[pyo3(signature = (baseline, current, bins, columns))]
    fn drift(
        &self,
        py: Python<'_>,
        baseline: (String, String),
        current: (String, String),
        bins: usize,
        columns: Option<Vec<String>>,
    ) -> PyResult<String> {
        let sets = self.inner.clone();
        let options = DriftOptions { bins, columns };
        let d = run(py, "training_sets.drift", async move {
            let a = sets
                .get(&DatasetName::new(baseline.0)?, &baseline.1)
                .await?;
            let b = sets.get(&DatasetName::new(current.0)?, &current.1).await?;
            sets.drift(&a, &b, &options).await
        })?;
        Ok(serde_json::to_string(&d).expect("drift serializes"))
    }

    /// Rebuilds a version from its lineage and compares hashes; the outcome as JSON.
    fn reproduce(
        &self,
        py: Python<'_>,
        features: PyRef<'_, FeatureStore>,
        name: &str,
        reference: &str,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let reference = reference.to_owned();
        let store = features.inner.clone();
        let sets = self.inner.clone();
        let r = run(py, "training_sets.reproduce", async move {
            let v = sets.get(&name, &reference).await?;
            sets.reproduce(&store, &v).await
        })?;
        Ok(serde_json::to_string(&r).expect("outcome serializes"))
    }

    /// Checks every version, tag and alias; the report as JSON.
    #[pyo3(signature = (older_than_s, progress))]
    fn fsck(
        &self,
        py: Python<'_>,
        older_than_s: f64,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let grace = grace(older_than_s).map_err(to_py)?;
        let sets = self.inner.clone();
        let sink = crate::progress::sink(progress);
        let report = run(py, "training_sets.fsck", async move {
            sets.fsck(grace, sink.as_ref()).await
        })?;
        Ok(serde_json::to_string(&report).expect("report serializes"))
    }

    /// Deletes (unless `dry_run`) data files no version lists; their paths and sizes as JSON.
    fn gc(&self, py: Python<'_>, older_than_s: f64, dry_run: bool) -> PyResult<String> {
        let grace = grace(older_than_s).map_err(to_py)?;
        let sets = self.inner.clone();
        let files = run(py, "training_sets.gc", async move {
            sets.gc(grace, dry_run).await
        })?;
        Ok(serde_json::to_string(&files).expect("files serialize"))
    }

    /// Permissions, audit log, leases, deletion and drafts of these sets.
    fn governance(&self) -> crate::sharing::SetGovernance {
        crate::sharing::SetGovernance {
            inner: self.inner.clone(),
        }
    }

    /// Local paths of a version's data files, for `pyarrow.dataset` (checked first).
    fn local_files(&self, py: Python<'_>, name: &str, version: u64) -> PyResult<Vec<String>> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        run(py, "training_sets.local_files", async move {
            let v = sets.get(&name, &version.to_string()).await?;
            let mut paths = Vec::new();
            for f in &v.files {
                let path = sets.store().local_path(f).ok_or_else(|| Error::NotSupported {
                    operation: "a dataset over a version's files (off a local disk, use to_arrow())",
                    implementer: sets.store().url().to_owned(),
                })?;
                sets.store().verify_file(f).await?;
                paths.push(path.display().to_string());
            }
            Ok(paths)
        })
    }
}

pub(crate) fn grace(seconds: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| {
        Error::invalid(
            "older_than",
            seconds.to_string(),
            "expected a duration of 0 or more",
        )
    })
}

/// The batches of a Python Arrow stream as a stream for the runtime. The stream may call
/// back into Python (a generator behind a reader): it is read on a thread of its own, which
/// takes the GIL when it must, never on the runtime. Call it inside the runtime.
pub(crate) fn stream_of(
    reader: RecordBatchStreamReader,
) -> (
    arrow::datatypes::SchemaRef,
    trainstore::core::RecordBatchStream,
) {
    let schema = reader.schema();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(STREAM_QUEUE);
    std::thread::spawn(move || {
        for batch in reader {
            if tx.blocking_send(batch.map_err(Error::from)).is_err() {
                break;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    (schema, stream)
}
