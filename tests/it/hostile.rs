//! The CLI used the way a hostile user or a tired operator would: closed pipes, mistyped
//! options, secrets where they do not belong.

use std::process::{Command, Stdio};

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
