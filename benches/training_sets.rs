//! Training-set versions, Rust only, each figure beside its arrow-rs peer
//! in the same run:
//!
//! - `create_join_answer_100k`, `read_join_answer_100k`: a set shaped like the feature-store
//!   benchmark's 1M × 100k join answer (100,000 rows: `uuid`, `nodeId`, `event_timestamp`,
//!   `label`, 5 float32 and 7 list<float32> features of 8–64 values, a fifth of the rows
//!   without values, as the join leaves them), generated here. Created as a version (quality
//!   with the label's balance, SHA-256 and XXH3, manifest) against arrow-rs's `ArrowWriter` writing the
//!   same batches to a file with the same properties (Snappy, row groups of 128Ki rows); read
//!   back against arrow-rs decoding that file (batches of 128Ki rows). The parts of a create
//!   are timed alone too: the quality pass, the Parquet encoding into a growing buffer, the
//!   SHA-256 and XXH3 of the encoded bytes, and storing them (`put_file`: hash and write).
//! - `create_big_rows`, `read_big_rows`: the same at 10,000,000 rows of the answer's scalar
//!   columns (the lists left out: 10M rows of them would be 10 GB); `TRAINSTORE_BENCH_BIG_ROWS`
//!   sets another row count.
//! - `list_select`: `list` and `select_best` on a set of 100 and one of 10,000 versions. The
//!   versions are committed straight through the catalog (`VersionStore::commit` with the
//!   manifest metadata and index summary of one real create, scores and sizes varied), not
//!   created one by one; kept in the temporary directory and reused by later runs.
//! - `drift_1m`: drift of two 1M-row sets of the answer's shape over its 12 features (19
//!   measures: values of all, list lengths of the 7 lists); `TRAINSTORE_BENCH_DRIFT_ROWS` sets
//!   another row count. Its peer, scipy + numpy, is in `benches/peers/training_set_peers.py`,
//!   which runs this binary for our Rust figure beside `ws.training_sets.drift` from Python.
//!
//! `cargo bench --bench training_sets [-- FILTER]`. Two modes serve the peer script:
//! `-- --drift WORKSPACE NAME [--repeat N]` times the drift of versions 1 and 2 of `NAME`
//! (read outside the clock) and prints one JSON object; `-- --make-versions WORKSPACE` makes
//! (once) the workspace of `list_select` and prints its path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float32Builder, Int64Array, ListBuilder, RecordBatch, StringBuilder,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::json;
use trainstore::Workspace;
use trainstore::core::catalog::{FileEntry, hex_sha256};
use trainstore::core::{DatasetName, NewVersion, UserName};
use trainstore::featurestore::training::drift::{DriftOptions, drift};
use trainstore::featurestore::training::quality::{QualityAccumulator, QualityOptions};
use trainstore::featurestore::training::{
    CreateOptions, Criteria, SetSummary, TrainingSetVersion, TrainingSets,
};

// The allocator the `trainstore` CLI and the Python extension ship with, configured as they do.
#[global_allocator]
static ALLOCATOR: trainstore::allocator::Allocator = trainstore::allocator::Allocator {};

/// The row-group size training sets are written with (`training::files::ROW_GROUP_ROWS`).
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per generated batch, as a stream of rows would hand them over.
const BATCH_ROWS: usize = 64 * 1024;
const T0: i64 = 1_736_121_600_000; // 2025-01-06 UTC
const NUMBERS: [&str; 5] = ["meanLf", "std", "mean", "meanHf", "temperature"];
const ARRAYS: [&str; 7] = [
    "peakPowers",
    "peakFreqs",
    "bandSpectrum",
    "feature1",
    "feature2",
    "feature3",
    "feature4",
];
/// Bumped when the versions of `list_select` change, so a stale directory is not reused.
const VERSIONS_LAYOUT: u32 = 1;

/// splitmix64: deterministic data with no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn answer_schema(lists: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("uuid", DataType::Utf8, true),
        Field::new("nodeId", DataType::Utf8, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("label", DataType::Int64, true),
    ];
    fields.extend(
        NUMBERS
            .iter()
            .map(|n| Field::new(*n, DataType::Float32, true)),
    );
    if lists {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        fields.extend(
            ARRAYS
                .iter()
                .map(|n| Field::new(*n, DataType::List(item.clone()), true)),
        );
    }
    Arc::new(Schema::new(fields))
}

