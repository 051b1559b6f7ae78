//! The DAG executor: runs a validated [`Pipeline`] with a caller's
//! [`TaskRunner`](crate::TaskRunner), tasks in parallel within a resource [`Budget`], highest
//! priority first, with retries, timeouts, cancellation, persisted state and resume.
//!
//! Scheduling is O(tasks + edges): each task keeps a count of the upstream tasks it still
//! waits for, decremented once per edge when a task finishes; tasks whose count reaches zero
//! enter a priority queue. Nothing is rescanned per completion.
//!
//! The rules:
//! - **Budget.** A task starts when what it takes fits in what is free. Ready tasks start in
//!   priority order (higher first, then document order) and strictly so: when the first
//!   does not fit, nothing behind it starts, so a large task is never starved by small ones.
//! - **Retries.** A failed attempt is tried again after a backoff (exponential with full
//!   jitter, capped), up to the task's `retries`, unless the failure is permanent
//!   ([`crate::TaskFailure::permanent`]). The task keeps its resources while it waits.
//! - **Timeouts.** An attempt past the task's `timeout` has its token cancelled, is dropped
//!   after the grace period, and counts as a failed attempt.
//! - **Failure.** A failed task's dependents do not start (they stay pending); independent
//!   branches go on; the run ends `failed`.
//! - **`when`.** Evaluated when a task's upstream tasks are done; false skips the task, and a
//!   skipped task's dependents are skipped too (they would read what it never wrote).
//! - **Cancellation.** Cancelling the run's token stops new starts and cancels running
//!   attempts (recorded `cancelled`); the run ends `cancelled` and can be resumed.
//! - **Resume.** Tasks that succeeded keep their recorded outputs; every other task runs
//!   again. A process killed mid-run leaves its run `running` with the journal up to the
//!   kill; resume it the same way.
//! - **One task at a time.** [`Executor::run_task`] runs one attempt of one task of a run,
//!   as each pod of an Argo workflow does: the orchestrator schedules, retries and bounds
//!   attempts, pods share only the run store, and the rendering, `when` and recording are
//!   the ones above.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use serde_json::Value as Json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trainstore_core::retry::Backoff;

use crate::budget::{Amount, Budget, Oversize};
use crate::document::{Pipeline, Source};
use crate::error::{Error, Result};
use crate::refs::{Scope, Template};
use crate::runner::{Invocation, LogSink, Outputs, TaskContext, TaskFailure, TaskRunnerRef};
use crate::state::{Change, Event, RunState, RunStatus, RunSummary, TaskState, TaskStatus};
use crate::store::{RunStore, RunStoreRef, check_name, history, load_run};

/// How the executor runs tasks.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// What may be in use at once; [`Budget::from_machine`] by default.
    pub budget: Budget,
    /// The wait before retry `n`: up to `base · 2ⁿ`, at most `max` (1 s and 5 min by default).
    pub backoff: Backoff,
    /// How long a cancelled attempt (timed out, or the run cancelled) may take to return
    /// before it is dropped (10 s by default).
    pub grace: Duration,
    /// The timeout of tasks whose document gives none (none by default).
    pub default_timeout: Option<Duration>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            budget: Budget::from_machine(),
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            grace: Duration::from_secs(10),
            default_timeout: None,
        }
    }
}

/// What to run: parameters and the names it is recorded under.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The run's id; generated (`<pipeline>-<UTC time>-<random>`) when `None`.
    pub run_id: Option<String>,
    /// The definition being run: a version or content hash the caller gives, recorded and
    /// checked on resume.
    pub definition: String,
    /// Parameters overriding the document's defaults; each must be declared.
    pub parameters: serde_json::Map<String, Json>,
}

/// Runs pipelines, persisting every run in a [`crate::RunStore`].
#[derive(Debug, Clone)]
pub struct Executor {
    runner: TaskRunnerRef,
    store: RunStoreRef,
    options: ExecutorOptions,
}

impl Executor {
    /// An executor with the default options.
    pub fn new(runner: TaskRunnerRef, store: RunStoreRef) -> Executor {
        Executor::with_options(runner, store, ExecutorOptions::default())
    }

