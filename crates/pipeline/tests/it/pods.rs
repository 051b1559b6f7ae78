//! One task at a time, as Argo's pods run a pipeline (`Executor::run_task`): played pod by
//! pod with a fresh executor per call, each as its own process would be, on a local
//! directory and on an object store; root pods racing to create the run; a task that
//! succeeded not run again; failures, permanent or not; misuses refused.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Barrier;
use trainstore_core::object_store::memory::InMemory;
use trainstore_pipeline::{
    CancellationToken, Error, Event, Executor, Invocation, LocalRunStore, ObjectRunStore, Pipeline,
    Result, RunRequest, RunState, RunStatus, RunStore, RunStoreRef, TaskOutcome, TaskStatus,
    history, load_run,
};

use crate::support::{Recorder, Script, document, large, options, parse};

/// a → b (b reads a's output), a → c, b and c → d; c's `when` is false, so c and d are
/// skipped.
fn diamond() -> Pipeline {
    parse(&document(
        "    - {name: a, type: command, outputs: [{name: x}]}
    - name: b
      type: command
      inputs: [{name: i, source: \"{{ tasks.a.outputs.x }}\"}]
      config: {message: \"got {{ tasks.a.outputs.x }} on {{ parameters.day }}\"}
      outputs: [{name: y, destination: \"/out/{{ parameters.day }}/b\"}]
    - {name: c, type: command, when: \"{{ parameters.deploy }}\"}
    - {name: d, type: command}
",
        "  dependencies: [{from: a, to: c}, {from: b, to: d}, {from: c, to: d}]
  parameters:
    deploy: false
    day: monday
",
    ))
}

fn reports_x() -> Recorder {
    Recorder::new().script("a", Script::Report([("x".into(), "from-a".into())].into()))
}

fn request(run: &str) -> RunRequest {
    RunRequest {
        run_id: Some(run.to_string()),
        definition: "v1".into(),
        parameters: [("day".to_string(), json!("tuesday"))]
            .into_iter()
            .collect(),
    }
}

/// An executor as one pod's process has it: its own runner, the shared store.
fn pod(runner: &Arc<Recorder>, store: &RunStoreRef) -> Executor {
    Executor::with_options(runner.clone(), store.clone(), options(large()))
}

async fn run_task(
    runner: &Arc<Recorder>,
    store: &RunStoreRef,
    pipeline: &Pipeline,
    run: &str,
    task: &str,
) -> Result<TaskOutcome> {
    pod(runner, store)
        .run_task(pipeline, request(run), task, CancellationToken::new())
        .await
}

/// What must agree between two runs of one pipeline: statuses, outputs, attempts, errors.
fn recorded(state: &RunState) -> (RunStatus, Vec<serde_json::Value>) {
    let tasks = state
        .tasks
        .iter()
        .map(|t| json!([t.name, t.status, t.outputs, t.attempts, t.error]))
        .collect();
    (state.status, tasks)
}

fn without_run_id(invocations: &[Invocation]) -> Vec<Invocation> {
    invocations
        .iter()
        .map(|i| Invocation {
            run_id: String::new(),
            ..i.clone()
        })
        .collect()
}

async fn pods_in_dag_order_record_what_a_local_run_records(store: RunStoreRef) {
    let pipeline = diamond();
    let local = Arc::new(reports_x());
    let expected = pod(&local, &store)
        .run(&pipeline, request("local"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(expected.status, RunStatus::Succeeded, "{expected:?}");

    let runner = Arc::new(reports_x());
    let mut outcomes = Vec::new();
    for task in ["a", "b", "c", "d"] {
        let outcome = run_task(&runner, &store, &pipeline, "pods", task)
            .await
            .unwrap();
        outcomes.push(outcome);
    }
    assert!(
        matches!(outcomes[0], TaskOutcome::Succeeded(_)),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], TaskOutcome::Succeeded(_)),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[2], TaskOutcome::Skipped(_)),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[3], TaskOutcome::Skipped(_)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].state().outputs["y"], "/out/tuesday/b");

    let state = load_run(store.as_ref(), "pods").await.unwrap();
    assert_eq!(recorded(&state), recorded(&expected));
    assert_eq!(state.parameters, expected.parameters);
    assert_eq!(runner.order(), ["a", "b"]);
    let invocations = runner.invocations.lock().unwrap().clone();
    assert_eq!(
        without_run_id(&invocations),
        without_run_id(&local.invocations.lock().unwrap()),
        "each pod renders its task as a local run does"
    );
    assert_eq!(invocations[1].inputs["i"], json!("from-a"));
    assert_eq!(
        invocations[1].config["message"],
        json!("got from-a on tuesday")
    );
    let exec = pod(&runner, &store);
    assert_eq!(exec.log("pods", "b", 1).await.unwrap(), "attempt 1 of b\n");
    let runs: Vec<String> = history(store.as_ref())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[tokio::test]
async fn pods_in_dag_order_record_what_a_local_run_records_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    pods_in_dag_order_record_what_a_local_run_records(Arc::new(LocalRunStore::new(dir.path())))
        .await;
}

#[tokio::test]
async fn pods_in_dag_order_record_what_a_local_run_records_on_an_object_store() {
    pods_in_dag_order_record_what_a_local_run_records(Arc::new(ObjectRunStore::new(
        Arc::new(InMemory::new()),
        "runs",
    )))
    .await;
}

/// A store whose `create_snapshot` waits until `n` callers are in it, so that every root
/// pod has found no run before any creates one.
#[derive(Debug)]
struct Racing {
    inner: RunStoreRef,
    barrier: Barrier,
}

#[async_trait]
impl RunStore for Racing {
    async fn put_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<()> {
        self.inner.put_snapshot(run, bytes).await
    }
    async fn create_snapshot(&self, run: &str, bytes: Vec<u8>) -> Result<bool> {
        self.barrier.wait().await;
        self.inner.create_snapshot(run, bytes).await
    }
    async fn get_snapshot(&self, run: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_snapshot(run).await
    }
    async fn append_journal(&self, run: &str, first_seq: u64, records: Vec<u8>) -> Result<()> {
        self.inner.append_journal(run, first_seq, records).await
    }
    async fn read_journal(&self, run: &str) -> Result<Vec<u8>> {
        self.inner.read_journal(run).await
    }
    async fn list_runs(&self) -> Result<Vec<String>> {
        self.inner.list_runs().await
    }
    async fn append_log(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        line: u64,
        text: &str,
    ) -> Result<()> {
        self.inner.append_log(run, task, attempt, line, text).await
    }
    async fn read_log(&self, run: &str, task: &str, attempt: u32) -> Result<String> {
        self.inner.read_log(run, task, attempt).await
    }
}

async fn root_pods_started_at_once_create_one_run(inner: RunStoreRef) {
    let pipeline = parse(&document(
        "    - {name: r1, type: command, outputs: [{name: o, destination: /r1}]}
    - {name: r2, type: command, outputs: [{name: o, destination: /r2}]}
    - {name: r3, type: command, outputs: [{name: o, destination: /r3}]}
    - {name: join, type: command}
",
        "  dependencies: [{from: r1, to: join}, {from: r2, to: join}, {from: r3, to: join}]\n  parameters: {day: monday}\n",
    ));
    let store: RunStoreRef = Arc::new(Racing {
        inner: inner.clone(),
        barrier: Barrier::new(3),
    });
    let runner = Arc::new(Recorder::new());
    let (r1, r2, r3) = futures::join!(
        run_task(&runner, &store, &pipeline, "race", "r1"),
        run_task(&runner, &store, &pipeline, "race", "r2"),
        run_task(&runner, &store, &pipeline, "race", "r3"),
    );
    for outcome in [r1, r2, r3] {
        assert!(
            matches!(outcome, Ok(TaskOutcome::Succeeded(_))),
            "{outcome:?}"
        );
    }
    let state = load_run(inner.as_ref(), "race").await.unwrap();
    for task in ["r1", "r2", "r3"] {
        let t = state.task(task).unwrap();
        assert_eq!(t.status, TaskStatus::Succeeded, "{state:?}");
        assert_eq!(t.attempts, 1);
    }
    assert_eq!(state.status, RunStatus::Running);
    assert_eq!(history(inner.as_ref()).await.unwrap().len(), 1);
    // The pods numbered their events from the same empty state: every event is kept,
    // though several carry one number.
    let journal = inner.read_journal("race").await.unwrap();
    let mut seqs: Vec<u64> = journal
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice::<Event>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs.len(), 6, "three started and three succeeded events");
    seqs.dedup();
    assert!(seqs.len() < 6, "the pods raced: {seqs:?}");
    let outcome = run_task(&runner, &inner, &pipeline, "race", "join")
        .await
        .unwrap();
    assert!(matches!(outcome, TaskOutcome::Succeeded(_)), "{outcome:?}");
    let state = load_run(inner.as_ref(), "race").await.unwrap();
    assert_eq!(state.status, RunStatus::Succeeded, "{state:?}");
    assert!(state.finished_at.is_some());
}

#[tokio::test]
async fn root_pods_started_at_once_create_one_run_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    root_pods_started_at_once_create_one_run(Arc::new(LocalRunStore::new(dir.path()))).await;
}

#[tokio::test]
async fn root_pods_started_at_once_create_one_run_on_an_object_store() {
    root_pods_started_at_once_create_one_run(Arc::new(ObjectRunStore::new(
        Arc::new(InMemory::new()),
        "runs",
    )))
    .await;
}

fn object_store() -> RunStoreRef {
    Arc::new(ObjectRunStore::new(Arc::new(InMemory::new()), "runs"))
}

#[tokio::test]
async fn a_task_that_succeeded_is_not_run_again() {
    let pipeline = diamond();
    let store = object_store();
    let first = Arc::new(reports_x());
    let done = run_task(&first, &store, &pipeline, "r", "a").await.unwrap();
    let again = Arc::new(reports_x());
    let outcome = run_task(&again, &store, &pipeline, "r", "a").await.unwrap();
    assert_eq!(outcome, TaskOutcome::AlreadySucceeded(done.state().clone()));
    assert_eq!(again.count("a"), 0);
    assert_eq!(load_run(store.as_ref(), "r").await.unwrap().seq, 2);
}

#[tokio::test]
async fn failures_say_whether_they_are_permanent_and_a_retry_pod_counts_on() {
    let pipeline = diamond();
    let store = object_store();
    let broken = Arc::new(Recorder::new().script("a", Script::FailPermanently));
    let outcome = run_task(&broken, &store, &pipeline, "r", "a")
        .await
        .unwrap();
    let TaskOutcome::Failed { state, permanent } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(permanent);
    assert_eq!(state.status, TaskStatus::Failed);
    assert_eq!(state.error.as_deref(), Some("attempt 1: bad configuration"));

    // A retryable failure, then Argo's retry: a new pod, the next attempt.
    let flaky = Arc::new(reports_x().script("b", Script::FailTimes(1)));
    let store = object_store();
    run_task(&flaky, &store, &pipeline, "r", "a").await.unwrap();
    let outcome = run_task(&flaky, &store, &pipeline, "r", "b").await.unwrap();
    assert!(
        matches!(
            outcome,
            TaskOutcome::Failed {
                permanent: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    let outcome = run_task(&flaky, &store, &pipeline, "r", "b").await.unwrap();
    assert!(matches!(outcome, TaskOutcome::Succeeded(_)), "{outcome:?}");
    assert_eq!(outcome.state().attempts, 2);
    let exec = pod(&flaky, &store);
    assert_eq!(exec.log("r", "b", 1).await.unwrap(), "attempt 1 of b\n");
    assert_eq!(exec.log("r", "b", 2).await.unwrap(), "attempt 2 of b\n");
}

#[tokio::test]
async fn the_documents_timeout_bounds_a_pods_attempt() {
    let pipeline = parse(&document(
        "    - name: slow\n      type: command\n      timeout: 50ms\n      retries: 3\n",
        "",
    ));
    let runner = Arc::new(Recorder::new().script("slow", Script::WaitForCancel));
    let outcome = pod(&runner, &object_store())
        .run_task(
            &pipeline,
            RunRequest {
                run_id: Some("r".into()),
                ..Default::default()
            },
            "slow",
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let TaskOutcome::Failed { state, permanent } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(!permanent, "a timeout may pass on retry");
    assert!(state.error.unwrap().contains("timed out"));
    assert_eq!(
        runner.count("slow"),
        1,
        "retries are Argo's: one attempt a pod"
    );
}

#[tokio::test]
async fn misuses_are_refused_with_what_is_wrong() {
    let pipeline = diamond();
    let store = object_store();
    let runner = Arc::new(reports_x());
    let early = run_task(&runner, &store, &pipeline, "r", "d").await;
    let Err(Error::UpstreamUnfinished { task, upstream, .. }) = early else {
        panic!("{early:?}");
    };
    assert_eq!(task, "d");
    assert_eq!(upstream, r#""b" (pending), "c" (pending)"#);
    assert_eq!(runner.order(), Vec::<String>::new());

    let exec = pod(&runner, &store);
    let mut other = request("r");
    other.definition = "v2".into();
    assert!(matches!(
        exec.run_task(&pipeline, other, "a", CancellationToken::new())
            .await,
        Err(Error::DefinitionChanged { .. })
    ));
    let mut other = request("r");
    other.parameters.insert("deploy".into(), json!(true));
    let refused = exec
        .run_task(&pipeline, other, "a", CancellationToken::new())
        .await;
    let Err(Error::ParametersChanged { differences, .. }) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(differences, "deploy: recorded false, given true");
    let mut other = request("r");
    other.run_id = None;
    assert!(matches!(
        exec.run_task(&pipeline, other, "a", CancellationToken::new())
            .await,
        Err(Error::RunIdRequired)
    ));
    assert!(matches!(
        exec.run_task(&pipeline, request("r"), "nope", CancellationToken::new())
            .await,
        Err(Error::UnknownTask { .. })
    ));
    assert_eq!(runner.order(), Vec::<String>::new());
}