/// Rows shaped like the feature-store benchmark's join answer, in batches of [`BATCH_ROWS`]:
/// uuids of `rows / 10` devices × 2 nodes, times over 120 days, a 0/1 label, and features
/// that are null for a fifth of the rows (no snapshot within the TTL). `shift` moves every
/// value and lengthens lists a little (the drift bench's "current" set).
fn answer(rows: usize, lists: bool, seed: u64, shift: f32) -> Vec<RecordBatch> {
    let schema = answer_schema(lists);
    let mut rng = Rng(seed);
    let devices = (rows / 20).max(1) as u64;
    let uuids: Vec<String> = (0..devices)
        .map(|_| {
            let (a, b) = (rng.next(), rng.next());
            format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        })
        .collect();
    let mut batches = Vec::new();
    for start in (0..rows).step_by(BATCH_ROWS) {
        let n = BATCH_ROWS.min(rows - start);
        let mut uuid = StringBuilder::with_capacity(n, n * 36);
        let mut node = StringBuilder::with_capacity(n, n * 4);
        let (mut times, mut labels, mut valid) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let key = rng.next() % (devices * 2);
            uuid.append_value(&uuids[(key / 2) as usize]);
            node.append_value(if key.is_multiple_of(2) {
                "1465"
            } else {
                "1466"
            });
            times.push(T0 + (rng.next() % (120 * 86_400_000)) as i64);
            labels.push((rng.next() % 2) as i64);
            valid.push(!rng.next().is_multiple_of(5));
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(uuid.finish()),
            Arc::new(node.finish()),
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
            Arc::new(Int64Array::from(labels)),
        ];
        for i in 0..NUMBERS.len() {
            let mut b = Float32Builder::with_capacity(n);
            for &v in &valid {
                let x = (rng.unit() - 0.5) * 10f32.powi(i as i32 % 3) + shift;
                b.append_option(v.then_some(x));
            }
            columns.push(Arc::new(b.finish()));
        }
        if lists {
            for i in 0..ARRAYS.len() {
                let mut b = ListBuilder::new(Float32Builder::with_capacity(n * 36));
                for &v in &valid {
                    if v {
                        let extra = (shift > 0.0 && rng.next().is_multiple_of(4)) as u64;
                        let len = 8 + rng.next() % 57 + extra;
                        for _ in 0..len {
                            let x = rng.unit() * 10f32.powi(i as i32 % 3) * (1.0 + shift);
                            b.values().append_value(x);
                        }
                    }
                    b.append(v);
                }
                columns.push(Arc::new(b.finish()));
            }
        }
        batches.push(RecordBatch::try_new(schema.clone(), columns).expect("generated batch"));
    }
    batches
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

fn arrow_write<W: std::io::Write + Send>(out: W, batches: &[RecordBatch]) -> W {
    let mut w = ArrowWriter::try_new(out, batches[0].schema(), Some(properties())).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.into_inner().unwrap()
}

