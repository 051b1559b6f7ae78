//! The `trainstore` command line: workspaces, mounts, and the end-to-end demo.

mod catalog;
mod demo;
mod features;
mod models;
mod pipeline;
mod progress;
mod snapshots;
mod training_sets;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use trainstore::core::{Error, MountTable, Namespace, Result, StorageOptions};
use trainstore::{LiteralSecrets, Settings, Workspace};

use progress::TerminalProgress;

#[global_allocator]
static ALLOCATOR: trainstore::allocator::Allocator = trainstore::allocator::Allocator {};

/// Versioned, point-in-time-correct training sets from Doris feature snapshots.
///
/// Locations are local paths, URLs (file://, memory://, s3://bucket/prefix) or named mounts
/// (mount://name/path). Set TRAINSTORE_LOG=info (or debug, trace) for logs on stderr.
#[derive(Parser)]
#[command(name = "trainstore", version, propagate_version = true)]
struct Cli {
    /// Settings file with named mounts [default: $TRAINSTORE_CONFIG or ~/.config/trainstore/config.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Act as this user [default: $TRAINSTORE_USER, else the settings file's `user`, else $USER]
    #[arg(long, global = true, value_name = "NAME")]
    user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and inspect workspaces
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Define and check named storage mounts
    #[command(subcommand)]
    Mounts(MountsCommand),
    /// Generate, load and query feature snapshots (Doris or files)
    #[command(subcommand)]
    Snapshots(snapshots::SnapshotsCommand),
    /// Define features, build point-in-time training data, materialize and serve online
    #[command(subcommand)]
    Features(features::FeaturesCommand),
    /// Versioned, quality-scored training sets: create, list, select, tag, share, export
    #[command(name = "training-sets")]
    TrainingSets {
        /// The namespace of sets to work in [default: the workspace's default namespace]
        #[arg(long, global = true, value_name = "NAME")]
        namespace: Option<String>,
        #[command(subcommand)]
        command: training_sets::TrainingSetsCommand,
    },
    /// Models trained on training sets: train, list, show, promote, roll back, delete
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// The workspace's other versioned items (committed snapshots, the feature registry, the
    /// offline store): list, show, export, delete
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Pipelines: validate, apply, run and resume documents; list runs and their logs
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Run one task of a pipeline run (what each pod of an exported Argo Workflow runs)
    #[command(subcommand)]
    Task(pipeline::TaskCommand),
    /// Run the main job end to end on an embedded workspace (no servers needed)
    Demo {
        /// Where the demo workspace lives
        #[arg(long, default_value = "./demo-ws")]
        workspace: String,
    },
    /// Print a completion script for a shell, e.g. `trainstore completions bash >
    /// ~/.local/share/bash-completion/completions/trainstore`
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct Location {
    /// Path, URL or mount://name/path
    location: String,
    /// Store option as KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000); repeatable
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace (or reopen an existing one) and show it
    Init(Location),
    /// Show an existing workspace: layout, creation, versioned items
    Info {
        #[command(flatten)]
        at: Location,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Delete data files that no version lists (left by failed or killed writers)
    Gc {
        #[command(flatten)]
        at: Location,
        /// Only files last written this many hours ago or earlier (younger ones may belong
        /// to a commit in progress)
        #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
        older_than_hours: f64,
        /// List what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every version of every item: manifests readable, data files of the recorded size
    /// and SHA-256. Exits non-zero when anything is wrong
    Verify {
        #[command(flatten)]
        at: Location,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Delete a workspace and everything in it (catalog, training sets, models, embedded
    /// online store); refused where there is no workspace
    Delete {
        #[command(flatten)]
        at: Location,
        /// Confirm: without it, nothing is deleted
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum MountsCommand {
    /// List the defined mounts (secrets redacted)
    List,
    /// Define a mount, e.g. `mounts add lake s3://bucket/data -o aws_secret_access_key='${LAKE_SECRET}'`
    Add {
        /// Mount name, used as mount://NAME/...
        name: String,
        #[command(flatten)]
        at: Location,
        /// Save secret option values as given instead of refusing them; prefer `${NAME}`
        /// references, looked up in the environment or the secrets directory when used
        #[arg(long)]
        allow_literal_secrets: bool,
    },
    /// Remove a mount definition
    Remove {
        /// Mount name, used as mount://NAME/...
        name: String,
    },
    /// Check that a mount (or any location) is reachable and supports atomic create-if-absent
    Check {
        #[command(flatten)]
        at: Location,
    },
}

/// The `-o KEY=VALUE` options. Parsed here rather than by clap, whose errors repeat the text
/// given, and a mistyped option (`aws_secret_access_key:VALUE`) is often a secret.
fn options(at: &Location) -> Result<StorageOptions> {
    at.options
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    Error::invalid(
                        "option",
                        format!("-o #{}", i + 1),
                        "expected KEY=VALUE (the text is not shown: it may hold a secret)",
                    )
                })
        })
        .collect()
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so every `println!` into a closed pipe (`trainstore ... | head`)
    // would panic; the default action ends the process quietly, as it does for other tools.
    // SAFETY: called first thing, before any thread exists, with a handler libc provides.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    trainstore::allocator::configure();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAINSTORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Completions need no settings: printed even when the settings file is unreadable.
    if let Command::Completions { shell } = cli.command {
        let mut out = std::io::stdout();
        clap_complete::generate(shell, &mut Cli::command(), "trainstore", &mut out);
        return Ok(());
    }
    let settings_path = cli.config.clone().unwrap_or_else(Settings::default_path);
    let mut settings = Settings::load(&settings_path)?;
    let mounts = settings.mount_table(&settings_path)?;
    let user = settings.user_name(cli.user.as_deref())?;
    match cli.command {
        Command::Workspace(WorkspaceCommand::Init(at)) => {
            let ws = Workspace::open_with(&at.location, &mounts, &options(&at)?).await?;
            println!("workspace ready at {}", ws.url());
            print_info(&ws, false).await
        }
        Command::Workspace(WorkspaceCommand::Info { at, json }) => {
            let ws = Workspace::open_existing(&at.location, &mounts, &options(&at)?).await?;
            print_info(&ws, json).await
        }
        Command::Workspace(WorkspaceCommand::Verify { at, json }) => {
            let ws = Workspace::open_existing(&at.location, &mounts, &options(&at)?).await?;
            let report = ws.verify(&TerminalProgress::new()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                );
            } else {
                println!(
                    "{}: {} versions, {} files, {} bytes checked",
                    ws.url(),
                    report.versions,
                    report.files,
                    report.bytes
                );
                for problem in &report.problems {
                    println!("  {problem}");
                }
                if !report.orphans.is_empty() {
                    println!(
                        "  {} orphaned data files (left by failed writers; `workspace gc` removes them)",
                        report.orphans.len()
                    );
                }
            }
            match report.problems.len() {
                0 => Ok(()),
                n => Err(Error::Corrupt {
                    path: ws.url().to_owned(),
                    reason: format!("{n} versions failed verification"),
                }),
            }
        }
        Command::Workspace(WorkspaceCommand::Delete { at, yes }) => {
            if !yes {
                return Err(Error::invalid(
                    "workspace delete",
                    &at.location,
                    "deletes everything in the workspace: add --yes to confirm",
                ));
            }
            let removed = Workspace::delete(&at.location, &mounts, &options(&at)?).await?;
            println!("deleted {} ({removed} objects)", at.location);
            Ok(())
        }
        Command::Workspace(WorkspaceCommand::Gc {
            at,
            older_than_hours,
            dry_run,
        }) => {
            let grace = training_sets::hours(older_than_hours)?;
            let ws = Workspace::open_existing(&at.location, &mounts, &options(&at)?).await?;
            let report = ws.gc(grace, dry_run).await?;
            for file in &report.files {
                println!("{file}");
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            eprintln!(
                "{verb} {} files, {} bytes",
                report.files.len(),
                report.bytes
            );
            Ok(())
        }
        Command::Mounts(MountsCommand::List) => {
            if settings.mounts.is_empty() {
                println!("no mounts defined in {}", settings_path.display());
            }
            for (name, mount) in &settings.mounts {
                println!("{name:<16} {}  {}", mount.url, mount.options);
            }
            Ok(())
        }
        Command::Mounts(MountsCommand::Add {
            name,
            at,
            allow_literal_secrets,
        }) => {
            let literal = if allow_literal_secrets {
                LiteralSecrets::Allow
            } else {
                LiteralSecrets::Refuse
            };
            let options = options(&at)?;
            if allow_literal_secrets && !options.literal_secrets().is_empty() {
                eprintln!(
                    "warning: saving {} in plain text in {} (readable by you alone)",
                    options.literal_secrets().join(", "),
                    settings_path.display()
                );
            }
            settings.add_mount(&name, &at.location, options, literal)?;
            settings.save(&settings_path)?;
            println!(
                "mount {name} -> {} saved in {}",
                at.location,
                settings_path.display()
            );
            Ok(())
        }
        Command::Mounts(MountsCommand::Remove { name }) => {
            if settings.mounts.remove(&name).is_none() {
                return Err(Error::NotFound {
                    what: "mount",
                    name,
                });
            }
            settings.save(&settings_path)?;
            println!("mount {name} removed");
            Ok(())
        }
        Command::Mounts(MountsCommand::Check { at }) => check_mount(&mounts, &at).await,
        Command::Snapshots(command) => snapshots::run(command, &mounts).await,
        Command::Features(command) => features::run(command, &mounts, &user).await,
        Command::TrainingSets { namespace, command } => {
            let scope = training_sets::Scope {
                mounts: &mounts,
                user: &user,
                namespace: namespace.map(Namespace::new).transpose()?,
            };
            training_sets::run(command, &scope).await
        }
        Command::Models(command) => models::run(command, &mounts, &user).await,
        Command::Catalog(command) => catalog::run(command, &mounts, &user).await,
        Command::Pipeline(command) => pipeline::run(command, &mounts, &user).await,
        Command::Task(command) => pipeline::run_task(command, &mounts, &user).await,
        Command::Demo { workspace } => demo::run(&workspace).await,
        Command::Completions { .. } => Ok(()), // printed above
    }
}

pub(crate) async fn print_info(ws: &Workspace, json: bool) -> Result<()> {
    let info = ws.info().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&info).expect("info serializes")
        );
        return Ok(());
    }
    println!("  url            {}", info.url);
    println!("  layout version {}", info.layout_version);
    println!(
        "  created        {} by {}",
        info.created_at, info.created_by
    );
    println!("  items          {}", info.items.len());
    for (item, version) in &info.items {
        println!("    {item:<24} latest {version}");
    }
    for (what, listed) in [
        ("training sets ", &info.training_sets),
        ("models        ", &info.models),
    ] {
        println!("  {what} {}", listed.len());
        for (name, version) in listed {
            println!("    {name:<24} latest {version}");
        }
    }
    Ok(())
}

async fn check_mount(mounts: &MountTable, at: &Location) -> Result<()> {
    let location =
        if at.location.contains("://") || at.location.contains('/') || at.location.starts_with('.')
        {
            at.location.clone()
        } else {
            format!("mount://{}", at.location)
        };
    let resolved = mounts.resolve_with(&location, &options(at)?)?;
    trainstore::core::check_store(
        resolved.store.as_ref(),
        &resolved.url,
        &TerminalProgress::new(),
    )
    .await?;
    println!(
        "{}: write, read, delete and atomic create-if-absent all work",
        resolved.url
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, flag and argument says what it is for in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "trainstore", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}
