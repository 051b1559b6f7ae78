//! `trainstore._native`: the Rust side of the Python package.
//!
//! Thin wrappers only; the documented Python API lives in `python/trainstore`. Every call that
//! does I/O releases the GIL and runs on the one process-wide runtime (`runtime`).

mod entities;
mod errors;
mod export;
mod features;
mod logging;
mod models;
mod pipelines;
mod progress;
mod runtime;
mod sharing;
mod sources;
mod training_sets;

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::pyarrow::IntoPyArrow;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use trainstore::core::{MountTable as CoreMountTable, StorageOptions};
use trainstore::{LiteralSecrets, Settings, Workspace as CoreWorkspace};

use errors::to_py;
use runtime::run;

// Rust's allocations here are many and small (an online lookup builds a batch per call);
// mimalloc serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: trainstore::allocator::Allocator = trainstore::allocator::Allocator {};

pub(crate) fn options(map: Option<BTreeMap<String, String>>) -> StorageOptions {
    map.unwrap_or_default().into_iter().collect()
}

/// Named storage mounts, loaded from and saved to the settings file.
#[pyclass(module = "trainstore._native")]
pub(crate) struct MountTable {
    path: PathBuf,
    settings: Settings,
    pub(crate) table: CoreMountTable,
}

#[pymethods]
impl MountTable {
    #[staticmethod]
    #[pyo3(signature = (path))]
    fn load(path: Option<PathBuf>) -> PyResult<Self> {
        let path = path.unwrap_or_else(Settings::default_path);
        let settings = Settings::load(&path).map_err(to_py)?;
        let table = settings.mount_table(&path).map_err(to_py)?;
        Ok(MountTable {
            path,
            settings,
            table,
        })
    }

    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    #[pyo3(signature = (name, url, options, allow_literal_secrets))]
    fn add(
        &mut self,
        name: &str,
        url: &str,
        options: Option<BTreeMap<String, String>>,
        allow_literal_secrets: bool,
    ) -> PyResult<()> {
        let mut settings = self.settings.clone();
        let literal = if allow_literal_secrets {
            LiteralSecrets::Allow
        } else {
            LiteralSecrets::Refuse
        };
        settings
            .add_mount(name, url, self::options(options), literal)
            .map_err(to_py)?;
        let table = settings.mount_table(&self.path).map_err(to_py)?;
        settings.save(&self.path).map_err(to_py)?;
        (self.settings, self.table) = (settings, table);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> PyResult<bool> {
        let mut settings = self.settings.clone();
        if settings.mounts.remove(name).is_none() {
            return Ok(false);
        }
        let table = settings.mount_table(&self.path).map_err(to_py)?;
        settings.save(&self.path).map_err(to_py)?;
        (self.settings, self.table) = (settings, table);
        Ok(true)
    }

    /// name -> (url, options as shown, secrets redacted)
    fn list(&self) -> BTreeMap<String, (String, String)> {
        self.settings
            .mounts
            .iter()
            .map(|(name, m)| (name.clone(), (m.url.clone(), m.options.to_string())))
            .collect()
    }

    #[pyo3(signature = (location, options, progress))]
    fn check(
        &self,
        py: Python<'_>,
        location: &str,
        options: Option<BTreeMap<String, String>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let resolved = self
            .table
            .resolve_with(location, &self::options(options))
            .map_err(to_py)?;
        let sink = progress::sink(progress);
        run(py, "MountTable.check", async move {
            trainstore::core::check_store(resolved.store.as_ref(), &resolved.url, sink.as_ref())
                .await?;
            Ok(resolved.url)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "MountTable({} mounts from {})",
            self.settings.mounts.len(),
            self.path.display()
        )
    }
}

/// An opened workspace.
#[pyclass(module = "trainstore._native", frozen)]
struct Workspace {
    inner: CoreWorkspace,
}

#[pymethods]
impl Workspace {
    #[staticmethod]
    #[pyo3(signature = (location, storage_options, mounts, create, online_store, user))]
    fn open(
        py: Python<'_>,
        location: String,
        storage_options: Option<BTreeMap<String, String>>,
        mounts: Option<PyRef<'_, MountTable>>,
        create: bool,
        online_store: Option<String>,
        user: Option<String>,
    ) -> PyResult<Self> {
        let user = match &mounts {
            Some(m) => m.settings.user_name(user.as_deref()),
            None => {
                Settings::load(&Settings::default_path()).and_then(|s| s.user_name(user.as_deref()))
            }
        }
        .map_err(to_py)?;
        let table = mounts.map(|m| m.table.clone()).unwrap_or_default();
        let options = options(storage_options);
        let inner = run(py, "Workspace.open", async move {
            if create {
                CoreWorkspace::open_with(&location, &table, &options).await
            } else {
                CoreWorkspace::open_existing(&location, &table, &options).await
            }
        })?;
        let inner = match online_store {
            Some(url) => inner.with_online_store(url),
            None => inner,
        }
        .with_user(user);
        Ok(Workspace { inner })
    }

    /// Deletes the workspace at `location` and everything in it; how many objects went.
    #[staticmethod]
    #[pyo3(signature = (location, storage_options, mounts))]
    fn delete(
        py: Python<'_>,
        location: String,
        storage_options: Option<BTreeMap<String, String>>,
        mounts: Option<PyRef<'_, MountTable>>,
    ) -> PyResult<usize> {
        let table = mounts.map(|m| m.table.clone()).unwrap_or_default();
        let options = options(storage_options);
        run(py, "delete_workspace", async move {
            CoreWorkspace::delete(&location, &table, &options).await
        })
    }

    /// The workspace's feature store.
    fn features(&self) -> features::FeatureStore {
        features::FeatureStore {
            inner: self.inner.features(),
        }
    }

    /// The workspace's training-set versions.
    fn training_sets(&self) -> training_sets::TrainingSets {
        training_sets::TrainingSets {
            inner: self.inner.training_sets(),
        }
    }

    /// The workspace's models.
    fn models(&self) -> models::Models {
        models::Models {
            inner: self.inner.models(),
        }
    }

    /// The workspace's pipelines.
    fn pipelines(&self) -> pipelines::Pipelines {
        pipelines::Pipelines {
            inner: self.inner.pipelines(),
        }
    }

    /// The training-set versions of `namespace`.
    fn training_sets_in(
        &self,
        py: Python<'_>,
        namespace: &str,
    ) -> PyResult<training_sets::TrainingSets> {
        let namespace = trainstore::core::Namespace::new(namespace).map_err(to_py)?;
        let ws = self.inner.clone();
        let inner = run(py, "Workspace.training_sets_in", async move {
            ws.training_sets_in(&namespace).await
        })?;
        Ok(training_sets::TrainingSets { inner })
    }

    /// The namespaces that hold training sets.
    fn namespaces(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let ws = self.inner.clone();
        let names = run(
            py,
            "Workspace.namespaces",
            async move { ws.namespaces().await },
        )?;
        Ok(names.into_iter().map(String::from).collect())
    }

    #[getter]
    fn url(&self) -> &str {
        self.inner.url()
    }

    /// Who acts through this workspace.
    #[getter]
    fn user(&self) -> &str {
        self.inner.user().as_str()
    }

    #[getter]
    fn layout_version(&self) -> u32 {
        self.inner.config().layout_version
    }

    /// Creation time as epoch milliseconds (UTC).
    #[getter]
    fn created_at_ms(&self) -> i64 {
        self.inner.config().created_at.as_millis()
    }

    #[getter]
    fn created_by(&self) -> &str {
        &self.inner.config().created_by
    }

    /// Versioned items with their newest version number.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ws = self.inner.clone();
        let info = run(py, "Workspace.items", async move { ws.info().await })?;
        let out = PyDict::new(py);
        for (item, version) in info.items {
            out.set_item(item.as_str(), version.get())?;
        }
        Ok(out)
    }

    /// The versions of a catalog item, oldest first, deleted ones left out: manifests as JSON.
    fn catalog_versions(&self, py: Python<'_>, item: &str) -> PyResult<String> {
        let item = trainstore::core::DatasetName::new(item).map_err(to_py)?;
        let ws = self.inner.clone();
        let manifests = run(py, "Catalog.versions", async move {
            ws.catalog_versions(&item).await
        })?;
        Ok(serde_json::to_string(&manifests).expect("manifests serialize"))
    }

    /// The manifest of the catalog version `reference` names, as JSON.
    fn catalog_version(&self, py: Python<'_>, reference: String) -> PyResult<String> {
        let ws = self.inner.clone();
        let manifest = run(py, "Catalog.get", async move {
            ws.catalog_version(&reference).await
        })?;
        Ok(serde_json::to_string(&manifest).expect("a manifest serializes"))
    }

    /// The rows of the catalog version `reference` names (its Parquet data files).
    fn catalog_read<'py>(&self, py: Python<'py>, reference: String) -> PyResult<Bound<'py, PyAny>> {
        let ws = self.inner.clone();
        let (schema, batches) = run(py, "Catalog.read", async move {
            ws.read_catalog_version(&reference).await
        })?;
        arrow::pyarrow::Table::try_new(batches, schema)
            .map_err(|e| to_py(e.into()))?
            .into_pyarrow(py)
    }

    /// Deletes the catalog version `reference` names; returns its number.
    fn catalog_delete(&self, py: Python<'_>, reference: String) -> PyResult<u64> {
        let ws = self.inner.clone();
        let version = run(py, "Catalog.delete", async move {
            ws.delete_catalog_version(&reference).await
        })?;
        Ok(version.get())
    }

    /// Checks every version's manifest and data files; the report as JSON.
    #[pyo3(signature = (progress))]
    fn verify(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<String> {
        let ws = self.inner.clone();
        let sink = progress::sink(progress);
        let report = run(py, "Workspace.verify", async move {
            ws.verify(sink.as_ref()).await
        })?;
        Ok(serde_json::to_string(&report).expect("report serializes"))
    }

    /// Finds (and unless `dry_run` deletes) data files no version lists; the report as JSON.
    fn gc(&self, py: Python<'_>, older_than_s: f64, dry_run: bool) -> PyResult<String> {
        let grace = training_sets::grace(older_than_s).map_err(to_py)?;
        let ws = self.inner.clone();
        let report = run(
            py,
            "Workspace.gc",
            async move { ws.gc(grace, dry_run).await },
        )?;
        Ok(serde_json::to_string(&report).expect("report serializes"))
    }

    fn __repr__(&self) -> String {
        format!(
            "Workspace({:?}, layout_version={})",
            self.inner.url(),
            self.inner.config().layout_version
        )
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    trainstore::allocator::configure();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LAYOUT_VERSION", trainstore::LAYOUT_VERSION)?;
    m.add_class::<Workspace>()?;
    m.add_class::<MountTable>()?;
    m.add_class::<features::FeatureStore>()?;
    m.add_class::<training_sets::TrainingSets>()?;
    m.add_class::<training_sets::Listing>()?;
    m.add_class::<models::Models>()?;
    m.add_class::<pipelines::Pipelines>()?;
    m.add_class::<sharing::SetGovernance>()?;
    m.add_class::<sources::SnapshotSchema>()?;
    m.add_class::<sources::SnapshotSource>()?;
    m.add_class::<sources::BatchIterator>()?;
    m.add_function(wrap_pyfunction!(sources::synthetic_snapshots, m)?)?;
    m.add_function(wrap_pyfunction!(sources::load_snapshots, m)?)?;
    m.add_function(wrap_pyfunction!(sources::parse_snapshots, m)?)?;
    m.add_function(wrap_pyfunction!(sources::write_back, m)?)?;
    logging::install(m.py())?;
    Ok(())
}
