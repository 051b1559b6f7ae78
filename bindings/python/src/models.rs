//! Models for Python: a training request and model versions cross as JSON; training runs with
//! the GIL released.

use pyo3::prelude::*;
use trainstore::core::{DatasetName, Error, TagName};
use trainstore::models::{Models as CoreModels, TrainRequest};
use trainstore::train::ModelVersion;

use crate::errors::to_py;
use crate::runtime::run;

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
}
