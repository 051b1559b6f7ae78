//! The CLI used the way a hostile user or a tired operator would: closed pipes, mistyped
//! options, secrets where they do not belong.

use std::process::{Command, Stdio};

use trainstore::core::VersionStore as _;

use crate::cli;

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_trainstore"))
        .args(["workspace", "init", "memory://closed-pipe/ws"])
        .env("TRAINSTORE_CONFIG", dir.path().join("config.yaml"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

#[test]
fn a_malformed_s3_endpoint_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let (ok, _, stderr) = cli(
        &[
            "workspace",
            "info",
            "s3://b/ws",
            "-o",
            "aws_endpoint=127.0.0.1:5005",
        ],
        &config,
    );
    assert!(!ok);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("http:// or https:// URL"), "{stderr}");
}

/// Runs the CLI as a user who may read `dir` but not write it: `nobody` when the tests run
/// as root (whom permissions do not stop), else the current user with write bits removed.
fn cli_read_only(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let mut command = Command::new(env!("CARGO_BIN_EXE_trainstore"));
    command
        .args(args)
        .env("TRAINSTORE_CONFIG", dir.join("absent-config.yaml"))
        .env("TMPDIR", dir);
    let root = unsafe { libc::geteuid() } == 0;
    let set_mode = |mode: u32| {
        for entry in walk(dir) {
            let keep = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o111;
            let mode = if entry.is_dir() {
                mode | 0o111
            } else {
                (mode & 0o666) | keep
            };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    if root {
        set_mode(0o755);
        command.uid(65534).gid(65534);
    } else {
        set_mode(0o555);
    }
    let out = command.output().unwrap();
    set_mode(0o755);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dir` and everything under it.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_owned()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            out.extend(walk(&entry.unwrap().path()));
        }
    }
    out
}

/// A workspace at `dir` whose item `set` has one version of one data file holding `content`.
async fn workspace_with_one_file(
    dir: &std::path::Path,
    content: &'static [u8],
) -> (trainstore::Workspace, trainstore::core::FileEntry) {
    use trainstore::core::{DatasetName, NewVersion, UserName};

    let ws = trainstore::Workspace::open(dir.to_str().unwrap())
        .await
        .unwrap();
    let item = DatasetName::new("set").unwrap();
    let file = ws
        .catalog()
        .put_file(&item, "part-0.bin", bytes::Bytes::from_static(content))
        .await
        .unwrap();
    let mut new = NewVersion::new(UserName::new("tester").unwrap());
    new.files.push(file.clone());
    ws.catalog().commit(&item, new).await.unwrap();
    (ws, file)
}

#[tokio::test]
async fn a_read_only_workspace_can_be_read_and_reads_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws_dir = dir.path().join("ws");
    workspace_with_one_file(&ws_dir, b"rows").await;
    std::fs::remove_dir_all(ws_dir.join("catalog/_probe")).unwrap();
    let before = walk(dir.path());

    let location = ws_dir.to_str().unwrap();
    for args in [
        &["workspace", "info", location][..],
        &["workspace", "verify", location],
        &["features", "list", location],
    ] {
        let (ok, stdout, stderr) = cli_read_only(args, dir.path());
        assert!(ok, "{args:?}: {stderr}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
    let typo = dir.path().join("typo");
    let (ok, _, stderr) = cli_read_only(&["workspace", "info", typo.to_str().unwrap()], dir.path());
    assert!(!ok && stderr.contains("workspace not found"), "{stderr}");
    assert_eq!(walk(dir.path()), before, "reads wrote nothing");
}

#[tokio::test]
async fn verify_names_an_edited_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let ws_dir = dir.path().join("ws");
    let (ws, file) = workspace_with_one_file(&ws_dir, b"1.0,2.0").await;
    let path = ws_dir.join("catalog").join(&file.path);
    let config = dir.path().join("config.yaml");
    let (ok, stdout, stderr) = cli(&["workspace", "verify", ws_dir.to_str().unwrap()], &config);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 versions, 1 files, 7 bytes"), "{stdout}");

    std::fs::write(&path, b"9.0,2.0").unwrap();
    let (ok, stdout, stderr) = cli(&["workspace", "verify", ws_dir.to_str().unwrap()], &config);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("set@v1") && stdout.contains(&file.path),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 versions failed verification"),
        "{stderr}"
    );
    let e = ws.catalog().read_file(&file).await.unwrap_err().to_string();
    assert!(e.contains(&file.path) && e.contains("xxh3"), "{e}");
}

#[test]
fn secrets_are_never_echoed_nor_saved_in_plain_text_unasked() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let (ok, stdout, stderr) = cli(
        &[
            "workspace",
            "info",
            "s3://b/ws",
            "-o",
            "aws_secret_access_key:Hunter2Secret",
        ],
        &config,
    );
    assert!(!ok && stderr.contains("KEY=VALUE"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("Hunter2"), "{stderr}");

    let add = |extra: &[&str]| {
        let mut args = vec![
            "mounts",
            "add",
            "lake",
            "s3://b/p",
            "-o",
            "aws_secret_access_key=Hunter2Secret",
        ];
        args.extend_from_slice(extra);
        cli(&args, &config)
    };
    let (ok, stdout, stderr) = add(&[]);
    assert!(!ok && stderr.contains("${"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("Hunter2"), "{stderr}");
    assert!(!config.exists(), "nothing saved");

    let (ok, stdout, stderr) = add(&["--allow-literal-secrets"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("plain text"),
        "{stderr}"
    );
    assert!(!format!("{stdout}{stderr}").contains("Hunter2"), "{stderr}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, stdout, _) = cli(&["mounts", "list"], &config);
    assert!(
        ok && stdout.contains("lake") && !stdout.contains("Hunter2"),
        "{stdout}"
    );
}

#[test]
fn a_deeply_nested_definitions_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let file = dir.path().join("deep.yaml");
    std::fs::write(
        &file,
        format!("entities: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .unwrap();
    let (ok, _, stderr) = cli(&["workspace", "init", ws.to_str().unwrap()], &config);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli(
        &[
            "features",
            "plan",
            ws.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
        ],
        &config,
    );
    assert!(
        !ok && stderr.contains("nests deeper than 64 levels at line 1"),
        "{stderr}"
    );
}

#[test]
fn generating_into_a_read_only_directory_says_the_write_failed() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("snaps");
    std::fs::create_dir(&to).unwrap();
    let (ok, _, stderr) = cli_read_only(
        &[
            "snapshots",
            "generate",
            "--to",
            to.to_str().unwrap(),
            "--devices",
            "1",
            "--snapshots",
            "2",
        ],
        dir.path(),
    );
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("write Parquet"), "{stderr}");
    assert!(!stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn numbers_too_large_for_the_data_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let to = dir.path().join("snaps");
    let to = to.to_str().unwrap();
    for (extra, expected) in [
        (
            &["--devices", "100000000000", "--nodes", "100000000000"][..],
            "too large",
        ),
        (
            &["--interval-ms", "9223372036854775807"],
            "last representable time",
        ),
        (
            &[
                "--devices",
                "1",
                "--nodes",
                "1",
                "--snapshots",
                "18446744073709551615",
            ],
            "last representable time",
        ),
    ] {
        let mut args = vec!["snapshots", "generate", "--to", to];
        args.extend_from_slice(extra);
        let (ok, _, stderr) = cli(&args, &config);
        assert!(!ok && stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
}

#[test]
fn online_entities_that_leave_out_or_repeat_a_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let ws = ws.to_str().unwrap();
    let (ok, _, stderr) = cli(&["workspace", "init", ws], &config);
    assert!(ok, "{stderr}");
    for (entities, expected) in [
        (&["uuid=A,uuid=B,nodeId=1"][..], "names key \"uuid\" twice"),
        (
            &["uuid=A,nodeId=1", "nodeId=1"],
            "give every entity the same keys",
        ),
        (
            &["uuid=A", "uuid=B,nodeId=1"],
            "give every entity the same keys",
        ),
    ] {
        let mut args = vec!["features", "get", ws, "--feature", "basic:x"];
        for e in entities {
            args.extend(["--entity", e]);
        }
        let (ok, _, stderr) = cli(&args, &config);
        assert!(!ok && stderr.contains(expected), "{entities:?}: {stderr}");
    }
}

#[test]
fn an_s3_url_without_a_bucket_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    for url in ["s3://", "s3:///x"] {
        let (ok, _, stderr) = cli(&["workspace", "info", url], &config);
        assert!(!ok && stderr.contains("names no bucket"), "{url}: {stderr}");
    }
}

#[test]
fn a_mount_url_without_a_name_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    for url in ["mount://", "mount:///x"] {
        let (ok, _, stderr) = cli(&["workspace", "info", url], &config);
        assert!(
            !ok && stderr.contains("names no mount") && !stderr.contains("not found"),
            "{url}: {stderr}"
        );
    }
}
