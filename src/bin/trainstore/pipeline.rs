//! `trainstore pipeline`: check, version, run and resume pipeline documents, and read what
//! runs did (`docs/pipelines.md`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use trainstore::Workspace;
use trainstore::core::{Error, MountTable, Result, StorageOptions, UserName, Version};
use trainstore::pipelines::Pipelines;
use trainstore_pipeline::{
    ArgoEnv, ArgoOptions, ArgoVolume, CancellationToken, RunState, RunStatus, TaskOutcome,
    TaskStatus,
};

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Check a document (YAML or JSON) and report every problem with its path and line;
    /// exits non-zero when there is one
    Validate {
        /// The pipeline document
        file: PathBuf,
    },
    /// Store a document as the next version of its pipeline (nothing when unchanged)
    Apply {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The pipeline document
        file: PathBuf,
    },
    /// List a pipeline's versions
    History {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The pipeline's name (its metadata.name)
        name: String,
    },
    /// Make an earlier version of a pipeline the latest again
    Rollback {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The pipeline's name (its metadata.name)
        name: String,
        /// The version to go back to (3 or v3)
        #[arg(value_name = "VERSION")]
        to: String,
    },
    /// Apply a document and run it, showing each task as it starts and ends; Ctrl-C stops
    /// cleanly (the run can be resumed)
    Run {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The pipeline document
        file: PathBuf,
        /// A parameter as NAME=VALUE (the value read as JSON when it is, as text otherwise);
        /// repeatable
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// The run's id [default: <pipeline>-<UTC time>-<random>]
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// Resume a run that failed, was cancelled or killed: only unfinished tasks run again
    Resume {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The run's id
        run: String,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// List runs, newest first, or show one run's tasks
    Runs {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// A run's id, to show its tasks
        run: Option<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Write the document as an Argo Workflows manifest: a DAG with one container per task
    /// running `trainstore task run`, for the same document to run on Kubernetes
    Export {
        /// The pipeline document
        file: PathBuf,
        /// The format to write (argo is the one there is)
        #[arg(long, default_value = "argo")]
        format: String,
        /// The workspace every pod opens, on storage they all share (s3://bucket/prefix, or a
        /// path on a mounted volume)
        #[arg(long, value_name = "URL")]
        workspace: String,
        /// The image of tasks whose document names none [default: trainstore:<version>]
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// A persistent volume claim mounted into every task, as NAME=CLAIM:/MOUNT/PATH;
        /// repeatable
        #[arg(long = "volume", value_name = "NAME=CLAIM:PATH")]
        volumes: Vec<String>,
        /// An environment variable of every task, as NAME=VALUE (refused when NAME looks like
        /// a credential: use --secret-env); repeatable
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// An environment variable read from a Kubernetes secret, as NAME=SECRET:KEY;
        /// repeatable
        #[arg(long = "secret-env", value_name = "NAME=SECRET:KEY")]
        secret_env: Vec<String>,
        /// The service account the pods run as
        #[arg(long, value_name = "NAME")]
        service_account: Option<String>,
        /// Write JSON instead of YAML
        #[arg(long)]
        json: bool,
        /// Where to write the manifest [default: standard output]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print what a run's tasks logged (every attempt, or one task's)
    Logs {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The run's id
        run: String,
        /// Only this task
        task: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Run one task of a pipeline run, once: what each pod of an exported Argo Workflow runs.
    /// Exits 0 when the task succeeded, had already, or was skipped; 3 when it failed for
    /// good (bad input: retrying cannot help); 1 otherwise
    Run {
        /// The workspace, on storage every pod shares (its run state is there)
        #[arg(long)]
        workspace: String,
        /// The pipeline document
        #[arg(long, value_name = "FILE")]
        pipeline: PathBuf,
        /// The task's name in the document
        #[arg(long)]
        task: String,
        /// The run's id, the same for every task of the run (Argo's workflow name)
        #[arg(long, value_name = "ID")]
        run: String,
        /// A parameter as NAME=VALUE (read as text where the document's default is text, as
        /// JSON otherwise); repeatable
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

pub async fn run_task(command: TaskCommand, mounts: &MountTable, user: &UserName) -> Result<()> {
    let TaskCommand::Run {
        workspace,
        pipeline,
        task,
        run,
        params,
    } = command;
    let pipelines = Workspace::open_with(&workspace, mounts, &StorageOptions::new())
        .await?
        .with_user(user.clone())
        .pipelines();
    let text = read(&pipeline)?;
    let defaults = pipelines.parse(&text)?.parameters;
    let mut parameters = serde_json::Map::new();
    for (name, value) in parse_params(&params)? {
        // Argo passes every value as text: a default that is text keeps it text.
        let value = match (defaults.get(&name), value) {
            (Some(serde_json::Value::String(_)), v) if !v.is_string() => {
                serde_json::Value::String(v.to_string())
            }
            (_, v) => v,
        };
        parameters.insert(name, value);
    }
    let outcome = pipelines
        .run_task(&text, &run, parameters, &task, cancel_on_ctrl_c())
        .await?;
    println!("{}", task_line(outcome.state()));
    match outcome {
        TaskOutcome::Succeeded(_) | TaskOutcome::AlreadySucceeded(_) | TaskOutcome::Skipped(_) => {
            Ok(())
        }
        TaskOutcome::Failed {
            permanent: true, ..
        } => {
            eprintln!("task {task} failed for good: retrying cannot help");
            std::process::exit(trainstore_pipeline::argo::PERMANENT_FAILURE_EXIT_CODE);
        }
        TaskOutcome::Failed { state, .. } | TaskOutcome::Cancelled(state) => Err(Error::Remote {
            service: format!("pipeline run {run}"),
            operation: "task",
            reason: format!(
                "{task} did not succeed: {}",
                state.error.as_deref().unwrap_or("cancelled")
            ),
            transient: true,
        }),
    }
}

/// What a run may use at once, in place of what this machine has.
#[derive(clap::Args)]
pub struct BudgetArgs {
    /// CPU the run's tasks may use at once, as a quantity ("2", "1500m") [default: this
    /// machine's cores]
    #[arg(long, value_name = "QUANTITY")]
    cpu: Option<String>,
    /// Memory the run's tasks may use at once ("8Gi") [default: this machine's]
    #[arg(long, value_name = "QUANTITY")]
    memory: Option<String>,
    /// GPUs the run's tasks may use at once [default: this machine's]
    #[arg(long, value_name = "N")]
    gpu: Option<String>,
}

impl BudgetArgs {
    fn apply(&self, pipelines: Pipelines) -> Result<Pipelines> {
        let mut options = pipelines.options().clone();
        options.budget = options
            .budget
            .limited(
                self.cpu.as_deref(),
                self.memory.as_deref(),
                self.gpu.as_deref(),
            )
            .map_err(|reason| Error::invalid("pipeline budget", "--cpu/--memory/--gpu", reason))?;
        Ok(pipelines.with_options(options))
    }
}

pub async fn run(command: PipelineCommand, mounts: &MountTable, user: &UserName) -> Result<()> {
    let open = |workspace: String| async move {
        Ok::<_, Error>(
            Workspace::open_with(&workspace, mounts, &StorageOptions::new())
                .await?
                .with_user(user.clone())
                .pipelines(),
        )
    };
    match command {
        PipelineCommand::Validate { file } => {
            let text = read(&file)?;
            let types = trainstore_pipeline::TaskTypes::new(
                trainstore::pipelines::BUILTIN_TASK_TYPES.iter().copied(),
            );
            let report = trainstore_pipeline::Pipeline::validate(&text, &types);
            if !report.is_empty() {
                return Err(Error::InvalidInput {
                    what: "pipeline document",
                    value: file.display().to_string(),
                    reason: format!("{} problem(s)\n{report}", report.issues.len()),
                });
            }
            let pipeline = trainstore::pipelines::parse_builtin(&text)?;
            println!(
                "{}: valid, {} tasks, {} edges",
                file.display(),
                pipeline.tasks.len(),
                pipeline.edges().len()
            );
            Ok(())
        }
        PipelineCommand::Apply { workspace, file } => {
            let applied = open(workspace).await?.apply(&read(&file)?).await?;
            let what = if applied.changed {
                "applied as"
            } else {
                "unchanged, still"
            };
            println!(
                "pipeline {} {what} version {}",
                applied.name, applied.version
            );
            Ok(())
        }
        PipelineCommand::History { workspace, name } => {
            for v in open(workspace).await?.history(&name).await? {
                println!(
                    "{}  {}  {}  {}",
                    v.version,
                    v.created_at,
                    v.author,
                    v.document_version.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        PipelineCommand::Rollback {
            workspace,
            name,
            to: version,
        } => {
            let n = version.strip_prefix('v').unwrap_or(&version);
            let n = n.parse().map_err(|_| {
                Error::invalid("pipeline version", &version, "a version number (3 or v3)")
            })?;
            let applied = open(workspace)
                .await?
                .rollback(&name, Version::new(n)?)
                .await?;
            println!(
                "pipeline {} is back to version {version}, as version {}",
                applied.name, applied.version
            );
            Ok(())
        }
        PipelineCommand::Run {
            workspace,
            file,
            params,
            run_id,
            budget,
        } => {
            let pipelines = budget.apply(open(workspace).await?)?;
            let text = read(&file)?;
            let name = pipelines.parse(&text)?.metadata.name;
            // Known before the run starts, so that it can be watched.
            let run_id = run_id.unwrap_or_else(|| trainstore_pipeline::generated_id(&name));
            let parameters = parse_params(&params)?;
            let run = pipelines.run(&text, Some(run_id.clone()), parameters, cancel_on_ctrl_c());
            let state = watching(&pipelines, &run_id, run).await?;
            finish(&state)
        }
        PipelineCommand::Resume {
            workspace,
            run,
            budget,
        } => {
            let pipelines = budget.apply(open(workspace).await?)?;
            let resumed = pipelines.resume(&run, cancel_on_ctrl_c());
            let state = watching(&pipelines, &run, resumed).await?;
            finish(&state)
        }
        PipelineCommand::Runs {
            workspace,
            run: None,
            json,
        } => {
            let runs = open(workspace).await?.runs().await?;
            for r in runs {
                let duration = r
                    .duration
                    .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
                if json {
                    let line = serde_json::json!({
                        "run_id": r.run_id, "pipeline": r.pipeline, "definition": r.definition,
                        "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{}  {:?}  {}  {}  {duration}",
                        r.run_id, r.status, r.definition, r.started_at
                    );
                }
            }
            Ok(())
        }
        PipelineCommand::Runs {
            workspace,
            run: Some(run),
            json,
        } => {
            let state = open(workspace).await?.run_state(&run).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&state).expect("states serialize")
                );
            } else {
                print_tasks(&state);
            }
            Ok(())
        }
        PipelineCommand::Export {
            file,
            format,
            workspace,
            image,
            volumes,
            env,
            secret_env,
            service_account,
            json,
            out,
        } => {
            if format != "argo" {
                return Err(Error::invalid(
                    "--format",
                    &format,
                    "argo is the format there is",
                ));
            }
            let text = read(&file)?;
            let pipeline = trainstore::pipelines::parse_builtin(&text)?;
            let mut options = ArgoOptions::new(workspace);
            if let Some(image) = image {
                options.default_image = image;
            }
            options.service_account = service_account;
            for volume in &volumes {
                let parsed = volume
                    .split_once('=')
                    .and_then(|(name, rest)| Some((name, rest.split_once(':')?)));
                let Some((name, (claim, path))) = parsed else {
                    return Err(Error::invalid("--volume", volume, "NAME=CLAIM:/MOUNT/PATH"));
                };
                options.volumes.push(ArgoVolume::new(name, claim, path));
            }
            for pair in &env {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| Error::invalid("--env", pair, "NAME=VALUE"))?;
                options.env.push(ArgoEnv::plain(name, value));
            }
            for pair in &secret_env {
                let parsed = pair
                    .split_once('=')
                    .and_then(|(name, rest)| Some((name, rest.split_once(':')?)));
                let Some((name, (secret, key))) = parsed else {
                    return Err(Error::invalid("--secret-env", pair, "NAME=SECRET:KEY"));
                };
                options.env.push(ArgoEnv::secret(name, secret, key));
            }
            let manifest = trainstore_pipeline::argo::export(&pipeline, &text, &options)
                .map_err(trainstore::pipelines::from_pipeline)?;
            let written = if json {
                serde_json::to_string_pretty(&manifest).expect("manifests serialize") + "\n"
            } else {
                serde_yaml_ng::to_string(&manifest).expect("manifests serialize")
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, written).map_err(|e| Error::Config {
                        key: path.display().to_string(),
                        reason: format!("cannot write the manifest: {e}"),
                    })?;
                    eprintln!(
                        "wrote an Argo Workflow of {} tasks to {}",
                        pipeline.tasks.len(),
                        path.display()
                    );
                }
                None => print!("{written}"),
            }
            Ok(())
        }
        PipelineCommand::Logs {
            workspace,
            run,
            task,
        } => {
            let pipelines = open(workspace).await?;
            let state = pipelines.run_state(&run).await?;
            let mut printed = false;
            for t in &state.tasks {
                if task.as_ref().is_some_and(|name| name != &t.name) {
                    continue;
                }
                printed = true;
                for attempt in 1..=t.attempts {
                    println!("== {} attempt {attempt}", t.name);
                    print!("{}", pipelines.log(&run, &t.name, attempt).await?);
                }
            }
            if let (Some(name), false) = (task, printed) {
                return Err(Error::NotFound {
                    what: "task of the run",
                    name,
                });
            }
            Ok(())
        }
    }
}

fn read(file: &PathBuf) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| Error::Config {
        key: file.display().to_string(),
        reason: format!("cannot read the pipeline document: {e}"),
    })
}

/// `NAME=VALUE` parameters: a value that reads as JSON is that (numbers, lists, objects),
/// anything else is text.
fn parse_params(params: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    params
        .iter()
        .map(|p| {
            let (name, value) = p
                .split_once('=')
                .ok_or_else(|| Error::invalid("--param", p, "NAME=VALUE, e.g. epochs=3"))?;
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
            Ok((name.to_owned(), value))
        })
        .collect()
}

/// A token cancelled by the first Ctrl-C (a second one ends the process as usual).
fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: running tasks are cancelled and the run's state saved");
            cancel.cancel();
        }
    });
    token
}

