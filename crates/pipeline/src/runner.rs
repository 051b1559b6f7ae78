//! What runs a task: the one trait a caller implements ([`TaskRunner`]), what it is given
//! ([`Invocation`], [`TaskContext`]) and what it answers ([`Outputs`] or a [`TaskFailure`]).
//!
//! The executor decides when, how often and for how long; a runner only runs one attempt.
//! It should watch [`TaskContext::cancel`]: when a timeout fires or the run is cancelled the
//! token is cancelled, and the attempt's future is dropped after the executor's grace period
//! if it has not returned by then (so a runner that starts a process should start it with
//! `kill_on_drop`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::document::Resources;
use crate::store::RunStoreRef;

/// What a task produced: output name → URI or value. A declared output the runner leaves
/// out is recorded as its declared (rendered) `destination`.
pub type Outputs = BTreeMap<String, String>;

/// Runs one attempt of one task.
///
/// ```
/// use async_trait::async_trait;
/// use trainstore_pipeline::{Invocation, Outputs, TaskContext, TaskFailure, TaskRunner};
///
/// #[derive(Debug)]
/// struct Echo;
///
/// #[async_trait]
/// impl TaskRunner for Echo {
///     async fn run(&self, task: Invocation, ctx: TaskContext) -> Result<Outputs, TaskFailure> {
///         ctx.log.line(format!("{} got {:?}", task.name, task.inputs)).await;
///         Ok(Outputs::new())
///     }
/// }
/// ```
#[async_trait]
pub trait TaskRunner: Send + Sync + fmt::Debug {
    /// Runs `task` once. An error fails the attempt; the executor retries it while the
    /// task's `retries` allow and the failure is [`TaskFailure::retryable`].
    async fn run(&self, task: Invocation, ctx: TaskContext) -> Result<Outputs, TaskFailure>;
}

/// A shared runner.
pub type TaskRunnerRef = Arc<dyn TaskRunner>;

/// One task, ready to run: every reference rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The run it belongs to.
    pub run_id: String,
    /// The task's name.
    pub name: String,
    /// Its registered type.
    pub task_type: String,
    /// Its container image, if the document gives one.
    pub image: Option<String>,
    /// Its resources as written (`None` where not written).
    pub resources: Resources,
    /// Input name → value: a parameter's value for `source: parameters`, the producing
    /// task's recorded output for references, the rendered path otherwise.
    pub inputs: BTreeMap<String, Json>,
    /// Output name → rendered destination, for the outputs that declare one.
    pub outputs: BTreeMap<String, String>,
    /// The task's `config`, references rendered.
    pub config: serde_json::Map<String, Json>,
    /// The run's parameters (defaults overridden by the run's).
    pub parameters: serde_json::Map<String, Json>,
    /// This attempt's number over the run's life, from 1.
    pub attempt: u32,
}

/// What an attempt is given besides the task: its cancellation and its log.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// Cancelled when the attempt times out or the run is cancelled.
    pub cancel: CancellationToken,
    /// Where the task's log lines go.
    pub log: LogSink,
}

/// A task attempt's log: each line is stored with the run (per attempt) and traced.
#[derive(Clone)]
pub struct LogSink {
    store: Option<RunStoreRef>,
    run: Arc<str>,
    task: Arc<str>,
    attempt: u32,
    lines: Arc<AtomicU64>,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSink")
            .field("run", &self.run)
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl LogSink {
    pub(crate) fn new(store: RunStoreRef, run: &str, task: &str, attempt: u32) -> LogSink {
        LogSink {
            store: Some(store),
            run: run.into(),
            task: task.into(),
            attempt,
            lines: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A sink that only traces, for running a task outside a pipeline run.
    pub fn discard() -> LogSink {
        LogSink {
            store: None,
            run: "".into(),
            task: "".into(),
            attempt: 0,
            lines: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes one line (a line break inside it makes several). A failure to store it is
    /// traced, never fails the task.
    pub async fn line(&self, text: impl AsRef<str>) {
        for text in text.as_ref().lines() {
            tracing::info!(run = %self.run, task = %self.task, attempt = self.attempt, "{text}");
            if let Some(store) = &self.store {
                let n = self.lines.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = store
                    .append_log(&self.run, &self.task, self.attempt, n, text)
                    .await
                {
                    tracing::warn!(run = %self.run, task = %self.task, "task log not stored: {e}");
                }
            }
        }
    }
}

/// Why an attempt failed. Anything that is an error converts into one (so `?` works in a
/// runner); [`TaskFailure::permanent`] marks a failure retrying cannot fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// What went wrong.
    pub message: String,
    /// Whether another attempt might succeed.
    pub retryable: bool,
}

impl TaskFailure {
    /// A failure another attempt might not have.
    pub fn new(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix (bad configuration, missing data): the task fails now.
    pub fn permanent(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            message: message.into(),
            retryable: false,
        }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for TaskFailure {
    fn from(e: E) -> TaskFailure {
        TaskFailure::new(e.to_string())
    }
}
