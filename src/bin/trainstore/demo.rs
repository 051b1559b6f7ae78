//! `trainstore demo`: the main job, end to end, on an embedded workspace with no servers.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::TimestampMillisecondType;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use trainstore::SnapshotSummary;
use trainstore::Workspace;
use trainstore::core::VersionStore as _;
use trainstore::core::catalog::NewVersion;
use trainstore::core::{
    DatasetName, Error, Filter, MountTable, Result, ScanRequest, StorageOptions, TagName,
    TimeRange, Timestamp, UserName,
};
use trainstore::doris::{
    FileFormat, FileSource, SnapshotGenerator, SnapshotSchema, SynthConfig, write_snapshot_file,
};
use trainstore::features::design_doc_definitions;
use trainstore::featurestore::training::{CreateOptions, Criteria};
use trainstore::featurestore::{FeatureRef, FeatureStore, HistoricalOptions, OnlineOptions};
use trainstore::models::TrainRequest;
use trainstore::train::{FeatureShape, Layout, ModelConfig, ModelVersion, Task, WindowFeature};

use crate::print_info;
use crate::progress::TerminalProgress;
use crate::snapshots;

/// The main job on an embedded workspace: synthetic design-document snapshots written and read
/// back through the snapshot source, committed as a verified catalog version; the design
/// document's feature views applied; a point-in-time training set built as a scored version
/// and selected back by criteria; the views materialized into the embedded online store and
/// read back online; a forecaster trained on the devices' earlier snapshots, trained further
/// on the later ones, promoted through the gate, and asked for a real-time forecast.
pub async fn run(location: &str) -> Result<()> {
    let ws = Workspace::open(location).await?;
    println!("1. workspace ready at {}", ws.url());

    // Snapshots every 10 minutes up to about now, so the views' 30-day TTL holds online too.
    let snapshots_per_series = 150;
    let hour = 3_600_000;
    let start = (Timestamp::now().as_millis() / hour - 30) * hour;
    let config = SynthConfig {
        devices: 20,
        nodes_per_device: 2,
        snapshots: snapshots_per_series,
        start: Timestamp::from_millis(start),
        ..SynthConfig::default()
    };
    let file = Path::from("snapshots/part-0.parquet");
    let batches = SnapshotGenerator::new(config.clone())?.batches(8192);
    let bytes =
        write_snapshot_file(ws.store().clone(), &file, FileFormat::Parquet, batches).await?;
    println!(
        "2. generated {} design-document snapshots ({} devices x {} nodes x {}), {bytes} bytes at {}/{file}",
        config.rows(),
        config.devices,
        config.nodes_per_device,
        config.snapshots,
        ws.url()
    );

    let schema = SnapshotSchema::design_doc();
    let snapshots = format!("{}/snapshots", ws.url());
    let source = FileSource::open(
        &MountTable::default(),
        &snapshots,
        &StorageOptions::new(),
        None,
        schema.clone(),
        false,
    )
    .await?;
    let all = source.scan_all(&ScanRequest::default()).await?;
    println!(
        "3. read back through the snapshot source: {}",
        SnapshotSummary::of(&schema, &all, source.parse_report())
    );
    let day = TimeRange::new(
        config.start,
        Timestamp::from_millis(config.start.as_millis() + 86_400_000),
    )?;
    let request = ScanRequest {
        time_range: Some(day),
        filters: vec![Filter::eq("nodeId", "1465")],
        ..ScanRequest::default()
    };
    let first_day = source.scan_all(&request).await?;
    // Files are parsed whole and then filtered: the parse report is the one above again.
    let report = source.parse_report();
    println!(
        "   first day, nodeId 1465: {} (found among the {} rows parsed)",
        SnapshotSummary::of(&schema, &first_day, report.clone()).headline(),
        report.rows
    );
    snapshots::print_rows(
        &first_day
            .iter()
            .map(|b| b.project(&[0, 1, 2, 3, 4, 8]))
            .collect::<std::result::Result<Vec<_>, _>>()?,
        3,
    )?;

    let catalog = ws.catalog();
    let item = DatasetName::new("raw-snapshots")?;
    let author = UserName::current();
    let content = ws
        .store()
        .get(&file)
        .await
        .map_err(|e| Error::storage("read", &file, e))?;
    let content = content
        .bytes()
        .await
        .map_err(|e| Error::storage("read", &file, e))?;
    let entry = catalog.put_file(&item, "part-0.parquet", content).await?;
    let mut new = NewVersion::new(author.clone());
    new.files.push(entry);
    new.metadata = serde_json::json!({"description": "synthetic snapshots from `trainstore demo`", "rows": config.rows()});
    let manifest = catalog.commit(&item, new).await?;
    catalog
        .set_alias(
            &item,
            &TagName::new("latest-demo")?,
            manifest.version,
            &author,
        )
        .await?;
    println!(
        "4. committed {item}@{} (sha256 {}…), alias latest-demo -> {}",
        manifest.version,
        &manifest.files[0].sha256[..12],
        manifest.version
    );
    catalog
        .verify(&item, manifest.version, &TerminalProgress::new())
        .await?;
    println!("5. verified every file's size and hash");

    let features = ws.features();
    let mut defs = design_doc_definitions(&snapshots)?;
    // Each device's last rows stay online too: a real-time forecast's window (step 13).
    defs.feature_views[0].online_rows = WINDOW;
    let applied = features.apply(defs.into_list()).await?;
    println!(
        "6. feature definitions applied ({}): {}",
        applied
            .version
            .map_or("unchanged".to_owned(), |v| format!("registry version {v}")),
        applied
            .plan
            .changes
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let entity_rows = sample_entity_rows(&all)?;
    let refs: Vec<FeatureRef> = [
        "basic_features:meanLf",
        "basic_features:temperature",
        "array_features:peakPowers",
        "array_features:bandSpectrum",
        "vibration_stats:low_band_ratio",
        "vibration_stats:hf_lf_ratio",
    ]
    .iter()
    .map(|r| r.parse())
    .collect::<Result<_>>()?;
    let started = Instant::now();
    let sets = ws.training_sets();
    let training_name = DatasetName::new("demo-training-set")?;
    let version = sets
        .create_from_features(
            &features,
            &training_name,
            &entity_rows,
            &refs,
            &HistoricalOptions::default(),
            CreateOptions {
                label: Some("label".into()),
                metadata: serde_json::json!({"description": "the demo's point-in-time training set"}),
                ..CreateOptions::default()
            },
        )
        .await?;
    let quality = &version.info.quality;
    let matched = |name: &str| {
        quality
            .columns
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.count)
    };
    println!(
        "7. point-in-time training set: {} entity rows x {} columns in {:.3} s; basic_features matched {}, array_features matched {} (the rest lie before a device's first snapshot, beyond the 30-day TTL, or name unknown devices)",
        version.info.rows,
        version.info.schema.len(),
        started.elapsed().as_secs_f64(),
        matched("meanLf"),
        matched("peakPowers"),
    );
    println!(
        "   stored as {}: quality {:.3} (completeness {:.3}, duplicates {}, label balance {:.3}), content hash {}…",
        version.id(),
        quality.overall_score,
        quality.completeness,
        quality.duplicate_rows,
        quality.label_balance.as_ref().map_or(1.0, |l| l.balance),
        &version.info.content_hash[..12],
    );
    let criteria = Criteria::default()
        .min_data_size(100)
        .min_quality_score(0.5)?;
    let best = sets.select_best(&training_name, &criteria).await?;
    let (schema, rows) = sets.read(&best).await?;
    let training = arrow::compute::concat_batches(&schema, &rows)?;
    println!(
        "   selected back by criteria (at least 100 rows, quality at least 0.5): {} of {} versions, {} rows",
        best.id(),
        sets.list(&training_name).await?.len(),
        training.num_rows()
    );
    snapshots::print_rows(&[training.project(&[0, 1, 2, 3, 4, 5])?], 3)?;

    let end = Timestamp::from_millis(
        config.start.as_millis() + config.interval_ms * 2 * snapshots_per_series as i64,
    );
    let done = features.materialize(config.start, end, None).await?;
    let online = features.online_store().await?;
    let each: Vec<String> = done
        .iter()
        .map(|m| {
            format!(
                "{} ({} snapshots read, latest rows of {} devices written)",
                m.view, m.rows_read, m.written
            )
        })
        .collect();
    println!("8. materialized {}", each.join(", "));
    println!("   online store: {}", online.describe());

    let keys = entity_rows.project(&[0, 1])?.slice(0, 2);
    let started = Instant::now();
    let served = features
        .get_online_features(&refs, &keys, &OnlineOptions::default())
        .await?;
    println!(
        "9. online read of {} devices in {:.2} ms:",
        served.num_rows(),
        started.elapsed().as_secs_f64() * 1e3
    );
    snapshots::print_rows(&[served.project(&[0, 1, 2, 3])?], 2)?;

    train_and_serve(&ws, &features, &all, &config, &keys).await?;
    println!("the workspace now holds:");
    print_info(&ws, false).await
}

