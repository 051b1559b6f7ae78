//! Run stores: one conformance suite for the local directory and the object store, a torn
//! journal line, and a whole run on an object store.

use std::sync::Arc;

use trainstore_core::object_store::memory::InMemory;
use trainstore_pipeline::{
    CancellationToken, Error, Executor, LocalRunStore, ObjectRunStore, RunRequest, RunStatus,
    RunStore, load_run,
};

use crate::support::{Recorder, document, large, options, parse};

async fn conformance(store: &dyn RunStore) {
    assert_eq!(store.list_runs().await.unwrap(), Vec::<String>::new());
    assert_eq!(store.get_snapshot("r1").await.unwrap(), None);
    store.put_snapshot("r1", b"one".to_vec()).await.unwrap();
    store.put_snapshot("r1", b"two".to_vec()).await.unwrap();
    assert_eq!(
        store.get_snapshot("r1").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(store.read_journal("r1").await.unwrap(), b"");
    store
        .append_journal("r1", 1, b"a\nb\n".to_vec())
        .await
        .unwrap();
    store
        .append_journal("r1", 3, b"c\n".to_vec())
        .await
        .unwrap();
    assert_eq!(store.read_journal("r1").await.unwrap(), b"a\nb\nc\n");
    // A second process that numbered its events from the same state: nothing is replaced.
    store
        .append_journal("r1", 3, b"d\n".to_vec())
        .await
        .unwrap();
    assert_eq!(store.read_journal("r1").await.unwrap(), b"a\nb\nc\nd\n");
    store.append_log("r1", "task", 1, 0, "first").await.unwrap();
    store
        .append_log("r1", "task", 1, 1, "second")
        .await
        .unwrap();
    store
        .append_log("r1", "task", 2, 0, "other attempt")
        .await
        .unwrap();
    assert_eq!(
        store.read_log("r1", "task", 1).await.unwrap(),
        "first\nsecond\n"
    );
    assert_eq!(store.read_log("r1", "task", 3).await.unwrap(), "");
    assert!(store.create_snapshot("r2", b"{}".to_vec()).await.unwrap());
    assert!(!store.create_snapshot("r2", b"lost".to_vec()).await.unwrap());
    assert!(!store.create_snapshot("r1", b"lost".to_vec()).await.unwrap());
    assert_eq!(
        store.get_snapshot("r2").await.unwrap().as_deref(),
        Some(&b"{}"[..])
    );
    let mut runs = store.list_runs().await.unwrap();
    runs.sort();
    assert_eq!(runs, ["r1", "r2"]);
}

#[tokio::test]
async fn the_local_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&LocalRunStore::new(dir.path().join("runs"))).await;
    conformance(&LocalRunStore::new(dir.path().join("synced")).with_sync(true)).await;
}

#[tokio::test]
async fn the_object_store_passes_the_conformance_suite() {
    conformance(&ObjectRunStore::new(
        Arc::new(InMemory::new()),
        "pipelines/runs",
    ))
    .await;
}

#[tokio::test]
async fn a_torn_last_journal_line_is_ignored_and_a_torn_middle_one_is_an_error() {
    let text = document(
        "    - {name: a, type: command}\n    - {name: b, type: command}\n",
        "  dependencies: [{from: a, to: b}]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalRunStore::new(dir.path()));
    let exec = Executor::with_options(Arc::new(Recorder::new()), store.clone(), options(large()));
    let request = RunRequest {
        run_id: Some("r".into()),
        definition: "v".into(),
        ..Default::default()
    };
    let done = exec
        .run(&parse(&text), request, CancellationToken::new())
        .await
        .unwrap();
    // As a process killed mid-run leaves it: the first snapshot, and part of the journal.
    let journal = std::fs::read_to_string(dir.path().join("r/journal.jsonl")).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    let mut first = done.clone();
    first.seq = 0;
    first.status = RunStatus::Running;
    first.finished_at = None;
    for t in &mut first.tasks {
        *t = serde_json::from_value(serde_json::json!({
            "name": t.name, "status": "pending", "attempts": 0, "started_at": null,
            "finished_at": null, "duration_ms": null, "outputs": {}, "error": null
        }))
        .unwrap();
    }
    std::fs::write(
        dir.path().join("r/state.json"),
        serde_json::to_vec(&first).unwrap(),
    )
    .unwrap();
    let torn = format!("{}\n{}\n{}", lines[0], lines[1], &lines[2][..10]);
    std::fs::write(dir.path().join("r/journal.jsonl"), &torn).unwrap();
    let state = load_run(store.as_ref(), "r").await.unwrap();
    assert_eq!(state.seq, 2);
    assert_eq!(
        state.task("a").unwrap().status,
        trainstore_pipeline::TaskStatus::Succeeded
    );
    assert_eq!(
        state.task("b").unwrap().status,
        trainstore_pipeline::TaskStatus::Pending
    );
    let broken = format!("{}\n{}\n{}\n", lines[0], &lines[1][..10], lines[2]);
    std::fs::write(dir.path().join("r/journal.jsonl"), &broken).unwrap();
    assert!(matches!(
        load_run(store.as_ref(), "r").await,
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        load_run(store.as_ref(), "nope").await,
        Err(Error::RunNotFound(_))
    ));
}

#[tokio::test]
async fn a_run_on_an_object_store_persists_and_resumes() {
    let text = document(
        "    - {name: a, type: command}\n    - {name: b, type: command, retries: 0}\n",
        "  dependencies: [{from: a, to: b}]\n",
    );
    let pipeline = parse(&text);
    let store = Arc::new(ObjectRunStore::new(Arc::new(InMemory::new()), "runs"));
    let failing = Arc::new(Recorder::new().script("b", crate::support::Script::FailPermanently));
    let exec = Executor::with_options(failing.clone(), store.clone(), options(large()));
    let request = RunRequest {
        run_id: Some("r".into()),
        definition: "v".into(),
        ..Default::default()
    };
    let state = exec
        .run(&pipeline, request, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Failed);
    let fixed = Arc::new(Recorder::new());
    let exec = Executor::with_options(fixed.clone(), store.clone(), options(large()));
    let state = exec
        .resume(&pipeline, "r", "v", CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert_eq!(fixed.order(), ["b"]);
    assert_eq!(state.task("b").unwrap().attempts, 2);
    assert_eq!(exec.log("r", "b", 2).await.unwrap(), "attempt 2 of b\n");
    assert_eq!(
        exec.history().await.unwrap()[0].status,
        RunStatus::Succeeded
    );
}