    /// An executor with `options`.
    pub fn with_options(
        runner: TaskRunnerRef,
        store: RunStoreRef,
        options: ExecutorOptions,
    ) -> Executor {
        Executor {
            runner,
            store,
            options,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ExecutorOptions {
        &self.options
    }

    /// Starts a run and drives it to its end. Task failures do not make this an error: the
    /// returned state says `failed` and which task failed why. Errors are for runs that
    /// cannot start (an unknown parameter, a task larger than the budget, a run id in use)
    /// and for a run store that fails.
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        request: RunRequest,
        cancel: CancellationToken,
    ) -> Result<RunState> {
        let parameters = effective_parameters(pipeline, request.parameters)?;
        let requests = self.requests(pipeline)?;
        let run_id = match request.run_id {
            Some(id) => id,
            None => generated_id(&pipeline.metadata.name),
        };
        check_name("run id", &run_id)?;
        let state = new_state(pipeline, &run_id, &request.definition, parameters);
        if !self
            .store
            .create_snapshot(&run_id, serialize(&state)?)
            .await?
        {
            return Err(Error::RunExists(run_id));
        }
        tracing::info!(run = %run_id, pipeline = %pipeline.metadata.name, "run started");
        self.drive(pipeline, state, requests, cancel).await
    }

    /// Resumes run `run_id` of `pipeline`: tasks that succeeded are not run again (their
    /// recorded outputs serve references), every other task runs. `definition` must be the
    /// one the run started with.
    pub async fn resume(
        &self,
        pipeline: &Pipeline,
        run_id: &str,
        definition: &str,
        cancel: CancellationToken,
    ) -> Result<RunState> {
        let mut state = load_run(self.store.as_ref(), run_id).await?;
        check_definition(&state, definition)?;
        let requests = self.requests(pipeline)?;
        // Tasks of the definition the state lacks (it cannot: the definition is the same)
        // would be added pending; tasks are matched by name.
        let mut fresh = RunState::new(
            &state.run_id,
            &state.pipeline,
            &state.definition,
            std::mem::take(&mut state.parameters),
            pipeline.tasks.iter().map(|t| t.name.as_str()),
        );
        fresh.started_at = state.started_at;
        fresh.sessions = state.sessions + 1;
        fresh.seq = state.seq;
        for task in &mut fresh.tasks {
            if let Some(old) = state.task(&task.name) {
                task.attempts = old.attempts;
                if old.status == TaskStatus::Succeeded {
                    *task = old.clone();
                }
            }
        }
        self.snapshot(&fresh).await?;
        tracing::info!(run = %run_id, session = fresh.sessions, "run resumed");
        self.drive(pipeline, fresh, requests, cancel).await
    }

    /// Runs one attempt of task `task` of run `request.run_id`, as one pod of an Argo
    /// workflow does ([`crate::argo`]): the orchestrator decides when (after the task's
    /// upstream tasks), how often and for how long; the run store is all that pods share.
    ///
    /// - The run is created when no pod created it yet; of several pods creating it at once
    ///   one wins and the others read its state. A run recorded with another definition or
    ///   other parameters (the document's defaults overridden by `request.parameters`) is
    ///   refused ([`Error::DefinitionChanged`], [`Error::ParametersChanged`]).
    /// - A task recorded `succeeded` does not run again ([`TaskOutcome::AlreadySucceeded`]),
    ///   nor does one recorded `skipped`.
    /// - Every upstream task must be recorded `succeeded` or `skipped`, or this is an
    ///   [`Error::UpstreamUnfinished`] naming them. A skipped upstream task, or a `when`
    ///   that is false, skips the task (recorded, [`TaskOutcome::Skipped`]).
    /// - Otherwise one attempt runs, numbered after the attempts recorded so far, rendered
    ///   and recorded exactly as [`Executor::run`] does, its log kept per attempt. The
    ///   task's `timeout` (or [`ExecutorOptions::default_timeout`]) applies as in a local
    ///   run, so a timed-out attempt is recorded `failed` before the orchestrator's own
    ///   deadline kills the pod; `retries` do not apply (each retry is a new pod).
    /// - When the task's event completes the run (every task succeeded or skipped, read
    ///   again after the event is appended), the run is recorded `succeeded`. A run with a
    ///   failed task stays `running` in the store: which failures are final is the
    ///   orchestrator's to say.
    ///
    /// Errors are for calls that cannot run the task (no run id, an unknown task, a
    /// mismatched run, an unfinished upstream task) and for a run store that fails; a task
    /// that fails is [`TaskOutcome::Failed`].
    pub async fn run_task(
        &self,
        pipeline: &Pipeline,
        request: RunRequest,
        task: &str,
        cancel: CancellationToken,
    ) -> Result<TaskOutcome> {
        let run_id = request.run_id.ok_or(Error::RunIdRequired)?;
        check_name("run id", &run_id)?;
        let i = pipeline
            .tasks
            .iter()
            .position(|t| t.name == task)
            .ok_or_else(|| Error::UnknownTask {
                pipeline: pipeline.metadata.name.clone(),
                task: task.to_string(),
            })?;
        let parameters = effective_parameters(pipeline, request.parameters)?;
        let mut state = self
            .open(pipeline, &run_id, &request.definition, parameters)
            .await?;
        let recorded = |state: &RunState| {
            state.task(task).cloned().ok_or_else(|| Error::Corrupt {
                run: run_id.clone(),
                reason: format!("its state has no task {task:?}, which its definition has"),
            })
        };
        match recorded(&state)?.status {
            TaskStatus::Succeeded => return Ok(TaskOutcome::AlreadySucceeded(recorded(&state)?)),
            TaskStatus::Skipped => return Ok(TaskOutcome::Skipped(recorded(&state)?)),
            _ => {}
        }
        let mut upstream_skipped = false;
        let mut unfinished = Vec::new();
        for &u in &pipeline.graph.upstream[i] {
            let name = &pipeline.tasks[u as usize].name;
            match state.task(name).map(|t| t.status) {
                Some(TaskStatus::Succeeded) => {}
                Some(TaskStatus::Skipped) => upstream_skipped = true,
                status => unfinished.push(format!(
                    "{name:?} ({})",
                    status.map_or("unknown".to_string(), |s| format!("{s:?}").to_lowercase())
                )),
            }
        }
        if !unfinished.is_empty() {
            return Err(Error::UpstreamUnfinished {
                run: run_id,
                task: task.to_string(),
                upstream: unfinished.join(", "),
            });
        }
        let outputs = state.outputs();
        let mut journal = Journal::default();
        let outcome = match verdict(pipeline, i, upstream_skipped, &state, &outputs) {
            Verdict::Skip(change) => {
                journal.record(&mut state, change)?;
                None
            }
            Verdict::Fail(change) => {
                journal.record(&mut state, change)?;
                Some(true)
            }
            Verdict::Run => match invocation(pipeline, i, &state, &outputs) {
                Err(error) => {
                    journal.record(
                        &mut state,
                        Change::Failed {
                            task: task.to_string(),
                            error,
                        },
                    )?;
                    Some(true)
                }
                Ok(invocation) => {
                    self.attempt_one(pipeline, i, &mut state, &mut journal, invocation, cancel)
                        .await?
                }
            },
        };
        journal.flush(self.store.as_ref(), &run_id).await?;
        let mine = recorded(&state)?;
        if mine.status == TaskStatus::Succeeded || mine.status == TaskStatus::Skipped {
            self.finish_if_done(&run_id).await?;
        }
        Ok(match (mine.status, outcome) {
            (TaskStatus::Succeeded, _) => TaskOutcome::Succeeded(mine),
            (TaskStatus::Skipped, _) => TaskOutcome::Skipped(mine),
            (TaskStatus::Cancelled, _) => TaskOutcome::Cancelled(mine),
            (_, permanent) => TaskOutcome::Failed {
                state: mine,
                permanent: permanent.unwrap_or(false),
            },
        })
    }

    /// Runs one attempt of task `i`, journalling its progress as it goes; `Some(permanent)`
    /// when it failed, `None` otherwise.
    async fn attempt_one(
        &self,
        pipeline: &Pipeline,
        i: usize,
        state: &mut RunState,
        journal: &mut Journal,
        invocation: Invocation,
        cancel: CancellationToken,
    ) -> Result<Option<bool>> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let attempts = self.attempts(pipeline, i, state, 1, cancel, tx);
        let mut work = std::pin::pin!(attempts.run(invocation));
        let outcome = loop {
            tokio::select! {
                biased;
                Some(progress) = rx.recv() => {
                    journal.record(state, progress.change(pipeline))?;
                    journal.flush(self.store.as_ref(), &state.run_id).await?;
                }
                outcome = &mut work => break outcome,
            }
        };
        while let Ok(progress) = rx.try_recv() {
            journal.record(state, progress.change(pipeline))?;
        }
        let failed = match &outcome {
            Outcome::Failed { permanent, .. } => Some(*permanent),
            _ => None,
        };
        let name = pipeline.tasks[i].name.clone();
        journal.record(state, outcome.change(&state.run_id, name))?;
        Ok(failed)
    }

