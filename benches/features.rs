//! Point-in-time retrieval and online lookups, Rust only, on a small design-document-shaped
//! table (typed Parquet: 500 devices × 2 nodes × 100 snapshots, two numbers and two lists of
//! 8–64 floats): the join straight from the Parquet file, from the ingested offline store, and
//! the online read of one entity from the embedded store, with its p50/p99 printed.
//!
//! `cargo bench --bench features`; the peer comparison (Feast, DuckDB) is
//! `benches/peers/feature_join_peers.py`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float32Builder, Float64Array, ListBuilder, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use criterion::{Criterion, criterion_group, criterion_main};
use parquet::arrow::ArrowWriter;
use trainstore::Workspace;
use trainstore::core::Timestamp;
use trainstore::featurestore::{
    Entity, FeatureRef, FeatureStore, FeatureView, Field as FeatureField, HistoricalOptions, Name,
    OnlineOptions, SourceSpec, Ttl, TtlPolicy, ValueType,
};

const DEVICES: usize = 500;
const SNAPSHOTS: i64 = 100;
const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 120 * 86_400_000 / SNAPSHOTS;

/// A small deterministic generator, so the bench needs no extra dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn feature_table() -> RecordBatch {
    let mut rng = Lcg(7);
    let (mut uuids, mut nodes, mut times, mut numbers) = (vec![], vec![], vec![], vec![]);
    let mut lists = [
        ListBuilder::new(Float32Builder::new()),
        ListBuilder::new(Float32Builder::new()),
    ];
    for s in 0..SNAPSHOTS {
        for d in 0..DEVICES {
            for node in ["1465", "1466"] {
                uuids.push(format!("{d:012X}"));
                nodes.push(node);
                times.push(T0 + s * STEP + (rng.next() % 1000) as i64);
                numbers.push((rng.next() % 10_000) as f64 / 100.0);
                for list in &mut lists {
                    let len = 8 + rng.next() % 57;
                    for _ in 0..len {
                        list.values().append_value((rng.next() % 1000) as f32);
                    }
                    list.append(true);
                }
            }
        }
    }
    let [mut a, mut b] = lists;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("uuid", Arc::new(StringArray::from(uuids))),
        ("nodeId", Arc::new(StringArray::from(nodes))),
        (
            "time",
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
        ),
        ("meanLf", Arc::new(Float64Array::from(numbers))),
        ("peakPowers", Arc::new(a.finish())),
        ("bandSpectrum", Arc::new(b.finish())),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

fn entity_rows(rows: usize) -> RecordBatch {
    let mut rng = Lcg(11);
    let span = SNAPSHOTS * STEP;
    let mut uuids = Vec::with_capacity(rows);
    let mut nodes = Vec::with_capacity(rows);
    let mut times = Vec::with_capacity(rows);
    for _ in 0..rows {
        uuids.push(format!("{:012X}", rng.next() as usize % DEVICES));
        nodes.push(if rng.next().is_multiple_of(2) {
            "1465"
        } else {
            "1466"
        });
        times.push(T0 - 15 * 86_400_000 + (rng.next() as i64 % (span + 60 * 86_400_000)));
    }
    let schema = Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new("nodeId", DataType::Utf8, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(uuids)),
            Arc::new(StringArray::from(nodes)),
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
        ],
    )
    .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    store: FeatureStore,
    refs: Vec<FeatureRef>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let table = feature_table();
    let file = dir.path().join("snapshots.parquet");
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), table.schema(), None).unwrap();
    writer.write(&table).unwrap();
    writer.close().unwrap();
    let ws = Workspace::open(dir.path().join("ws").to_str().unwrap())
        .await
        .unwrap();
    let store = ws.features();
    let device = Name::new("device").unwrap();
    let list = ValueType::List(Box::new(ValueType::Float32));
    let view = FeatureView::new(
        Name::new("snapshots").unwrap(),
        vec![device.clone()],
        SourceSpec::Files {
            location: file.to_str().unwrap().to_owned(),
            format: None,
            snapshots: None,
        },
        vec![
            FeatureField::new("meanLf", ValueType::Float64),
            FeatureField::new("peakPowers", list.clone()),
            FeatureField::new("bandSpectrum", list),
        ],
    )
    .with_ttl(Ttl::days(30));
    store
        .apply(vec![
            Entity::new(device, ["uuid", "nodeId"]).into(),
            view.into(),
        ])
        .await
        .unwrap();
    let refs = [
        "snapshots:meanLf",
        "snapshots:peakPowers",
        "snapshots:bandSpectrum",
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect();
    Setup {
        _dir: dir,
        store,
        refs,
    }
}

fn retrieval(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s = runtime.block_on(setup());
    let entities = entity_rows(10_000);
    let options = HistoricalOptions::default();
    let mut group = c.benchmark_group("historical_100k_x_10k");
    group.sample_size(10);
    let mut join = |name: &str| {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(
                        s.store
                            .get_historical_features(&entities, &s.refs, &options),
                    )
                    .unwrap()
            })
        });
    };
    join("from_parquet");
    runtime
        .block_on(s.store.ingest(
            &Name::new("snapshots").unwrap(),
            Timestamp::from_millis(0),
            Timestamp::from_millis(T0 + 200 * 86_400_000),
        ))
        .unwrap();
    join("from_offline_store");
    group.finish();

    runtime
        .block_on(s.store.materialize(
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + 200 * 86_400_000),
            None,
        ))
        .unwrap();
    let one = entity_rows(1).project(&[0, 1]).unwrap();
    let online = OnlineOptions {
        full_feature_names: false,
        ttl: TtlPolicy::Ignore,
        with_status: false,
    };
    let read = || {
        runtime
            .block_on(s.store.get_online_features(&s.refs, &one, &online))
            .unwrap()
    };
    c.bench_function("online_one_entity", |b| b.iter(read));
    let mut latencies: Vec<Duration> = (0..2_000)
        .map(|_| {
            let start = Instant::now();
            read();
            start.elapsed()
        })
        .collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "online_one_entity latency over {} reads: p50 {:?}, p99 {:?}",
        latencies.len(),
        at(0.50),
        at(0.99)
    );
}

criterion_group!(benches, retrieval);
criterion_main!(benches);
