//! Sharing training sets from Python: permissions, the audit log, leases, deleting and
//! retention, drafts. Results cross as JSON; a draft is named by its set and id, so the
//! Python object holding it keeps no Rust state.

use arrow::ffi_stream::RecordBatchStreamReader;
use arrow::pyarrow::PyArrowType;
use pyo3::prelude::*;
use trainstore::core::{DatasetName, Permission};
use trainstore::featurestore::training::drafts::SetDraft;
use trainstore::featurestore::training::lifecycle::Retention;
use trainstore::featurestore::training::sharing::Grantee;
use trainstore::featurestore::training::{CreateOptions, TrainingSets as CoreSets};

use crate::errors::to_py;
use crate::runtime::run;
use crate::training_sets::{grace, metadata, stream_of, version_json};

/// What Python sees of a draft.
fn draft_json(d: &SetDraft) -> String {
    serde_json::json!({
        "name": d.name,
        "id": d.id,
        "parent": d.parent,
        "rows": d.rows,
        "created_at": d.created_at.as_millis(),
    })
    .to_string()
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("serializes")
}

/// Permissions, audit log, leases, deletion and drafts of a workspace's training sets.
#[pyclass(module = "trainstore._native", frozen)]
pub struct SetGovernance {
    pub inner: CoreSets,
}

#[pymethods]
impl SetGovernance {
    /// The user these sets act as.
    #[getter]
    fn user(&self) -> String {
        self.inner.user().to_string()
    }

    fn access(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let access = run(py, "training_sets.access", async move {
            sets.access(&name).await
        })?;
        Ok(json(&access))
    }

    /// Gives `grantee` (a user, or `*`) `permission` (`None`: none); the new access as JSON.
    #[pyo3(signature = (name, grantee, permission))]
    fn grant(
        &self,
        py: Python<'_>,
        name: &str,
        grantee: &str,
        permission: Option<&str>,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let grantee = Grantee::parse(grantee).map_err(to_py)?;
        let permission = permission
            .map(Permission::parse)
            .transpose()
            .map_err(to_py)?;
        let sets = self.inner.clone();
        let access = run(py, "training_sets.grant", async move {
            sets.grant(&name, &grantee, permission).await
        })?;
        Ok(json(&access))
    }

    fn audit_log(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let log = run(py, "training_sets.audit_log", async move {
            sets.audit_log(&name).await
        })?;
        Ok(json(&log))
    }

    /// The lease as JSON (`null`: never leased); `action` is `show`, `acquire`, `release` or
    /// `break`; `ttl_s` is the lease's length for `acquire` (required there), `None` otherwise.
    #[pyo3(signature = (name, action, ttl_s))]
    fn lease(
        &self,
        py: Python<'_>,
        name: &str,
        action: &str,
        ttl_s: Option<f64>,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let ttl = ttl_s.map(grace).transpose().map_err(to_py)?;
        let action = action.to_owned();
        let sets = self.inner.clone();
        let lease = run(py, "training_sets.lease", async move {
            match (action.as_str(), ttl) {
                ("show", _) => sets.lease(&name).await,
                ("acquire", Some(ttl)) => sets.acquire_lease(&name, ttl).await.map(Some),
                ("acquire", None) => Err(trainstore::core::Error::invalid(
                    "ttl_s",
                    "None",
                    "acquire needs a lease length in seconds",
                )),
                ("release", _) => sets.release_lease(&name).await.map(Some),
                ("break", _) => sets.break_lease(&name).await.map(Some),
                (other, _) => Err(trainstore::core::Error::invalid(
                    "lease action",
                    other,
                    "expected show, acquire, release or break",
                )),
            }
        })?;
        Ok(json(&lease))
    }

    /// Deletes a version; its number.
    fn delete(&self, py: Python<'_>, name: &str, reference: &str) -> PyResult<u64> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let reference = reference.to_owned();
        let sets = self.inner.clone();
        let v = run(py, "training_sets.delete", async move {
            sets.delete(&name, &reference).await
        })?;
        Ok(v.get())
    }

    /// Deletes (unless `dry_run`) the versions the policy does not keep; their numbers.
    #[pyo3(signature = (name, keep_last, keep_within_s, dry_run))]
    fn retain(
        &self,
        py: Python<'_>,
        name: &str,
        keep_last: Option<usize>,
        keep_within_s: Option<f64>,
        dry_run: bool,
    ) -> PyResult<Vec<u64>> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let policy = Retention {
            keep_last,
            keep_within: keep_within_s.map(grace).transpose().map_err(to_py)?,
        };
        let sets = self.inner.clone();
        let doomed = run(py, "training_sets.retain", async move {
            sets.retain(&name, &policy, dry_run).await
        })?;
        Ok(doomed.into_iter().map(|v| v.get()).collect())
    }

    #[pyo3(signature = (name, base))]
    fn draft(&self, py: Python<'_>, name: &str, base: Option<String>) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let d = run(py, "training_sets.draft", async move {
            sets.draft(&name, base.as_deref()).await
        })?;
        Ok(draft_json(&d))
    }

    /// This user's drafts of `name`, as JSON.
    fn drafts(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let sets = self.inner.clone();
        let drafts = run(py, "training_sets.drafts", async move {
            sets.drafts(&name).await
        })?;
        let items: Vec<serde_json::Value> = drafts
            .iter()
            .map(|d| serde_json::from_str(&draft_json(d)).expect("draft JSON"))
            .collect();
        Ok(json(&items))
    }

    /// Adds an Arrow stream's rows to draft `id`; the draft as JSON.
    fn append_to_draft(
        &self,
        py: Python<'_>,
        name: &str,
        id: &str,
        rows: PyArrowType<RecordBatchStreamReader>,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let id = id.to_owned();
        let sets = self.inner.clone();
        let d = run(py, "training_sets.append_to_draft", async move {
            let mut d = sets.open_draft(&name, &id).await?;
            let (schema, stream) = stream_of(rows.0);
            sets.append_to_draft(&mut d, schema, stream).await?;
            Ok(d)
        })?;
        Ok(draft_json(&d))
    }

    /// Commits draft `id` as a version; the version as JSON.
    #[pyo3(signature = (name, id, metadata, label))]
    fn commit_draft(
        &self,
        py: Python<'_>,
        name: &str,
        id: &str,
        metadata: Option<&str>,
        label: Option<String>,
    ) -> PyResult<String> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let options = CreateOptions {
            metadata: self::metadata(metadata).map_err(to_py)?,
            label,
            ..CreateOptions::default()
        };
        let id = id.to_owned();
        let sets = self.inner.clone();
        let v = run(py, "training_sets.commit_draft", async move {
            let d = sets.open_draft(&name, &id).await?;
            sets.commit_draft(d, options).await
        })?;
        Ok(version_json(&v))
    }

    fn discard_draft(&self, py: Python<'_>, name: &str, id: &str) -> PyResult<()> {
        let name = DatasetName::new(name).map_err(to_py)?;
        let id = id.to_owned();
        let sets = self.inner.clone();
        run(py, "training_sets.discard_draft", async move {
            let d = sets.open_draft(&name, &id).await?;
            sets.discard_draft(d).await
        })
    }
}
