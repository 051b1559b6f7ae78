//! A workspace's files, byte for byte (`tests/golden/workspace/`): the config file, the
//! feature registry, an offline-store version with its segment, and a training-set version
//! built from a historical request, with its Parquet file (docs/formats.md); then the pinned
//! files, copied into a fresh directory, open and read back as an earlier trainstore left them.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use object_store::path::Path;
use trainstore::Workspace;
use trainstore::core::{DatasetName, MountTable, NoProgress, StorageOptions, Timestamp};
use trainstore::doris::{FileFormat, SnapshotGenerator, SynthConfig, write_snapshot_file};
use trainstore::features::design_doc_definitions;
use trainstore::featurestore::training::CreateOptions;
use trainstore::featurestore::{FeatureRef, HistoricalOptions, Name};
use trainstore_testkit::golden::{Normalize, assert_matches_golden, copy_into, read_tree};

const START_MS: i64 = 1_700_000_000_000;

fn config() -> SynthConfig {
    SynthConfig {
        devices: 2,
        nodes_per_device: 1,
        snapshots: 6,
        start: Timestamp::from_millis(START_MS),
        interval_ms: 60_000,
        array_len: (2, 3),
        malformed_rate: 0.0,
        seed: 11,
    }
}

/// Entity rows: each device at three times, one before its first snapshot.
fn entity_rows() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, true),
        Field::new("nodeId", DataType::Utf8, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("label", DataType::Int64, true),
    ]));
    let raw = SnapshotGenerator::new(config())
        .unwrap()
        .batches(1_000)
        .next()
        .unwrap();
    let keys =
        trainstore::doris::SnapshotParser::new(trainstore::doris::SnapshotSchema::design_doc())
            .parse(&raw)
            .unwrap()
            .0;
    let uuid = keys.column_by_name("uuid").unwrap().clone();
    let uuid = uuid.as_any().downcast_ref::<StringArray>().unwrap();
    let node = keys.column_by_name("nodeId").unwrap().clone();
    let node = node.as_any().downcast_ref::<StringArray>().unwrap();
    let mut devices: Vec<(String, String)> = uuid
        .iter()
        .zip(node.iter())
        .map(|(u, n)| (u.unwrap().to_owned(), n.unwrap().to_owned()))
        .collect();
    devices.sort();
    devices.dedup();
    let mut rows = (vec![], vec![], vec![], vec![]);
    for (i, (u, n)) in devices.iter().enumerate() {
        for (j, at) in [START_MS - 1, START_MS + 150_000, START_MS + 400_000]
            .into_iter()
            .enumerate()
        {
            rows.0.push(u.clone());
            rows.1.push(n.clone());
            rows.2.push(at);
            rows.3.push(((i + j) % 2) as i64);
        }
    }
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(rows.0)),
            Arc::new(StringArray::from(rows.1)),
            Arc::new(TimestampMillisecondArray::from(rows.2).with_timezone("UTC")),
            Arc::new(Int64Array::from(rows.3)),
        ],
    )
    .unwrap()
}

fn normalize(root: &std::path::Path) -> Normalize {
    Normalize {
        time_keys: vec!["created_at", "set_at", "at", "freshness_seconds"],
        replace: vec![
            (root.to_str().unwrap().to_owned(), "<root>".to_owned()),
            (
                format!("trainstore {}", env!("CARGO_PKG_VERSION")),
                "trainstore <version>".to_owned(),
            ),
            (
                format!("\"{}\"", env!("CARGO_PKG_VERSION")),
                "\"<version>\"".to_owned(),
            ),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspaces_files_are_pinned_and_pinned_files_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let snaps = root.join("snaps");
    std::fs::create_dir_all(&snaps).unwrap();
    let snaps_store = MountTable::default()
        .resolve_with(snaps.to_str().unwrap(), &StorageOptions::new())
        .unwrap()
        .store;
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config())
        .unwrap()
        .batches(1_000)
        .collect();
    write_snapshot_file(
        snaps_store,
        &Path::from("part.parquet"),
        FileFormat::Parquet,
        raw,
    )
    .await
    .unwrap();

    let ws_dir = root.join("ws");
    let ws = Workspace::open(ws_dir.to_str().unwrap()).await.unwrap();
    let features = ws.features();
    let defs = design_doc_definitions(snaps.to_str().unwrap()).unwrap();
    features.apply(defs.into_list()).await.unwrap();
    let basic = Name::new("basic_features").unwrap();
    features
        .ingest(
            &basic,
            Timestamp::from_millis(START_MS),
            Timestamp::from_millis(START_MS + 3_600_000),
        )
        .await
        .unwrap();
    let refs: Vec<FeatureRef> = ["basic_features:meanLf", "array_features:peakPowers"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let sets = ws.training_sets();
    let name = DatasetName::new("vibration").unwrap();
    let created = sets
        .create_from_features(
            &features,
            &name,
            &entity_rows(),
            &refs,
            &HistoricalOptions::default(),
            CreateOptions {
                label: Some("label".into()),
                metadata: serde_json::json!({"description": "pinned"}),
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();

    // Audit events are named by their time and a random suffix; their format is core's.
    let keep = |p: &str| !p.starts_with("_probe") && !p.contains("/audit/");
    let written = read_tree(&ws_dir, &normalize(&root), keep);
    let pinned = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/workspace");
    assert_matches_golden(&written, &pinned);

    // Read back as an earlier trainstore left it: the config opens, the registry decodes to
    // the same definitions, every file matches its recorded hash, the set reads the same.
    let old = tempfile::tempdir().unwrap();
    copy_into(
        &read_tree(&pinned, &Normalize::default(), |_| true),
        old.path(),
    );
    let ws = Workspace::open_existing(
        old.path().to_str().unwrap(),
        &MountTable::default(),
        &StorageOptions::new(),
    )
    .await
    .unwrap();
    let stored = ws.features().definitions().await.unwrap();
    let expected = design_doc_definitions("<root>/snaps").unwrap();
    assert_eq!(stored.entities, expected.entities);
    assert_eq!(stored.feature_views.len(), expected.feature_views.len());
    assert!(ws.verify(&NoProgress).await.unwrap().is_ok());
    let sets = ws.training_sets();
    let version = sets.get(&name, "latest").await.unwrap();
    assert_eq!(version.info.content_hash, created.info.content_hash);
    let (_, batches) = sets.read(&version).await.unwrap();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows as u64, created.info.rows);
}
