//! The feature store for Python: definitions cross as JSON (the registry's own format), entity
//! rows and results as Arrow record batches without copies.

use arrow::array::RecordBatch;
use arrow::pyarrow::PyArrowType;
use pyo3::prelude::*;
use trainstore::core::{Result, Timestamp, Version};
use trainstore::featurestore::{
    Definitions, Engine, FeatureStore as CoreStore, HistoricalOptions, Name, OnlineOptions,
    TtlPolicy,
};

use crate::entities::entity_batch;
use crate::errors::to_py;
use crate::export::batch_to_pyarrow;
use crate::progress::sink;
use crate::runtime::run;

fn names(views: Option<Vec<String>>) -> Result<Option<Vec<Name>>> {
    views
        .map(|v| v.into_iter().map(Name::new).collect())
        .transpose()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serializes")
}

/// A workspace's feature store.
#[pyclass(module = "trainstore._native", frozen)]
pub struct FeatureStore {
    pub inner: CoreStore,
}

#[pymethods]
impl FeatureStore {
    /// Applies definitions given as JSON; returns the plan and the new version as JSON.
    fn apply(&self, py: Python<'_>, definitions: &str) -> PyResult<String> {
        let defs = Definitions::parse(definitions).map_err(to_py)?;
        let store = self.inner.clone();
        let applied = run(py, "features.apply", async move {
            store.apply(defs.into_list()).await
        })?;
        Ok(json(&serde_json::json!({
            "version": applied.version.map(Version::get),
            "changes": applied.plan.changes,
        })))
    }

    /// What applying the JSON definitions would change, as JSON.
    fn plan(&self, py: Python<'_>, definitions: &str) -> PyResult<String> {
        let defs = Definitions::parse(definitions).map_err(to_py)?;
        let store = self.inner.clone();
        let plan = run(py, "features.plan", async move {
            store.plan(defs.into_list()).await
        })?;
        Ok(json(&plan.changes))
    }

    /// The current definitions as JSON.
    fn definitions(&self, py: Python<'_>) -> PyResult<String> {
        let store = self.inner.clone();
        Ok(json(&run(py, "features.list", async move {
            store.definitions().await
        })?))
    }

    /// Every registry version as JSON.
    fn history(&self, py: Python<'_>) -> PyResult<String> {
        let store = self.inner.clone();
        Ok(json(&run(py, "features.history", async move {
            store.history().await
        })?))
    }

    fn remove(&self, py: Python<'_>, names: Vec<String>) -> PyResult<u64> {
        let names = names
            .iter()
            .map(Name::new)
            .collect::<trainstore::core::Result<Vec<_>>>()
            .map_err(to_py)?;
        let store = self.inner.clone();
        let v = run(
            py,
            "features.delete",
            async move { store.remove(&names).await },
        )?;
        Ok(v.get())
    }

    fn rollback(&self, py: Python<'_>, version: u64) -> PyResult<u64> {
        let store = self.inner.clone();
        let v = run(py, "features.rollback", async move {
            store.rollback(Version::new(version)?).await
        })?;
        Ok(v.get())
    }

    #[pyo3(signature = (entity_rows, features, full_feature_names, timestamp_column, engine, progress))]
    #[allow(clippy::too_many_arguments)]
    fn get_historical_features<'py>(
        &self,
        py: Python<'py>,
        entity_rows: PyArrowType<RecordBatch>,
        features: Vec<String>,
        full_feature_names: bool,
        timestamp_column: Option<String>,
        engine: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone().with_progress(sink(progress));
        let rows = entity_rows.0;
        let options = HistoricalOptions {
            full_feature_names,
            timestamp_column,
            engine: Engine::parse(engine).map_err(to_py)?,
        };
        let out = run(py, "features.get_historical_features", async move {
            let refs = store.resolve_features(&features).await?;
            store.get_historical_features(&rows, &refs, &options).await
        })?;
        batch_to_pyarrow(py, &out)
    }

    /// Materializes `[start, end]` (or incrementally up to `end` without a start; times as
    /// ISO-8601 or epoch-ms text); returns what was done as JSON.
    #[pyo3(signature = (end, start, views, progress))]
    fn materialize(
        &self,
        py: Python<'_>,
        end: &str,
        start: Option<&str>,
        views: Option<Vec<String>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let views = names(views).map_err(to_py)?;
        let end = Timestamp::parse(end).map_err(to_py)?;
        let start = start.map(Timestamp::parse).transpose().map_err(to_py)?;
        let store = self.inner.clone().with_progress(sink(progress));
        let done = run(py, "features.materialize", async move {
            let views = views.as_deref();
            match start {
                Some(s) => store.materialize(s, end, views).await,
                None => store.materialize_incremental(end, views).await,
            }
        })?;
        Ok(json(&done))
    }

    /// Ingests `view`'s rows in `[start, end]` (times as text) into the offline store;
    /// returns what was done as JSON.
    #[pyo3(signature = (view, start, end, progress))]
    fn ingest(
        &self,
        py: Python<'_>,
        view: &str,
        start: &str,
        end: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let view = Name::new(view).map_err(to_py)?;
        let start = Timestamp::parse(start).map_err(to_py)?;
        let end = Timestamp::parse(end).map_err(to_py)?;
        let store = self.inner.clone().with_progress(sink(progress));
        let done = run(py, "features.ingest", async move {
            store.ingest(&view, start, end).await
        })?;
        Ok(json(&done))
    }

    fn get_online_features<'py>(
        &self,
        py: Python<'py>,
        features: Vec<String>,
        entity_rows: &Bound<'py, PyAny>,
        full_feature_names: bool,
        ignore_ttl: bool,
        with_status: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let rows = entity_batch(entity_rows)?;
        let options = OnlineOptions {
            full_feature_names,
            ttl: if ignore_ttl {
                TtlPolicy::Ignore
            } else {
                TtlPolicy::Enforce
            },
            with_status,
        };
        let out = run(py, "features.get_online_features", async move {
            let refs = store.resolve_features(&features).await?;
            store.get_online_features(&refs, &rows, &options).await
        })?;
        batch_to_pyarrow(py, &out)
    }

    /// Where online values are kept.
    fn online_store(&self, py: Python<'_>) -> PyResult<String> {
        let store = self.inner.clone();
        run(py, "features.online_store", async move {
            Ok(store.online_store().await?.describe())
        })
    }
}