    /// Run `run_id`'s state, the run created first when it does not exist; refused when it
    /// was recorded with another definition or other parameters.
    async fn open(
        &self,
        pipeline: &Pipeline,
        run_id: &str,
        definition: &str,
        parameters: serde_json::Map<String, Json>,
    ) -> Result<RunState> {
        let state = match load_run(self.store.as_ref(), run_id).await {
            Ok(state) => state,
            Err(Error::RunNotFound(_)) => {
                let fresh = new_state(pipeline, run_id, definition, parameters.clone());
                if self
                    .store
                    .create_snapshot(run_id, serialize(&fresh)?)
                    .await?
                {
                    tracing::info!(run = %run_id, pipeline = %pipeline.metadata.name, "run started by a task");
                    return Ok(fresh);
                }
                // Another pod created it first: go on with its state.
                load_run(self.store.as_ref(), run_id).await?
            }
            Err(e) => return Err(e),
        };
        check_definition(&state, definition)?;
        check_parameters(&state, &parameters)?;
        Ok(state)
    }

    /// Records run `run_id` `succeeded` if, read now, every task succeeded or was skipped.
    /// Pods finishing at once each read after their own append, so the last to append
    /// sees every task done (and two recording it is harmless).
    async fn finish_if_done(&self, run_id: &str) -> Result<()> {
        let mut state = load_run(self.store.as_ref(), run_id).await?;
        let done = state
            .tasks
            .iter()
            .all(|t| matches!(t.status, TaskStatus::Succeeded | TaskStatus::Skipped));
        if !done || state.status != RunStatus::Running {
            return Ok(());
        }
        let mut journal = Journal::default();
        journal.record(
            &mut state,
            Change::Finished {
                status: RunStatus::Succeeded,
            },
        )?;
        journal.flush(self.store.as_ref(), run_id).await?;
        tracing::info!(run = %run_id, "run ended: every task succeeded or was skipped");
        Ok(())
    }

