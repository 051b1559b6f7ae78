//! A workspace's pipelines: documents versioned in its catalog (one item `pipeline-<name>` per
//! pipeline, each version the document's text), runs persisted beside them
//! (`pipelines/runs/` of the workspace), and the built-in task types bound to the SDK
//! ([`tasks`]). The engine itself, which knows nothing of features or models, is the
//! `trainstore-pipeline` crate; `docs/pipelines.md` is the format's reference.

pub mod tasks;

use std::sync::Arc;

use serde::Serialize;
use trainstore_core::catalog::hex_sha256;
use trainstore_core::{
    DatasetName, Error, NewVersion, Result, Timestamp, UserName, Version, VersionStore as _,
};
use trainstore_pipeline::{
    CancellationToken, Executor, ExecutorOptions, ObjectRunStore, Oversize, Pipeline, RunRequest,
    RunState, RunSummary, TaskOutcome, TaskRunnerRef, TaskTypes,
};

use crate::Workspace;
pub use tasks::{BUILTIN_TASK_TYPES, SdkTasks, check_sources};

/// Where runs are kept, under the workspace's root.
const RUNS: &str = "pipelines/runs";

/// A pipeline document applied as a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedPipeline {
    pub name: String,
    pub version: Version,
    /// Whether this apply made the version (`false`: the latest version held the same text).
    pub changed: bool,
}

/// One version of a pipeline's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineVersion {
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
    /// `metadata.version` as the document writes it.
    pub document_version: Option<String>,
}

