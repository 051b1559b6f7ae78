//! Writers that race and writers that die: eight `features apply` processes at once on a
//! local directory and on S3 all land, and processes killed mid-commit leave no partial or
//! lost version, only files `workspace gc` can name.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use trainstore::featurestore::{Definitions, Name};

use crate::cli;

const WRITERS: usize = 8;

/// A definitions file adding view `view<i>` (the design document's numbers) over `snaps`.
fn definitions_file(dir: &Path, snaps: &Path, i: usize) -> String {
    let mut defs = trainstore::features::design_doc_definitions(snaps.to_str().unwrap()).unwrap();
    let mut view = defs.feature_views.remove(0);
    view.name = Name::new(format!("view{i}")).unwrap();
    let defs = Definitions {
        entities: defs.entities,
        feature_views: vec![view],
        ..Definitions::default()
    };
    let file = dir.join(format!("view{i}.yaml"));
    std::fs::write(&file, defs.to_yaml()).unwrap();
    file.to_str().unwrap().to_owned()
}

fn apply(ws: &str, file: &str, config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trainstore"))
        .args(["features", "apply", ws, "-f", file])
        .env("TRAINSTORE_CONFIG", config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The registry's versions as `features history` lists them, and the definitions `features
/// list` shows.
fn registry(ws: &str, config: &Path) -> (Vec<u64>, String) {
    let (ok, history, err) = cli(&["features", "history", ws], config);
    assert!(ok, "{err}");
    let versions = history
        .lines()
        .map(|line| {
            let first = line.split_whitespace().next().unwrap();
            first.trim_start_matches('v').parse().unwrap()
        })
        .collect();
    let (ok, list, err) = cli(&["features", "list", ws], config);
    assert!(ok, "{err}");
    (versions, list)
}

fn race_and_kill(ws: &str, config: &Path, dir: &Path) {
    let snaps = dir.join("snaps");
    let (ok, _, err) = cli(
        &[
            "snapshots",
            "generate",
            "--to",
            snaps.to_str().unwrap(),
            "--devices",
            "2",
            "--snapshots",
            "4",
        ],
        config,
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["workspace", "init", ws], config);
    assert!(ok, "{err}");

    let racers: Vec<Child> = (0..WRITERS)
        .map(|i| apply(ws, &definitions_file(dir, &snaps, i), config))
        .collect();
    for racer in racers {
        let out = racer.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (versions, list) = registry(ws, config);
    assert_eq!(versions, (1..=WRITERS as u64).collect::<Vec<_>>());
    for i in 0..WRITERS {
        assert!(list.contains(&format!("view{i}")), "view{i} lost: {list}");
    }

    // Writers killed at staggered moments, some before and some during their commit.
    let victims: Vec<Child> = (WRITERS..2 * WRITERS)
        .map(|i| apply(ws, &definitions_file(dir, &snaps, i), config))
        .collect();
    for (n, mut victim) in victims.into_iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(15 * n as u64));
        let _ = victim.kill();
        let _ = victim.wait();
    }
    let (versions, list) = registry(ws, config);
    assert_eq!(
        versions,
        (1..=versions.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    for i in 0..WRITERS {
        assert!(list.contains(&format!("view{i}")), "view{i} lost: {list}");
    }
    let (ok, out, err) = cli(&["workspace", "verify", ws], config);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&["workspace", "gc", ws, "--older-than-hours", "0"], config);
    assert!(ok, "{err}");
}

#[test]
fn racing_and_killed_writers_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    race_and_kill(ws.to_str().unwrap(), &config, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_and_killed_writers_on_s3() {
    let endpoint = std::env::var("TRAINSTORE_TEST_S3_ENDPOINT").expect(
        "TRAINSTORE_TEST_S3_ENDPOINT is not set: run `eval \"$(scripts/test-services)\"` first",
    );
    let bucket = format!("ts-crash-{:016x}", rand_u64());
    trainstore_testkit::create_bucket(&endpoint, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let (ok, _, err) = cli(
        &[
            "mounts",
            "add",
            "lake",
            &format!("s3://{bucket}/root"),
            "-o",
            &format!("aws_endpoint={endpoint}"),
            "-o",
            "aws_access_key_id=testing",
            "-o",
            "aws_secret_access_key=testing",
            "-o",
            "aws_region=us-east-1",
            "--allow-literal-secrets",
        ],
        &config,
    );
    assert!(ok, "{err}");
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || race_and_kill("mount://lake/ws", &config, &path))
        .await
        .unwrap();
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}