    /// Task `i`'s attempt loop: `tries` attempts at most, numbered after those recorded in
    /// `state`, cancelled with `cancel`, reporting to `progress`.
    fn attempts(
        &self,
        pipeline: &Pipeline,
        i: usize,
        state: &RunState,
        tries: u32,
        cancel: CancellationToken,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Attempts {
        let task = &pipeline.tasks[i];
        Attempts {
            task: i,
            runner: self.runner.clone(),
            store: self.store.clone(),
            before: state.task(&task.name).map_or(0, |t| t.attempts),
            tries,
            timeout: task.timeout.or(self.options.default_timeout),
            backoff: self.options.backoff,
            grace: self.options.grace,
            run_cancel: cancel,
            progress,
            declared: task.outputs.iter().map(|o| o.name.clone()).collect(),
        }
    }

    /// A stored run's state.
    pub async fn load(&self, run_id: &str) -> Result<RunState> {
        load_run(self.store.as_ref(), run_id).await
    }

    /// Every stored run, newest first.
    pub async fn history(&self) -> Result<Vec<RunSummary>> {
        history(self.store.as_ref()).await
    }

    /// What attempt `attempt` of `task` logged in run `run_id`.
    pub async fn log(&self, run_id: &str, task: &str, attempt: u32) -> Result<String> {
        check_name("run id", run_id)?;
        check_name("task", task)?;
        self.store.read_log(run_id, task, attempt).await
    }

    /// What each task takes of the budget; tasks larger than the whole budget are an error
    /// (or take the whole budget, with [`Oversize::RunAlone`]).
    fn requests(&self, pipeline: &Pipeline) -> Result<Vec<Amount>> {
        let budget = &self.options.budget;
        let mut too_large = Vec::new();
        let requests = pipeline
            .tasks
            .iter()
            .map(|task| {
                let request = budget.request(&task.resources);
                if request.fits_in(&budget.total) {
                    request
                } else {
                    if budget.oversize == Oversize::Reject {
                        too_large.push(format!("{} needs {request}", task.name));
                    }
                    request.min(&budget.total)
                }
            })
            .collect();
        if too_large.is_empty() {
            Ok(requests)
        } else {
            Err(Error::OverBudget(format!(
                "{} of the pipeline need more than the whole budget ({}), so they could never start: {}; raise the budget or let such tasks run alone",
                if too_large.len() == 1 {
                    "a task"
                } else {
                    "tasks"
                },
                budget.total,
                too_large.join("; ")
            )))
        }
    }

    async fn snapshot(&self, state: &RunState) -> Result<()> {
        self.store
            .put_snapshot(&state.run_id, serialize(state)?)
            .await
    }

    async fn drive(
        &self,
        pipeline: &Pipeline,
        state: RunState,
        requests: Vec<Amount>,
        cancel: CancellationToken,
    ) -> Result<RunState> {
        let mut run = Drive::new(self, pipeline, state, requests, cancel);
        run.go().await?;
        let mut state = run.state;
        state.reindex();
        self.snapshot(&state).await?;
        tracing::info!(run = %state.run_id, status = ?state.status, "run ended");
        Ok(state)
    }
}

/// How [`Executor::run_task`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// The attempt succeeded; its outputs are recorded.
    Succeeded(TaskState),
    /// The task was recorded `succeeded` already: nothing ran.
    AlreadySucceeded(TaskState),
    /// The task is skipped (its `when` is false, or an upstream task was skipped), now or
    /// before.
    Skipped(TaskState),
    /// The attempt failed (or the task could not be rendered, or its `when` evaluated).
    Failed {
        /// The task's record.
        state: TaskState,
        /// Whether no retry can fix it ([`crate::TaskFailure::permanent`], an unrenderable
        /// task): `trainstore task run` exits with
        /// [`crate::argo::PERMANENT_FAILURE_EXIT_CODE`] then, so Argo does not retry.
        permanent: bool,
    },
    /// The attempt was stopped by the cancellation token (the pod told to stop).
    Cancelled(TaskState),
}

impl TaskOutcome {
    /// The task's record.
    pub fn state(&self) -> &TaskState {
        match self {
            TaskOutcome::Succeeded(state)
            | TaskOutcome::AlreadySucceeded(state)
            | TaskOutcome::Skipped(state)
            | TaskOutcome::Failed { state, .. }
            | TaskOutcome::Cancelled(state) => state,
        }
    }
}

