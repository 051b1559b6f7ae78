//! Pipelines run by a workspace: the design document's pipeline end to end with its built-in
//! task types (on snapshot files, and on MariaDB standing in for Doris), an incremental
//! round, resume re-running only what did not finish, and the CLI's validation report.

use mysql_async::prelude::Queryable;
use trainstore::Workspace;
use trainstore::core::object_store::path::Path;
use trainstore::core::{DatasetName, Secret, Timestamp};
use trainstore::doris::load::load_design_doc_rows;
use trainstore::doris::{
    FileFormat, SnapshotGenerator, SynthConfig, Timeouts, write_snapshot_file,
};
use trainstore_pipeline::{CancellationToken, RunState, RunStatus, TaskStatus};

/// The design document's pipeline, adapted only in its paths (see the file's comment).
const DESIGN_DOC: &str = include_str!("../../examples/pipelines/design-doc-7.1.yaml");

/// Four devices with two nodes each, a snapshot every 10 minutes from 2022-12-07.
fn config() -> SynthConfig {
    SynthConfig {
        devices: 4,
        nodes_per_device: 2,
        snapshots: 150,
        start: Timestamp::parse("2022-12-07T00:00:00Z").unwrap(),
        // Every snapshot well formed, so the rows are counted exactly.
        malformed_rate: 0.0,
        ..SynthConfig::default()
    }
}

/// How many generated snapshots lie in `[start, end]` (the generator jitters their times).
fn snapshots_between(start: &str, end: &str) -> usize {
    use arrow::array::AsArray;
    let (start, end) = (
        Timestamp::parse(start).unwrap().as_millis(),
        Timestamp::parse(end).unwrap().as_millis(),
    );
    SnapshotGenerator::new(config())
        .unwrap()
        .batches(4096)
        .map(|b| {
            let times = b
                .column_by_name("time")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>();
            times
                .values()
                .iter()
                .filter(|t| (start..=end).contains(*t))
                .count()
        })
        .sum()
}

fn parameters(
    start: &str,
    end: &str,
    base: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let json = serde_json::json!({
        "time_range": {"start": start, "end": end},
        "entity_list": null,
        "epochs": 2,
        "base_model": base,
    });
    json.as_object().unwrap().clone()
}

fn assert_succeeded(state: &RunState) {
    assert_eq!(state.status, RunStatus::Succeeded, "{state:#?}");
    assert!(
        state
            .tasks
            .iter()
            .all(|t| t.status == TaskStatus::Succeeded)
    );
}