/// Steps a model's window reads, and rows each device keeps online.
const WINDOW: usize = 8;

/// Steps 10 to 12: a forecaster trained on each device's earlier snapshots, trained further on
/// the later ones (replaying earlier windows), evaluated against it and promoted through the
/// gate, then asked for a real-time forecast from the online store's recent rows.
async fn train_and_serve(
    ws: &Workspace,
    features: &FeatureStore,
    snapshots: &[RecordBatch],
    config: &SynthConfig,
    keys: &RecordBatch,
) -> Result<()> {
    let refs: Vec<FeatureRef> = ["basic_features:meanLf", "basic_features:temperature"]
        .iter()
        .map(|r| r.parse())
        .collect::<Result<_>>()?;
    // Each device's own snapshot times as entity rows: its series, point-in-time joined.
    let cut = config.start.as_millis() + config.interval_ms * 100;
    let sets = ws.training_sets();
    let name = DatasetName::new("demo-series")?;
    let mut versions = Vec::new();
    for (part, earlier) in [("the first 100", true), ("the last 50", false)] {
        let rows = series_entity_rows(snapshots, |t| (t < cut) == earlier)?;
        let options = CreateOptions {
            metadata: serde_json::json!({"description": format!("{part} snapshots of every device")}),
            ..CreateOptions::default()
        };
        let version = sets
            .create_from_features(features, &name, &rows, &refs, &Default::default(), options)
            .await?;
        versions.push(version);
    }
    let (earlier, later) = (&versions[0], &versions[1]);
    let mut request = TrainRequest::new(Layout {
        keys: vec!["uuid".into(), "nodeId".into()],
        time: "event_timestamp".into(),
        features: ["meanLf", "temperature"]
            .iter()
            .map(|f| WindowFeature {
                name: (*f).into(),
                shape: FeatureShape::Scalar,
            })
            .collect(),
        task: Task::Forecast,
    });
    request.windows.length = WINDOW;
    request.windows.stride = 1;
    // The last quarter of each set's time range validates (the sets are short).
    request.split.validation = 0.25;
    request.split.test = 0.0;
    request.model = ModelConfig {
        d_model: 16,
        heads: 2,
        layers: 1,
        d_ff: 32,
        dropout: 0.0,
    };
    request.training.epochs = 3;
    request.training.learning_rate = 3e-3;
    let models = ws.models();
    let model_name = DatasetName::new("demo-forecaster")?;
    let started = Instant::now();
    let first = models.train(&model_name, earlier, &request).await?;
    println!(
        "10. trained {} on {} ({} epochs over windows of {WINDOW} snapshots, forecasting meanLf and temperature) in {:.1} s: validation loss {}",
        first.id(),
        earlier.id(),
        first.card.metrics.len(),
        started.elapsed().as_secs_f64(),
        loss(&first),
    );
    request.base = Some(first.id());
    request.incremental_ratio = 0.5;
    request.training.epochs = 2;
    let started = Instant::now();
    let second = models.train(&model_name, later, &request).await?;
    println!(
        "11. trained further on {} from {} (one earlier window replayed per two new ones) in {:.1} s: {}, validation loss {}",
        later.id(),
        first.id(),
        started.elapsed().as_secs_f64(),
        second.id(),
        loss(&second),
    );
    let champion = TagName::new("champion")?;
    models
        .promote_if_better(&first, later, &champion, 0.0)
        .await?;
    let gate = models
        .promote_if_better(&second, later, &champion, 0.0)
        .await?;
    println!(
        "12. {} {} champion on {}: {}",
        second.id(),
        if gate.promoted {
            "promoted to"
        } else {
            "not promoted to"
        },
        later.id(),
        gate.reason
    );
    let champion = models.get(&model_name, "champion").await?;
    let started = Instant::now();
    let forecast = models.predict_online(&champion, keys).await?;
    println!(
        "13. real-time forecast by {} from the online store's last {WINDOW} snapshots of {} devices in {:.2} ms:",
        champion.id(),
        forecast.rows.num_rows(),
        started.elapsed().as_secs_f64() * 1e3
    );
    snapshots::print_rows(&[forecast.rows], 2)
}

