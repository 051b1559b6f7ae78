//! Models for Python: a training request, model versions, reports, comparisons and gate
//! decisions cross as JSON; rows to forecast arrive as an Arrow C stream (no copy) and
//! forecasts leave as a pyarrow record batch. Training and forecasting run with the GIL
//! released.

use arrow::ffi_stream::RecordBatchStreamReader;
use arrow::pyarrow::PyArrowType;
use pyo3::prelude::*;
use trainstore::core::{DatasetName, Error, TagName};
use trainstore::models::{Models as CoreModels, TrainRequest};
use trainstore::train::{Forecast, ModelVersion};

use crate::entities::entity_batch;
use crate::errors::to_py;
use crate::export::batch_to_pyarrow;
use crate::runtime::run;
use crate::training_sets::stream_of;

fn version_json(v: &ModelVersion) -> String {
    serde_json::json!({
        "name": v.name,
        "version": v.version,
        "author": v.author,
        "created_at": v.created_at.as_millis(),
        "card": v.card,
    })
    .to_string()
}

/// A forecast as `(pyarrow.RecordBatch, skipped)`, its buffers shared.
fn forecast_to_py<'py>(
    py: Python<'py>,
    forecast: &Forecast,
) -> PyResult<(Bound<'py, PyAny>, usize)> {
    Ok((batch_to_pyarrow(py, &forecast.rows)?, forecast.skipped))
}

/// A workspace's models.
#[pyclass(module = "trainstore._native", frozen)]
pub struct Models {
    pub inner: CoreModels,
}

#[pymethods]
impl Models {
    /// Trains on training-set version `set_reference` of `set_name` as `request` (JSON) says
    /// and registers the model as a new version of `name`; the version as JSON.
    fn train(
        &self,
        py: Python<'_>,
        name: &str,
        set_name: &str,
        set_reference: &str,
        request: &str,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let set_name = DatasetName::new(set_name).map_err(to_py)?;
        let request: TrainRequest = serde_json::from_str(request)
            .map_err(|e| to_py(Error::invalid("training request", request, e.to_string())))?;
        let (models, set_reference) = (self.inner.clone(), set_reference.to_owned());
        let sets = self.inner.training_sets().clone();
        let v = run(py, "models.train", async move {
            let set = sets.get(&set_name, &set_reference).await?;
            models.train(&name, &set, &request).await
        })?;
        Ok(version_json(&v))
    }