/// The pipelines of one workspace: apply, history, rollback, run, resume, and what runs did.
#[derive(Clone)]
pub struct Pipelines {
    ws: Workspace,
    /// Task types added to the built-in ones (the Python API's `python` tasks).
    extra: Vec<(String, TaskRunnerRef)>,
    options: ExecutorOptions,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines")
            .field("workspace", &self.ws.url())
            .field(
                "extra",
                &self.extra.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Pipelines {
    /// Pipelines run on this machine's budget; a task asking for more than the machine has
    /// (a document written for a cluster) runs alone with all of it, instead of refusing.
    pub(crate) fn new(ws: Workspace) -> Self {
        let mut options = ExecutorOptions::default();
        options.budget.oversize = Oversize::RunAlone;
        Pipelines {
            ws,
            extra: Vec::new(),
            options,
        }
    }

    /// Adds task type `name`, run by `runner` (a built-in name is refused).
    pub fn with_task_type(mut self, name: &str, runner: TaskRunnerRef) -> Result<Self> {
        if BUILTIN_TASK_TYPES.contains(&name) || self.extra.iter().any(|(n, _)| n == name) {
            return Err(Error::AlreadyExists {
                what: "task type",
                name: name.to_owned(),
            });
        }
        self.extra.push((name.to_owned(), runner));
        Ok(self)
    }

    /// Runs with `options` (budget, backoff, grace, default timeout).
    pub fn with_options(mut self, options: ExecutorOptions) -> Self {
        self.options = options;
        self
    }

    /// The options runs get (this machine's budget by default).
    pub fn options(&self) -> &ExecutorOptions {
        &self.options
    }

    /// The task types documents may use: the built-in ones and those added.
    pub fn task_types(&self) -> TaskTypes {
        TaskTypes::new(
            BUILTIN_TASK_TYPES
                .iter()
                .copied()
                .chain(self.extra.iter().map(|(n, _)| n.as_str())),
        )
    }

    /// Reads and checks a document (YAML or JSON); every problem is reported at once, each
    /// with its path and line.
    pub fn parse(&self, text: &str) -> Result<Pipeline> {
        let pipeline = Pipeline::parse(text, &self.task_types()).map_err(from_pipeline)?;
        tasks::check_sources(&pipeline)?;
        Ok(pipeline)
    }

    /// Stores `text` as the next version of its pipeline (named by `metadata.name`), unless
    /// the latest version holds the same text.
    pub async fn apply(&self, text: &str) -> Result<AppliedPipeline> {
        let pipeline = self.parse(text)?;
        let name = pipeline.metadata.name.clone();
        let item = item(&name)?;
        let catalog = self.ws.catalog();
        if let Some(latest) = catalog.latest(&item).await?
            && latest.metadata.get("document").and_then(|d| d.as_str()) == Some(text)
        {
            return Ok(AppliedPipeline {
                name,
                version: latest.version,
                changed: false,
            });
        }
        let mut new = NewVersion::new(self.ws.user().clone());
        new.metadata = serde_json::json!({
            "document": text,
            "document_version": pipeline.metadata.version,
        });
        let manifest = catalog.commit(&item, new).await?;
        Ok(AppliedPipeline {
            name,
            version: manifest.version,
            changed: true,
        })
    }

    /// Every version of pipeline `name`, oldest first.
    pub async fn history(&self, name: &str) -> Result<Vec<PipelineVersion>> {
        let item = item(name)?;
        let catalog = self.ws.catalog();
        let mut out = Vec::new();
        for version in catalog.versions_of(&item).await? {
            let m = catalog.get(&item, version).await?;
            out.push(PipelineVersion {
                version,
                author: m.author,
                created_at: m.created_at,
                document_version: m
                    .metadata
                    .get("document_version")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            });
        }
        if out.is_empty() {
            return Err(not_found(name));
        }
        Ok(out)
    }

    /// The text of pipeline `name` at `reference` (`latest`, `3` or `v3`) and its version.
    pub async fn document(&self, name: &str, reference: &str) -> Result<(Version, String)> {
        let item = item(name)?;
        let catalog = self.ws.catalog();
        let manifest = match reference {
            "latest" => catalog
                .latest(&item)
                .await?
                .ok_or_else(|| not_found(name))?,
            number => {
                let n = number.strip_prefix('v').unwrap_or(number);
                let n: u64 = n.parse().map_err(|_| {
                    Error::invalid(
                        "pipeline version",
                        reference,
                        "latest, or a version number (3 or v3)",
                    )
                })?;
                catalog.get(&item, Version::new(n)?).await?
            }
        };
        let text = manifest
            .metadata
            .get("document")
            .and_then(|d| d.as_str())
            .ok_or_else(|| Error::Corrupt {
                path: format!("{item}@{}", manifest.version),
                reason: "not a pipeline version: no document".into(),
            })?;
        Ok((manifest.version, text.to_owned()))
    }

    /// Makes version `version` of pipeline `name` the latest again (as a new version).
    pub async fn rollback(&self, name: &str, version: Version) -> Result<AppliedPipeline> {
        let (_, text) = self.document(name, &version.get().to_string()).await?;
        self.apply(&text).await
    }

    /// Applies `text` and runs it: parameters override the document's defaults; the run
    /// records the version it ran (`pipeline-<name>@v<N>`). Task failures end the run
    /// `failed` (see its state), they are not errors. `cancel` stops the run cleanly: running
    /// tasks are cancelled and the state saved, to be resumed.
    pub async fn run(
        &self,
        text: &str,
        run_id: Option<String>,
        parameters: serde_json::Map<String, serde_json::Value>,
        cancel: CancellationToken,
    ) -> Result<RunState> {
        let pipeline = self.parse(text)?;
        let applied = self.apply(text).await?;
        let request = RunRequest {
            run_id,
            definition: definition_id(&applied.name, applied.version),
            parameters,
        };
        self.executor()?
            .run(&pipeline, request, cancel)
            .await
            .map_err(from_pipeline)
    }

    /// Resumes run `run_id` with the definition it started with: only tasks that did not
    /// succeed run again.
    pub async fn resume(&self, run_id: &str, cancel: CancellationToken) -> Result<RunState> {
        let executor = self.executor()?;
        let state = executor.load(run_id).await.map_err(from_pipeline)?;
        let (name, version) = parse_definition_id(&state.definition)?;
        let (_, text) = self.document(&name, &version.get().to_string()).await?;
        let pipeline = self.parse(&text)?;
        executor
            .resume(&pipeline, run_id, &state.definition, cancel)
            .await
            .map_err(from_pipeline)
    }

    /// Runs one attempt of task `task` of run `run_id` of the document `text`, as one pod of
    /// an exported Argo Workflow does (`trainstore task run`): the run is created by whichever
    /// task comes first, the task's upstream tasks must have finished, a task that succeeded
    /// already does not run again. The run records the document by its content
    /// (`sha256:…`): pods cannot race to apply it as a version.
    pub async fn run_task(
        &self,
        text: &str,
        run_id: &str,
        parameters: serde_json::Map<String, serde_json::Value>,
        task: &str,
        cancel: CancellationToken,
    ) -> Result<TaskOutcome> {
        let pipeline = self.parse(text)?;
        let request = RunRequest {
            run_id: Some(run_id.to_owned()),
            definition: format!("sha256:{}", &hex_sha256(text.as_bytes())[..16]),
            parameters,
        };
        self.executor()?
            .run_task(&pipeline, request, task, cancel)
            .await
            .map_err(from_pipeline)
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunSummary>> {
        self.executor()?.history().await.map_err(from_pipeline)
    }

    /// What run `run_id` did so far.
    pub async fn run_state(&self, run_id: &str) -> Result<RunState> {
        self.executor()?.load(run_id).await.map_err(from_pipeline)
    }

    /// What attempt `attempt` of `task` logged in run `run_id`.
    pub async fn log(&self, run_id: &str, task: &str, attempt: u32) -> Result<String> {
        self.executor()?
            .log(run_id, task, attempt)
            .await
            .map_err(from_pipeline)
    }

    fn executor(&self) -> Result<Executor> {
        let mut runner = SdkTasks::new(self.ws.clone());
        for (name, extra) in &self.extra {
            runner = runner.with(name, extra.clone());
        }
        let store = Arc::new(ObjectRunStore::new(self.ws.store().clone(), RUNS));
        Ok(Executor::with_options(
            Arc::new(runner),
            store,
            self.options.clone(),
        ))
    }
}

/// Reads and checks a document against the built-in task types, with no workspace: what
/// `pipeline validate` and `pipeline export` check.
pub fn parse_builtin(text: &str) -> Result<Pipeline> {
    let types = TaskTypes::new(BUILTIN_TASK_TYPES.iter().copied());
    let pipeline = Pipeline::parse(text, &types).map_err(from_pipeline)?;
    check_sources(&pipeline)?;
    Ok(pipeline)
}

/// The catalog item holding pipeline `name`'s versions.
fn item(name: &str) -> Result<DatasetName> {
    DatasetName::new(format!("pipeline-{name}"))
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        what: "pipeline",
        name: name.to_owned(),
    }
}

/// How a run records the definition it ran.
fn definition_id(name: &str, version: Version) -> String {
    format!("pipeline-{name}@v{}", version.get())
}

fn parse_definition_id(id: &str) -> Result<(String, Version)> {
    id.strip_prefix("pipeline-")
        .and_then(|rest| rest.rsplit_once("@v"))
        .and_then(|(name, v)| Some((name.to_owned(), Version::new(v.parse().ok()?).ok()?)))
        .ok_or_else(|| Error::Corrupt {
            path: id.to_owned(),
            reason: "a run's definition is not pipeline-<name>@v<N>".into(),
        })
}

/// The pipeline crate's errors in the facade's terms.
pub fn from_pipeline(e: trainstore_pipeline::Error) -> Error {
    use trainstore_pipeline::Error as P;
    match e {
        P::Invalid(report) => Error::InvalidInput {
            what: "pipeline document",
            value: format!("{} problem(s)", report.issues.len()),
            reason: format!("\n{report}"),
        },
        P::RunNotFound(run) => Error::NotFound {
            what: "pipeline run",
            name: run,
        },
        P::RunExists(run) => Error::AlreadyExists {
            what: "pipeline run",
            name: run,
        },
        P::Corrupt { run, reason } => Error::Corrupt { path: run, reason },
        P::Io { .. } | P::ObjectStore(_) => Error::Internal {
            operation: "pipeline run store".into(),
            reason: e.to_string(),
        },
        P::UnknownParameter { name, declared } => Error::InvalidInput {
            what: "pipeline parameter",
            value: name,
            reason: format!("the pipeline does not declare it; it declares: {declared}"),
        },
        e @ (P::Export { .. } | P::LiteralSecret { .. }) => Error::Config {
            key: "pipeline export".into(),
            reason: e.to_string(),
        },
        other => Error::Config {
            key: "pipeline run".into(),
            reason: other.to_string(),
        },
    }
}
