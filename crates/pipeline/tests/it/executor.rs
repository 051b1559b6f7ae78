//! The executor: order, budget, priority, retries, timeouts, failure, `when`, cancellation,
//! a killed run resumed, history and logs.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::{Barrier, Notify};
use trainstore_pipeline::{
    Amount, CancellationToken, EdgeOrigin, Error, Oversize, RunRequest, RunStatus, TaskStatus,
};

use crate::support::{DESIGN_DOC, Recorder, Script, document, executor, large, parse};

fn request(definition: &str) -> RunRequest {
    RunRequest {
        run_id: None,
        definition: definition.to_string(),
        parameters: Default::default(),
    }
}

fn named(run: &str) -> RunRequest {
    RunRequest {
        run_id: Some(run.to_string()),
        definition: "v1".into(),
        parameters: Default::default(),
    }
}

fn cpus(n: u64) -> Amount {
    Amount {
        cpu_millis: n * 1000,
        memory_bytes: u64::MAX,
        gpu: 0,
    }
}

#[tokio::test]
async fn the_design_documents_example_runs_end_to_end_in_topological_order() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = parse(DESIGN_DOC);
    let runner = Arc::new(Recorder::new());
    let exec = executor(runner.clone(), dir.path(), large());
    let mut req = request("1.0.0");
    req.parameters.insert("epochs".into(), json!(3));
    let state = exec
        .run(&pipeline, req, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded, "{state:?}");
    let order = runner.order();
    assert_eq!(order.len(), 6);
    let position = |t: &str| order.iter().position(|o| o == t).unwrap();
    for edge in pipeline.edges() {
        assert!(
            position(&edge.from) < position(&edge.to),
            "{edge:?} in {order:?}"
        );
    }
    assert!(
        pipeline
            .edges()
            .iter()
            .any(|e| matches!(e.origin, EdgeOrigin::Data { .. }))
    );
    let invocations = runner.invocations.lock().unwrap().clone();
    let query = invocations
        .iter()
        .find(|i| i.name == "doris-data-query")
        .unwrap();
    assert_eq!(
        query.inputs["time_range"]["end"],
        json!("2024-01-31T23:59:59Z")
    );
    assert_eq!(
        query.inputs["entity_list"],
        json!(["uuid1", "uuid2", "uuid3"])
    );
    assert_eq!(
        query.parameters["epochs"],
        json!(3),
        "run parameters override defaults"
    );
    let training = invocations
        .iter()
        .find(|i| i.name == "model-training")
        .unwrap();
    assert_eq!(
        training.inputs["base_model"],
        json!("/mnt/user/models/base")
    );
    assert_eq!(
        training.outputs["trained_model"],
        "/mnt/user/models/incremental"
    );
    assert_eq!(
        state.task("model-deployment").unwrap().outputs["deployed_model"],
        "/mnt/user/models/deployed"
    );
    let stored = exec.load(&state.run_id).await.unwrap();
    assert_eq!(
        stored, state,
        "what is stored reads back as what was returned"
    );
    assert_eq!(
        exec.log(&state.run_id, "model-training", 1).await.unwrap(),
        "attempt 1 of model-training\n"
    );
}

