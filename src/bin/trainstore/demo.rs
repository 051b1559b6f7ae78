//! `trainstore demo`: the main job, end to end, on an embedded workspace with no servers.

use std::time::Instant;

use arrow::array::{Array, RecordBatch};
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
use trainstore_pipeline::{CancellationToken, RunStatus};

use crate::print_info;
use crate::progress::TerminalProgress;
use crate::snapshots;

/// The main job on an embedded workspace: synthetic design-document snapshots written and read
/// back through the snapshot source, committed as a verified catalog version; then the design
/// document's pipeline (`examples/pipelines/design-doc-7.1.yaml`) applied and run twice, on
/// the earlier snapshots and incrementally on the later ones (query, feature views, a scored
/// training-set version, training, evaluation, promotion through the gate, materialization);
/// and the champion asked for a real-time forecast from the online store.
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

    // The design document's pipeline (adapted in its paths only), run twice: on the earlier
    // snapshots, then incrementally on the later ones from the champion it deployed.
    let pipelines = ws.pipelines();
    let applied = pipelines.apply(PIPELINE).await?;
    let pipeline = pipelines.parse(PIPELINE)?;
    println!(
        "6. pipeline {} applied as version {} ({} tasks: {}), from {}",
        applied.name,
        applied.version,
        pipeline.tasks.len(),
        pipeline.topological_order().join(" -> "),
        PIPELINE_FILE
    );
    let cut = config.start.as_millis() + config.interval_ms * 100;
    let end = config.start.as_millis() + config.interval_ms * snapshots_per_series as i64;
    let rounds = [
        (
            "7",
            "first round, the first 100 snapshots of every device",
            config.start.as_millis(),
            cut - 1,
            None,
        ),
        (
            "8",
            "incremental round, the last 50, from the champion",
            cut,
            end,
            Some("model@champion"),
        ),
    ];
    for (step, what, first, last, base) in rounds {
        let parameters = serde_json::json!({
            "time_range": {"start": iso(first), "end": iso(last)},
            "entity_list": null,
            "epochs": 3,
            "learning_rate": 0.003,
            "incremental_ratio": 0.5,
            "base_model": base,
        });
        let parameters = parameters.as_object().expect("an object").clone();
        let state = pipelines
            .run(PIPELINE, None, parameters, CancellationToken::new())
            .await?;
        println!(
            "{step}. {what}: run {} {:?} in {:.1} s",
            state.run_id,
            state.status,
            state.duration().map_or(0.0, |d| d.as_secs_f64())
        );
        for task in &state.tasks {
            let log = pipelines
                .log(&state.run_id, &task.name, task.attempts)
                .await?;
            let outputs: Vec<String> = task
                .outputs
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            println!(
                "   {:<26} {}",
                task.name,
                log.lines().last().unwrap_or_default()
            );
            println!("   {:<26} -> {}", "", outputs.join(", "));
        }
        if state.status != RunStatus::Succeeded {
            return Err(Error::Remote {
                service: format!("pipeline run {}", state.run_id),
                operation: "run",
                reason: "it did not succeed; see `trainstore pipeline logs`".into(),
                transient: false,
            });
        }
    }

    let features = ws.features();
    let keys = device_keys(&all, 2)?;
    let models = ws.models();
    let champion = models.get(&DatasetName::new("model")?, "champion").await?;
    let started = Instant::now();
    let forecast = models.predict_online(&champion, &keys).await?;
    println!(
        "9. real-time forecast by {} from the online store's last {} snapshots of {} devices ({}) in {:.2} ms:",
        champion.id(),
        champion.card.windows.length,
        forecast.rows.num_rows(),
        features.online_store().await?.describe(),
        started.elapsed().as_secs_f64() * 1e3
    );
    snapshots::print_rows(&[forecast.rows], 2)?;
    println!("the workspace now holds:");
    print_info(&ws, false).await
}

/// The design document's pipeline the demo runs, adapted in its paths.
const PIPELINE: &str = include_str!("../../../examples/pipelines/design-doc-7.1.yaml");
const PIPELINE_FILE: &str = "examples/pipelines/design-doc-7.1.yaml";

/// Epoch milliseconds as ISO-8601 text, as a pipeline parameter is written.
fn iso(millis: i64) -> String {
    Timestamp::from_millis(millis).to_string()
}

/// The keys (`uuid`, `nodeId`) of the first `n` devices of the snapshots.
fn device_keys(snapshots: &[RecordBatch], n: usize) -> Result<RecordBatch> {
    let batch = snapshots
        .first()
        .ok_or_else(|| Error::invalid("snapshots", "none", "nothing was generated"))?;
    let columns = [batch.column_by_name("uuid"), batch.column_by_name("nodeId")];
    let [Some(uuid), Some(node)] = columns else {
        return Err(Error::invalid(
            "snapshots",
            "columns",
            "uuid and nodeId are missing",
        ));
    };
    Ok(RecordBatch::try_from_iter([
        ("uuid", uuid.slice(0, n)),
        ("nodeId", node.slice(0, n)),
    ])?)
}