/// The document's parameters overridden by `given`, each of which must be declared.
fn effective_parameters(
    pipeline: &Pipeline,
    given: serde_json::Map<String, Json>,
) -> Result<serde_json::Map<String, Json>> {
    let mut parameters = pipeline.parameters.clone();
    for (name, value) in given {
        if !pipeline.parameters.contains_key(&name) {
            return Err(Error::UnknownParameter {
                name,
                declared: pipeline
                    .parameters
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        parameters.insert(name, value);
    }
    Ok(parameters)
}

/// A new run of every task of `pipeline`, all pending.
fn new_state(
    pipeline: &Pipeline,
    run_id: &str,
    definition: &str,
    parameters: serde_json::Map<String, Json>,
) -> RunState {
    RunState::new(
        run_id,
        &pipeline.metadata.name,
        definition,
        parameters,
        pipeline.tasks.iter().map(|t| t.name.as_str()),
    )
}

/// A snapshot's bytes.
fn serialize(state: &RunState) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(state).map_err(|e| Error::Corrupt {
        run: state.run_id.clone(),
        reason: e.to_string(),
    })
}

fn check_definition(state: &RunState, definition: &str) -> Result<()> {
    if state.definition == definition {
        Ok(())
    } else {
        Err(Error::DefinitionChanged {
            run: state.run_id.clone(),
            recorded: state.definition.clone(),
            given: definition.to_string(),
        })
    }
}

fn check_parameters(state: &RunState, given: &serde_json::Map<String, Json>) -> Result<()> {
    let mut names: Vec<&String> = state.parameters.keys().chain(given.keys()).collect();
    names.sort();
    names.dedup();
    let show = |v: Option<&Json>| v.map_or("nothing".to_string(), Json::to_string);
    let differences: Vec<String> = names
        .into_iter()
        .filter(|n| state.parameters.get(*n) != given.get(*n))
        .map(|n| {
            format!(
                "{n}: recorded {}, given {}",
                show(state.parameters.get(n)),
                show(given.get(n))
            )
        })
        .collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::ParametersChanged {
            run: state.run_id.clone(),
            differences: differences.join("; "),
        })
    }
}

/// A new run id for `pipeline`: `<pipeline>-<UTC time>-<random>`, what a run gets when its
/// request names none (a caller that must know the id before the run starts makes it here).
pub fn generated_id(pipeline: &str) -> String {
    let prefix: String = pipeline.chars().take(40).collect();
    let prefix = if prefix.is_empty() {
        "run".to_string()
    } else {
        prefix
    };
    format!(
        "{prefix}-{}-{:06x}",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// What an attempt loop reports to the driver.
enum Progress {
    Started { task: usize, attempt: u32 },
    Retrying { task: usize, error: String },
}

impl Progress {
    /// The change to record.
    fn change(self, pipeline: &Pipeline) -> Change {
        let name = |i: usize| pipeline.tasks[i].name.clone();
        match self {
            Progress::Started { task, attempt } => Change::Started {
                task: name(task),
                attempt,
            },
            Progress::Retrying { task, error } => Change::Retrying {
                task: name(task),
                error,
            },
        }
    }
}

/// How a task's attempts ended.
enum Outcome {
    Succeeded(Outputs),
    /// The last attempt's error, and whether it was permanent (no retry could fix it).
    Failed {
        error: String,
        permanent: bool,
    },
    Cancelled,
}

impl Outcome {
    /// The change that records it for `task`.
    fn change(self, run: &str, task: String) -> Change {
        match self {
            Outcome::Succeeded(outputs) => Change::Succeeded { task, outputs },
            Outcome::Failed { error, .. } => {
                tracing::warn!(run = %run, task = %task, "task failed: {error}");
                Change::Failed { task, error }
            }
            Outcome::Cancelled => Change::Cancelled { task },
        }
    }
}

/// What a task whose upstream tasks are done does next.
enum Verdict {
    /// It runs.
    Run,
    /// It is skipped: its `when` is false, or an upstream task was skipped.
    Skip(Change),
    /// It fails without running: its `when` cannot be evaluated.
    Fail(Change),
}

/// Decides task `i`'s fate once its upstream tasks are done, `upstream_skipped` saying
/// whether one of them was skipped; `outputs` are the recorded outputs of succeeded tasks.
fn verdict(
    pipeline: &Pipeline,
    i: usize,
    upstream_skipped: bool,
    state: &RunState,
    outputs: &HashMap<String, Outputs>,
) -> Verdict {
    let task = &pipeline.tasks[i];
    let skip = |reason: String| {
        Verdict::Skip(Change::Skipped {
            task: task.name.clone(),
            reason,
        })
    };
    if upstream_skipped {
        return skip("an upstream task was skipped".to_string());
    }
    let Some(condition) = &task.condition else {
        return Verdict::Run;
    };
    let scope = Scope {
        parameters: &state.parameters,
        outputs,
    };
    match condition.evaluate(&scope) {
        Ok(true) => Verdict::Run,
        Ok(false) => skip(format!(
            "`when: {}` is false",
            task.when.as_deref().unwrap_or_default()
        )),
        Err(e) => Verdict::Fail(Change::Failed {
            task: task.name.clone(),
            error: format!("`when` could not be evaluated: {e}"),
        }),
    }
}

/// Events applied to a state but not yet journalled.
#[derive(Default)]
struct Journal {
    records: Vec<u8>,
    first: u64,
}

impl Journal {
    /// Applies `change` to `state` now and queues it for the journal.
    fn record(&mut self, state: &mut RunState, change: Change) -> Result<()> {
        let event = Event {
            seq: state.seq + 1,
            at: Utc::now(),
            change,
        };
        if self.records.is_empty() {
            self.first = event.seq;
        }
        serde_json::to_writer(&mut self.records, &event).map_err(|e| Error::Corrupt {
            run: state.run_id.clone(),
            reason: e.to_string(),
        })?;
        self.records.push(b'\n');
        state.apply(&event);
        Ok(())
    }

    /// Appends what is queued to run `run`'s journal.
    async fn flush(&mut self, store: &dyn RunStore, run: &str) -> Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.records);
        store.append_journal(run, self.first, records).await
    }
}