fn arrow_read(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .with_batch_size(ROW_GROUP_ROWS)
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn create_options() -> CreateOptions {
    CreateOptions {
        label: Some("label".into()),
        ..CreateOptions::default()
    }
}

fn quality_alone(batches: &[RecordBatch]) {
    let options = QualityOptions {
        label: Some("label".into()),
        time_column: Some("event_timestamp".into()),
        ..QualityOptions::default()
    };
    let mut q = QualityAccumulator::new(&batches[0].schema(), options).unwrap();
    for b in batches {
        q.observe(b).unwrap();
    }
    q.finish(trainstore::core::Timestamp::now());
}

fn rows_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// Creates and reads `batches` as a version, beside arrow-rs writing and reading them.
fn create_and_read(c: &mut Criterion, label: &str, batches: Vec<RecordBatch>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = runtime
        .block_on(Workspace::open(dir.path().join("ws").to_str().unwrap()))
        .unwrap();
    let sets = ws.training_sets();
    let items = dir.path().join("ws/training-sets/items");
    let direct = dir.path().join("direct.parquet");
    let encoded = arrow_write(Vec::new(), &batches);
    println!(
        "{label}: {} rows, {:.1} MB in Arrow, {:.1} MB as Snappy Parquet",
        rows_of(&batches),
        batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum::<usize>() as f64
            / 1e6,
        encoded.len() as f64 / 1e6
    );

    let mut group = c.benchmark_group(format!("create_{label}"));
    configure(&mut group, rows_of(&batches));
    let mut next = 0u32;
    group.bench_function("trainstore_create", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let name = DatasetName::new(format!("create-{next}")).unwrap();
                let start = Instant::now();
                let v = runtime
                    .block_on(sets.create_from_batches(&name, batches.clone(), create_options()))
                    .unwrap();
                total += start.elapsed();
                assert_eq!(v.info.rows as usize, rows_of(&batches));
                std::fs::remove_dir_all(items.join(name.as_str())).unwrap();
            }
            total
        })
    });
    group.bench_function("arrow_rs_write_file", |b| {
        b.iter(|| {
            let file = std::fs::File::create(&direct).unwrap();
            arrow_write(std::io::BufWriter::new(file), &batches)
        })
    });
    group.bench_function("part_quality_pass_alone", |b| {
        b.iter(|| quality_alone(&batches))
    });
    // Into a buffer that grows as it fills, as a create's encoder writes.
    group.bench_function("part_parquet_encode_to_memory", |b| {
        b.iter(|| arrow_write(Vec::new(), &batches))
    });
    group.bench_function("part_hashes_of_the_file", |b| {
        b.iter(|| FileEntry::of(String::new(), &encoded))
    });
    // What a create does with each encoded file: hash it, then store it (`put_file`).
    let stored = Bytes::from(encoded.clone());
    let scratch = DatasetName::new("put-file").unwrap();
    group.bench_function("part_put_file_hash_and_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let entry = runtime
                    .block_on(
                        sets.store()
                            .put_file(&scratch, "part.parquet", stored.clone()),
                    )
                    .unwrap();
                total += start.elapsed();
                runtime.block_on(sets.store().remove_unlisted_file(&entry));
            }
            total
        })
    });
    group.finish();
    drop(stored);

    let name = DatasetName::new("read").unwrap();
    let version = runtime
        .block_on(sets.create_from_batches(&name, batches.clone(), create_options()))
        .unwrap();
    let first = Instant::now();
    let (_, first_read) = runtime.block_on(sets.read(&version)).unwrap();
    println!(
        "{label}: first read (files hashed) {:.3} s",
        first.elapsed().as_secs_f64()
    );
    assert_eq!(rows_of(&first_read), rows_of(&batches));
    drop(first_read);
    std::fs::write(&direct, &encoded).unwrap();
    let mut group = c.benchmark_group(format!("read_{label}"));
    configure(&mut group, rows_of(&batches));
    group.bench_function("trainstore_read", |b| {
        b.iter(|| runtime.block_on(sets.read(&version)).unwrap())
    });
    group.bench_function("arrow_rs_read_file", |b| b.iter(|| arrow_read(&direct)));
    group.finish();
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, rows: usize) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.sampling_mode(criterion::SamplingMode::Flat);
    if rows > 1_000_000 {
        group.measurement_time(Duration::from_secs(30));
    }
}

fn join_answer(c: &mut Criterion) {
    create_and_read(c, "join_answer_100k", answer(100_000, true, 1, 0.0));
}

/// A row count from the environment variable `name`, `default` when unset.
fn rows_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a row count")),
        Err(_) => default,
    }
}

fn big_rows(c: &mut Criterion) {
    let rows = rows_from_env("TRAINSTORE_BENCH_BIG_ROWS", 10_000_000);
    create_and_read(c, "big_rows", answer(rows, false, 2, 0.0));
}

/// A tiny set whose quality depends on `i`, for the template version.
fn tiny(i: u64) -> RecordBatch {
    let mut batches = answer(10, false, 100 + i, 0.0);
    batches.remove(0)
}

