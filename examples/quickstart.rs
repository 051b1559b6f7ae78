//! From raw sensor snapshots to a versioned, quality-scored training set, on the embedded
//! default (a workspace in a temporary directory, no server):
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! 1. generate seeded snapshots in the design document's raw layout and write them as Parquet;
//! 2. apply the design document's feature definitions over those files;
//! 3. ask for point-in-time-correct features at chosen moments and store the answer as a
//!    training-set version, its quality measured while it is written;
//! 4. select the best version by the design document's criteria and read it back.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMillisecondType};
use object_store::path::Path;
use trainstore::Workspace;
use trainstore::core::{DatasetName, MountTable, StorageOptions};
use trainstore::doris::{
    FileFormat, SnapshotGenerator, SnapshotParser, SnapshotSchema, SynthConfig, write_snapshot_file,
};
use trainstore::features::design_doc_definitions;
use trainstore::featurestore::training::{CreateOptions, Criteria};
use trainstore::featurestore::{FeatureRef, HistoricalOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();

    // 1. Snapshots: a `time` column and a JSON `feature` document per row.
    let config = SynthConfig {
        devices: 4,
        snapshots: 200,
        ..SynthConfig::default()
    };
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config)?.batches(4_096).collect();
    let snapshots = root.join("snapshots");
    std::fs::create_dir_all(&snapshots)?;
    let files = MountTable::default()
        .resolve_with(path_str(&snapshots)?, &StorageOptions::new())?
        .store;
    write_snapshot_file(
        files,
        &Path::from("part-0.parquet"),
        FileFormat::Parquet,
        raw.clone(),
    )
    .await?;
    println!(
        "wrote {} snapshots",
        raw.iter().map(RecordBatch::num_rows).sum::<usize>()
    );

    // 2. The feature definitions, checked against their source and recorded in the registry.
    let ws = Workspace::open(path_str(&root.join("ws"))?).await?;
    let features = ws.features();
    let applied = features
        .apply(design_doc_definitions(path_str(&snapshots)?)?.into_list())
        .await?;
    println!("registry version {:?}", applied.version.map(|v| v.get()));

    // 3. A point-in-time-correct training set: every tenth snapshot's device and time.
    let entity_rows = entity_rows(&raw)?;
    let refs: Vec<FeatureRef> = ["basic_features:meanLf", "array_features:peakPowers"]
        .iter()
        .map(|r| r.parse())
        .collect::<trainstore::Result<_>>()?;
    let name = DatasetName::new("vibration")?;
    let sets = ws.training_sets();
    let version = sets
        .create_from_features(
            &features,
            &name,
            &entity_rows,
            &refs,
            &HistoricalOptions::default(),
            CreateOptions {
                label: Some("label".into()),
                ..CreateOptions::default()
            },
        )
        .await?;
    println!(
        "{}: {} rows, quality {:.3}, content hash {}…",
        version.id(),
        version.info.rows,
        version.info.quality.overall_score,
        &version.info.content_hash[..12]
    );

    // 4. Which training set to train on.
    let criteria = Criteria::default()
        .min_data_size(100)
        .min_quality_score(0.5)?;
    let best = sets.select_best(&name, &criteria).await?;
    let (schema, batches) = sets.read(&best).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    println!(
        "selected {}: {rows} rows of {}",
        best.id(),
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn path_str(path: &std::path::Path) -> trainstore::Result<&str> {
    path.to_str().ok_or_else(|| {
        trainstore::Error::invalid("path", path.display().to_string(), "is not UTF-8")
    })
}

/// Every tenth snapshot's device and time, labelled 1 when the snapshot is tagged.
fn entity_rows(raw: &[RecordBatch]) -> trainstore::Result<RecordBatch> {
    let parser = SnapshotParser::new(SnapshotSchema::design_doc());
    let (mut uuids, mut nodes, mut times, mut labels) = (vec![], vec![], vec![], vec![]);
    for batch in raw {
        let (typed, _) = parser.parse(batch)?;
        let uuid = typed
            .column_by_name("uuid")
            .expect("uuid")
            .as_string::<i32>();
        let node = typed
            .column_by_name("nodeId")
            .expect("nodeId")
            .as_string::<i32>();
        let time = typed
            .column_by_name("time")
            .expect("time")
            .as_primitive::<TimestampMillisecondType>();
        let tag = typed.column_by_name("is_tag").expect("is_tag").as_boolean();
        for row in (0..typed.num_rows()).step_by(10) {
            if uuid.is_null(row) || node.is_null(row) {
                continue;
            }
            uuids.push(uuid.value(row).to_owned());
            nodes.push(node.value(row).to_owned());
            times.push(time.value(row));
            labels.push(i64::from(tag.is_valid(row) && tag.value(row)));
        }
    }
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new("nodeId", DataType::Utf8, false),
        Field::new("event_timestamp", utc, false),
        Field::new("label", DataType::Int64, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(uuids)),
            Arc::new(StringArray::from(nodes)),
            Arc::new(arrow::array::TimestampMillisecondArray::from(times).with_timezone("UTC")),
            Arc::new(Int64Array::from(labels)),
        ],
    )?)
}
