//! Pipelines for Python: documents cross as text, run states, histories and reports as JSON
//! (times as epoch milliseconds), and a `python` task type runs Python callables.
//!
//! A `python` task (`type: python`, `config.function: NAME`) is run by [`PythonTasks`]: the
//! callable registered under `NAME` in the mapping given to `run`/`resume`, or the importable
//! `module:attr`, is called by `trainstore.pipelines._call` on a blocking thread that holds
//! the GIL, so the runtime's threads keep the run going meanwhile. The task type is registered
//! on every call, with or without functions, so that validating and applying a document with
//! `python` tasks works the same from Python as running it.
//!
//! Runs release the GIL; a signal (Ctrl-C) cancels the run through its token and waits for it
//! to save its state (`cancelled`, to be resumed) before the signal's exception is raised. A
//! Python callable cannot be stopped from outside: a cancelled or timed-out `python` attempt
//! is recorded at once, and the callable runs on in its thread until it returns.

use std::sync::Arc;

use async_trait::async_trait;
use pyo3::prelude::*;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use trainstore::core::{Error, Version};
use trainstore::pipelines::{Pipelines as CorePipelines, from_pipeline};
use trainstore_pipeline::{
    ArgoEnv, ArgoOptions, ArgoVolume, CancellationToken, ImagePullPolicy, Invocation, Outputs,
    Pipeline, RunState, RunSummary, TaskContext, TaskFailure, TaskRunner, argo,
};

use crate::errors::to_py;
use crate::runtime::{run, run_cancellable};

/// The task type Python callables run as.
const PYTHON_TASK_TYPE: &str = "python";

/// A workspace's pipelines.
#[pyclass(module = "trainstore._native", frozen)]
pub struct Pipelines {
    pub inner: CorePipelines,
}

impl Pipelines {
    /// The workspace's pipelines with the `python` task type calling `functions` (a mapping
    /// of names to callables, or `None`).
    fn with_python(&self, functions: Option<Py<PyAny>>) -> PyResult<CorePipelines> {
        let runner = PythonTasks {
            functions: functions.map(Arc::new),
        };
        self.inner
            .clone()
            .with_task_type(PYTHON_TASK_TYPE, Arc::new(runner))
            .map_err(to_py)
    }
}

#[pymethods]
impl Pipelines {
    /// Every problem of document `text` as `(path, line, kind, message)`, in the document's
    /// order; empty when it is valid.
    fn validate(&self, text: &str) -> PyResult<Vec<(String, usize, String, String)>> {
        let types = self.with_python(None)?.task_types();
        let report = Pipeline::validate(text, &types);
        Ok(report
            .issues
            .into_iter()
            .map(|i| {
                (
                    i.path,
                    i.line,
                    snake_case(&format!("{:?}", i.kind)),
                    i.message,
                )
            })
            .collect())
    }

    /// Stores document `text` as the next version of its pipeline; `{name, version, changed}`
    /// as JSON.
    fn apply(&self, py: Python<'_>, text: String) -> PyResult<String> {
        let pipelines = self.with_python(None)?;
        let applied = run(py, "pipelines.apply", async move {
            pipelines.apply(&text).await
        })?;
        Ok(serde_json::to_string(&applied).expect("an applied pipeline serializes"))
    }

    /// Every version of pipeline `name`, oldest first, as a JSON array.
    fn history(&self, py: Python<'_>, name: String) -> PyResult<String> {
        let pipelines = self.inner.clone();
        let versions = run(py, "pipelines.history", async move {
            pipelines.history(&name).await
        })?;
        Ok(serde_json::to_string(&versions).expect("pipeline versions serialize"))
    }

    /// The text of pipeline `name` at `reference` (`latest`, `3`, `v3`): `(version, text)`.
    fn document(&self, py: Python<'_>, name: String, reference: String) -> PyResult<(u64, String)> {
        let pipelines = self.inner.clone();
        let (version, text) = run(py, "pipelines.document", async move {
            pipelines.document(&name, &reference).await
        })?;
        Ok((version.get(), text))
    }

    /// Makes version `version` of pipeline `name` the latest again, as a new version; what
    /// `apply` returns.
    fn rollback(&self, py: Python<'_>, name: String, version: u64) -> PyResult<String> {
        let version = Version::new(version).map_err(to_py)?;
        let pipelines = self.with_python(None)?;
        let applied = run(py, "pipelines.rollback", async move {
            pipelines.rollback(&name, version).await
        })?;
        Ok(serde_json::to_string(&applied).expect("an applied pipeline serializes"))
    }