/// The workspace of `list_select`: sets `versions-100` and `versions-10000`, each version
/// committed through the catalog with a real create's manifest metadata (files included) and
/// an index summary of varied score and size. Made once under `dir`.
async fn versions_workspace(dir: &Path) -> (Workspace, TrainingSets) {
    let done = dir.join(format!("done-{VERSIONS_LAYOUT}"));
    let location = dir.join("ws");
    if done.exists() {
        let ws = Workspace::open(location.to_str().unwrap()).await.unwrap();
        let sets = ws.training_sets();
        return (ws, sets);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let started = Instant::now();
    let ws = Workspace::open(location.to_str().unwrap()).await.unwrap();
    let sets = ws.training_sets();
    let template_name = DatasetName::new("template").unwrap();
    let template = sets
        .create_from_batches(&template_name, vec![tiny(0)], create_options())
        .await
        .unwrap();
    let store = sets.store().clone();
    for count in [100u64, 10_000] {
        let name = DatasetName::new(format!("versions-{count}")).unwrap();
        for i in 1..=count {
            let mut info = template.info.clone();
            info.rows = 1_000 + (i * 104_729) % 100_000;
            info.quality.overall_score = 0.5 + ((i * 7_919) % 1_000) as f64 / 2_000.0;
            info.content_hash = hex_sha256(format!("{count}/{i}").as_bytes());
            let summary = SetSummary::of(&info);
            let mut new = NewVersion::new(UserName::new("bench").unwrap());
            new.files = template.files.clone();
            new.metadata = serde_json::to_value(&info).unwrap();
            new.summary = serde_json::to_value(&summary).unwrap();
            store.commit(&name, new).await.unwrap();
        }
    }
    std::fs::write(&done, "").unwrap();
    eprintln!(
        "committed 10,100 versions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (ws, sets)
}

fn versions_dir() -> PathBuf {
    std::env::temp_dir().join("trainstore_training_sets_bench/versions")
}

fn list_select(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_ws, sets) = runtime.block_on(versions_workspace(&versions_dir()));
    let criteria = Criteria::default().min_data_size(50_000);
    let mut group = c.benchmark_group("list_select");
    for count in [100, 10_000] {
        let name = DatasetName::new(format!("versions-{count}")).unwrap();
        assert_eq!(
            runtime.block_on(sets.list(&name)).unwrap().len(),
            count,
            "{name}"
        );
        group.bench_function(format!("list/{count}_versions"), |b| {
            b.iter(|| runtime.block_on(sets.list(&name)).unwrap())
        });
        group.bench_function(format!("select_best/{count}_versions"), |b| {
            b.iter(|| {
                runtime
                    .block_on(sets.select_best(&name, &criteria))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn feature_columns() -> Vec<String> {
    NUMBERS
        .iter()
        .chain(ARRAYS.iter())
        .map(|s| s.to_string())
        .collect()
}

fn drift_options() -> DriftOptions {
    DriftOptions {
        columns: Some(feature_columns()),
        ..DriftOptions::default()
    }
}

fn drift_1m(c: &mut Criterion) {
    let rows = rows_from_env("TRAINSTORE_BENCH_DRIFT_ROWS", 1_000_000);
    let baseline = answer(rows, true, 3, 0.0);
    let current = answer(rows, true, 4, 0.02);
    println!("drift_1m: two sets of {rows} rows");
    let options = drift_options();
    let mut group = c.benchmark_group("drift_1m");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.sampling_mode(criterion::SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("trainstore_drift_12_features", |b| {
        b.iter(|| drift(&baseline, &current, &options).unwrap())
    });
    group.finish();
}

/// `--drift WORKSPACE NAME [--repeat N]`: versions 1 and 2 of NAME, read outside the clock.
fn drift_mode(workspace: &str, name: &str, repeat: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ws = runtime.block_on(Workspace::open(workspace)).unwrap();
    let sets = ws.training_sets();
    let name = DatasetName::new(name).unwrap();
    let read = |reference: &str| -> Vec<RecordBatch> {
        let v: TrainingSetVersion = runtime.block_on(sets.get(&name, reference)).unwrap();
        runtime.block_on(sets.read(&v)).unwrap().1
    };
    let (baseline, current) = (read("1"), read("2"));
    let options = drift_options();
    let mut seconds = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        rows = drift(&baseline, &current, &options).unwrap();
        seconds.push(start.elapsed().as_secs_f64());
    }
    println!("{}", json!({"seconds": seconds, "rows": rows}));
}

/// The first argument that is neither a flag nor a flag's value: Criterion's filter.
fn positional_filter(args: &[String]) -> Option<String> {
    const VALUED: [&str; 12] = [
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--profile-time",
        "--output-format",
        "--color",
        "--noise-threshold",
        "--significance-level",
        "--nresamples",
    ];
    args.iter()
        .enumerate()
        .skip(1)
        .find(|(i, a)| !a.starts_with('-') && !VALUED.contains(&args[i - 1].as_str()))
        .map(|(_, a)| a.clone())
}

fn main() {
    trainstore::allocator::configure();
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    if let Some(workspace) = value("--drift") {
        let name = args
            .iter()
            .position(|a| a == "--drift")
            .and_then(|i| args.get(i + 2))
            .expect("--drift WORKSPACE NAME");
        let repeat = value("--repeat").map_or(3, |r| r.parse().expect("--repeat is a count"));
        drift_mode(&workspace, name, repeat);
        return;
    }
    if let Some(dir) = value("--make-versions") {
        let dir = PathBuf::from(dir);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(versions_workspace(&dir));
        println!("{}", dir.join("ws").display());
        return;
    }
    // Criterion's filter is a regex over `group/function`; here it is also taken as a plain
    // substring to skip generating the data of groups it cannot match.
    let filter = positional_filter(&args);
    let wanted = |groups: &[&str]| {
        filter
            .as_deref()
            .is_none_or(|f| groups.iter().any(|g| g.contains(f) || f.contains(g)))
    };
    let mut c = Criterion::default().configure_from_args();
    if wanted(&["create_join_answer_100k", "read_join_answer_100k"]) {
        join_answer(&mut c);
    }
    if wanted(&["list_select"]) {
        list_select(&mut c);
    }
    if wanted(&["drift_1m"]) {
        drift_1m(&mut c);
    }
    if wanted(&["create_big_rows", "read_big_rows"]) {
        big_rows(&mut c);
    }
    c.final_summary();
}