/// Drives `run` while printing each task's changes as the run's saved state shows them.
async fn watching(
    pipelines: &Pipelines,
    run_id: &str,
    run: impl std::future::Future<Output = Result<RunState>>,
) -> Result<RunState> {
    let mut seen: BTreeMap<String, (TaskStatus, u32)> = BTreeMap::new();
    let mut run = std::pin::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            done = &mut run => {
                let state = done?;
                show_changes(&state, &mut seen);
                return Ok(state);
            }
            _ = tick.tick() => {
                if let Ok(state) = pipelines.run_state(run_id).await {
                    show_changes(&state, &mut seen);
                }
            }
        }
    }
}

fn show_changes(state: &RunState, seen: &mut BTreeMap<String, (TaskStatus, u32)>) {
    for t in &state.tasks {
        let now = (t.status, t.attempts);
        if seen.get(&t.name) == Some(&now) || (t.status == TaskStatus::Pending && t.attempts == 0) {
            continue;
        }
        seen.insert(t.name.clone(), now);
        println!("{}", task_line(t));
    }
}

fn task_line(t: &trainstore_pipeline::TaskState) -> String {
    let took = t
        .duration_ms
        .map_or(String::new(), |ms| format!(" in {:.1} s", ms as f64 / 1e3));
    let attempt = if t.attempts > 1 {
        format!(" (attempt {})", t.attempts)
    } else {
        String::new()
    };
    let detail = match t.status {
        TaskStatus::Succeeded => t
            .outputs
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => t.error.clone().unwrap_or_default(),
    };
    let status = format!("{:?}", t.status).to_lowercase();
    format!("  {status:<9} {}{attempt}{took}  {detail}", t.name)
}

fn print_tasks(state: &RunState) {
    println!(
        "run {} of {} ({}): {:?}",
        state.run_id, state.pipeline, state.definition, state.status
    );
    for t in &state.tasks {
        println!("{}", task_line(t));
    }
}

/// The run's outcome; a run that did not succeed is an error (a non-zero exit) that says how
/// to go on.
fn finish(state: &RunState) -> Result<()> {
    let took = state
        .duration()
        .map_or(String::new(), |d| format!(" in {:.1} s", d.as_secs_f64()));
    match state.status {
        RunStatus::Succeeded => {
            println!("run {} succeeded{took}", state.run_id);
            Ok(())
        }
        status => Err(Error::Remote {
            service: format!("pipeline run {}", state.run_id),
            operation: "run",
            reason: format!(
                "{status:?}{took}; see `trainstore pipeline logs` for its tasks' output, and \
                 `trainstore pipeline resume` to run what did not finish"
            )
            .to_lowercase(),
            transient: false,
        }),
    }
}
