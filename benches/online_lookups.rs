//! Online lookups from Rust on a workspace someone else materialized: one entity per call, the
//! keys read from a JSON file, latencies printed as one JSON object. The peer script
//! (`benches/peers/feature_join_peers.py --online`) runs it on the same workspace and keys as
//! its Python and Feast sides, so the three are measured in one run.
//!
//! `cargo bench --bench online_lookups -- --workspace DIR --keys KEYS.json --features
//! view:a,view:b [--warmup N]`, where KEYS.json is a list of objects of string join keys
//! (`[{"uuid": "…", "nodeId": "…"}, …]`): the first N are warm-up calls, the rest are timed.
//! TTLs are ignored, as Feast's online reads do.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Map, Value, json};
use trainstore::Workspace;
use trainstore::featurestore::{FeatureRef, OnlineOptions, TtlPolicy};

// The allocator the `trainstore` CLI and the Python extension ship with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    workspace: String,
    keys: String,
    features: Vec<FeatureRef>,
    warmup: usize,
}

fn parse_args() -> Args {
    let (mut workspace, mut keys, mut features, mut warmup) = (None, None, None, 0);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--workspace" => workspace = Some(value()),
            "--keys" => keys = Some(value()),
            "--features" => {
                features = Some(
                    value()
                        .split(',')
                        .map(|f| f.parse().expect("a feature reference"))
                        .collect(),
                )
            }
            "--warmup" => warmup = value().parse().expect("--warmup is a count"),
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    Args {
        workspace: workspace.expect("--workspace"),
        keys: keys.expect("--keys"),
        features: features.expect("--features"),
        warmup,
    }
}

/// The one-row entity batch a caller would build for `key`.
fn entity_row(names: &[String], key: &Map<String, Value>) -> RecordBatch {
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(n, DataType::Utf8, false))
        .collect();
    let columns: Vec<ArrayRef> = names
        .iter()
        .map(|n| {
            let value = key[n].as_str().expect("string join keys");
            Arc::new(StringArray::from(vec![value])) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("entity row")
}

/// Peak resident memory of this process, in MB.
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib * 1024.0 / 1e6)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    // Linear interpolation between ranks, as numpy's default.
    let rank = q * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

fn main() {
    let args = parse_args();
    let keys: Vec<Map<String, Value>> =
        serde_json::from_slice(&std::fs::read(&args.keys).expect("the keys file"))
            .expect("a JSON list of key objects");
    let names: Vec<String> = keys.first().expect("keys").keys().cloned().collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let store = runtime
        .block_on(Workspace::open(&args.workspace))
        .expect("the workspace")
        .features();
    let options = OnlineOptions {
        full_feature_names: false,
        ttl: TtlPolicy::Ignore,
        with_status: false,
    };
    let lookup = |key: &Map<String, Value>| {
        let rows = entity_row(&names, key);
        runtime
            .block_on(store.get_online_features(&args.features, &rows, &options))
            .expect("an online read")
    };
    let (warmup, timed) = keys.split_at(args.warmup.min(keys.len()));
    assert!(
        !timed.is_empty(),
        "no keys left to time after {} warm-up calls",
        args.warmup
    );
    for key in warmup {
        lookup(key);
    }
    let setup_seconds = started.elapsed().as_secs_f64();
    let (mut micros, mut non_null, mut sum) = (Vec::with_capacity(timed.len()), 0, 0.0);
    // The first timed call also opens the store (and warms its cache): reported on its own.
    let mut first_us = None;
    let first = args.features[0].feature.as_str();
    for key in timed {
        let begin = Instant::now();
        let answer = lookup(key);
        let took = begin.elapsed().as_secs_f64() * 1e6;
        first_us.get_or_insert(took);
        micros.push(took);
        // Outside the clock: the first feature's values, which the peer script checks.
        let column = answer.column_by_name(first).expect("the first feature");
        let value = match column.as_any().downcast_ref::<Float32Array>() {
            Some(a) if a.is_valid(0) => Some(f64::from(a.value(0))),
            _ => None,
        };
        non_null += usize::from(value.is_some());
        sum += value.unwrap_or(0.0);
    }
    micros.sort_by(f64::total_cmp);
    let report = json!({
        "setup_seconds": setup_seconds,
        "p50_us": percentile(&micros, 0.50),
        "p99_us": percentile(&micros, 0.99),
        "first_us": first_us,
        "lookups": timed.len(),
        "first_feature_non_null": non_null,
        "first_feature_sum": sum,
        "peak_mb": peak_mb(),
    });
    println!("{report}");
}