    fn get(&self, py: Python<'_>, name: &str, reference: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let v = run(py, "models.get", async move {
            models.get(&name, &reference).await
        })?;
        Ok(version_json(&v))
    }

    /// Every version of `name`, oldest first, as a JSON array.
    fn list(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let models = self.inner.clone();
        let listed = run(py, "models.list", async move { models.list(&name).await })?;
        let rows: Vec<serde_json::Value> = listed
            .iter()
            .map(|v| serde_json::from_str(&version_json(v)).expect("JSON written above"))
            .collect();
        Ok(serde_json::Value::Array(rows).to_string())
    }

    /// Points `alias` at a version; the version number it points at.
    fn promote(&self, py: Python<'_>, name: &str, reference: &str, alias: &str) -> PyResult<u64> {
        let (name, alias) = (
            DatasetName::new(name).map_err(to_py)?,
            TagName::new(alias).map_err(to_py)?,
        );
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let entry = run(py, "models.promote", async move {
            models.promote(&name, &reference, &alias).await
        })?;
        Ok(entry.version.get())
    }

    /// Points `alias` back where it was before its last move; the version number.
    fn rollback(&self, py: Python<'_>, name: &str, alias: &str) -> PyResult<u64> {
        let (name, alias) = (
            DatasetName::new(name).map_err(to_py)?,
            TagName::new(alias).map_err(to_py)?,
        );
        let models = self.inner.clone();
        let entry = run(py, "models.rollback", async move {
            models.rollback(&name, &alias).await
        })?;
        Ok(entry.version.get())
    }

    /// How well a model forecasts every window of a training-set version; the report as JSON.
    fn evaluate(
        &self,
        py: Python<'_>,
        name: &str,
        reference: &str,
        set_name: &str,
        set_reference: &str,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let set_name = DatasetName::new(set_name).map_err(to_py)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let set_reference = set_reference.to_owned();
        let sets = self.inner.training_sets().clone();
        let report = run(py, "models.evaluate", async move {
            let model = models.get(&name, &reference).await?;
            let set = sets.get(&set_name, &set_reference).await?;
            models.evaluate(&model, &set).await
        })?;
        Ok(serde_json::to_string(&report).expect("a report serializes"))
    }

    fn delete(&self, py: Python<'_>, name: &str, reference: &str) -> PyResult<()> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        run(py, "models.delete", async move {
            models.delete(&name, &reference).await
        })
    }

    /// A model's forecast of what follows each entity's latest window in the rows of an
    /// Arrow stream: `(pyarrow.RecordBatch, entities skipped)`.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        reference: &str,
        rows: PyArrowType<RecordBatchStreamReader>,
        time_column: Option<String>,
    ) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let forecast = run(py, "models.predict", async move {
            let model = models.get(&name, &reference).await?;
            let (_, stream) = stream_of(rows.0);
            models
                .predict_stream(&model, stream, time_column.as_deref())
                .await
        })?;
        forecast_to_py(py, &forecast)
    }

    /// A model's real-time forecast for entity rows (join keys; what `entity_batch` reads),
    /// from the recent rows the online store keeps: `(pyarrow.RecordBatch, entities
    /// skipped)`.
    fn predict_online<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        reference: &str,
        entity_rows: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let rows = entity_batch(entity_rows)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let forecast = run(py, "models.predict_online", async move {
            let model = models.resolve(&name, &reference).await?;
            models.predict_online(&model, &rows).await
        })?;
        forecast_to_py(py, &forecast)
    }

    /// Every window of a training-set version forecast beside what followed it (see
    /// `Models::backtest`), as a pyarrow.RecordBatch.
    fn backtest<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        reference: &str,
        set_name: &str,
        set_reference: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let set_name = DatasetName::new(set_name).map_err(to_py)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let set_reference = set_reference.to_owned();
        let sets = self.inner.training_sets().clone();
        let rows = run(py, "models.backtest", async move {
            let model = models.get(&name, &reference).await?;
            let set = sets.get(&set_name, &set_reference).await?;
            models.backtest(&model, &set).await
        })?;
        batch_to_pyarrow(py, &rows)
    }

    /// A model's forecast over the rows of a training-set version: `(pyarrow.RecordBatch,
    /// entities skipped)`.
    fn predict_version<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        reference: &str,
        set_name: &str,
        set_reference: &str,
    ) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let set_name = DatasetName::new(set_name).map_err(to_py)?;
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let set_reference = set_reference.to_owned();
        let sets = self.inner.training_sets().clone();
        let forecast = run(py, "models.predict_version", async move {
            let model = models.get(&name, &reference).await?;
            let set = sets.get(&set_name, &set_reference).await?;
            models.predict_version(&model, &set).await
        })?;
        forecast_to_py(py, &forecast)
    }

    /// Two models (each `(name, reference)`) forecasting the same windows of a training-set
    /// version; the comparison as JSON.
    fn compare(
        &self,
        py: Python<'_>,
        champion: (String, String),
        challenger: (String, String),
        set_name: &str,
        set_reference: &str,
    ) -> PyResult<String> {
        let set_name = DatasetName::new(set_name).map_err(to_py)?;
        let (models, set_reference) = (self.inner.clone(), set_reference.to_owned());
        let sets = self.inner.training_sets().clone();
        let comparison = run(py, "models.compare", async move {
            let a = models
                .get(&DatasetName::new(champion.0)?, &champion.1)
                .await?;
            let b = models
                .get(&DatasetName::new(challenger.0)?, &challenger.1)
                .await?;
            let set = sets.get(&set_name, &set_reference).await?;
            models.compare(&a, &b, &set).await
        })?;
        Ok(serde_json::to_string(&comparison).expect("a comparison serializes"))
    }

    /// Points `alias` at a model version if nothing holds it yet or the version forecasts a
    /// training-set version better by more than `min_improvement`; the decision as JSON.
    fn promote_if_better(
        &self,
        py: Python<'_>,
        name: &str,
        reference: &str,
        set: (String, String),
        alias: &str,
        min_improvement: f64,
    ) -> PyResult<String> {
        let (name, alias) = (
            DatasetName::new(name).map_err(to_py)?,
            TagName::new(alias).map_err(to_py)?,
        );
        let (models, reference) = (self.inner.clone(), reference.to_owned());
        let sets = self.inner.training_sets().clone();
        let gate = run(py, "models.promote_if_better", async move {
            let challenger = models.get(&name, &reference).await?;
            let set = sets.get(&DatasetName::new(set.0)?, &set.1).await?;
            models
                .promote_if_better(&challenger, &set, &alias, min_improvement)
                .await
        })?;
        Ok(serde_json::to_string(&gate).expect("a gate decision serializes"))
    }
}
