//! `trainstore features apply|plan|list|history|rollback|materialize|get`: the feature
//! registry of a workspace, training data from it, and the online store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use clap::Subcommand;
use futures::TryStreamExt;
use trainstore::Workspace;
use trainstore::core::DataSource;
use trainstore::core::{Error, MountTable, Result, StorageOptions, Timestamp, UserName, Version};
use trainstore::featurestore::{
    Definitions, Engine, FeatureStore, HistoricalOptions, Name, OnlineOptions, TtlPolicy,
};

use crate::progress::{QUICK_CALL_DELAY, TerminalProgress};
use crate::snapshots::print_rows;

#[derive(Subcommand)]
pub enum FeaturesCommand {
    /// Apply definitions from a YAML file (entities, feature_views, feature_services)
    Apply {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The definitions file
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Show what applying a YAML file would change, without changing anything
    Plan {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The definitions file
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Print the current definitions as YAML
    List {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
    },
    /// Show every registry version: when, by whom, what changed
    History {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
    },
    /// Remove definitions by name (entities, views, on-demand views, services) as a new
    /// version; refused while something left refers to one of them
    Delete {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The names of the definitions to remove
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Make the definitions of an earlier version current again
    Rollback {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The version to return to
        #[arg(long)]
        to: u64,
    },
    /// Write each entity's latest row into the online store: [--start, --end] both included,
    /// or from where the last run ended when --start is absent
    Materialize {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// First event time included (ISO-8601 or epoch ms) [default: where the last run ended]
        #[arg(long)]
        start: Option<String>,
        /// Last event time included (ISO-8601 or epoch ms) [default: now]
        #[arg(long)]
        end: Option<String>,
        /// Only these views; repeatable [default: every online view]
        #[arg(long = "view")]
        views: Vec<String>,
    },
    /// Copy a view's rows in [start, end] into the workspace's offline store, sorted for joins
    Ingest {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The feature view to copy
        view: String,
        /// First event time included (ISO-8601 or epoch ms) [default: the epoch]
        #[arg(long)]
        start: Option<String>,
        /// Last event time included (ISO-8601 or epoch ms) [default: now]
        #[arg(long)]
        end: Option<String>,
    },
    /// Point-in-time features for entity rows from a file, or online values for --entity keys
    Get {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// Feature references view:feature, or feature service names; repeatable
        #[arg(long = "feature", required = true)]
        features: Vec<String>,
        /// Entity rows (Parquet or CSV with the join keys and event_timestamp)
        #[arg(long, required_unless_present = "entity", conflicts_with = "entity")]
        entities: Option<String>,
        /// Online read of one entity, as KEY=VALUE,KEY=VALUE; repeatable
        #[arg(long)]
        entity: Vec<String>,
        /// Online reads: return values older than the view's TTL too (as Feast does)
        #[arg(long)]
        ignore_ttl: bool,
        /// Historical reads: join here (in-process) or in the database (pushdown)
        #[arg(long, default_value = "in-process", conflicts_with = "entity")]
        engine: String,
        /// Name columns view__feature
        #[arg(long)]
        full_names: bool,
        /// Write the result here as Parquet
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rows to print
        #[arg(long, default_value_t = 5)]
        show: usize,
    },
}

async fn open(workspace: &str, mounts: &MountTable, user: &UserName) -> Result<FeatureStore> {
    Ok(
        Workspace::open_existing(workspace, mounts, &StorageOptions::new())
            .await?
            .with_user(user.clone())
            .features(),
    )
}

fn read_definitions(file: &PathBuf) -> Result<Definitions> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::Config {
        key: file.display().to_string(),
        reason: format!("cannot read the definitions file: {e}"),
    })?;
    Definitions::parse(&text)
}

pub async fn run(command: FeaturesCommand, mounts: &MountTable, user: &UserName) -> Result<()> {
    match command {
        FeaturesCommand::Apply { workspace, file } => {
            let applied = open(&workspace, mounts, user)
                .await?
                .apply(read_definitions(&file)?.into_list())
                .await?;
            print!("{}", applied.plan);
            match applied.version {
                Some(v) => println!("applied as registry version {v}"),
                None => println!("nothing changed"),
            }
            Ok(())
        }
        FeaturesCommand::Plan { workspace, file } => {
            let plan = open(&workspace, mounts, user)
                .await?
                .plan(read_definitions(&file)?.into_list())
                .await?;
            print!("{plan}");
            if plan.is_noop() {
                println!("nothing would change");
            }
            Ok(())
        }
        FeaturesCommand::List { workspace } => {
            let defs = open(&workspace, mounts, user).await?.definitions().await?;
            print!("{}", defs.to_yaml());
            Ok(())
        }
        FeaturesCommand::History { workspace } => {
            for v in open(&workspace, mounts, user).await?.history().await? {
                println!(
                    "{:>4}  {}  {:<12} {}",
                    v.version, v.created_at, v.author, v.summary
                );
            }
            Ok(())
        }
        FeaturesCommand::Delete { workspace, names } => {
            let names = names.iter().map(Name::new).collect::<Result<Vec<_>>>()?;
            let v = open(&workspace, mounts, user).await?.remove(&names).await?;
            println!(
                "removed {}, as registry version {v}",
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        FeaturesCommand::Rollback { workspace, to } => {
            let v = open(&workspace, mounts, user)
                .await?
                .rollback(Version::new(to)?)
                .await?;
            println!("definitions of version {to} are current again, as version {v}");
            Ok(())
        }
        FeaturesCommand::Ingest {
            workspace,
            view,
            start,
            end,
        } => {
            let store = open(&workspace, mounts, user)
                .await?
                .with_progress(Arc::new(TerminalProgress::after(QUICK_CALL_DELAY)));
            let start = start
                .as_deref()
                .map_or(Ok(Timestamp::from_millis(0)), Timestamp::parse)?;
            let end = end
                .as_deref()
                .map_or(Ok(Timestamp::now()), Timestamp::parse)?;
            let started = Instant::now();
            let done = store.ingest(&Name::new(&view)?, start, end).await?;
            println!(
                "ingested {} rows of {} ({}) in {:.3} s: offline-{}@v{}, {} segment(s)",
                done.rows,
                done.view,
                done.range,
                started.elapsed().as_secs_f64(),
                done.view,
                done.version,
                done.segments
            );
            Ok(())
        }
        FeaturesCommand::Materialize {
            workspace,
            start,
            end,
            views,
        } => {
            let store = open(&workspace, mounts, user)
                .await?
                .with_progress(Arc::new(TerminalProgress::after(QUICK_CALL_DELAY)));
            let end = match end {
                Some(t) => Timestamp::parse(&t)?,
                None => Timestamp::now(),
            };
            let views = views
                .iter()
                .map(|v| Name::new(v.as_str()))
                .collect::<Result<Vec<_>>>()?;
            let views = (!views.is_empty()).then_some(views.as_slice());
            let done = match start {
                Some(s) => store.materialize(Timestamp::parse(&s)?, end, views).await?,
                None => store.materialize_incremental(end, views).await?,
            };
            let online = store.online_store().await?;
            for m in &done {
                println!(
                    "{:<20} {} source rows, {} entities, {} written",
                    m.view, m.rows_read, m.entities, m.written
                );
            }
            println!("online store: {}", online.describe());
            Ok(())
        }
        FeaturesCommand::Get {
            workspace,
            features,
            entities,
            entity,
            ignore_ttl,
            engine,
            full_names,
            out,
            show,
        } => {
            // Checked before the workspace opens: a mistyped --entity fails at once.
            let keys = entities.is_none().then(|| key_rows(&entity)).transpose()?;
            let store = open(&workspace, mounts, user)
                .await?
                .with_progress(Arc::new(TerminalProgress::after(QUICK_CALL_DELAY)));
            let refs = store.resolve_features(&features).await?;
            let started = Instant::now();
            let result = match (entities, keys) {
                (Some(location), _) => {
                    let rows = read_entity_rows(&location).await?;
                    let options = HistoricalOptions {
                        full_feature_names: full_names,
                        engine: Engine::parse(&engine)?,
                        ..Default::default()
                    };
                    store
                        .get_historical_features(&rows, &refs, &options)
                        .await?
                }
                (None, Some(keys)) => {
                    let options = OnlineOptions {
                        full_feature_names: full_names,
                        ttl: if ignore_ttl {
                            TtlPolicy::Ignore
                        } else {
                            TtlPolicy::Enforce
                        },
                        // Printed beside the values: why one is empty.
                        with_status: true,
                    };
                    store.get_online_features(&refs, &keys, &options).await?
                }
                (None, None) => unreachable!("clap requires --entities or --entity"),
            };
            println!(
                "{} rows x {} columns in {:.3} s",
                result.num_rows(),
                result.num_columns(),
                started.elapsed().as_secs_f64()
            );
            print_rows(std::slice::from_ref(&result), show)?;
            if let Some(path) = out {
                std::fs::write(&path, parquet_bytes(&result)?).map_err(|e| Error::Config {
                    key: path.display().to_string(),
                    reason: format!("cannot write the output file: {e}"),
                })?;
                println!("written to {}", path.display());
            }
            Ok(())
        }
    }
}

/// `uuid=A,nodeId=1` per entity → one string column per key. Every entity names the same
/// keys, each once: a key left out would read as null and silently match nothing.
fn key_rows(entities: &[String]) -> Result<RecordBatch> {
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<(String, String)>> = Vec::new();
    for e in entities {
        let bad = |reason: String| Error::invalid("entity", e.as_str(), reason);
        let pairs = e
            .split(',')
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| bad("expected KEY=VALUE,…".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        if let Some(k) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("names key {:?} twice", k[0])));
        }
        if rows.is_empty() {
            names = pairs.iter().map(|(k, _)| k.clone()).collect();
        } else if names.len() != keys.len() || !names.iter().all(|n| keys.contains(n)) {
            return Err(bad(format!(
                "names keys {keys:?}, the first --entity names {names:?}; give every entity the same keys"
            )));
        }
        rows.push(pairs);
    }
    let columns: Vec<ArrayRef> = names
        .iter()
        .map(|n| {
            Arc::new(
                rows.iter()
                    .map(|r| r.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()))
                    .collect::<StringArray>(),
            ) as ArrayRef
        })
        .collect();
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

async fn read_entity_rows(location: &str) -> Result<RecordBatch> {
    let bad = |reason: String| Error::invalid("entity rows file", location, reason);
    let batches: Vec<RecordBatch> = if location.ends_with(".csv") {
        let file = std::fs::File::open(location).map_err(|e| bad(e.to_string()))?;
        let format = arrow::csv::reader::Format::default().with_header(true);
        let (schema, _) = format
            .infer_schema(&file, Some(1000))
            .map_err(|e| bad(e.to_string()))?;
        let file = std::fs::File::open(location).map_err(|e| bad(e.to_string()))?;
        arrow::csv::ReaderBuilder::new(Arc::new(schema))
            .with_format(format)
            .build(file)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<_, _>>()?
    } else {
        let source = trainstore::doris::ParquetSource::open(
            &MountTable::default(),
            location,
            &StorageOptions::new(),
            None,
        )
        .await?;
        source
            .scan(&Default::default())
            .await?
            .try_collect()
            .await?
    };
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| bad("holds no rows".into()))?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// `batch` as a Parquet file's bytes.
pub(crate) fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let bad = |e: parquet::errors::ParquetError| Error::invalid("result", "Parquet", e.to_string());
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).map_err(bad)?;
    writer.write(batch).map_err(bad)?;
    writer.close().map_err(bad)?;
    Ok(out)
}
