//! Training-set versions shared by many writers and readers, and survived by killed ones:
//! eight processes creating fifty versions each of one set (local directory and S3) while a
//! reader watches; writers SIGKILLed at random points; and the `training-sets` CLI end to end.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use serde::{Deserialize, Serialize};
use trainstore::Workspace;
use trainstore::core::{DatasetName, MountTable, NoProgress, StorageOptions};
use trainstore::featurestore::training::{CreateOptions, TrainingSets};

use crate::{cli, cli_with_env};

const WORKER_ENV: &str = "TRAINSTORE_TEST_TRAINING_SET_WORKER";
const PROCESSES: usize = 8;
const EACH: usize = 50;

#[derive(Serialize, Deserialize)]
struct WorkerSpec {
    location: String,
    options: StorageOptions,
    writer: usize,
}

fn set_name() -> DatasetName {
    DatasetName::new("vibration").unwrap()
}

/// `n` rows whose `writer` and `seq` columns say who wrote them, in which create.
fn marked_rows(writer: usize, seq: usize, n: usize) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "writer",
            Arc::new(Int64Array::from(vec![writer as i64; n])) as _,
        ),
        ("seq", Arc::new(Int64Array::from(vec![seq as i64; n])) as _),
        (
            "x",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| (i * writer) as f64),
            )) as _,
        ),
        (
            "label",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| if i % 3 == 0 { "fault" } else { "ok" }),
            )) as _,
        ),
    ])
    .unwrap()
}

async fn open(location: &str, options: &StorageOptions) -> TrainingSets {
    Workspace::open_with(location, &MountTable::default(), options)
        .await
        .unwrap()
        .training_sets()
}

/// In a writer process started by [`many_writers`] (which says what to do in `WORKER_ENV`):
/// creates its versions and returns `true`. In an ordinary test run: `false`, and the test goes
/// on.
async fn create_as_worker() -> bool {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return false;
    };
    let spec: WorkerSpec = serde_json::from_str(&spec).unwrap();
    let sets = open(&spec.location, &spec.options).await;
    for seq in 0..EACH {
        sets.create_from_batches(
            &set_name(),
            vec![marked_rows(spec.writer, seq, 50 + seq)],
            CreateOptions {
                label: Some("label".into()),
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    }
    true
}

/// Every listed version reads back whole: as many rows as its manifest says, all from one
/// create. Returns the (writer, seq) mark of each.
async fn check_complete(sets: &TrainingSets) -> Vec<(i64, i64)> {
    let mut marks = Vec::new();
    for listed in sets.list(&set_name()).await.unwrap().iter() {
        let v = sets
            .get(&set_name(), &listed.version.to_string())
            .await
            .unwrap();
        let (_, batches) = sets.read(&v).await.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, v.info.rows, "{} is partial", v.id());
        let mut mark = None;
        for b in &batches {
            let writer = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let seq = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                let m = (writer.value(i), seq.value(i));
                assert_eq!(*mark.get_or_insert(m), m, "{} mixes creates", v.id());
            }
        }
        marks.extend(mark);
    }
    marks
}