async fn run(
    ws: &Workspace,
    document: &str,
    params: serde_json::Map<String, serde_json::Value>,
) -> RunState {
    ws.pipelines()
        .run(document, None, params, CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_design_docs_pipeline_runs_end_to_end_then_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("ws").to_str().unwrap())
        .await
        .unwrap();
    let batches = SnapshotGenerator::new(config()).unwrap().batches(4096);
    let file = Path::from("snapshots/part-0.parquet");
    write_snapshot_file(ws.store().clone(), &file, FileFormat::Parquet, batches)
        .await
        .unwrap();

    let first = run(
        &ws,
        DESIGN_DOC,
        parameters("2022-12-07T00:00:00Z", "2022-12-07T19:59:59Z", None),
    )
    .await;
    assert_succeeded(&first);
    assert_eq!(
        first.definition,
        "pipeline-doris-feast-incremental-pipeline@v1"
    );
    let task = |state: &RunState, name: &str| state.task(name).unwrap().outputs.clone();
    assert_eq!(
        task(&first, "training-set-versioning")["versioned_training_set"],
        "training-set@v1"
    );
    assert_eq!(task(&first, "model-training")["trained_model"], "model@v1");
    let sets = ws.training_sets();
    let v1 = sets
        .get(&DatasetName::new("training-set").unwrap(), "v1")
        .await
        .unwrap();
    // One row per snapshot in the first 20 hours: of 8 series, about 120 each.
    let expected = snapshots_between("2022-12-07T00:00:00Z", "2022-12-07T19:59:59Z");
    assert!((900..=960).contains(&expected), "{expected}");
    assert_eq!(v1.info.rows as usize, expected);

    // The incremental round: a later time range, trained further from the champion.
    let second = run(
        &ws,
        DESIGN_DOC,
        parameters(
            "2022-12-07T20:00:00Z",
            "2022-12-08T05:00:00Z",
            Some("model@champion"),
        ),
    )
    .await;
    assert_succeeded(&second);
    let models = ws.models();
    let name = DatasetName::new("model").unwrap();
    let v2 = models.get(&name, "v2").await.unwrap();
    assert_eq!(v2.card.lineage.base.as_deref(), Some("model@v1"));
    assert_eq!(
        v2.card.lineage.training_sets,
        ["training-set@v2", "training-set@v1"],
        "trained on the new set, replaying the base's"
    );
    let champion = models.get(&name, "champion").await.unwrap();
    assert_eq!(
        task(&second, "model-deployment")["deployed_model"],
        champion.id(),
        "the deployed model is the champion, whichever won the gate"
    );
    let report =
        std::fs::read_to_string(dir.path().join("ws/results/evaluation/evaluation.json")).unwrap();
    assert!(report.contains("\"rmse\""), "{report}");

    let runs = ws.pipelines().runs().await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].run_id, second.run_id, "newest first");
    // Applying the same document again makes no version; a changed one does.
    let pipelines = ws.pipelines();
    assert!(!pipelines.apply(DESIGN_DOC).await.unwrap().changed);
    let changed = DESIGN_DOC.replace("version: \"1.0.0\"", "version: \"1.0.1\"");
    assert_eq!(pipelines.apply(&changed).await.unwrap().version.get(), 2);
    let back = pipelines
        .rollback(
            "doris-feast-incremental-pipeline",
            trainstore::core::Version::new(1).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(back.version.get(), 3);
    let (_, text) = pipelines
        .document("doris-feast-incremental-pipeline", "latest")
        .await
        .unwrap();
    assert_eq!(text, DESIGN_DOC);
}

/// The same pipeline, its query reading a MariaDB table (the MySQL protocol Doris speaks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_design_docs_pipeline_queries_mariadb_as_doris() {
    let server = std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
        "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
    );
    let db = format!("ts_pipeline_{}", std::process::id());
    let mut conn = mysql_async::Conn::from_url(server.as_str()).await.unwrap();
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .unwrap();
    let url = format!("{}/{db}", server.trim_end_matches('/'));
    let rows = SnapshotGenerator::new(config()).unwrap().batches(4096);
    load_design_doc_rows(
        &Secret::new(url.clone()),
        "feature_snapshots",
        "test",
        rows,
        Timeouts::default(),
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("ws").to_str().unwrap())
        .await
        .unwrap();
    let source = format!(
        "type: data_query\n      config:\n        source: {{type: doris, url: \"{url}\", table: feature_snapshots}}"
    );
    let document = DESIGN_DOC.replacen("type: data_query", &source, 1);
    let state = run(
        &ws,
        &document,
        parameters("2022-12-07T00:00:00Z", "2022-12-07T19:59:59Z", None),
    )
    .await;
    assert_succeeded(&state);
    let set = ws
        .training_sets()
        .get(&DatasetName::new("training-set").unwrap(), "latest")
        .await
        .unwrap();
    let expected = snapshots_between("2022-12-07T00:00:00Z", "2022-12-07T19:59:59Z");
    assert_eq!(
        set.info.rows as usize, expected,
        "every snapshot in the range"
    );
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .unwrap();
}

