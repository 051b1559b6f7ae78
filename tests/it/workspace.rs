//! Workspaces on every backend kind, and the CLI's workspace, mounts and demo commands.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use trainstore::core::{MountTable, StorageOptions};
use trainstore::{Error, LAYOUT_VERSION, Workspace};

use crate::cli;

#[tokio::test]
async fn open_creates_then_reopens_the_same_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("ws");
    let first = Workspace::open(location.to_str().unwrap()).await.unwrap();
    assert_eq!(first.config().layout_version, LAYOUT_VERSION);
    assert!(location.join("trainstore.json").exists());
    let again = Workspace::open(&format!("file://{}", location.display()))
        .await
        .unwrap();
    assert_eq!(
        again.config(),
        first.config(),
        "reopening must not rewrite the config"
    );
    let existing = Workspace::open_existing(
        location.to_str().unwrap(),
        &MountTable::default(),
        &StorageOptions::new(),
    )
    .await;
    assert!(existing.is_ok());
}

#[tokio::test]
async fn open_existing_refuses_an_empty_location() {
    let err = Workspace::open_existing(
        "memory://never-created",
        &MountTable::default(),
        &StorageOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: "workspace",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_workspace_from_a_newer_trainstore_is_refused() {
    let ws = Workspace::open("memory://future-ws").await.unwrap();
    let future = format!(
        r#"{{"layout_version": {}, "created_at": 0, "created_by": "trainstore 99"}}"#,
        LAYOUT_VERSION + 1
    );
    ws.store()
        .put(
            &Path::from("trainstore.json"),
            PutPayload::from(future.into_bytes()),
        )
        .await
        .unwrap();
    let err = Workspace::open("memory://future-ws").await.unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedLayout { found, .. } if found == LAYOUT_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade trainstore"), "{err}");
}

#[tokio::test]
async fn a_corrupt_config_is_an_error_not_a_fresh_workspace() {
    let ws = Workspace::open("memory://corrupt-ws").await.unwrap();
    ws.store()
        .put(
            &Path::from("trainstore.json"),
            PutPayload::from_static(b"not json"),
        )
        .await
        .unwrap();
    let err = Workspace::open("memory://corrupt-ws").await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_opens_agree_on_one_config() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("ws").to_str().unwrap().to_owned();
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let location = location.clone();
            tokio::spawn(async move { Workspace::open(&location).await.unwrap().config().clone() })
        })
        .collect();
    let mut configs = Vec::new();
    for o in opens {
        configs.push(o.await.unwrap());
    }
    assert!(configs.windows(2).all(|w| w[0] == w[1]), "{configs:?}");
}

#[test]
fn cli_manages_mounts_and_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let data = dir.path().join("data");
    let (ok, out, _) = cli(&["mounts", "add", "local", data.to_str().unwrap()], &config);
    assert!(ok, "{out}");
    let (ok, out, _) = cli(
        &[
            "mounts",
            "add",
            "lake",
            "s3://bucket/x",
            "-o",
            "aws_secret_access_key=hunter2hunter2",
            "--allow-literal-secrets",
        ],
        &config,
    );
    assert!(ok, "{out}");
    let (ok, out, _) = cli(&["mounts", "list"], &config);
    assert!(ok && out.contains("local") && out.contains("lake"), "{out}");
    assert!(
        !out.contains("hunter2"),
        "secret shown by mounts list: {out}"
    );

    let (ok, out, err) = cli(&["workspace", "init", "mount://local/ws"], &config);
    assert!(ok, "{out}{err}");
    assert!(data.join("ws/trainstore.json").exists());
    let (ok, out, _) = cli(
        &["workspace", "info", "mount://local/ws", "--json"],
        &config,
    );
    assert!(ok, "{out}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["layout_version"], LAYOUT_VERSION);

    let (ok, _, err) = cli(&["mounts", "check", "local"], &config);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["workspace", "info", "mount://nowhere/ws"], &config);
    assert!(!ok && err.contains("mount not found: nowhere"), "{err}");
    let (ok, _, err) = cli(&["mounts", "add", "bad name", "/tmp"], &config);
    assert!(!ok && err.contains("mount name"), "{err}");
    let (ok, _, _) = cli(&["mounts", "remove", "lake"], &config);
    assert!(ok);
    let (_, out, _) = cli(&["mounts", "list"], &config);
    assert!(!out.contains("lake"), "{out}");
}