#[tokio::test]
async fn a_task_that_fails_twice_succeeds_on_its_third_attempt_with_two_retries() {
    let text = |retries: u32| {
        document(
            &format!(
                "    - name: flaky\n      type: command\n      retries: {retries}\n    - name: after\n      type: command\n"
            ),
            "  dependencies: [{from: flaky, to: after}]\n",
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(Recorder::new().script("flaky", Script::FailTimes(2)));
    let exec = executor(runner.clone(), dir.path(), large());
    let state = exec
        .run(&parse(&text(2)), request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert_eq!(state.task("flaky").unwrap().attempts, 3);
    assert_eq!(runner.count("flaky"), 3);
    for attempt in 1..=3 {
        let log = exec.log(&state.run_id, "flaky", attempt).await.unwrap();
        assert_eq!(
            log,
            format!("attempt {attempt} of flaky\n"),
            "logs are kept per attempt"
        );
    }

    let runner = Arc::new(Recorder::new().script("flaky", Script::FailTimes(2)));
    let exec = executor(runner.clone(), dir.path(), large());
    let state = exec
        .run(&parse(&text(1)), request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    let flaky = state.task("flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (TaskStatus::Failed, 2));
    assert_eq!(flaky.error.as_deref(), Some("attempt 2: failure 2 of 2"));
    assert_eq!(
        state.task("after").unwrap().status,
        TaskStatus::Pending,
        "its dependent never started"
    );
    assert_eq!(runner.count("after"), 0);
}

#[tokio::test]
async fn a_permanent_failure_or_a_panic_is_not_retried_beyond_its_kind() {
    let text = document(
        "    - {name: bad, type: command, retries: 5}\n    - {name: boom, type: command, retries: 1}\n",
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(
        Recorder::new()
            .script("bad", Script::FailPermanently)
            .script("boom", Script::Panic),
    );
    let exec = executor(runner.clone(), dir.path(), large());
    let state = exec
        .run(&parse(&text), request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    assert_eq!(runner.count("bad"), 1);
    assert_eq!(
        runner.count("boom"),
        2,
        "a panic is a failed attempt, retried"
    );
    assert!(
        state
            .task("boom")
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("panicked: scripted panic")
    );
}

#[tokio::test]
async fn an_attempt_past_its_timeout_is_cancelled_and_counts_as_failed() {
    let text = document(
        "    - name: slow\n      type: command\n      timeout: 50ms\n      retries: 1\n",
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(Recorder::new().script("slow", Script::WaitForCancel));
    let exec = executor(runner.clone(), dir.path(), large());
    let state = exec
        .run(&parse(&text), request("v"), CancellationToken::new())
        .await
        .unwrap();
    let slow = state.task("slow").unwrap();
    assert_eq!((slow.status, slow.attempts), (TaskStatus::Failed, 2));
    assert!(
        slow.error
            .as_deref()
            .unwrap()
            .contains("timed out after 50ms"),
        "{slow:?}"
    );
    assert_eq!(
        runner.saw_cancel.lock().unwrap().len(),
        2,
        "each attempt saw its token cancelled"
    );
}

#[tokio::test]
async fn ready_tasks_start_by_priority_then_document_order_under_a_one_cpu_budget() {
    let priorities = [1, 5, 3, 5, -2, 0, 3];
    let tasks: String = priorities
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "    - {{name: t{i}, type: command, priority: {p}, resources: {{cpu: \"1\"}}}}\n"
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(Recorder::new());
    let exec = executor(runner.clone(), dir.path(), cpus(1));
    let state = exec
        .run(
            &parse(&document(&tasks, "")),
            request("v"),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert_eq!(runner.order(), ["t1", "t3", "t2", "t6", "t0", "t5", "t4"]);
}

#[tokio::test]
async fn the_budget_is_never_exceeded_and_independent_tasks_run_together() {
    // Twenty tasks of assorted sizes in two layers, on a budget of 4 cores, 8 GiB, 1 GPU.
    let mut tasks = String::new();
    for i in 0..20 {
        let (cpu, mem, gpu) = [
            ("1", "1Gi", 0),
            ("500m", "4Gi", 0),
            ("2", "2Gi", 1),
            ("3", "512Mi", 0),
        ][i % 4];
        tasks.push_str(&format!(
            "    - name: t{i}\n      type: command\n      resources: {{cpu: \"{cpu}\", memory: {mem}, gpu: {gpu}}}\n"
        ));
        if i >= 10 {
            tasks.push_str(&format!(
                "      inputs: [{{name: x, source: /out/{}}}]\n",
                i - 10
            ));
        } else {
            tasks.push_str(&format!(
                "      outputs: [{{name: x, destination: /out/{i}}}]\n"
            ));
        }
    }
    tasks.push_str("    - {name: meet-a, type: command, resources: {cpu: 1}}\n    - {name: meet-b, type: command, resources: {cpu: 1}}\n");
    let budget = Amount {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
        gpu: 1,
    };
    let barrier = Arc::new(Barrier::new(2));
    let runner = Arc::new(
        Recorder::new()
            .watch_budget(trainstore_pipeline::Budget::new(budget))
            .script("meet-a", Script::Meet(barrier.clone()))
            .script("meet-b", Script::Meet(barrier)),
    );
    let dir = tempfile::tempdir().unwrap();
    let exec = executor(runner.clone(), dir.path(), budget);
    let state = exec
        .run(
            &parse(&document(&tasks, "")),
            request("v"),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded, "{state:?}");
    assert!(
        !*runner.over_budget.lock().unwrap(),
        "peak {:?}",
        runner.peak.lock().unwrap()
    );
    assert!(runner.peak.lock().unwrap().fits_in(&budget));
}

#[tokio::test]
async fn a_task_larger_than_the_budget_is_refused_up_front_or_run_alone() {
    let text = document(
        "    - {name: big, type: training, resources: {cpu: 8, gpu: 1}}\n    - {name: small, type: command}\n",
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(Recorder::new());
    let exec = executor(runner.clone(), dir.path(), cpus(2));
    match exec
        .run(&parse(&text), request("v"), CancellationToken::new())
        .await
    {
        Err(Error::OverBudget(message)) => {
            assert!(
                message.contains("big needs cpu 8, memory 0, gpu 1"),
                "{message}"
            );
            assert!(
                message.contains("cpu 2, memory unlimited, gpu 0"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runner.order().len(), 0);
    let mut options = crate::support::options(cpus(2));
    options.budget.oversize = Oversize::RunAlone;
    let exec = trainstore_pipeline::Executor::with_options(
        runner.clone(),
        Arc::new(trainstore_pipeline::LocalRunStore::new(dir.path())),
        options,
    );
    let state = exec
        .run(&parse(&text), request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_failed_task_stops_its_dependents_while_independent_branches_finish() {
    let text = document(
        "    - {name: a, type: command}\n    - {name: b, type: command}\n    - {name: c, type: command}\n    - {name: x, type: command}\n    - {name: y, type: command}\n",
        "  dependencies: [{from: a, to: b}, {from: b, to: c}, {from: x, to: y}]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(Recorder::new().script("a", Script::FailPermanently));
    let exec = executor(runner.clone(), dir.path(), large());
    let state = exec
        .run(&parse(&text), request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    let status = |t: &str| state.task(t).unwrap().status;
    assert_eq!(
        [
            status("a"),
            status("b"),
            status("c"),
            status("x"),
            status("y")
        ],
        [
            TaskStatus::Failed,
            TaskStatus::Pending,
            TaskStatus::Pending,
            TaskStatus::Succeeded,
            TaskStatus::Succeeded
        ]
    );
}

#[tokio::test]
async fn a_false_when_skips_the_task_and_everything_downstream_of_it() {
    let text = document(
        "    - name: gate
      type: command
      when: \"{{ parameters.mode }} == incremental\"
    - {name: after-gate, type: command}
    - name: other
      type: command
      when: \"{{ parameters.deploy }}\"
      config:
        range: \"{{ parameters.range }}\"
        label: \"from {{ parameters.range.start }}\"
",
        "  dependencies: [{from: gate, to: after-gate}]\n  parameters:\n    mode: full\n    deploy: true\n    range: {start: a, end: b}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(Recorder::new());
    let exec = executor(runner.clone(), dir.path(), large());
    let state = exec
        .run(&parse(&text), request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        state.status,
        RunStatus::Succeeded,
        "skipped tasks do not fail a run"
    );
    assert_eq!(state.task("gate").unwrap().status, TaskStatus::Skipped);
    assert_eq!(
        state.task("after-gate").unwrap().status,
        TaskStatus::Skipped
    );
    assert_eq!(runner.order(), ["other"]);
    let config = runner.invocations.lock().unwrap()[0].config.clone();
    assert_eq!(
        config["range"],
        json!({"start": "a", "end": "b"}),
        "a lone reference keeps its type"
    );
    assert_eq!(config["label"], json!("from a"));

    let mut req = request("v");
    req.parameters.insert("mode".into(), json!("incremental"));
    req.parameters.insert("deploy".into(), json!(false));
    let runner = Arc::new(Recorder::new());
    let exec = executor(runner.clone(), dir.path(), large());
    exec.run(&parse(&text), req, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(runner.order(), ["gate", "after-gate"]);
    let mut req = request("v");
    req.parameters.insert("undeclared".into(), json!(1));
    assert!(matches!(
        exec.run(&parse(&text), req, CancellationToken::new()).await,
        Err(Error::UnknownParameter { name, .. }) if name == "undeclared"
    ));
}

fn reports_o() -> Script {
    Script::Report([("o".to_string(), "b-value".to_string())].into())
}

/// A chain a → b → c → d and a lone task e; b reports its output's value (it declares no
/// destination).
fn chain() -> String {
    document(
        "    - {name: a, type: command, outputs: [{name: o, destination: /a}]}
    - {name: b, type: command, inputs: [{name: i, source: \"{{ tasks.a.outputs.o }}\"}], outputs: [{name: o}]}
    - {name: c, type: command, inputs: [{name: i, source: \"{{ tasks.b.outputs.o }}\"}]}
    - {name: d, type: command}
    - {name: e, type: command, priority: -1}
",
        "  dependencies: [{from: c, to: d}]\n",
    )
}

#[tokio::test]
async fn a_killed_run_resumes_running_only_its_unfinished_tasks() {
    let pipeline = parse(&chain());
    let dir = tempfile::tempdir().unwrap();
    let c_started = Arc::new(Notify::new());
    // c hangs until the run is killed: the run's future is dropped, as when its process dies.
    let first = Arc::new(
        Recorder::new()
            .script("b", reports_o())
            .script("c", Script::Hang(c_started.clone())),
    );
    let exec = executor(first.clone(), dir.path(), cpus(1));
    {
        let run = exec.run(&pipeline, named("killed"), CancellationToken::new());
        tokio::select! {
            result = run => panic!("the run ended: {result:?}"),
            _ = c_started.notified() => {}
        }
    }
    assert_eq!(
        first.order(),
        ["a", "b", "c"],
        "one cpu: e (priority -1) waits behind the chain"
    );
    let killed = exec.load("killed").await.unwrap();
    assert_eq!(killed.status, RunStatus::Running);
    assert_eq!(killed.task("b").unwrap().status, TaskStatus::Succeeded);

    let second = Arc::new(Recorder::new());
    let exec = executor(second.clone(), dir.path(), cpus(1));
    assert!(matches!(
        exec.resume(&pipeline, "killed", "v2", CancellationToken::new())
            .await,
        Err(Error::DefinitionChanged { .. })
    ));
    let state = exec
        .resume(&pipeline, "killed", "v1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert_eq!(state.sessions, 2);
    assert_eq!(second.order(), ["c", "d", "e"], "a and b did not run again");
    let c = second.invocations.lock().unwrap()[0].clone();
    assert_eq!(
        c.inputs["i"],
        json!("b-value"),
        "b's recorded output serves the reference"
    );
    assert_eq!(c.attempt, 2, "attempts count over the run's life");
    assert_eq!(state.task("a").unwrap().outputs["o"], "/a");
    assert_eq!(state.task("a").unwrap().attempts, 1);
}

#[tokio::test]
async fn a_cancelled_run_records_its_running_tasks_cancelled_and_resumes() {
    let pipeline = parse(&chain());
    let dir = tempfile::tempdir().unwrap();
    let runner = Arc::new(
        Recorder::new()
            .script("b", reports_o())
            .script("c", Script::WaitForCancel),
    );
    let exec = executor(runner.clone(), dir.path(), cpus(1));
    let cancel = CancellationToken::new();
    let run = exec.run(&pipeline, named("cancelled"), cancel.clone());
    let watcher = async {
        while !runner.order().contains(&"c".to_string()) {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
    };
    let (state, ()) = tokio::join!(run, watcher);
    let state = state.unwrap();
    assert_eq!(state.status, RunStatus::Cancelled);
    assert_eq!(state.task("c").unwrap().status, TaskStatus::Cancelled);
    assert_eq!(state.task("d").unwrap().status, TaskStatus::Pending);
    assert_eq!(runner.saw_cancel.lock().unwrap().as_slice(), ["c"]);

    let again = Arc::new(Recorder::new());
    let exec = executor(again.clone(), dir.path(), cpus(1));
    let state = exec
        .resume(&pipeline, "cancelled", "v1", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert_eq!(again.order(), ["c", "d", "e"]);
    let history = exec.history().await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, RunStatus::Succeeded);
}

#[tokio::test]
async fn history_lists_runs_newest_first_with_status_and_duration() {
    let text = document("    - {name: a, type: command}\n", "");
    let pipeline = parse(&text);
    let dir = tempfile::tempdir().unwrap();
    let exec = executor(
        Arc::new(Recorder::new().script("a", Script::FailPermanently)),
        dir.path(),
        large(),
    );
    exec.run(&pipeline, named("first"), CancellationToken::new())
        .await
        .unwrap();
    let exec = executor(Arc::new(Recorder::new()), dir.path(), large());
    exec.run(&pipeline, named("second"), CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(
        exec.run(&pipeline, named("second"), CancellationToken::new())
            .await,
        Err(Error::RunExists(_))
    ));
    assert!(matches!(
        exec.run(&pipeline, named("../x"), CancellationToken::new())
            .await,
        Err(Error::InvalidName { .. })
    ));
    let generated = exec
        .run(&pipeline, request("v"), CancellationToken::new())
        .await
        .unwrap();
    assert!(
        generated.run_id.starts_with("test-"),
        "{}",
        generated.run_id
    );
    let history = exec.history().await.unwrap();
    let ids: Vec<&str> = history.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [generated.run_id.as_str(), "second", "first"]);
    assert_eq!(history[2].status, RunStatus::Failed);
    assert!(
        history
            .iter()
            .all(|r| r.duration.is_some() && r.finished_at.is_some())
    );
}

#[test]
fn runs_are_futures_a_multi_threaded_runtime_can_spawn() {
    fn send<T: Send>(_: &T) {}
    let pipeline = parse(&document("    - {name: a, type: command}\n", ""));
    let dir = tempfile::tempdir().unwrap();
    let exec = executor(Arc::new(Recorder::new()), dir.path(), large());
    send(&exec.run(&pipeline, request("v"), CancellationToken::new()));
    send(&exec.resume(&pipeline, "r", "v", CancellationToken::new()));
}
