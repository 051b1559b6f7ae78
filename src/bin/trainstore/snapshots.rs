//! `trainstore snapshots generate|load|query`: synthetic snapshots, loading them into Doris,
//! and reading snapshots from Doris or files through the parser.

use std::path::PathBuf;
use std::time::Duration;

use arrow::array::RecordBatch;
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use object_store::path::Path;
use trainstore::SnapshotSummary;
use trainstore::core::{
    DataSource, Error, Filter, MountTable, Operation, RecordBatchStream, Result, ScanRequest,
    Secret, StorageOptions, TimeRange, Timestamp,
};
use trainstore::doris::load::{content_label, load_design_doc_rows, synthetic_label};
use trainstore::doris::write::WriteOutcome;
use trainstore::doris::{
    DorisSource, FileFormat, FileSource, ReadOptions, SnapshotGenerator, SnapshotSchema,
    SynthConfig, Timeouts, write_snapshot_file,
};
use trainstore::sources::database_url;

use crate::progress::{QUICK_CALL_DELAY, TerminalProgress};

#[derive(Subcommand)]
pub enum SnapshotsCommand {
    /// Generate synthetic design-document snapshots into files or a MySQL-protocol table
    Generate {
        /// Directory (path, URL or mount://) to write snapshot files into
        #[arg(long, value_name = "LOCATION", required_unless_present = "table")]
        to: Option<String>,
        /// File format
        #[arg(long, default_value = "parquet", value_parser = parse_format)]
        format: FileFormat,
        #[command(flatten)]
        db: Database,
        #[command(flatten)]
        synth: Synth,
    },
    /// Load snapshot files (design-document layout: time, feature) into a MySQL-protocol table
    Load {
        /// File or directory (path, URL or mount://)
        from: String,
        #[command(flatten)]
        db: Database,
    },
    /// Read snapshots from Doris (--table) or from files, parsed, and summarise them
    Query {
        /// File or directory to read instead of a database table
        #[arg(required_unless_present = "table")]
        location: Option<String>,
        #[command(flatten)]
        db: Database,
        /// First time included (ISO-8601: 2022-12-07, 2022-12-07T04:30, 2022-12-07T04:30:00Z,
        /// …; or epoch ms)
        #[arg(long, requires = "end")]
        start: Option<String>,
        /// First time excluded (the same forms as --start)
        #[arg(long, requires = "start")]
        end: Option<String>,
        /// Keep rows where COLUMN equals VALUE; repeatable
        #[arg(long = "filter", value_name = "COLUMN=VALUE", value_parser = parse_filter)]
        filters: Vec<(String, String)>,
        /// At most this many rows
        #[arg(long)]
        limit: Option<usize>,
        /// Snapshot schema (YAML); the design document's layout by default
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
        /// Fail on the first malformed value, naming its row
        #[arg(long)]
        strict: bool,
        /// Rows to print
        #[arg(long, default_value_t = 5)]
        show: usize,
    },
}

/// Where a MySQL-protocol table is.
#[derive(Args)]
pub struct Database {
    /// Table (db.table, or a table of the URL's database)
    #[arg(long)]
    table: Option<String>,
    /// mysql://user:password@host:port/db (prefer the environment variable: it stays out of `ps`)
    #[arg(long, env = "TRAINSTORE_DORIS_URL", hide_env_values = true)]
    url: Option<String>,
    /// Seconds to wait for a connection to the database
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    connect_timeout: f64,
    /// Seconds the database may stay silent (no rows, no answer) before the read gives up
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_seconds)]
    read_timeout: f64,
}

impl Database {
    fn target(&self) -> Result<Option<(Secret, &str)>> {
        match (&self.table, &self.url) {
            (Some(table), Some(url)) => Ok(Some((database_url(url)?, table.as_str()))),
            (Some(_), None) => Err(Error::Config {
                key: "TRAINSTORE_DORIS_URL".into(),
                reason: "--table needs --url or TRAINSTORE_DORIS_URL".into(),
            }),
            _ => Ok(None),
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs_f64(self.connect_timeout),
            read: Duration::from_secs_f64(self.read_timeout),
        }
    }
}