    /// Applies document `text` and runs it with `parameters` (a JSON object) overriding its
    /// defaults, `python` tasks calling `functions`; the run's state as JSON.
    fn run(
        &self,
        py: Python<'_>,
        text: String,
        run_id: Option<String>,
        parameters: Option<String>,
        functions: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let parameters = match parameters {
            None => serde_json::Map::new(),
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                to_py(Error::invalid(
                    "pipeline parameters",
                    json.clone(),
                    format!("not a JSON object: {e}"),
                ))
            })?,
        };
        let pipelines = self.with_python(functions)?;
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let state = run_cancellable(py, "pipelines.run", move || token.cancel(), async move {
            let state = pipelines.run(&text, run_id, parameters, cancel).await?;
            Ok(interrupted(state))
        })?;
        Ok(state_json(&state))
    }

    /// Runs again every task of run `run_id` that did not succeed; the run's state as JSON.
    fn resume(
        &self,
        py: Python<'_>,
        run_id: String,
        functions: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let pipelines = self.with_python(functions)?;
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let state = run_cancellable(py, "pipelines.resume", move || token.cancel(), async move {
            let state = pipelines.resume(&run_id, cancel).await?;
            Ok(interrupted(state))
        })?;
        Ok(state_json(&state))
    }

    /// Every run, newest first, as a JSON array of summaries.
    fn runs(&self, py: Python<'_>) -> PyResult<String> {
        let pipelines = self.inner.clone();
        let runs = run(py, "pipelines.runs", async move { pipelines.runs().await })?;
        Ok(Json::Array(runs.iter().map(summary_json).collect()).to_string())
    }

    /// What run `run_id` did so far, as JSON.
    fn run_state(&self, py: Python<'_>, run_id: String) -> PyResult<String> {
        let pipelines = self.inner.clone();
        let state = run(py, "pipelines.run_state", async move {
            pipelines.run_state(&run_id).await
        })?;
        Ok(state_json(&state))
    }

    /// What attempt `attempt` of `task` logged in run `run_id`.
    fn log(&self, py: Python<'_>, run_id: String, task: String, attempt: u32) -> PyResult<String> {
        let pipelines = self.inner.clone();
        run(py, "pipelines.log", async move {
            pipelines.log(&run_id, &task, attempt).await
        })
    }

    /// Document `text` as an Argo Workflows `Workflow`, as JSON; `options` (JSON) as
    /// [`ExportOptions`] reads them.
    fn export_argo(&self, text: &str, options: &str) -> PyResult<String> {
        let options: ExportOptions = serde_json::from_str(options).map_err(|e| {
            to_py(Error::invalid(
                "Argo export options",
                options,
                e.to_string(),
            ))
        })?;
        let options = options.into_argo().map_err(to_py)?;
        let pipeline = self.with_python(None)?.parse(text).map_err(to_py)?;
        let workflow = argo::export(&pipeline, text, &options).map_err(|e| {
            to_py(match e {
                trainstore_pipeline::Error::Export { .. }
                | trainstore_pipeline::Error::LiteralSecret { .. } => Error::InvalidInput {
                    what: "Argo Workflows export of pipeline",
                    value: pipeline.metadata.name.clone(),
                    reason: e.to_string(),
                },
                e => from_pipeline(e),
            })
        })?;
        Ok(workflow.to_string())
    }
}

/// A run's state, after a signal cancelled it, with a line saying how to go on.
fn interrupted(state: RunState) -> RunState {
    if state.status == trainstore_pipeline::RunStatus::Cancelled {
        tracing::warn!(
            "pipeline run {} cancelled, its state saved; resume it with ws.pipelines.resume({:?})",
            state.run_id,
            state.run_id
        );
    }
    state
}

/// `CamelCase` as `camel_case`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A run's state for Python: times as epoch milliseconds.
fn state_json(state: &RunState) -> String {
    let tasks: Vec<Json> = state
        .tasks
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "status": t.status,
                "attempts": t.attempts,
                "started_at": t.started_at.map(|at| at.timestamp_millis()),
                "finished_at": t.finished_at.map(|at| at.timestamp_millis()),
                "duration_ms": t.duration_ms,
                "outputs": t.outputs,
                "error": t.error,
            })
        })
        .collect();
    json!({
        "run_id": state.run_id,
        "pipeline": state.pipeline,
        "definition": state.definition,
        "parameters": state.parameters,
        "status": state.status,
        "started_at": state.started_at.timestamp_millis(),
        "finished_at": state.finished_at.map(|at| at.timestamp_millis()),
        "sessions": state.sessions,
        "tasks": tasks,
    })
    .to_string()
}

fn summary_json(run: &RunSummary) -> Json {
    json!({
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "definition": run.definition,
        "status": run.status,
        "started_at": run.started_at.timestamp_millis(),
        "finished_at": run.finished_at.map(|at| at.timestamp_millis()),
        "duration_ms": run.duration.map(|d| d.as_millis() as u64),
    })
}

/// The Argo export's options as the Python wrapper writes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportOptions {
    workspace: String,
    image: Option<String>,
    pipeline_path: Option<String>,
    #[serde(default)]
    volumes: Vec<ExportVolume>,
    #[serde(default)]
    env: Vec<ExportEnv>,
    service_account: Option<String>,
    image_pull_policy: Option<String>,
    #[serde(default)]
    image_pull_secrets: Vec<String>,
    parallelism: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportVolume {
    name: String,
    claim_name: String,
    mount_path: String,
    #[serde(default)]
    read_only: bool,
}