/// A run whose second task fails is resumed: the first task, which succeeded, does not run
/// again (its one log line is still its only one), and the second runs until it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_runs_only_what_did_not_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("ws").to_str().unwrap())
        .await
        .unwrap();
    let flag = dir.path().join("ready");
    let counter = dir.path().join("count");
    let document = format!(
        r#"apiVersion: train-platform/v1
kind: Pipeline
metadata: {{name: resumable}}
spec:
  tasks:
    - name: first
      type: command
      config: {{command: [sh, -c, "echo ran >> {counter}"]}}
    - name: second
      type: command
      config: {{command: [sh, -c, "test -e {flag} || {{ echo not ready; exit 3; }}"]}}
  dependencies:
    - {{from: first, to: second}}
"#,
        counter = counter.display(),
        flag = flag.display()
    );
    let pipelines = ws.pipelines();
    let failed = pipelines
        .run(
            &document,
            None,
            Default::default(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.task("second").unwrap().status, TaskStatus::Failed);
    let log = pipelines.log(&failed.run_id, "second", 1).await.unwrap();
    assert!(log.contains("not ready"), "{log}");

    std::fs::write(&flag, "").unwrap();
    let resumed = pipelines
        .resume(&failed.run_id, CancellationToken::new())
        .await
        .unwrap();
    assert_succeeded(&resumed);
    assert_eq!(resumed.sessions, 2);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "ran\n",
        "first ran once"
    );
    assert_eq!(resumed.task("first").unwrap().attempts, 1);
    assert_eq!(resumed.task("second").unwrap().attempts, 2);
}

/// `pipeline validate` reports every problem of a document at once, with paths and lines.
#[test]
fn cli_validate_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, DESIGN_DOC).unwrap();
    let (ok, out, err) = crate::cli(&["pipeline", "validate", good.to_str().unwrap()], &config);
    assert!(ok && out.contains("valid, 6 tasks"), "{out}{err}");

    let bad = dir.path().join("bad.yaml");
    let broken = DESIGN_DOC
        .replacen("memory: \"4Gi\"", "memory: \"4 gigs\"", 1)
        .replace(
            "source: \"data/test\"",
            "source: \"{{ tasks.nowhere.outputs.x }}\"",
        )
        .replacen(
            "  dependencies:\n",
            "  dependencies:\n    - from: model-deployment\n      to: doris-data-query\n",
            1,
        );
    std::fs::write(&bad, broken).unwrap();
    let (ok, out, err) = crate::cli(&["pipeline", "validate", bad.to_str().unwrap()], &config);
    assert!(!ok, "{out}");
    for expected in ["3 problem(s)", "cycle", "nowhere", "4 gigs", "line "] {
        assert!(err.contains(expected), "{expected:?} missing from: {err}");
    }
}

/// `task run` (what an exported workflow's pod runs) says by its exit code whether Argo
/// should retry: 0 done, 3 failed for good (a bad config), 1 failed otherwise.
#[test]
fn cli_task_run_tells_argo_whether_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let document = dir.path().join("p.yaml");
    std::fs::write(
        &document,
        r#"apiVersion: train-platform/v1
kind: Pipeline
metadata: {name: pods}
spec:
  tasks:
    - {name: fine, type: command, config: {command: ["true"]}}
    - {name: flaky, type: command, config: {command: ["false"]}}
    - {name: misconfigured, type: command, config: {command: "not a list"}}
"#,
    )
    .unwrap();
    let ws = dir.path().join("ws");
    let task = |name: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainstore"))
            .args(["task", "run", "--workspace", ws.to_str().unwrap()])
            .args([
                "--pipeline",
                document.to_str().unwrap(),
                "--run",
                "r1",
                "--task",
                name,
            ])
            .env("TRAINSTORE_CONFIG", &config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(task("fine").0, Some(0));
    assert_eq!(
        task("fine").0,
        Some(0),
        "a task that succeeded exits at once"
    );
    let (code, err) = task("flaky");
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = task("misconfigured");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("retrying cannot help"), "{err}");
}