/// One run being driven.
struct Drive<'a> {
    executor: &'a Executor,
    pipeline: &'a Pipeline,
    state: RunState,
    requests: Vec<Amount>,
    cancel: CancellationToken,
    /// Upstream tasks each task still waits for.
    waiting: Vec<usize>,
    /// Whether an upstream task of each was skipped.
    upstream_skipped: Vec<bool>,
    ready: BinaryHeap<(i32, Reverse<usize>)>,
    in_use: Amount,
    running: usize,
    outputs: HashMap<String, Outputs>,
    journal: Journal,
    set: JoinSet<Outcome>,
    ids: HashMap<tokio::task::Id, usize>,
    tx: mpsc::UnboundedSender<Progress>,
    rx: mpsc::UnboundedReceiver<Progress>,
}

impl<'a> Drive<'a> {
    fn new(
        executor: &'a Executor,
        pipeline: &'a Pipeline,
        state: RunState,
        requests: Vec<Amount>,
        cancel: CancellationToken,
    ) -> Drive<'a> {
        let n = pipeline.tasks.len();
        let done: Vec<bool> = pipeline
            .tasks
            .iter()
            .map(|t| {
                state
                    .task(&t.name)
                    .is_some_and(|s| s.status == TaskStatus::Succeeded)
            })
            .collect();
        let waiting = (0..n)
            .map(|i| {
                pipeline.graph.upstream[i]
                    .iter()
                    .filter(|&&u| !done[u as usize])
                    .count()
            })
            .collect();
        let outputs = state.outputs();
        let (tx, rx) = mpsc::unbounded_channel();
        Drive {
            executor,
            pipeline,
            state,
            requests,
            cancel,
            waiting,
            upstream_skipped: vec![false; n],
            ready: BinaryHeap::new(),
            in_use: Amount {
                cpu_millis: 0,
                memory_bytes: 0,
                gpu: 0,
            },
            running: 0,
            outputs,
            journal: Journal::default(),
            set: JoinSet::new(),
            ids: HashMap::new(),
            tx,
            rx,
        }
    }

    fn name(&self, i: usize) -> &'a str {
        &self.pipeline.tasks[i].name
    }

    /// Applies a change now and queues it for the journal.
    fn record(&mut self, change: Change) -> Result<()> {
        self.journal.record(&mut self.state, change)
    }

    async fn flush(&mut self) -> Result<()> {
        self.journal
            .flush(self.executor.store.as_ref(), &self.state.run_id)
            .await
    }

    async fn go(&mut self) -> Result<()> {
        let n = self.pipeline.tasks.len();
        let mut settle = VecDeque::new();
        for i in 0..n {
            let done = self
                .state
                .task(self.name(i))
                .is_some_and(|t| t.status == TaskStatus::Succeeded);
            if !done && self.waiting[i] == 0 {
                settle.push_back(i);
            }
        }
        self.settle(settle)?;
        let mut cancelled = self.cancel.is_cancelled();
        loop {
            // What finished is journalled before what depends on it starts: a process killed
            // after a task began never leaves that task's upstream unrecorded.
            self.flush().await?;
            if !cancelled {
                self.start_ready()?;
            }
            if self.running == 0 {
                break;
            }
            tokio::select! {
                biased;
                Some(progress) = self.rx.recv() => self.progress(progress)?,
                Some(joined) = self.set.join_next_with_id() => {
                    while let Ok(progress) = self.rx.try_recv() {
                        self.progress(progress)?;
                    }
                    let (task, outcome) = match joined {
                        Ok((id, outcome)) => (self.ids.remove(&id), outcome),
                        Err(e) => (
                            self.ids.remove(&e.id()),
                            Outcome::Failed {
                                error: format!("the task's attempt loop ended abnormally: {e}"),
                                permanent: false,
                            },
                        ),
                    };
                    if let Some(task) = task {
                        self.finished(task, outcome)?;
                    }
                }
                _ = self.cancel.cancelled(), if !cancelled => cancelled = true,
            }
        }
        // The token, not only the flag: a task that stops at once when cancelled can end the
        // loop before its `select!` sees the cancellation.
        let status = if self
            .state
            .tasks
            .iter()
            .all(|t| matches!(t.status, TaskStatus::Succeeded | TaskStatus::Skipped))
        {
            RunStatus::Succeeded
        } else if cancelled || self.cancel.is_cancelled() {
            RunStatus::Cancelled
        } else {
            RunStatus::Failed
        };
        self.record(Change::Finished { status })?;
        self.flush().await
    }

    fn progress(&mut self, progress: Progress) -> Result<()> {
        self.record(progress.change(self.pipeline))
    }

    /// Tasks whose upstream tasks are all done: skipped, failed (a `when` that cannot be
    /// evaluated) or queued to start. Skips propagate through the same queue.
    fn settle(&mut self, mut queue: VecDeque<usize>) -> Result<()> {
        while let Some(i) = queue.pop_front() {
            let task = &self.pipeline.tasks[i];
            let verdict = verdict(
                self.pipeline,
                i,
                self.upstream_skipped[i],
                &self.state,
                &self.outputs,
            );
            match verdict {
                Verdict::Run => self.ready.push((task.priority, Reverse(i))),
                Verdict::Fail(change) => self.record(change)?,
                Verdict::Skip(change) => {
                    self.record(change)?;
                    for &d in &self.pipeline.graph.downstream[i] {
                        let d = d as usize;
                        self.upstream_skipped[d] = true;
                        self.waiting[d] -= 1;
                        if self.waiting[d] == 0 {
                            queue.push_back(d);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn start_ready(&mut self) -> Result<()> {
        let total = self.executor.options.budget.total;
        while let Some(&(_, Reverse(i))) = self.ready.peek() {
            let request = self.requests[i];
            if !self.in_use.plus(&request).fits_in(&total) {
                break;
            }
            self.ready.pop();
            match self.invocation(i) {
                Ok(invocation) => {
                    self.in_use = self.in_use.plus(&request);
                    self.running += 1;
                    let attempt = self.spawn(i, invocation);
                    self.ids.insert(attempt, i);
                }
                Err(e) => self.record(Change::Failed {
                    task: self.name(i).to_string(),
                    error: e,
                })?,
            }
        }
        Ok(())
    }

    fn finished(&mut self, i: usize, outcome: Outcome) -> Result<()> {
        self.running -= 1;
        self.in_use = self.in_use.minus(&self.requests[i]);
        let name = self.name(i).to_string();
        if let Outcome::Succeeded(outputs) = &outcome {
            self.outputs.insert(name.clone(), outputs.clone());
        }
        let succeeded = matches!(outcome, Outcome::Succeeded(_));
        self.record(outcome.change(&self.state.run_id, name))?;
        if succeeded {
            let mut queue = VecDeque::new();
            for &d in &self.pipeline.graph.downstream[i] {
                let d = d as usize;
                self.waiting[d] -= 1;
                if self.waiting[d] == 0 {
                    queue.push_back(d);
                }
            }
            self.settle(queue)?;
        }
        Ok(())
    }

    /// The task with every reference rendered.
    fn invocation(&self, i: usize) -> Result<Invocation, String> {
        invocation(self.pipeline, i, &self.state, &self.outputs)
    }

    /// Starts the task's attempt loop.
    fn spawn(&mut self, i: usize, invocation: Invocation) -> tokio::task::Id {
        let task = &self.pipeline.tasks[i];
        let attempts = self.executor.attempts(
            self.pipeline,
            i,
            &self.state,
            task.retries + 1,
            self.cancel.clone(),
            self.tx.clone(),
        );
        self.set.spawn(attempts.run(invocation)).id()
    }
}

/// Task `i` of `pipeline` with every reference rendered against the run's parameters and
/// the recorded `outputs` of the tasks before it.
fn invocation(
    pipeline: &Pipeline,
    i: usize,
    state: &RunState,
    recorded: &HashMap<String, Outputs>,
) -> Result<Invocation, String> {
    let task = &pipeline.tasks[i];
    let scope = Scope {
        parameters: &state.parameters,
        outputs: recorded,
    };
    let render = |text: &str| Template::parse(text).and_then(|t| t.render(&scope));
    let mut inputs = BTreeMap::new();
    for input in &task.inputs {
        let value = match &input.source {
            Source::Parameter => state
                .parameters
                .get(&input.name)
                .cloned()
                .ok_or_else(|| format!("input {:?}: no parameter of that name", input.name))?,
            Source::Output { task, output } => {
                scope.lookup(&crate::refs::Reference::TaskOutput {
                    task: task.clone(),
                    output: output.clone(),
                })?
            }
            Source::Path(text) => {
                render(text).map_err(|e| format!("input {:?}: {e}", input.name))?
            }
        };
        inputs.insert(input.name.clone(), value);
    }
    let mut outputs = BTreeMap::new();
    for output in &task.outputs {
        if let Some(dest) = &output.destination {
            let text = Template::parse(dest)
                .and_then(|t| t.render_text(&scope))
                .map_err(|e| format!("output {:?}: {e}", output.name))?;
            outputs.insert(output.name.clone(), text);
        }
    }
    let mut config = serde_json::Map::new();
    for (key, value) in &task.config {
        config.insert(
            key.clone(),
            render_json(value, &scope).map_err(|e| format!("config.{key}: {e}"))?,
        );
    }
    Ok(Invocation {
        run_id: state.run_id.clone(),
        name: task.name.clone(),
        task_type: task.task_type.clone(),
        image: task.image.clone(),
        resources: task.resources,
        inputs,
        outputs,
        config,
        parameters: state.parameters.clone(),
        attempt: 0,
    })
}

/// Renders the strings inside a config value.
fn render_json(value: &Json, scope: &Scope<'_>) -> Result<Json, String> {
    Ok(match value {
        Json::String(s) => Template::parse(s)?.render(scope)?,
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| render_json(v, scope))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, scope)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// One task's attempts, run in a task of their own.
struct Attempts {
    task: usize,
    runner: TaskRunnerRef,
    store: RunStoreRef,
    before: u32,
    tries: u32,
    timeout: Option<Duration>,
    backoff: Backoff,
    grace: Duration,
    run_cancel: CancellationToken,
    progress: mpsc::UnboundedSender<Progress>,
    declared: Vec<String>,
}

/// How one attempt ended.
enum Attempt {
    Done(Result<Outputs, TaskFailure>),
    TimedOut(Duration),
    Cancelled,
}

impl Attempts {
    async fn run(self, invocation: Invocation) -> Outcome {
        let mut last_error = String::new();
        let mut permanent = false;
        for n in 1..=self.tries {
            let attempt = self.before.saturating_add(n);
            let _ = self.progress.send(Progress::Started {
                task: self.task,
                attempt,
            });
            let token = self.run_cancel.child_token();
            let ctx = TaskContext {
                cancel: token.clone(),
                log: LogSink::new(
                    self.store.clone(),
                    &invocation.run_id,
                    &invocation.name,
                    attempt,
                ),
            };
            let mut this = invocation.clone();
            this.attempt = attempt;
            let work = AssertUnwindSafe(self.runner.run(this, ctx))
                .catch_unwind()
                .map(|r| {
                    r.unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        Err(TaskFailure::new(format!("the task panicked: {what}")))
                    })
                });
            let outcome = self.attempt(work, &token).await;
            let failure = match outcome {
                Attempt::Done(Ok(mut outputs)) => {
                    for (name, destination) in &invocation.outputs {
                        outputs
                            .entry(name.clone())
                            .or_insert_with(|| destination.clone());
                    }
                    match self.declared.iter().find(|d| !outputs.contains_key(*d)) {
                        None => return Outcome::Succeeded(outputs),
                        Some(missing) => TaskFailure::permanent(format!(
                            "the task declares output {missing:?} without a destination and did not report its value"
                        )),
                    }
                }
                Attempt::Done(Err(failure)) => failure,
                Attempt::TimedOut(after) => TaskFailure::new(format!("timed out after {after:?}")),
                Attempt::Cancelled => return Outcome::Cancelled,
            };
            if self.run_cancel.is_cancelled() {
                // The attempt ended because the run was cancelled under it.
                return Outcome::Cancelled;
            }
            last_error = format!("attempt {attempt}: {}", failure.message);
            permanent = !failure.retryable;
            if permanent || n == self.tries {
                break;
            }
            let _ = self.progress.send(Progress::Retrying {
                task: self.task,
                error: last_error.clone(),
            });
            tokio::select! {
                _ = tokio::time::sleep(self.backoff.delay(n - 1)) => {}
                _ = self.run_cancel.cancelled() => return Outcome::Cancelled,
            }
        }
        Outcome::Failed {
            error: last_error,
            permanent,
        }
    }

    async fn attempt(
        &self,
        work: impl Future<Output = Result<Outputs, TaskFailure>>,
        token: &CancellationToken,
    ) -> Attempt {
        let mut work = std::pin::pin!(work);
        let deadline = async {
            match self.timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let stopped = tokio::select! {
            result = &mut work => return Attempt::Done(result),
            _ = deadline => Attempt::TimedOut(self.timeout.unwrap_or_default()),
            _ = self.run_cancel.cancelled() => Attempt::Cancelled,
        };
        // Let the task see its token and stop on its own, for a while.
        token.cancel();
        let _ = tokio::time::timeout(self.grace, &mut work).await;
        stopped
    }
}