/// A model's last validation loss, for printing.
fn loss(model: &ModelVersion) -> String {
    model
        .card
        .validation_loss()
        .map_or("none".into(), |l| format!("{l:.4}"))
}

/// Every snapshot's keys and time, of the snapshots whose time `keep` accepts, as entity rows.
fn series_entity_rows(
    snapshots: &[RecordBatch],
    keep: impl Fn(i64) -> bool,
) -> Result<RecordBatch> {
    let (mut uuids, mut nodes, mut times) = (vec![], vec![], vec![]);
    for batch in snapshots {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .expect("a design-document column")
        };
        let (uuid, node) = (column("uuid"), column("nodeId"));
        let (uuid, node) = (uuid.as_string::<i32>(), node.as_string::<i32>());
        let time = column("time");
        let time = time.as_primitive::<TimestampMillisecondType>();
        for row in 0..batch.num_rows() {
            if uuid.is_valid(row) && node.is_valid(row) && keep(time.value(row)) {
                uuids.push(Some(uuid.value(row).to_owned()));
                nodes.push(Some(node.value(row).to_owned()));
                times.push(time.value(row));
            }
        }
    }
    entity_batch(uuids, nodes, times, None)
}

/// Entity rows: `uuid`, `nodeId`, `event_timestamp` (ms, UTC) and, if given, `label`.
fn entity_batch(
    uuids: Vec<Option<String>>,
    nodes: Vec<Option<String>>,
    times: Vec<i64>,
    labels: Option<Vec<Option<bool>>>,
) -> Result<RecordBatch> {
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("uuid", Arc::new(StringArray::from(uuids))),
        ("nodeId", Arc::new(StringArray::from(nodes))),
        (
            "event_timestamp",
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
        ),
    ];
    if let Some(labels) = labels {
        columns.push(("label", Arc::new(BooleanArray::from(labels))));
    }
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// Entity rows for the demo's training set, as a user would bring them: devices at chosen
/// times (shortly after one of their snapshots), their `is_tag` as the label, and a few rows
/// that cannot match (unknown devices, times before any snapshot).
fn sample_entity_rows(snapshots: &[RecordBatch]) -> Result<RecordBatch> {
    let (mut uuids, mut nodes, mut times, mut labels) = (vec![], vec![], vec![], vec![]);
    let mut state: u64 = 7;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        state >> 33
    };
    for batch in snapshots {
        let uuid = batch
            .column_by_name("uuid")
            .expect("uuid")
            .as_string::<i32>();
        let node = batch
            .column_by_name("nodeId")
            .expect("nodeId")
            .as_string::<i32>();
        let time = batch
            .column_by_name("time")
            .expect("time")
            .as_primitive::<TimestampMillisecondType>();
        let tag = batch.column_by_name("is_tag").expect("is_tag").as_boolean();
        for row in (0..batch.num_rows()).step_by(3) {
            let (unknown, early) = (next() % 50 == 0, next() % 50 == 0);
            uuids.push(
                if unknown {
                    Some("UNKNOWN-DEVICE")
                } else {
                    uuid.is_valid(row).then(|| uuid.value(row))
                }
                .map(str::to_owned),
            );
            nodes.push(node.is_valid(row).then(|| node.value(row).to_owned()));
            let offset = (next() % 1_800_000) as i64;
            times.push(if early {
                time.value(row) - 86_400_000 * 365
            } else {
                time.value(row) + offset
            });
            labels.push(tag.is_valid(row).then(|| tag.value(row)));
        }
    }
    entity_batch(uuids, nodes, times, Some(labels))
}
