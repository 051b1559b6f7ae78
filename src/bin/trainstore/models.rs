//! `trainstore models ...`: train a model on a training-set version, list and show versions,
//! promote and roll back aliases, delete versions.

use std::sync::Arc;

use clap::Subcommand;
use trainstore::Workspace;
use trainstore::core::{DatasetName, Error, MountTable, Result, StorageOptions, TagName, UserName};
use trainstore::doris::write::write_batches;
use trainstore::featurestore::training::TrainingSetVersion;
use trainstore::models::{Comparison, TrainRequest};
use trainstore::sources::database_url;
use trainstore::train::{
    FeatureShape, ForecastReport, Layout, ListFit, ModelConfig, ModelVersion, Schedule, Task,
    WindowFeature,
};

use crate::features::parquet_bytes;
use crate::progress::TerminalProgress;
use crate::snapshots::print_rows;

use crate::training_sets::{print_json, reference};

// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Train a model on a training-set version (SET, SET@v3, SET@golden) and register it
    Train {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model: the trained version is registered under this name
        name: String,
        /// The training-set version to train on
        #[arg(long)]
        from: String,
        /// A numeric feature column, or LIST:LEN (truncated and padded) or LIST:LEN:pool (mean
        /// pooled) for a list column; repeatable, in channel order
        #[arg(long = "feature", required = true, value_name = "COLUMN[:LEN[:pool]]")]
        features: Vec<String>,
        /// A column telling entities apart; repeatable [default: uuid, nodeId]
        #[arg(long = "key", value_name = "COLUMN")]
        keys: Vec<String>,
        /// The timestamp column rows are ordered by
        #[arg(long, default_value = "event_timestamp")]
        time: String,
        /// Steps per window
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Steps between window starts
        #[arg(long, default_value_t = 8)]
        stride: usize,
        /// Steps forecast after each window
        #[arg(long, default_value_t = 1)]
        horizon: usize,
        /// Learn the class of this column (booleans, integers or text) at each window's last
        /// row, instead of forecasting
        #[arg(long, value_name = "COLUMN", conflicts_with = "regress")]
        classify: Option<String>,
        /// Learn the value of this numeric column at each window's last row, instead of
        /// forecasting
        #[arg(long, value_name = "COLUMN")]
        regress: Option<String>,
        /// The longest gap inside a window, in seconds
        #[arg(long, default_value_t = 3600)]
        max_gap_s: i64,
        /// The fraction of the time range, before the test part, that validates
        #[arg(long, default_value_t = 0.1)]
        validation: f64,
        /// The last fraction of the time range, held out to test
        #[arg(long, default_value_t = 0.1)]
        test: f64,
        /// Passes over the training windows
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Windows per optimiser step
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Adam's learning rate
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f64,
        /// The model's width: each step's encoding
        #[arg(long, default_value_t = 64)]
        d_model: usize,
        /// Attention heads per layer (they divide --d-model)
        #[arg(long, default_value_t = 4)]
        heads: usize,
        /// Encoder layers
        #[arg(long, default_value_t = 2)]
        layers: usize,
        /// The feed-forward width inside each layer
        #[arg(long, default_value_t = 128)]
        d_ff: usize,
        /// The share of activations dropped while training
        #[arg(long, default_value_t = 0.1)]
        dropout: f64,
        /// Seeds the weights and the order of windows: the same seed gives the same model
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A registered model (NAME@champion, NAME@v3) to train further instead of afresh
        #[arg(long)]
        base: Option<String>,
        /// With --base: windows replayed from the base's training sets per new window
        #[arg(long, requires = "base", default_value_t = 0.0)]
        incremental_ratio: f64,
        /// Stop once the validation loss has not improved for this many epochs
        #[arg(long)]
        patience: Option<usize>,
        /// Warm the learning rate up over this share of the steps, then lower it along a
        /// cosine to zero [default: a constant rate]
        #[arg(long)]
        warmup: Option<f64>,
        /// Keep a checkpoint there after every epoch; the same command run again resumes
        /// from it (after a crash, or with more --epochs)
        #[arg(long, value_name = "DIR")]
        checkpoints: Option<std::path::PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the versions of a model, oldest first
    List {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Show one version (NAME, NAME@v3, NAME@champion): metrics, layout and lineage
    Show {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// How well a version forecasts every window of a training-set version
    Evaluate {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The training-set version (SET, SET@v3) to forecast
        #[arg(long)]
        on: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Forecast what follows each entity's latest rows in a training-set version
    Predict {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The training-set version (SET, SET@v3) whose latest rows are forecast from
        #[arg(long)]
        on: String,
        /// Rows of the forecast to print
        #[arg(long, default_value_t = 20)]
        show: usize,
        /// Also write the whole forecast to this Parquet file
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Also append the forecast to this Doris or MySQL table (db.table, or a table of the
        /// URL's database), created if absent, exactly once per --label
        #[arg(long, value_name = "TABLE")]
        write_table: Option<String>,
        /// mysql://user:password@host:port/db for --write-table (prefer the environment
        /// variable: it stays out of `ps`)
        #[arg(long, env = "TRAINSTORE_DORIS_URL", hide_env_values = true)]
        url: Option<String>,
        /// What makes a write happen once: the same label again writes nothing [default: the
        /// model's and the training set's versions]
        #[arg(long)]
        label: Option<String>,
    },
    /// Forecast every window of a training-set version beside what followed it, with each
    /// window's anomaly score
    Backtest {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The training-set version (SET, SET@v3) whose windows are forecast
        #[arg(long)]
        on: String,
        /// Rows to print
        #[arg(long, default_value_t = 10)]
        show: usize,
        /// Also write every row to this Parquet file
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Compare two versions' forecast errors on the same windows of a training-set version
    Compare {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The version compared against (NAME@champion, NAME@v2)
        champion: String,
        /// The version that may replace it
        challenger: String,
        /// The training-set version (SET, SET@v3) whose windows both versions forecast
        #[arg(long)]
        on: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Promote a version if its errors on a training-set version are lower than those of the
    /// version the alias names (or if the alias names none yet); exits 3 when not promoted
    PromoteIfBetter {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The training-set version (SET, SET@v3) the errors are measured on
        #[arg(long)]
        on: String,
        /// The alias to point at the version; the version it names now is the one to beat
        #[arg(long, default_value = "champion")]
        alias: String,
        /// How much lower its errors must be, as a share (0.05: 5 % lower on average)
        #[arg(long, default_value_t = 0.0)]
        min_improvement: f64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Point an alias at a version: `promote WS NAME@v3`
    Promote {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The alias to point at the version
        #[arg(long, default_value = "champion")]
        alias: String,
    },
    /// Point an alias back where it was before its last move
    Rollback {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model
        name: String,
        /// The alias to move back
        #[arg(long, default_value = "champion")]
        alias: String,
    },
    /// Delete a version (not one an alias or tag names)
    Delete {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The model version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
    },
}

/// `COLUMN`, `COLUMN:LEN` or `COLUMN:LEN:pool`.
fn feature(text: &str) -> Result<WindowFeature> {
    let bad = |reason: &str| Error::invalid("--feature", text, reason);
    let mut parts = text.split(':');
    let name = parts
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("names no column"))?;
    let shape = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => FeatureShape::Scalar,
        (Some(len), fit, None) => FeatureShape::List {
            len: len.parse().map_err(|_| bad("LEN is not a count"))?,
            fit: match fit {
                None | Some("truncate") => ListFit::TruncateOrPad,
                Some("pool") => ListFit::MeanPool,
                Some(_) => return Err(bad("the fit is truncate or pool")),
            },
        },
        _ => return Err(bad("expected COLUMN, COLUMN:LEN or COLUMN:LEN:pool")),
    };
    Ok(WindowFeature {
        name: name.to_owned(),
        shape,
    })
}

/// Writes `rows` to the Parquet file `path`, and says so.
fn write_parquet(path: &std::path::Path, rows: &arrow::array::RecordBatch) -> Result<()> {
    std::fs::write(path, parquet_bytes(rows)?).map_err(|e| Error::Config {
        key: path.display().to_string(),
        reason: format!("cannot write the output file: {e}"),
    })?;
    println!("written to {}", path.display());
    Ok(())
}

/// The model `model` (NAME@ref) and the training-set version `set` (SET@ref) name.
async fn model_and_set(
    ws: &Workspace,
    model: &str,
    set: &str,
) -> Result<(ModelVersion, TrainingSetVersion)> {
    let (name, version) = reference(model)?;
    let model = ws.models().get(&name, &version).await?;
    let (name, version) = reference(set)?;
    Ok((model, ws.training_sets().get(&name, &version).await?))
}

fn print_errors(label: &str, report: &ForecastReport) {
    println!("{label}: {} windows", report.windows);
    for f in &report.features {
        let mape = f.mape.map_or("none".into(), |m| format!("{m:.2} %"));
        println!(
            "  {:<24} MAE {:.4}  RMSE {:.4}  MAPE {mape}",
            f.feature, f.mae, f.rmse
        );
    }
    if let Some(c) = &report.classification {
        let auc = c.roc_auc.map_or("none".into(), |a| format!("{a:.4}"));
        println!(
            "  accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  ROC-AUC {auc}",
            c.accuracy, c.precision, c.recall, c.f1
        );
        for k in &c.classes {
            println!(
                "  {:<24} precision {:.4}  recall {:.4}  F1 {:.4}  ({} windows)",
                k.class, k.precision, k.recall, k.f1, k.support
            );
        }
        return;
    }
    let a = report.anomaly;
    println!(
        "  anomaly scores: mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        a.mean, a.p50, a.p90, a.p99, a.max
    );
}

fn print_comparison(comparison: &Comparison, set: &str) {
    print_errors(
        &format!("{} on {set}", comparison.champion),
        &comparison.champion_errors,
    );
    print_errors(
        &format!("{} on {set}", comparison.challenger),
        &comparison.challenger_errors,
    );
    println!(
        "improvement {:+.1} % (the challenger's RMSE against the champion's, per feature)",
        comparison.improvement * 100.0
    );
}

fn describe(v: &ModelVersion) -> String {
    let loss = v
        .card
        .validation_loss()
        .map_or("none".into(), |l| format!("{l:.4}"));
    format!(
        "{}  by {}  {} epochs  validation loss {loss}  from {}",
        v.id(),
        v.author,
        v.card.metrics.len(),
        v.card.lineage.training_sets.join(", ")
    )
}

pub async fn run(command: ModelsCommand, mounts: &MountTable, user: &UserName) -> Result<()> {
    let open = |workspace: String| async move {
        Ok::<_, Error>(
            Workspace::open_existing(&workspace, mounts, &StorageOptions::new())
                .await?
                .with_user(user.clone()),
        )
    };
    match command {
        ModelsCommand::Train {
            workspace,
            name,
            from,
            features,
            keys,
            time,
            window,
            stride,
            horizon,
            classify,
            regress,
            max_gap_s,
            validation,
            test,
            epochs,
            batch_size,
            learning_rate,
            d_model,
            heads,
            layers,
            d_ff,
            dropout,
            seed,
            base,
            incremental_ratio,
            patience,
            warmup,
            checkpoints,
            json,
        } => {
            let ws = open(workspace).await?;
            let (set_name, set_reference) = reference(&from)?;
            let set = ws.training_sets().get(&set_name, &set_reference).await?;
            let keys = if keys.is_empty() {
                vec!["uuid".into(), "nodeId".into()]
            } else {
                keys
            };
            let task = match (classify, regress) {
                (Some(label), None) => Task::Classify { label },
                (None, Some(label)) => Task::Regress { label },
                _ => Task::Forecast,
            };
            let mut request = TrainRequest::new(Layout {
                keys,
                time,
                features: features.iter().map(|f| feature(f)).collect::<Result<_>>()?,
                task,
            });
            request.windows.length = window;
            request.windows.stride = stride;
            request.windows.horizon = horizon;
            request.windows.max_gap_ms = max_gap_s.saturating_mul(1000);
            request.split.validation = validation;
            request.split.test = test;
            request.training.epochs = epochs;
            request.training.batch_size = batch_size;
            request.training.learning_rate = learning_rate;
            request.training.seed = seed;
            request.model = ModelConfig {
                d_model,
                heads,
                layers,
                d_ff,
                dropout,
            };
            request.base = base;
            request.incremental_ratio = incremental_ratio;
            request.training.patience = patience;
            if let Some(warmup) = warmup {
                request.training.schedule = Schedule::WarmupCosine { warmup };
            }
            request.checkpoints = checkpoints;
            let v = ws
                .models()
                .with_progress(Arc::new(TerminalProgress::new()))
                .train(&DatasetName::new(name)?, &set, &request)
                .await?;
            if json {
                print_json(&v.card);
            } else {
                for m in &v.card.metrics {
                    let validation = m
                        .validation_loss
                        .map_or("none".into(), |l| format!("{l:.4}"));
                    println!(
                        "epoch {:>3}  train loss {:.4}  validation loss {validation}",
                        m.epoch, m.train_loss
                    );
                }
                println!("registered {}", describe(&v));
            }
            Ok(())
        }
        ModelsCommand::List {
            workspace,
            name,
            json,
        } => {
            let listed = open(workspace)
                .await?
                .models()
                .list(&DatasetName::new(name)?)
                .await?;
            if json {
                let cards: Vec<_> = listed
                    .iter()
                    .map(|v| serde_json::json!({"version": v.version, "card": v.card}))
                    .collect();
                print_json(&cards);
            } else {
                for v in &listed {
                    println!("{}", describe(v));
                }
            }
            Ok(())
        }
        ModelsCommand::Show {
            workspace,
            reference: text,
            json,
        } => {
            let (name, reference) = reference(&text)?;
            let v = open(workspace)
                .await?
                .models()
                .get(&name, &reference)
                .await?;
            if json {
                print_json(&v.card);
            } else {
                println!("{}", describe(&v));
                let features: Vec<&str> = v
                    .card
                    .layout
                    .features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect();
                println!(
                    "  windows of {} steps every {}, forecasting {}; features {}",
                    v.card.windows.length,
                    v.card.windows.stride,
                    v.card.windows.horizon,
                    features.join(", ")
                );
            }
            Ok(())
        }
        ModelsCommand::Evaluate {
            workspace,
            reference: text,
            on,
            json,
        } => {
            let ws = open(workspace).await?;
            let (model, set) = model_and_set(&ws, &text, &on).await?;
            let report = ws.models().evaluate(&model, &set).await?;
            if json {
                print_json(&report);
            } else {
                print_errors(&format!("{} on {}", model.id(), set.id()), &report);
            }
            Ok(())
        }
        ModelsCommand::Predict {
            workspace,
            reference: text,
            on,
            show,
            out,
            write_table,
            url,
            label,
        } => {
            let ws = open(workspace).await?;
            let (model, set) = model_and_set(&ws, &text, &on).await?;
            let forecast = ws.models().predict_version(&model, &set).await?;
            println!(
                "{} on the latest rows of {}: {} forecast rows; {} entities without a whole \
                 recent window",
                model.id(),
                set.id(),
                forecast.rows.num_rows(),
                forecast.skipped
            );
            print_rows(std::slice::from_ref(&forecast.rows), show)?;
            if let Some(path) = out {
                write_parquet(&path, &forecast.rows)?;
            }
            if let Some(table) = write_table {
                let url = url
                    .as_deref()
                    .map(database_url)
                    .transpose()?
                    .ok_or_else(|| Error::Config {
                        key: "TRAINSTORE_DORIS_URL".into(),
                        reason: "--write-table needs --url or TRAINSTORE_DORIS_URL".into(),
                    })?;
                let label = label.unwrap_or_else(|| format!("{} on {}", model.id(), set.id()));
                let rows = std::slice::from_ref(&forecast.rows);
                let outcome =
                    write_batches(&url, &table, &label, rows, &Default::default()).await?;
                if outcome.already_written {
                    println!(
                        "{table} already holds the forecast labelled {label:?}: nothing written"
                    );
                } else {
                    println!(
                        "appended {} rows to {table} (label {label:?})",
                        outcome.rows_written
                    );
                }
            }
            Ok(())
        }
        ModelsCommand::Backtest {
            workspace,
            reference: text,
            on,
            show,
            out,
        } => {
            let ws = open(workspace).await?;
            let (model, set) = model_and_set(&ws, &text, &on).await?;
            let rows = ws.models().backtest(&model, &set).await?;
            println!(
                "{} on every window of {}: {} rows",
                model.id(),
                set.id(),
                rows.num_rows()
            );
            print_rows(std::slice::from_ref(&rows), show)?;
            if let Some(path) = out {
                write_parquet(&path, &rows)?;
            }
            Ok(())
        }
        ModelsCommand::Compare {
            workspace,
            champion,
            challenger,
            on,
            json,
        } => {
            let ws = open(workspace).await?;
            let (champion, set) = model_and_set(&ws, &champion, &on).await?;
            let (name, reference) = reference(&challenger)?;
            let challenger = ws.models().get(&name, &reference).await?;
            let comparison = ws.models().compare(&champion, &challenger, &set).await?;
            if json {
                print_json(&comparison);
            } else {
                print_comparison(&comparison, &set.id());
            }
            Ok(())
        }
        ModelsCommand::PromoteIfBetter {
            workspace,
            reference: text,
            on,
            alias,
            min_improvement,
            json,
        } => {
            let ws = open(workspace).await?;
            let (model, set) = model_and_set(&ws, &text, &on).await?;
            let alias = TagName::new(alias)?;
            let gate = ws
                .models()
                .promote_if_better(&model, &set, &alias, min_improvement)
                .await?;
            if json {
                print_json(&gate);
            } else {
                if let Some(comparison) = &gate.comparison {
                    print_comparison(comparison, &set.id());
                }
                let verdict = if gate.promoted {
                    "promoted"
                } else {
                    "not promoted"
                };
                println!("{} {verdict} to {alias}: {}", model.id(), gate.reason);
            }
            if !gate.promoted {
                // A pipeline's gate: the step after it runs only on a promotion.
                std::process::exit(3);
            }
            Ok(())
        }
        ModelsCommand::Promote {
            workspace,
            reference: text,
            alias,
        } => {
            let (name, reference) = reference(&text)?;
            let alias = TagName::new(alias)?;
            let entry = open(workspace)
                .await?
                .models()
                .promote(&name, &reference, &alias)
                .await?;
            println!("{name}@{alias} → {}", entry.version);
            Ok(())
        }
        ModelsCommand::Rollback {
            workspace,
            name,
            alias,
        } => {
            let (name, alias) = (DatasetName::new(name)?, TagName::new(alias)?);
            let entry = open(workspace)
                .await?
                .models()
                .rollback(&name, &alias)
                .await?;
            println!("{name}@{alias} → {} (rolled back)", entry.version);
            Ok(())
        }
        ModelsCommand::Delete {
            workspace,
            reference: text,
        } => {
            let (name, reference) = reference(&text)?;
            open(workspace)
                .await?
                .models()
                .delete(&name, &reference)
                .await?;
            println!("deleted {text}");
            Ok(())
        }
    }
}
