//! A run's state, and the events that change it.
//!
//! The state is never rewritten in place while a run goes on. Each change is an [`Event`],
//! numbered, appended to the run's journal before the executor acts on it; the state is the
//! snapshot written when the run started (or resumed) with the journal's later events
//! applied ([`RunState::apply`]). Appending one line per change keeps persistence O(1) per
//! change, so a run of 10,000 tasks costs 10,000 small appends, not 10,000 rewrites of a
//! growing file; the snapshot is rewritten only when a run starts, resumes and ends. The
//! layout on disk is in `store.rs`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Running, or stopped without a trace (a killed process): resume it.
    Running,
    /// Every task succeeded or was skipped.
    Succeeded,
    /// A task failed; tasks that depend on it did not run.
    Failed,
    /// Cancelled through its token; unfinished tasks can be resumed.
    Cancelled,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started (or, after a run ended, never reached).
    Pending,
    /// An attempt is under way (or was, when the process died).
    Running,
    /// Done; its outputs are recorded.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// Its `when` was false, or a task it depends on was skipped.
    Skipped,
    /// Stopped by the run's cancellation.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task is finished for good in this run (resume does not run it again).
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Succeeded)
    }
}

/// One task's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// The task's name.
    pub name: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// Attempts started so far, over every session of the run (logs are kept per attempt).
    pub attempts: u32,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished (succeeded, failed, skipped or cancelled).
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds from its latest start to its finish.
    pub duration_ms: Option<u64>,
    /// What it produced: output name → URI or value.
    pub outputs: BTreeMap<String, String>,
    /// Why it failed, was skipped or cancelled (the latest attempt's error while retrying).
    pub error: Option<String>,
}

impl TaskState {
    fn new(name: &str) -> TaskState {
        TaskState {
            name: name.to_string(),
            status: TaskStatus::Pending,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            outputs: BTreeMap::new(),
            error: None,
        }
    }
}

/// A run: what it ran, with what, and where each task stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's `metadata.name`.
    pub pipeline: String,
    /// The definition the caller ran (a version or content hash); resume checks it.
    pub definition: String,
    /// The parameters in effect: the document's defaults, overridden by the run's.
    pub parameters: serde_json::Map<String, Json>,
    /// Where the run stands.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times it was started: 1, plus one per resume.
    pub sessions: u32,
    /// The tasks, in document order.
    pub tasks: Vec<TaskState>,
    /// The number of the last event applied.
    pub seq: u64,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// One change to a run, as journalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its number in the run, from 1.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub change: Change,
}

/// What an [`Event`] changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Change {
    /// An attempt of `task` started.
    Started {
        /// The task.
        task: String,
        /// The attempt's number over the run's life.
        attempt: u32,
    },
    /// An attempt failed; another will follow.
    Retrying {
        /// The task.
        task: String,
        /// Why the attempt failed.
        error: String,
    },
    /// The task succeeded.
    Succeeded {
        /// The task.
        task: String,
        /// What it produced.
        outputs: BTreeMap<String, String>,
    },
    /// The task's last attempt failed.
    Failed {
        /// The task.
        task: String,
        /// Why.
        error: String,
    },
    /// The task will not run in this run.
    Skipped {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// The task was stopped by the run's cancellation.
    Cancelled {
        /// The task.
        task: String,
    },
    /// The run ended.
    Finished {
        /// How.
        status: RunStatus,
    },
}

impl RunState {
    /// A new run of `tasks`, all pending.
    pub(crate) fn new<'a>(
        run_id: &str,
        pipeline: &str,
        definition: &str,
        parameters: serde_json::Map<String, Json>,
        tasks: impl IntoIterator<Item = &'a str>,
    ) -> RunState {
        let mut state = RunState {
            run_id: run_id.to_string(),
            pipeline: pipeline.to_string(),
            definition: definition.to_string(),
            parameters,
            status: RunStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            sessions: 1,
            tasks: tasks.into_iter().map(TaskState::new).collect(),
            seq: 0,
            index: HashMap::new(),
        };
        state.reindex();
        state
    }

    /// Rebuilds the name index (after deserializing).
    pub(crate) fn reindex(&mut self) {
        self.index = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&TaskState> {
        self.index.get(name).map(|&i| &self.tasks[i])
    }

    /// How long the run took, from its start to its latest end.
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.finished_at
            .and_then(|end| (end - self.started_at).to_std().ok())
    }

    /// Applies one event; events at or before [`RunState::seq`] were applied already and
    /// are ignored, as are events for tasks the run does not have.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.seq {
            return;
        }
        self.replay(event);
    }

    /// Applies one event whatever its number (the state's number becomes the larger of
    /// the two). Reading a journal uses it for every event after the snapshot's: processes
    /// running tasks of one run at once each number their events from the state they read,
    /// so two events of the journal may carry one number, or come out of order.
    pub(crate) fn replay(&mut self, event: &Event) {
        self.seq = self.seq.max(event.seq);
        let at = event.at;
        let finish = |state: &mut RunState, task: &str, status: TaskStatus| {
            let &i = state.index.get(task)?;
            let t = &mut state.tasks[i];
            t.status = status;
            t.finished_at = Some(at);
            t.duration_ms = t
                .started_at
                .and_then(|s| (at - s).to_std().ok())
                .map(|d| d.as_millis() as u64);
            Some(i)
        };
        match &event.change {
            Change::Started { task, attempt } => {
                if let Some(&i) = self.index.get(task) {
                    let t = &mut self.tasks[i];
                    t.status = TaskStatus::Running;
                    t.attempts = *attempt;
                    t.started_at = Some(at);
                    t.finished_at = None;
                    t.duration_ms = None;
                }
            }
            Change::Retrying { task, error } => {
                if let Some(&i) = self.index.get(task) {
                    self.tasks[i].error = Some(error.clone());
                }
            }
            Change::Succeeded { task, outputs } => {
                if let Some(i) = finish(self, task, TaskStatus::Succeeded) {
                    self.tasks[i].outputs = outputs.clone();
                    self.tasks[i].error = None;
                }
            }
            Change::Failed { task, error } => {
                if let Some(i) = finish(self, task, TaskStatus::Failed) {
                    self.tasks[i].error = Some(error.clone());
                }
            }
            Change::Skipped { task, reason } => {
                if let Some(i) = finish(self, task, TaskStatus::Skipped) {
                    self.tasks[i].error = Some(reason.clone());
                    self.tasks[i].duration_ms = None;
                }
            }
            Change::Cancelled { task } => {
                if let Some(i) = finish(self, task, TaskStatus::Cancelled) {
                    self.tasks[i].error = Some("cancelled".into());
                }
            }
            Change::Finished { status } => {
                self.status = *status;
                self.finished_at = Some(at);
            }
        }
    }

    /// The outputs of succeeded tasks, for rendering references.
    pub(crate) fn outputs(&self) -> HashMap<String, BTreeMap<String, String>> {
        self.tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Succeeded)
            .map(|t| (t.name.clone(), t.outputs.clone()))
            .collect()
    }

    /// The run in one line of history.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.clone(),
            definition: self.definition.clone(),
            status: self.status,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration: self.duration(),
        }
    }
}

/// One run in the history ([`crate::history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The definition it ran.
    pub definition: String,
    /// Where it stands.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// From start to latest end.
    pub duration: Option<std::time::Duration>,
}
