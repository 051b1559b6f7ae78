//! A scripted task runner that records what it was asked to do, and helpers to build
//! documents and executors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Barrier, Notify};
use trainstore_pipeline::{
    Amount, Backoff, Budget, Executor, ExecutorOptions, Invocation, LocalRunStore, Outputs,
    Pipeline, TaskContext, TaskFailure, TaskRunner, TaskTypes,
};

/// The task types the facade registers.
pub fn types() -> TaskTypes {
    TaskTypes::new([
        "data_query",
        "feature_engineering",
        "versioning",
        "training",
        "evaluation",
        "deployment",
        "command",
        "python",
    ])
}

pub fn parse(text: &str) -> Pipeline {
    Pipeline::parse(text, &types()).unwrap_or_else(|e| panic!("{e}"))
}

/// The §7.1 document of the design document, verbatim.
pub const DESIGN_DOC: &str = include_str!("../data/design-doc-7.1.yaml");

/// A document of `tasks` (YAML list items, indented by four) and `rest` (spec keys).
pub fn document(tasks: &str, rest: &str) -> String {
    format!(
        "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata:\n  name: test\nspec:\n  tasks:\n{tasks}{rest}"
    )
}

/// What a task does when run.
#[derive(Debug, Clone)]
pub enum Script {
    /// Fails this many attempts (retryably), then succeeds.
    FailTimes(u32),
    /// Fails every attempt with a permanent failure.
    FailPermanently,
    /// Waits for its cancellation token, then fails.
    WaitForCancel,
    /// Signals `started`, then never returns.
    Hang(Arc<Notify>),
    /// Waits at the barrier (with every other task scripted on it), then succeeds.
    Meet(Arc<Barrier>),
    /// Panics.
    Panic,
    /// Succeeds, reporting these outputs.
    Report(Outputs),
}

/// Records every attempt and the resources in use at once.
#[derive(Debug, Default)]
pub struct Recorder {
    pub scripts: HashMap<String, Script>,
    /// Task names in the order attempts started.
    pub started: Mutex<Vec<String>>,
    /// What each attempt was given.
    pub invocations: Mutex<Vec<Invocation>>,
    /// Attempts whose token was cancelled while they waited.
    pub saw_cancel: Mutex<Vec<String>>,
    /// Budget accounting: what the runner sees in use, and the most ever.
    pub budget: Option<Budget>,
    in_use: Mutex<Amount>,
    pub peak: Mutex<Amount>,
    pub over_budget: Mutex<bool>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    pub fn script(mut self, task: &str, script: Script) -> Recorder {
        self.scripts.insert(task.to_string(), script);
        self
    }

    pub fn watch_budget(mut self, budget: Budget) -> Recorder {
        self.budget = Some(budget);
        self
    }

    /// How many attempts `task` started.
    pub fn count(&self, task: &str) -> usize {
        self.started
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == task)
            .count()
    }

    pub fn order(&self) -> Vec<String> {
        self.started.lock().unwrap().clone()
    }

    fn take(&self, invocation: &Invocation) -> Option<Amount> {
        let budget = self.budget?;
        let request = budget.request(&invocation.resources).min(&budget.total);
        let mut in_use = self.in_use.lock().unwrap();
        *in_use = in_use.plus(&request);
        if !in_use.fits_in(&budget.total) {
            *self.over_budget.lock().unwrap() = true;
        }
        let mut peak = self.peak.lock().unwrap();
        *peak = Amount {
            cpu_millis: peak.cpu_millis.max(in_use.cpu_millis),
            memory_bytes: peak.memory_bytes.max(in_use.memory_bytes),
            gpu: peak.gpu.max(in_use.gpu),
        };
        Some(request)
    }

    fn give_back(&self, request: Option<Amount>) {
        if let Some(request) = request {
            let mut in_use = self.in_use.lock().unwrap();
            *in_use = in_use.minus(&request);
        }
    }
}

#[async_trait]
impl TaskRunner for Recorder {
    async fn run(&self, task: Invocation, ctx: TaskContext) -> Result<Outputs, TaskFailure> {
        self.started.lock().unwrap().push(task.name.clone());
        self.invocations.lock().unwrap().push(task.clone());
        ctx.log
            .line(format!("attempt {} of {}", task.attempt, task.name))
            .await;
        let held = self.take(&task);
        // Yield a little so tasks that may run together overlap.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let result = match self.scripts.get(&task.name) {
            None => Ok(Outputs::new()),
            Some(Script::FailTimes(n)) => {
                let attempts = self.count(&task.name) as u32;
                if attempts <= *n {
                    Err(TaskFailure::new(format!("failure {attempts} of {n}")))
                } else {
                    Ok(Outputs::new())
                }
            }
            Some(Script::FailPermanently) => Err(TaskFailure::permanent("bad configuration")),
            Some(Script::WaitForCancel) => {
                ctx.cancel.cancelled().await;
                self.saw_cancel.lock().unwrap().push(task.name.clone());
                Err(TaskFailure::new("stopped"))
            }
            Some(Script::Hang(started)) => {
                started.notify_one();
                std::future::pending::<()>().await;
                unreachable!()
            }
            Some(Script::Meet(barrier)) => {
                // Generous: a scheduler that runs these one at a time fails here, not hangs.
                match tokio::time::timeout(Duration::from_secs(60), barrier.wait()).await {
                    Ok(_) => Ok(Outputs::new()),
                    Err(_) => Err(TaskFailure::permanent(
                        "the other task never started alongside",
                    )),
                }
            }
            Some(Script::Panic) => panic!("scripted panic"),
            Some(Script::Report(outputs)) => Ok(outputs.clone()),
        };
        self.give_back(held);
        result
    }
}

/// Options for tests: a large budget, tiny backoff, short grace.
pub fn options(budget: Amount) -> ExecutorOptions {
    ExecutorOptions {
        budget: Budget::new(budget),
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(4),
        },
        grace: Duration::from_millis(50),
        default_timeout: None,
    }
}

pub fn large() -> Amount {
    Amount {
        cpu_millis: 1_000_000,
        memory_bytes: u64::MAX,
        gpu: 16,
    }
}

pub fn executor(runner: Arc<Recorder>, dir: &std::path::Path, budget: Amount) -> Executor {
    Executor::with_options(runner, Arc::new(LocalRunStore::new(dir)), options(budget))
}
