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
use crate::state::{Change, Event, RunState, RunStatus, RunSummary, TaskStatus};
use crate::store::{RunStoreRef, check_name, history, load_run};

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
        let mut parameters = pipeline.parameters.clone();
        for (name, value) in request.parameters {
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
        let requests = self.requests(pipeline)?;
        let run_id = match request.run_id {
            Some(id) => id,
            None => generated_id(&pipeline.metadata.name),
        };
        check_name("run id", &run_id)?;
        if self.store.get_snapshot(&run_id).await?.is_some() {
            return Err(Error::RunExists(run_id));
        }
        let state = RunState::new(
            &run_id,
            &pipeline.metadata.name,
            &request.definition,
            parameters,
            pipeline.tasks.iter().map(|t| t.name.as_str()),
        );
        self.snapshot(&state).await?;
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
        if state.definition != definition {
            return Err(Error::DefinitionChanged {
                run: run_id.to_string(),
                recorded: state.definition,
                given: definition.to_string(),
            });
        }
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
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Corrupt {
            run: state.run_id.clone(),
            reason: e.to_string(),
        })?;
        self.store.put_snapshot(&state.run_id, bytes).await
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

fn generated_id(pipeline: &str) -> String {
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

/// How a task's attempts ended.
enum Outcome {
    Succeeded(Outputs),
    Failed(String),
    Cancelled,
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
    /// Events applied but not yet journalled.
    pending: Vec<u8>,
    pending_first: u64,
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
            pending: Vec::new(),
            pending_first: 0,
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
        let event = Event {
            seq: self.state.seq + 1,
            at: Utc::now(),
            change,
        };
        if self.pending.is_empty() {
            self.pending_first = event.seq;
        }
        serde_json::to_writer(&mut self.pending, &event).map_err(|e| Error::Corrupt {
            run: self.state.run_id.clone(),
            reason: e.to_string(),
        })?;
        self.pending.push(b'\n');
        self.state.apply(&event);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        self.executor
            .store
            .append_journal(&self.state.run_id, self.pending_first, records)
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
            if !cancelled {
                self.start_ready()?;
            }
            self.flush().await?;
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
                            Outcome::Failed(format!("the task's attempt loop ended abnormally: {e}")),
                        ),
                    };
                    if let Some(task) = task {
                        self.finished(task, outcome)?;
                    }
                }
                _ = self.cancel.cancelled(), if !cancelled => cancelled = true,
            }
        }
        let status = if cancelled {
            RunStatus::Cancelled
        } else if self
            .state
            .tasks
            .iter()
            .all(|t| matches!(t.status, TaskStatus::Succeeded | TaskStatus::Skipped))
        {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        self.record(Change::Finished { status })?;
        self.flush().await
    }

    fn progress(&mut self, progress: Progress) -> Result<()> {
        match progress {
            Progress::Started { task, attempt } => self.record(Change::Started {
                task: self.name(task).to_string(),
                attempt,
            }),
            Progress::Retrying { task, error } => self.record(Change::Retrying {
                task: self.name(task).to_string(),
                error,
            }),
        }
    }

    /// Tasks whose upstream tasks are all done: skipped, failed (a `when` that cannot be
    /// evaluated) or queued to start. Skips propagate through the same queue.
    fn settle(&mut self, mut queue: VecDeque<usize>) -> Result<()> {
        while let Some(i) = queue.pop_front() {
            let task = &self.pipeline.tasks[i];
            let verdict = if self.upstream_skipped[i] {
                Err("an upstream task was skipped".to_string())
            } else if let Some(condition) = &task.condition {
                let scope = Scope {
                    parameters: &self.state.parameters,
                    outputs: &self.outputs,
                };
                match condition.evaluate(&scope) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(format!(
                        "`when: {}` is false",
                        task.when.as_deref().unwrap_or_default()
                    )),
                    Err(e) => {
                        self.record(Change::Failed {
                            task: task.name.clone(),
                            error: format!("`when` could not be evaluated: {e}"),
                        })?;
                        continue;
                    }
                }
            } else {
                Ok(())
            };
            match verdict {
                Ok(()) => self.ready.push((task.priority, Reverse(i))),
                Err(reason) => {
                    self.record(Change::Skipped {
                        task: task.name.clone(),
                        reason,
                    })?;
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
        match outcome {
            Outcome::Succeeded(outputs) => {
                self.outputs.insert(name.clone(), outputs.clone());
                self.record(Change::Succeeded {
                    task: name,
                    outputs,
                })?;
                let mut queue = VecDeque::new();
                for &d in &self.pipeline.graph.downstream[i] {
                    let d = d as usize;
                    self.waiting[d] -= 1;
                    if self.waiting[d] == 0 {
                        queue.push_back(d);
                    }
                }
                self.settle(queue)
            }
            Outcome::Failed(error) => {
                tracing::warn!(run = %self.state.run_id, task = %name, "task failed: {error}");
                self.record(Change::Failed { task: name, error })
            }
            Outcome::Cancelled => self.record(Change::Cancelled { task: name }),
        }
    }

    /// The task with every reference rendered.
    fn invocation(&self, i: usize) -> Result<Invocation, String> {
        let task = &self.pipeline.tasks[i];
        let scope = Scope {
            parameters: &self.state.parameters,
            outputs: &self.outputs,
        };
        let render = |text: &str| Template::parse(text).and_then(|t| t.render(&scope));
        let mut inputs = BTreeMap::new();
        for input in &task.inputs {
            let value = match &input.source {
                Source::Parameter => self
                    .state
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
            run_id: self.state.run_id.clone(),
            name: task.name.clone(),
            task_type: task.task_type.clone(),
            image: task.image.clone(),
            resources: task.resources,
            inputs,
            outputs,
            config,
            parameters: self.state.parameters.clone(),
            attempt: 0,
        })
    }

    /// Starts the task's attempt loop.
    fn spawn(&mut self, i: usize, invocation: Invocation) -> tokio::task::Id {
        let task = &self.pipeline.tasks[i];
        let options = &self.executor.options;
        let attempts = Attempts {
            task: i,
            runner: self.executor.runner.clone(),
            store: self.executor.store.clone(),
            before: self.state.task(&task.name).map_or(0, |t| t.attempts),
            tries: task.retries + 1,
            timeout: task.timeout.or(options.default_timeout),
            backoff: options.backoff,
            grace: options.grace,
            run_cancel: self.cancel.clone(),
            progress: self.tx.clone(),
            declared: task.outputs.iter().map(|o| o.name.clone()).collect(),
        };
        self.set.spawn(attempts.run(invocation)).id()
    }
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
            if !failure.retryable || n == self.tries {
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
        Outcome::Failed(last_error)
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