/// Eight processes create fifty versions each of one set at `location`; each runs the test
/// named `test` again, which finds its orders in the environment.
async fn many_writers(location: &str, options: StorageOptions, test: &str) {
    let sets = open(location, &options).await;
    let exe = std::env::current_exe().unwrap();
    let mut writers: Vec<_> = (0..PROCESSES)
        .map(|writer| {
            let spec = WorkerSpec {
                location: location.to_owned(),
                options: options.clone(),
                writer,
            };
            tokio::process::Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, serde_json::to_string(&spec).unwrap())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // A reader meanwhile only ever sees complete versions.
    let mut looks = 0;
    while writers.iter_mut().any(|w| w.try_wait().unwrap().is_none()) {
        check_complete(&sets).await;
        looks += 1;
    }
    for writer in writers {
        let out = writer.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "a writer failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
    assert!(looks > 0);

    let listed = sets.list(&set_name()).await.unwrap();
    let mut numbers: Vec<u64> = listed.iter().map(|l| l.version.get()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=(PROCESSES * EACH) as u64).collect::<Vec<_>>());
    let marks = check_complete(&sets).await;
    assert_eq!(marks.len(), PROCESSES * EACH);
    let marks: BTreeSet<(i64, i64)> = marks.into_iter().collect();
    let expected: BTreeSet<(i64, i64)> = (0..PROCESSES as i64)
        .flat_map(|w| (0..EACH as i64).map(move |s| (w, s)))
        .collect();
    assert_eq!(marks, expected, "every create landed once");
    let report = sets.fsck(Duration::ZERO, &NoProgress).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.versions, PROCESSES * EACH);
    assert!(report.orphans.is_empty(), "{:?}", report.orphans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_create_four_hundred_versions_on_a_local_directory() {
    if create_as_worker().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let test = "training_sets::eight_processes_create_four_hundred_versions_on_a_local_directory";
    many_writers(ws.to_str().unwrap(), StorageOptions::new(), test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_create_four_hundred_versions_on_s3() {
    if create_as_worker().await {
        return;
    }
    let endpoint = std::env::var("TRAINSTORE_TEST_S3_ENDPOINT").expect(
        "TRAINSTORE_TEST_S3_ENDPOINT is not set: run `eval \"$(scripts/test-services)\"` first",
    );
    let bucket = format!("ts-sets-{:016x}", rand::random::<u64>());
    trainstore_testkit::create_bucket(&endpoint, &bucket).await;
    let options: StorageOptions = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_region", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let test = "training_sets::eight_processes_create_four_hundred_versions_on_s3";
    many_writers(&format!("s3://{bucket}/ws"), options, test).await;
}

/// A Parquet file of `rows` rows for `training-sets create --from`.
fn rows_file(dir: &Path, rows: usize) -> String {
    let batch = marked_rows(7, 0, rows);
    let path = dir.join(format!("rows-{rows}.parquet"));
    let mut out = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_killed_at_random_points_leave_only_complete_versions_and_collectable_files() {
    const KILLS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let ws = ws.to_str().unwrap();
    let (ok, _, err) = cli(&["workspace", "init", ws], &config);
    assert!(ok, "{err}");
    let input = rows_file(dir.path(), 100_000);
    let sets = open(ws, &StorageOptions::new()).await;
    let create = || {
        Command::new(env!("CARGO_BIN_EXE_trainstore"))
            .args(["training-sets", "create", ws, "vibration", "--from", &input])
            .env("TRAINSTORE_CONFIG", &config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // One create left alone says how long a whole one takes here; kills then fall anywhere
    // from the start to a little past its end.
    let started = std::time::Instant::now();
    assert!(create().wait().unwrap().success());
    let whole = started.elapsed().as_millis() as u64;
    for _ in 0..KILLS {
        let mut writer = create();
        std::thread::sleep(Duration::from_millis(rand::random_range(0..whole * 6 / 5)));
        let _ = writer.kill();
        let _ = writer.wait();
        check_complete(&sets).await;
    }
    let listed = sets.list(&set_name()).await.unwrap();
    let mut numbers: Vec<u64> = listed.iter().map(|l| l.version.get()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());

    let report = sets.fsck(Duration::ZERO, &NoProgress).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let orphans: BTreeSet<String> = report.orphans.iter().map(|o| o.path.clone()).collect();
    let removed: BTreeSet<String> = sets
        .gc(Duration::ZERO, false)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert_eq!(
        removed, orphans,
        "gc removes exactly the orphans fsck named"
    );
    let after = sets.fsck(Duration::ZERO, &NoProgress).await.unwrap();
    assert!(after.is_ok() && after.orphans.is_empty(), "{after:?}");
    assert_eq!(after.versions, listed.len());
    check_complete(&sets).await;
}

#[test]
fn the_cli_creates_lists_selects_names_exports_and_checks_sets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let ws = ws.to_str().unwrap();
    let run = |args: &[&str]| {
        let (ok, out, err) = cli(args, &config);
        assert!(ok, "{args:?}: {out}{err}");
        out
    };
    run(&["workspace", "init", ws]);
    let small = rows_file(dir.path(), 100);
    let large = rows_file(dir.path(), 5_000);
    let out = run(&[
        "training-sets",
        "create",
        ws,
        "vibration",
        "--from",
        &small,
        "--label",
        "label",
        "--meta",
        "description=small",
    ]);
    assert!(out.contains("created vibration@v1: 100 rows"), "{out}");
    run(&["training-sets", "create", ws, "vibration", "--from", &large]);
    let listed = run(&["training-sets", "list", ws, "vibration", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(run(&["training-sets", "list", ws]).trim(), "vibration");

    let best = run(&[
        "training-sets",
        "select-best",
        ws,
        "vibration",
        "--min-data-size",
        "1000",
        "--json",
    ]);
    let best: serde_json::Value = serde_json::from_str(&best).unwrap();
    assert_eq!(best["id"], "vibration@v2");
    let (ok, _, err) = cli(
        &[
            "training-sets",
            "select-best",
            ws,
            "vibration",
            "--min-data-size",
            "1000000",
        ],
        &config,
    );
    assert!(
        !ok && err.contains("min_data_size excluded 2 of 2"),
        "{err}"
    );

    run(&["training-sets", "tag", ws, "vibration@v1", "paper"]);
    run(&["training-sets", "alias", ws, "vibration@2", "golden"]);
    let shown = run(&["training-sets", "show", ws, "vibration@paper"]);
    assert!(
        shown.contains("vibration@v1") && shown.contains("label balance"),
        "{shown}"
    );
    assert!(
        shown.lines().any(|l| l.trim_start().starts_with("x ")),
        "{shown}"
    );
    let out = dir.path().join("golden.parquet");
    run(&[
        "training-sets",
        "export",
        ws,
        "vibration@golden",
        "--out",
        out.to_str().unwrap(),
    ]);
    let exported = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&out).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap().num_rows())
    .sum::<usize>();
    assert_eq!(exported, 5_000);
    let diff = run(&[
        "training-sets",
        "diff",
        ws,
        "vibration@1",
        "vibration@golden",
    ]);
    assert!(diff.contains("0 removed, 4900 added"), "{diff}");
    let drift = run(&[
        "training-sets",
        "drift",
        ws,
        "vibration@1",
        "vibration@2",
        "--json",
    ]);
    let drift: Vec<serde_json::Value> = serde_json::from_str(&drift).unwrap();
    assert!(drift.iter().any(|d| d["column"] == "x"), "{drift:?}");
    // Sets given as rows have no request to repeat.
    let (ok, _, err) = cli(&["training-sets", "reproduce", ws, "vibration"], &config);
    assert!(!ok && err.contains("not supported"), "{err}");
    run(&["training-sets", "fsck", ws]);

    // A data file changed behind the catalog's back: fsck fails naming the version.
    let data = dir.path().join("ws/training-sets/items/vibration/data");
    let victim = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let (ok, out, err) = cli(&["training-sets", "fsck", ws], &config);
    assert!(!ok, "{out}");
    assert!(out.contains("vibration@v"), "{out}{err}");
    let (ok, out, _) = cli(&["workspace", "verify", ws], &config);
    assert!(!ok && out.contains("training-sets: vibration@v"), "{out}");
}

#[test]
fn the_cli_shares_sets_between_users_with_permissions_leases_drafts_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "user: ana\n").unwrap();
    let ws = dir.path().join("ws");
    let ws = ws.to_str().unwrap();
    let as_user = |user: Option<&str>, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        if let Some(u) = user {
            all.extend(["--user", u]);
        }
        cli_with_env(&all, &config, &[("TRAINSTORE_USER", "")])
    };
    let run = |user: Option<&str>, args: &[&str]| {
        let (ok, out, err) = as_user(user, args);
        assert!(ok, "{args:?}: {out}{err}");
        out
    };
    run(None, &["workspace", "init", ws]);
    let rows = rows_file(dir.path(), 100);
    run(
        None,
        &["training-sets", "create", ws, "vibration", "--from", &rows],
    );
    // The settings file's user is the author and so the admin.
    let audit = run(None, &["training-sets", "audit", ws, "vibration", "--json"]);
    let audit: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    assert_eq!(
        (audit[0]["user"].as_str(), audit[0]["action"].as_str()),
        (Some("ana"), Some("create"))
    );

    run(
        None,
        &["training-sets", "grant", ws, "vibration", "*", "read"],
    );
    let (ok, _, err) = as_user(
        Some("bob"),
        &["training-sets", "create", ws, "vibration", "--from", &rows],
    );
    assert!(
        !ok && err.contains("permission denied: bob may not create vibration"),
        "{err}"
    );
    let (ok, _, err) = as_user(
        Some("bob"),
        &["training-sets", "grant", ws, "vibration", "bob", "admin"],
    );
    assert!(!ok && err.contains("needs admin"), "{err}");
    let audit = run(Some("bob"), &["training-sets", "audit", ws, "vibration"]);
    assert_eq!(audit.matches("REFUSED").count(), 2, "{audit}");
    let (ok, _, err) = as_user(
        None,
        &["training-sets", "grant", ws, "vibration", "bob", "owner"],
    );
    assert!(
        !ok && err.contains("expected read, write or admin"),
        "{err}"
    );
    run(
        None,
        &["training-sets", "grant", ws, "vibration", "bob", "write"],
    );
    let access = run(None, &["training-sets", "access", ws, "vibration"]);
    assert!(
        access.contains("bob: write") && access.contains("set by ana"),
        "{access}"
    );

    // bob's lease keeps ana out until she, the admin, breaks it.
    run(
        Some("bob"),
        &[
            "training-sets",
            "lease",
            ws,
            "vibration",
            "acquire",
            "--hours",
            "1",
        ],
    );
    let (ok, _, err) = as_user(None, &["training-sets", "tag", ws, "vibration@1", "x"]);
    assert!(!ok && err.contains("leased by bob"), "{err}");
    let shown = run(None, &["training-sets", "lease", ws, "vibration"]);
    assert!(shown.contains("held by bob"), "{shown}");
    run(None, &["training-sets", "lease", ws, "vibration", "break"]);

    // A draft: only bob sees it until he commits it.
    let id = run(
        Some("bob"),
        &[
            "training-sets",
            "draft",
            "start",
            ws,
            "vibration",
            "--base",
            "vibration@1",
        ],
    );
    let id = id.trim();
    run(
        Some("bob"),
        &[
            "training-sets",
            "draft",
            "append",
            ws,
            "vibration",
            id,
            "--from",
            &rows,
        ],
    );
    assert!(run(None, &["training-sets", "draft", "list", ws, "vibration"]).is_empty());
    let (ok, _, err) = as_user(
        None,
        &["training-sets", "draft", "commit", ws, "vibration", id],
    );
    assert!(!ok && err.contains("not found"), "{err}");
    let listed = run(
        Some("bob"),
        &["training-sets", "draft", "list", ws, "vibration"],
    );
    assert!(
        listed.contains(id) && listed.contains("200 rows"),
        "{listed}"
    );
    let out = run(
        Some("bob"),
        &["training-sets", "draft", "commit", ws, "vibration", id],
    );
    assert!(out.contains("committed vibration@v2: 200 rows"), "{out}");

    run(
        None,
        &["training-sets", "create", ws, "vibration", "--from", &rows],
    );
    let out = run(
        None,
        &[
            "training-sets",
            "retain",
            ws,
            "vibration",
            "--keep-last",
            "1",
            "--dry-run",
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["would delete vibration@v1", "would delete vibration@v2"]
    );
    run(None, &["training-sets", "delete", ws, "vibration@2"]);
    let (ok, _, err) = as_user(None, &["training-sets", "show", ws, "vibration@2"]);
    assert!(!ok && err.contains("deleted"), "{err}");
    run(None, &["training-sets", "fsck", ws]);

    // A namespace's sets are its own: same name, other versions; verify and gc cover them.
    run(
        None,
        &[
            "training-sets",
            "--namespace",
            "team-b",
            "create",
            ws,
            "vibration",
            "--from",
            &rows,
        ],
    );
    let listed = run(
        None,
        &[
            "training-sets",
            "--namespace",
            "team-b",
            "list",
            ws,
            "vibration",
            "--json",
        ],
    );
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1);
    let listed = run(None, &["training-sets", "list", ws, "vibration", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 2);
    let data = dir
        .path()
        .join("ws/training-sets/namespaces/team-b/items/vibration/data");
    let victim = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&victim, b"not parquet").unwrap();
    let (ok, out, _) = as_user(None, &["workspace", "verify", ws]);
    assert!(
        !ok && out.contains("training-sets/namespaces/team-b: vibration@v1"),
        "{out}"
    );
    let (ok, _, err) = as_user(
        None,
        &["training-sets", "--namespace", "no/such", "list", ws],
    );
    assert!(!ok && err.contains("namespace"), "{err}");
}
