//! End-to-end tests of the facade and the `trainstore` CLI, one binary to save link time.
//!
//! Database tests need the MariaDB from `scripts/test-services` (`TRAINSTORE_TEST_MYSQL_URL`).

mod crash;
mod golden;
mod hostile;
mod models;
mod pipelines;
mod snapshots;
mod training_sets;
mod workspace;

use std::path::Path;
use std::process::Command;

/// Runs the CLI with its settings in `config`; returns (success, stdout, stderr).
pub fn cli(args: &[&str], config: &Path) -> (bool, String, String) {
    cli_with_env(args, config, &[])
}

pub fn cli_with_env(args: &[&str], config: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trainstore"))
        .args(args)
        .env("TRAINSTORE_CONFIG", config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
