//! Serving features: the latest snapshot of each device materialized into the embedded online
//! store of a workspace in a temporary directory, then looked up by key.
//!
//! ```sh
//! cargo run --example online_features
//! ```

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::util::pretty::pretty_format_batches;
use object_store::path::Path;
use trainstore::Workspace;
use trainstore::core::{MountTable, StorageOptions, Timestamp};
use trainstore::doris::{
    FileFormat, SnapshotGenerator, SnapshotParser, SnapshotSchema, SynthConfig, write_snapshot_file,
};
use trainstore::features::design_doc_definitions;
use trainstore::featurestore::{FeatureRef, OnlineOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir_all(&snapshots)?;
    let snapshots = snapshots
        .to_str()
        .ok_or("the temporary directory is not UTF-8")?;
    // Fifty snapshots per series over the last few hours: recent enough for the views' 30-day
    // TTL, which online reads enforce.
    let interval = SynthConfig::default().interval_ms;
    let start = Timestamp::from_millis(Timestamp::now().as_millis() - 60 * interval);
    let config = SynthConfig {
        devices: 3,
        snapshots: 50,
        start,
        ..SynthConfig::default()
    };
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config)?.batches(4_096).collect();
    let files = MountTable::default()
        .resolve_with(snapshots, &StorageOptions::new())?
        .store;
    write_snapshot_file(
        files,
        &Path::from("part-0.parquet"),
        FileFormat::Parquet,
        raw.clone(),
    )
    .await?;

    let ws_dir = dir.path().join("ws");
    let ws = Workspace::open(
        ws_dir
            .to_str()
            .ok_or("the temporary directory is not UTF-8")?,
    )
    .await?;
    let features = ws.features();
    features
        .apply(design_doc_definitions(snapshots)?.into_list())
        .await?;

    // Every snapshot lies within 60 intervals of the start (each series is 50 long, jittered).
    let end = Timestamp::from_millis(start.as_millis() + 60 * interval);
    for done in features.materialize(start, end, None).await? {
        println!(
            "materialized {}: {} snapshots read, the latest of {} devices written",
            done.view, done.rows_read, done.entities
        );
    }

    // A device of the snapshots, and one that never sent any.
    let (typed, _) = SnapshotParser::new(SnapshotSchema::design_doc()).parse(&raw[0])?;
    let key = |name: &str| {
        typed
            .column_by_name(name)
            .map(|c| c.as_string::<i32>().value(0).to_owned())
            .ok_or(format!("no {name} column"))
    };
    let (uuid, node) = (key("uuid")?, key("nodeId")?);
    let entity_rows = RecordBatch::try_from_iter([
        (
            "uuid",
            Arc::new(StringArray::from(vec![uuid.as_str(), "NO-SUCH-DEVICE"])) as _,
        ),
        (
            "nodeId",
            Arc::new(StringArray::from(vec![node.as_str(), "1465"])) as _,
        ),
    ])?;
    let refs: Vec<FeatureRef> = ["basic_features:meanLf", "basic_features:temperature"]
        .iter()
        .map(|r| r.parse())
        .collect::<trainstore::Result<_>>()?;
    let answer = features
        .get_online_features(&refs, &entity_rows, &OnlineOptions::default())
        .await?;
    println!("{}", pretty_format_batches(&[answer])?);
    Ok(())
}