/// `pipeline run` killed (SIGKILL) while a task runs, then `pipeline resume`: the task that
/// had finished does not run again, the one cut off runs again and the run succeeds.
#[test]
fn a_killed_run_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let (count, started, flag) = (
        dir.path().join("count"),
        dir.path().join("started"),
        dir.path().join("go"),
    );
    let document = dir.path().join("p.yaml");
    // `second` waits (at most a minute) for the flag the test sets once the run is killed.
    let wait = format!(
        "echo started >> {}; for i in $(seq 600); do test -e {} && exit 0; sleep 0.1; done; exit 1",
        started.display(),
        flag.display()
    );
    let text = format!(
        r#"apiVersion: train-platform/v1
kind: Pipeline
metadata: {{name: killed}}
spec:
  tasks:
    - {{name: first, type: command, config: {{command: [sh, -c, "echo ran >> {}"]}}}}
    - {{name: second, type: command, config: {{command: [sh, -c, "{wait}"]}}}}
  dependencies:
    - {{from: first, to: second}}
"#,
        count.display()
    );
    std::fs::write(&document, text).unwrap();
    let (ws_arg, doc_arg) = (ws.to_str().unwrap(), document.to_str().unwrap());
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_trainstore"))
        .args(["pipeline", "run", ws_arg, doc_arg, "--run-id", "cut"])
        .env("TRAINSTORE_CONFIG", &config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second task never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    std::fs::write(&flag, "").unwrap();

    // A budget of its own: one core and a gibibyte, the tasks one at a time.
    let resume = [
        "pipeline", "resume", ws_arg, "cut", "--cpu", "1", "--memory", "1Gi",
    ];
    let (ok, _, err) = crate::cli(&[&resume[..4], &["--cpu", "lots"]].concat(), &config);
    assert!(!ok && err.contains("expected a CPU quantity"), "{err}");
    let (ok, out, err) = crate::cli(&resume, &config);
    assert!(ok && out.contains("run cut succeeded"), "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        "ran\n",
        "first ran once"
    );
    assert_eq!(
        std::fs::read_to_string(&started).unwrap().lines().count(),
        2
    );
    let (ok, out, _) = crate::cli(&["pipeline", "runs", ws_arg, "cut", "--json"], &config);
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && state["status"] == "succeeded", "{out}");
    assert_eq!(state["sessions"], 2);
    assert_eq!(state["tasks"][0]["attempts"], 1);
    // The cut-off attempt counts when its start reached the journal before the kill.
    let second = state["tasks"][1]["attempts"].as_u64().unwrap();
    assert!((1..=2).contains(&second), "{out}");
}

/// A query's source with a literal Doris password is refused before anything is stored (the
/// document's versions would keep it), and the message does not repeat it; a malformed source
/// is refused before anything runs.
#[tokio::test]
async fn a_literal_password_in_a_query_source_is_refused() {
    let ws = Workspace::open("memory://pipeline-secrets").await.unwrap();
    let with = |source: &str| {
        DESIGN_DOC.replacen(
            "type: data_query",
            &format!("type: data_query\n      config:\n        source: {source}"),
            1,
        )
    };
    let literal = with("{type: doris, url: \"mysql://ana:hunter2@fe:9030/db\", table: t}");
    let err = ws
        .pipelines()
        .apply(&literal)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("${DORIS_PASSWORD}") && !err.contains("hunter2"),
        "{err}"
    );
    let reference = with("{type: doris, url: \"mysql://ana:${PW}@fe:9030/db\", table: t}");
    assert!(ws.pipelines().apply(&reference).await.is_ok());
    let malformed = with("{type: doris, table: t}");
    let err = ws
        .pipelines()
        .apply(&malformed)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("url"), "{err}");
}

/// The CLI keeps a pipeline's versions: apply (nothing new for the same text), history,
/// rollback as a new version.
#[test]
fn cli_applies_lists_and_rolls_back_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let ws = ws.to_str().unwrap();
    let file = dir.path().join("p.yaml");
    let apply = |text: &str| {
        std::fs::write(&file, text).unwrap();
        crate::cli(&["pipeline", "apply", ws, file.to_str().unwrap()], &config)
    };
    let name = "doris-feast-incremental-pipeline";
    let (ok, out, err) = apply(DESIGN_DOC);
    assert!(
        ok && out.contains(&format!("pipeline {name} applied as version v1")),
        "{out}{err}"
    );
    let (_, out, _) = apply(DESIGN_DOC);
    assert!(out.contains("unchanged, still version v1"), "{out}");
    let (_, out, _) = apply(&DESIGN_DOC.replace("\"1.0.0\"", "\"1.1.0\""));
    assert!(out.contains("applied as version v2"), "{out}");
    let (ok, out, err) = crate::cli(&["pipeline", "rollback", ws, name, "v1"], &config);
    assert!(
        ok && out.contains("back to version v1, as version v3"),
        "{out}{err}"
    );
    let (ok, out, _) = crate::cli(&["pipeline", "history", ws, name], &config);
    let versions: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert!(ok && versions == ["1.0.0", "1.1.0", "1.0.0"], "{out}");
}