/// A literal `value`, or the `key` of Kubernetes secret `secret`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEnv {
    name: String,
    value: Option<String>,
    secret: Option<String>,
    key: Option<String>,
}

impl ExportOptions {
    fn into_argo(self) -> trainstore::Result<ArgoOptions> {
        let mut options = ArgoOptions::new(self.workspace);
        if let Some(image) = self.image {
            options.default_image = image;
        }
        if let Some(path) = self.pipeline_path {
            options.pipeline_path = path;
        }
        for v in self.volumes {
            let mut volume = ArgoVolume::new(v.name, v.claim_name, v.mount_path);
            volume.read_only = v.read_only;
            options.volumes.push(volume);
        }
        for e in self.env {
            options.env.push(match (e.value, e.secret, e.key) {
                (Some(value), None, None) => ArgoEnv::plain(e.name, value),
                (None, Some(secret), Some(key)) => ArgoEnv::secret(e.name, secret, key),
                _ => {
                    return Err(Error::invalid(
                        "Argo environment variable",
                        e.name,
                        "give a value, or a secret and its key",
                    ));
                }
            });
        }
        options.service_account = self.service_account;
        options.image_pull_policy = match self.image_pull_policy.as_deref() {
            None => None,
            Some("Always") => Some(ImagePullPolicy::Always),
            Some("IfNotPresent") => Some(ImagePullPolicy::IfNotPresent),
            Some("Never") => Some(ImagePullPolicy::Never),
            Some(other) => {
                return Err(Error::invalid(
                    "image pull policy",
                    other,
                    "Always, IfNotPresent or Never",
                ));
            }
        };
        options.image_pull_secrets = self.image_pull_secrets;
        options.parallelism = self.parallelism;
        Ok(options)
    }
}

/// Runs `python` tasks: the callable `config.function` names, from `functions` (a mapping
/// given to `run` or `resume`) or imported as `module:attr`.
#[derive(Debug)]
struct PythonTasks {
    functions: Option<Arc<Py<PyAny>>>,
}

/// What `trainstore.pipelines._call` answers, as JSON.
#[derive(Deserialize)]
struct Answer {
    /// The outputs, when the callable returned.
    outputs: Option<Outputs>,
    /// Why the attempt failed, when it did.
    error: Option<String>,
    /// Whether another attempt may succeed (an exception of the callable: yes; a function
    /// that cannot be found or a result of the wrong type: no).
    #[serde(default)]
    retryable: bool,
    /// Lines for the task's log (a traceback).
    log: Option<String>,
}

#[async_trait]
impl TaskRunner for PythonTasks {
    async fn run(&self, task: Invocation, ctx: TaskContext) -> Result<Outputs, TaskFailure> {
        let function = match task.config.get("function") {
            Some(Json::String(name)) if !name.is_empty() => name.clone(),
            other => {
                return Err(TaskFailure::permanent(format!(
                    "a python task names its callable in config.function (a name given in \
                     `functions`, or module:attr), not {}",
                    other.map_or("nothing".to_owned(), Json::to_string)
                )));
            }
        };
        let invocation = json!({
            "run_id": task.run_id,
            "name": task.name,
            "inputs": task.inputs,
            "outputs": task.outputs,
            "config": task.config,
            "parameters": task.parameters,
            "attempt": task.attempt,
        })
        .to_string();
        let functions = self.functions.clone();
        let call = tokio::task::spawn_blocking(move || {
            Python::attach(|py| -> PyResult<String> {
                let functions = functions.as_ref().map(|f| f.bind(py).clone());
                py.import("trainstore.pipelines")?
                    .getattr("_call")?
                    .call1((functions, function, invocation))?
                    .extract()
            })
        });
        let answer = tokio::select! {
            joined = call => joined
                .map_err(|e| TaskFailure::new(format!("the python task's thread failed: {e}")))?
                .map_err(|e| TaskFailure::new(format!("calling the python task failed: {e}")))?,
            () = ctx.cancel.cancelled() => {
                return Err(TaskFailure::new(
                    "cancelled; the Python callable runs on until it returns",
                ));
            }
        };
        let answer: Answer = serde_json::from_str(&answer)
            .map_err(|e| TaskFailure::permanent(format!("unreadable python task answer: {e}")))?;
        if let Some(log) = &answer.log {
            ctx.log.line(log).await;
        }
        match (answer.outputs, answer.error) {
            (Some(outputs), None) => Ok(outputs),
            (_, Some(error)) if answer.retryable => Err(TaskFailure::new(error)),
            (_, Some(error)) => Err(TaskFailure::permanent(error)),
            (None, None) => Err(TaskFailure::permanent(
                "the python task answered neither outputs nor an error",
            )),
        }
    }
}