#[test]
fn cli_demo_runs_the_main_job() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let (ok, out, err) = cli(
        &["demo", "--workspace", ws.to_str().unwrap()],
        &dir.path().join("c.yaml"),
    );
    assert!(ok, "{out}{err}");
    for expected in [
        "6000 design-document snapshots",
        "6000 rows from 40 devices",
        "raw-snapshots@v1",
        "verified",
        "pipeline doris-feast-incremental-pipeline applied as version v1 (6 tasks",
        "created training-set@v1:",
        "trained model@v1 on training-set@v1 (afresh, 3 epochs)",
        "created training-set@v2:",
        "trained model@v2 on training-set@v2 (from model@champion, 3 epochs)",
        "promoted to champion: nothing was champion yet; materialized 2 view(s)",
        "-> deployed_model = model@v",
        "real-time forecast by model@",
        "model                    latest v2",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert!(err.contains("100%"), "progress should reach 100%: {err}");
    // The sliced query says what it found, not the whole read's parse report again.
    assert_eq!(out.matches("parse report:").count(), 1, "{out}");
    assert!(out.contains("found among the 6000 rows parsed"), "{out}");
    // Every step once, in order: no number printed twice.
    let steps: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(". ").map(|(n, _)| n))
        .filter(|n| n.parse::<u32>().is_ok())
        .collect();
    let expected: Vec<String> = (1..=9).map(|n| n.to_string()).collect();
    assert_eq!(steps, expected, "{out}");
    // An online read says why a value is missing.
    let (ok, out, err) = cli(
        &[
            "features",
            "get",
            ws.to_str().unwrap(),
            "--feature",
            "basic_features:meanLf",
            "--entity",
            "uuid=NO-SUCH-DEVICE,nodeId=1465",
        ],
        &dir.path().join("c.yaml"),
    );
    assert!(
        ok && out.contains("basic_features__status") && out.contains("unknown key"),
        "{out}{err}"
    );
}

#[test]
fn cli_prints_completion_scripts_even_with_an_unreadable_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "mounts: [not, a, mapping").unwrap();
    for (shell, marker) in [
        ("bash", "_trainstore()"),
        ("zsh", "#compdef trainstore"),
        ("fish", "complete -c trainstore"),
    ] {
        let (ok, out, err) = cli(&["completions", shell], &config);
        assert!(ok, "{shell}: {err}");
        assert!(
            out.contains(marker) && out.contains("training-sets"),
            "{shell}: {out}"
        );
    }
    let (ok, _, err) = cli(&["completions", "tcsh"], &config);
    assert!(!ok && err.contains("invalid value 'tcsh'"), "{err}");
}

