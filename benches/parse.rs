//! Snapshot parsing throughput: design-document rows (JSON documents with comma-separated
//! arrays) into typed Arrow, on one core and on all cores. Reported in MB/s of raw JSON.
//!
//! `cargo bench --bench parse`; the peer comparison is `benches/peers/parse_peers.py`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trainstore::doris::{SnapshotGenerator, SnapshotParser, SnapshotSchema, SynthConfig};

fn parse(c: &mut Criterion) {
    let config = SynthConfig {
        devices: 100,
        nodes_per_device: 2,
        snapshots: 100,
        array_len: (8, 64),
        ..SynthConfig::default()
    };
    let raw: Vec<_> = SnapshotGenerator::new(config.clone())
        .unwrap()
        .batches(8192)
        .collect();
    let json_bytes: u64 = raw
        .iter()
        .map(|b| {
            let docs = b
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            docs.values().len() as u64
        })
        .sum();
    let parser = SnapshotParser::new(SnapshotSchema::design_doc());
    let mut group = c.benchmark_group("parse_design_doc");
    group.throughput(Throughput::Bytes(json_bytes));
    group.sample_size(10);
    group.bench_function(format!("one_core_{}_rows", config.rows()), |b| {
        b.iter(|| {
            for batch in &raw {
                std::hint::black_box(parser.parse(batch).unwrap());
            }
        })
    });
    group.bench_function(format!("all_cores_{}_rows", config.rows()), |b| {
        b.iter(|| std::hint::black_box(parser.parse_batches(&raw, 4096).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