/// A positive number of seconds.
fn parse_seconds(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(s),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

#[derive(Args)]
pub struct Synth {
    /// Devices (distinct uuids)
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Sensor nodes per device
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Snapshots per (device, node)
    #[arg(long, default_value_t = 100)]
    snapshots: usize,
    /// First snapshot time (ISO-8601 or epoch ms)
    #[arg(long, default_value = "2022-12-07T00:00:00Z")]
    start: String,
    /// Mean spacing between a series' snapshots, in milliseconds
    #[arg(long, default_value_t = 600_000)]
    interval_ms: i64,
    /// Share of values written malformed
    #[arg(long, default_value_t = 0.005)]
    malformed_rate: f64,
    /// Seeds the generator: the same seed gives the same snapshots
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl Synth {
    fn config(&self) -> Result<SynthConfig> {
        Ok(SynthConfig {
            devices: self.devices,
            nodes_per_device: self.nodes,
            snapshots: self.snapshots,
            start: Timestamp::parse(&self.start)?,
            interval_ms: self.interval_ms,
            malformed_rate: self.malformed_rate,
            seed: self.seed,
            ..SynthConfig::default()
        })
    }
}

fn parse_format(text: &str) -> std::result::Result<FileFormat, String> {
    FileFormat::parse(text).map_err(|e| e.to_string())
}

fn parse_filter(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected COLUMN=VALUE".into())
}

pub async fn run(command: SnapshotsCommand, mounts: &MountTable) -> Result<()> {
    match command {
        SnapshotsCommand::Generate {
            to,
            format,
            db,
            synth,
        } => {
            let config = synth.config()?;
            let generator = SnapshotGenerator::new(config.clone())?;
            if let Some(to) = to {
                let store = mounts.resolve(&to)?;
                let path = Path::from(format!("snapshots-{}.{format}", config.seed));
                let bytes = write_snapshot_file(
                    store.store.clone(),
                    &path,
                    format,
                    generator.batches(8192),
                )
                .await?;
                println!(
                    "wrote {} rows ({bytes} bytes) to {}/{path}",
                    config.rows(),
                    store.url
                );
            }
            if let Some((url, table)) = db.target()? {
                let label = synthetic_label(&config);
                let batches = generator.batches(8192);
                let done =
                    load_design_doc_rows(&url, table, &label, batches, db.timeouts()).await?;
                print_load(&done, table, &label, "");
            }
            Ok(())
        }
        SnapshotsCommand::Load { from, db } => {
            let (url, table) = db
                .target()?
                .ok_or_else(|| Error::invalid("load target", "", "--table is required"))?;
            let source = FileSource::open(
                mounts,
                &from,
                &StorageOptions::new(),
                None,
                SnapshotSchema::design_doc(),
                false,
            )
            .await?;
            let raw: Vec<_> = source.scan_raw().try_collect().await?;
            let label = content_label(&raw)?;
            let done = load_design_doc_rows(&url, table, &label, raw, db.timeouts()).await?;
            let files = format!(" from {} files", source.files().len());
            print_load(&done, table, &label, &files);
            Ok(())
        }
        SnapshotsCommand::Query {
            location,
            db,
            start,
            end,
            filters,
            limit,
            schema,
            strict,
            show,
        } => {
            let schema =
                match schema {
                    Some(path) => SnapshotSchema::from_yaml(
                        &std::fs::read_to_string(&path).map_err(|e| Error::Config {
                            key: path.display().to_string(),
                            reason: e.to_string(),
                        })?,
                    )?,
                    None => SnapshotSchema::design_doc(),
                };
            // clap requires --start and --end together.
            let time_range = match (start, end) {
                (Some(s), Some(e)) => Some(TimeRange::parse(&s, &e)?),
                _ => None,
            };
            let request = ScanRequest {
                time_range,
                filters: filters.into_iter().map(|(k, v)| Filter::eq(k, v)).collect(),
                projection: None,
                limit,
            };
            let (batches, report) = match (db.target()?, location) {
                (Some((url, table)), _) => {
                    let options = ReadOptions {
                        strict,
                        query_timeout: Duration::from_secs(600),
                        timeouts: db.timeouts(),
                        ..ReadOptions::default()
                    };
                    let source = DorisSource::connect(&url, table, schema.clone(), options).await?;
                    let batches = read_showing_progress(source.scan(&request).await?).await?;
                    (batches, source.parse_report())
                }
                (None, Some(location)) => {
                    let source = FileSource::open(
                        mounts,
                        &location,
                        &StorageOptions::new(),
                        None,
                        schema.clone(),
                        strict,
                    )
                    .await?;
                    let batches = read_showing_progress(source.scan(&request).await?).await?;
                    (batches, source.parse_report())
                }
                (None, None) => unreachable!("clap requires a location or --table"),
            };
            let summary = SnapshotSummary::of(&schema, &batches, report);
            println!("{summary}");
            print_rows(&batches, show)?;
            Ok(())
        }
    }
}

/// The most characters of one value a printed table shows.
const CELL_CHARS: usize = 40;

/// Prints the first `n` rows as a table, each value cut to [`CELL_CHARS`] (a spectrum's
/// 1,600 numbers would make one line of a screen's worth); `--out` files keep them whole.
pub fn print_rows(batches: &[arrow::array::RecordBatch], n: usize) -> Result<()> {
    let mut left = n;
    let mut shown = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let take = left.min(b.num_rows());
        shown.push(cut_long_values(&b.slice(0, take))?);
        left -= take;
    }
    if !shown.is_empty() {
        let table = arrow::util::pretty::pretty_format_batches(&shown)?;
        println!("{table}");
    }
    Ok(())
}

/// `batch` with every value as its printed text, those longer than [`CELL_CHARS`] cut short
/// with `…`.
fn cut_long_values(batch: &arrow::array::RecordBatch) -> Result<arrow::array::RecordBatch> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    let options = FormatOptions::default();
    let mut columns: Vec<(String, ArrayRef)> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len())
            .map(|row| {
                let value = formatter.value(row).to_string();
                Some(match value.char_indices().nth(CELL_CHARS) {
                    Some((at, _)) => format!("{}…", &value[..at]),
                    None => value,
                })
            })
            .collect();
        columns.push((field.name().clone(), std::sync::Arc::new(text)));
    }
    Ok(arrow::array::RecordBatch::try_from_iter(columns)?)
}

/// Reads a whole scan, showing how many snapshots have been read once it takes a while.
async fn read_showing_progress(mut stream: RecordBatchStream) -> Result<Vec<RecordBatch>> {
    let progress = TerminalProgress::after(QUICK_CALL_DELAY);
    let rows = Operation::begin(&progress, "query: snapshots read", None);
    let mut batches = Vec::new();
    while let Some(batch) = stream.try_next().await? {
        rows.advance(batch.num_rows() as u64);
        batches.push(batch);
    }
    Ok(batches)
}

/// What a load did: rows loaded, or that the same rows (the same label) were loaded before.
fn print_load(done: &WriteOutcome, table: &str, label: &str, from: &str) {
    if done.already_written {
        println!("these rows were loaded into {table} before (label {label}): nothing written");
    } else {
        println!("loaded {} rows{from} into {table}", done.rows_written);
    }
}