#[tokio::test]
async fn cli_lists_shows_exports_and_deletes_catalog_versions() {
    use trainstore::core::{DatasetName, NewVersion, UserName, VersionStore as _};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws_dir = dir.path().join("ws");
    let ws = trainstore::Workspace::open(ws_dir.to_str().unwrap())
        .await
        .unwrap();
    let rows = arrow::array::RecordBatch::try_from_iter([(
        "x",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])) as _,
    )])
    .unwrap();
    let mut parquet = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut parquet, rows.schema(), None).unwrap();
    writer.write(&rows).unwrap();
    writer.close().unwrap();
    let item = DatasetName::new("snapshots").unwrap();
    for content in [parquet, b"not rows".to_vec()] {
        let file = ws
            .catalog()
            .put_file(&item, "part-0", bytes::Bytes::from(content))
            .await
            .unwrap();
        let mut new = NewVersion::new(UserName::new("ana").unwrap());
        new.files.push(file);
        ws.catalog().commit(&item, new).await.unwrap();
    }
    let ws_arg = ws_dir.to_str().unwrap();

    let (ok, out, err) = cli(&["catalog", "list", ws_arg], &config);
    assert!(
        ok && out.contains("snapshots") && out.contains("v2"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&["catalog", "list", ws_arg, "snapshots"], &config);
    assert!(
        ok && out.contains("snapshots@v1") && out.contains("by ana"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&["catalog", "show", ws_arg, "snapshots@v1"], &config);
    assert!(
        ok && out.contains("author     ana") && out.contains("part-0"),
        "{out}{err}"
    );

    let exported = dir.path().join("rows.parquet");
    let out_arg = exported.to_str().unwrap();
    let (ok, out, err) = cli(
        &[
            "catalog",
            "export",
            ws_arg,
            "snapshots@v1",
            "--out",
            out_arg,
        ],
        &config,
    );
    assert!(ok && out.contains("3 rows"), "{out}{err}");
    let back = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(std::fs::read(&exported).unwrap()),
    )
    .unwrap()
    .build()
    .unwrap()
    .next()
    .unwrap()
    .unwrap();
    assert_eq!(back, rows);
    let (ok, _, err) = cli(
        &["catalog", "export", ws_arg, "snapshots", "--out", out_arg],
        &config,
    );
    assert!(
        !ok && err.contains("not a Parquet or Arrow IPC file"),
        "{err}"
    );

    let (ok, out, err) = cli(&["catalog", "delete", ws_arg, "snapshots@v1"], &config);
    assert!(ok && out.contains("deleted snapshots@v1"), "{out}{err}");
    let (ok, out, _) = cli(&["catalog", "list", ws_arg, "snapshots"], &config);
    assert!(
        ok && !out.contains("snapshots@v1 ") && out.contains("snapshots@v2"),
        "{out}"
    );
    let (ok, _, err) = cli(&["catalog", "delete", ws_arg, "feature-registry"], &config);
    assert!(!ok && err.contains("feature store's own"), "{err}");
}

#[tokio::test]
async fn cli_deletes_a_workspace_only_when_confirmed_and_only_a_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws_dir = dir.path().join("ws");
    let ws_arg = ws_dir.to_str().unwrap();
    let (ok, _, err) = cli(&["workspace", "init", ws_arg], &config);
    assert!(ok, "{err}");
    let ws = trainstore::Workspace::open(ws_arg).await.unwrap();
    ws.training_sets()
        .create_from_batches(
            &trainstore::core::DatasetName::new("set").unwrap(),
            vec![
                arrow::array::RecordBatch::try_from_iter([(
                    "x",
                    std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])) as _,
                )])
                .unwrap(),
            ],
            Default::default(),
        )
        .await
        .unwrap();

    let (ok, _, err) = cli(&["workspace", "delete", ws_arg], &config);
    assert!(!ok && err.contains("--yes"), "{err}");
    assert!(ws_dir.join("trainstore.json").exists());
    // A directory that is not a workspace is left alone.
    let other = dir.path().join("not-a-workspace");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), b"mine").unwrap();
    let (ok, _, err) = cli(
        &["workspace", "delete", other.to_str().unwrap(), "--yes"],
        &config,
    );
    assert!(!ok && err.contains("not found"), "{err}");
    assert!(other.join("keep.txt").exists());

    let (ok, out, err) = cli(&["workspace", "delete", ws_arg, "--yes"], &config);
    assert!(ok && out.contains("objects"), "{out}{err}");
    assert!(
        !ws_dir.exists(),
        "{:?}",
        std::fs::read_dir(&ws_dir).map(|d| d.count())
    );
    let (ok, _, err) = cli(&["workspace", "info", ws_arg], &config);
    assert!(!ok && err.contains("not found"), "{err}");
}
