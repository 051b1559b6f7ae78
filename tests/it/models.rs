//! Models trained on a workspace's training sets: the training set becomes the model's
//! lineage, the model is a version of the workspace's registry, and a promotion is visible to
//! another handle on the same workspace.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use trainstore::Workspace;

use crate::cli;
use trainstore::core::{DatasetName, TagName};
use trainstore::featurestore::training::{CreateOptions, TrainingSetVersion};
use trainstore::models::TrainRequest;
use trainstore::train::trainer::mean_loss;
use trainstore::train::{
    Dataset, FeatureShape, Layout, ModelConfig, Task, TrainConfig, WindowFeature,
};

/// Two devices whose meanLf is a sine wave, one snapshot a minute.
fn waves() -> RecordBatch {
    let (mut uuid, mut time, mut mean_lf) = (Vec::new(), Vec::new(), Vec::new());
    for (device, phase) in [("704A0ED440F4", 0.0), ("704A0ED440F5", 2.0)] {
        for t in 0..200i64 {
            uuid.push(device);
            time.push(1_700_000_000_000 + t * 60_000);
            mean_lf.push((t as f64 / 5.0 + phase).sin());
        }
    }
    let schema = Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("meanLf", DataType::Float64, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(uuid)),
            Arc::new(TimestampMillisecondArray::from(time).with_timezone("UTC")),
            Arc::new(Float64Array::from(mean_lf)),
        ],
    )
    .expect("a batch")
}

/// The waves as training set `waves` of `ws` (its first version).
async fn waves_set(ws: &Workspace) -> TrainingSetVersion {
    ws.training_sets()
        .create_from_batches(
            &DatasetName::new("waves").expect("a name"),
            vec![waves()],
            CreateOptions::default(),
        )
        .await
        .expect("a training set")
}

/// Forecasting meanLf per uuid with a small model: windows of `length` every `stride`,
/// `epochs` of Adam from `seed`.
fn small_request(length: usize, stride: usize, epochs: usize, seed: u64) -> TrainRequest {
    let mut request = TrainRequest::new(Layout {
        keys: vec!["uuid".into()],
        time: "event_timestamp".into(),
        features: vec![WindowFeature {
            name: "meanLf".into(),
            shape: FeatureShape::Scalar,
        }],
        task: Task::Forecast,
    });
    request.windows.length = length;
    request.windows.stride = stride;
    request.model = ModelConfig {
        d_model: 16,
        heads: 2,
        layers: 1,
        d_ff: 32,
        dropout: 0.0,
    };
    request.training = TrainConfig {
        epochs,
        batch_size: 16,
        learning_rate: 3e-3,
        seed,
        ..TrainConfig::default()
    };
    request
}

#[tokio::test]
async fn a_model_trained_on_a_training_set_is_registered_with_it_as_lineage() {
    let dir = tempfile::tempdir().expect("a directory");
    let location = dir.path().to_str().expect("a path");
    let ws = Workspace::open(location).await.expect("a workspace");
    let set = waves_set(&ws).await;
    let request = small_request(16, 2, 3, 5);
    let model_name = DatasetName::new("waves-model").expect("a name");
    let model = ws
        .models()
        .train(&model_name, &set, &request)
        .await
        .expect("a trained model");
    assert_eq!(model.id(), "waves-model@v1");
    assert_eq!(model.card.lineage.training_sets, vec![set.id()]);
    assert_eq!(model.card.metrics.len(), 3);
    let loss = model.card.validation_loss().expect("validation windows");
    assert!(loss < 0.5, "validation loss {loss}");

    let report = ws.models().evaluate(&model, &set).await.expect("a report");
    assert!(report.windows > 0);
    let [errors] = &report.features[..] else {
        panic!("one target: {report:?}")
    };
    assert_eq!(errors.feature, "meanLf");
    assert!(errors.mae <= errors.rmse && errors.rmse < 1.0, "{errors:?}");

    let champion = TagName::new("champion").expect("an alias");
    ws.models()
        .promote(&model_name, "latest", &champion)
        .await
        .expect("promoted");
    let again = Workspace::open(location).await.expect("reopened");
    let got = again
        .models()
        .get(&model_name, "champion")
        .await
        .expect("the champion");
    assert_eq!(got.card, model.card);
    again.models().load(&got).await.expect("its weights");
    let verified = again
        .verify(&trainstore::core::NoProgress)
        .await
        .expect("verified");
    assert!(verified.is_ok(), "{:?}", verified.problems);
    assert!(
        verified.files >= 2,
        "the set's file and the model's weights"
    );
}

#[tokio::test]
async fn a_request_naming_a_missing_column_is_refused_and_registers_nothing() {
    let ws = Workspace::open("memory://models-bad-request")
        .await
        .expect("a workspace");
    let set = waves_set(&ws).await;
    let request = TrainRequest::new(Layout {
        keys: vec!["uuid".into()],
        time: "event_timestamp".into(),
        features: vec![WindowFeature {
            name: "meanHf".into(),
            shape: FeatureShape::Scalar,
        }],
        task: Task::Forecast,
    });
    let name = DatasetName::new("waves-model").expect("a name");
    let text = ws
        .models()
        .train(&name, &set, &request)
        .await
        .expect_err("refused")
        .to_string();
    assert!(text.contains("meanHf") && text.contains("meanLf"), "{text}");
    assert!(ws.models().list(&name).await.expect("listed").is_empty());
}

#[tokio::test]
async fn the_cli_trains_lists_promotes_and_rolls_back() {
    let dir = tempfile::tempdir().expect("a directory");
    let config = dir.path().join("config.yaml");
    let ws_dir = dir.path().join("ws");
    let ws = ws_dir.to_str().expect("a path");
    waves_set(&Workspace::open(ws).await.expect("a workspace")).await;
    let train = |seed: &str| {
        let args = [
            "models",
            "train",
            ws,
            "waves-model",
            "--from",
            "waves@v1",
            "--feature",
            "meanLf",
            "--key",
            "uuid",
            "--window",
            "16",
            "--stride",
            "4",
            "--epochs",
            "2",
            "--seed",
            seed,
        ];
        cli(&args, &config)
    };
    let (ok, out, err) = train("1");
    assert!(ok, "{err}");
    assert!(
        out.contains("epoch   2") && out.contains("registered waves-model@v1"),
        "{out}"
    );
    let (ok, _, err) = train("2");
    assert!(ok, "{err}");
    let further = [
        "models",
        "train",
        ws,
        "waves-model",
        "--from",
        "waves",
        "--feature",
        "meanLf",
        "--key",
        "uuid",
        "--window",
        "16",
        "--stride",
        "4",
        "--epochs",
        "1",
        "--base",
        "waves-model@v1",
        "--incremental-ratio",
        "0.5",
        "--json",
    ];
    let (ok, out, err) = cli(&further, &config);
    assert!(ok, "{err}");
    let card: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(card["lineage"]["base"], "waves-model@v1");
    let (ok, _, _) = cli(&["models", "delete", ws, "waves-model@v3"], &config);
    assert!(ok);
    let (ok, out, err) = cli(&["models", "list", ws, "waves-model", "--json"], &config);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(listed[0]["card"]["lineage"]["training_sets"][0], "waves@v1");
    for (args, said) in [
        (
            vec!["models", "promote", ws, "waves-model@v1"],
            "waves-model@champion → v1",
        ),
        (
            vec!["models", "promote", ws, "waves-model@v2"],
            "waves-model@champion → v2",
        ),
        (
            vec!["models", "rollback", ws, "waves-model"],
            "→ v1 (rolled back)",
        ),
        (
            vec!["models", "show", ws, "waves-model@champion"],
            "waves-model@v1",
        ),
        (
            vec![
                "models",
                "evaluate",
                ws,
                "waves-model@champion",
                "--on",
                "waves",
            ],
            "meanLf",
        ),
        (
            vec![
                "models",
                "compare",
                ws,
                "waves-model@champion",
                "waves-model@v2",
                "--on",
                "waves",
            ],
            "improvement",
        ),
        (
            vec![
                "models",
                "predict",
                ws,
                "waves-model@champion",
                "--on",
                "waves",
            ],
            "2 forecast rows; 0 entities",
        ),
        (
            vec![
                "models",
                "backtest",
                ws,
                "waves-model@champion",
                "--on",
                "waves",
            ],
            "anomaly_score",
        ),
        (
            vec!["models", "delete", ws, "waves-model@v2"],
            "deleted waves-model@v2",
        ),
    ] {
        let (ok, out, err) = cli(&args, &config);
        assert!(ok && out.contains(said), "{args:?}: {out}{err}");
    }
    // The gate: v1 holds champion already, so nothing moves, and the exit status says so.
    let gate = [
        "models",
        "promote-if-better",
        ws,
        "waves-model@v1",
        "--on",
        "waves",
        "--json",
    ];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainstore"))
        .args(gate)
        .env("TRAINSTORE_CONFIG", &config)
        .output()
        .expect("ran");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let gate: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(gate["promoted"], false);
    assert!(
        gate["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already"))
    );
    let (ok, _, err) = cli(
        &[
            "models",
            "train",
            ws,
            "m",
            "--from",
            "waves",
            "--feature",
            "meanLf:x",
        ],
        &config,
    );
    assert!(
        !ok && err.contains("--feature") && err.contains("LEN"),
        "{err}"
    );
}

/// Rows of two devices from `start` minutes on: regime A is a slow sine, regime B a fast one
/// around another level.
fn regime(fast: bool, start: i64, rows: i64) -> RecordBatch {
    let (mut uuid, mut time, mut mean_lf) = (Vec::new(), Vec::new(), Vec::new());
    for (device, phase) in [("704A0ED440F4", 0.0), ("704A0ED440F5", 2.0)] {
        for t in start..start + rows {
            uuid.push(device);
            time.push(1_700_000_000_000 + t * 60_000);
            mean_lf.push(if fast {
                0.5 + 0.6 * (t as f64 / 2.0 + phase).sin()
            } else {
                (t as f64 / 6.0 + phase).sin()
            });
        }
    }
    let schema = waves().schema();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(uuid)),
            Arc::new(TimestampMillisecondArray::from(time).with_timezone("UTC")),
            Arc::new(Float64Array::from(mean_lf)),
        ],
    )
    .expect("a batch")
}

#[tokio::test]
async fn training_further_with_replay_learns_the_new_regime_and_forgets_less_of_the_old() {
    let ws = Workspace::open("memory://models-incremental")
        .await
        .expect("a workspace");
    let sets = ws.training_sets();
    let set = |name: &str, rows: RecordBatch| {
        let sets = sets.clone();
        let name = DatasetName::new(name).expect("a name");
        async move {
            sets.create_from_batches(&name, vec![rows], CreateOptions::default())
                .await
                .expect("a training set")
        }
    };
    let old = set("regime-a", regime(false, 0, 300)).await;
    let new = set("regime-b", regime(true, 300, 300)).await;
    let mut request = small_request(12, 1, 6, 3);
    let models = ws.models();
    let name = DatasetName::new("regimes").expect("a name");
    let base = models.train(&name, &old, &request).await.expect("the base");
    request.base = Some(base.id());
    request.training.epochs = 3;
    let forgetting = models
        .train(&name, &new, &request)
        .await
        .expect("no replay");
    request.incremental_ratio = 1.0;
    let replaying = models
        .train(&name, &new, &request)
        .await
        .expect("with replay");
    assert_eq!(replaying.card.lineage.base.as_deref(), Some("regimes@v1"));
    assert_eq!(
        replaying.card.lineage.training_sets,
        vec![new.id(), old.id()]
    );
    assert_eq!(replaying.card.normaliser, base.card.normaliser);

    // Each model's error on each regime's validation windows, scaled as the base scales.
    let (_, a_rows) = sets.read(&old).await.expect("regime A");
    let (_, b_rows) = sets.read(&new).await.expect("regime B");
    let card = &base.card;
    let windows = |rows: &[RecordBatch]| {
        Dataset::build_scaled(
            rows,
            &card.layout,
            card.windows,
            request.split,
            &card.normaliser,
        )
        .expect("windows")
    };
    let (a, b) = (windows(&a_rows), windows(&b_rows));
    let mut errors = Vec::new();
    for version in [&base, &forgetting, &replaying] {
        let model = models.load(version).await.expect("weights");
        let error = |data: &Dataset| mean_loss(&model, data, &data.validation, 64);
        errors.push((error(&a), error(&b)));
    }
    let [(base_a, base_b), (forget_a, forget_b), (replay_a, replay_b)] = errors[..] else {
        unreachable!()
    };
    let report = format!(
        "A/B errors: base {base_a:.4}/{base_b:.4}, no replay {forget_a:.4}/{forget_b:.4}, \
         replay {replay_a:.4}/{replay_b:.4}"
    );
    // Both learn regime B...
    assert!(
        replay_b < base_b / 2.0 && forget_b < base_b / 2.0,
        "{report}"
    );
    // ...the replaying one keeps regime A within twice the base's error (plus 0.05, for a
    // base that is nearly exact), while the other forgets more of it.
    assert!(replay_a <= 2.0 * base_a + 0.05, "{report}");
    assert!(forget_a > replay_a, "{report}");
    eprintln!("{report}");
}

/// How many epochs the checkpoint in `dir` holds (0 before the first).
fn checkpointed_epochs(dir: &std::path::Path) -> usize {
    let Ok(text) = std::fs::read(dir.join("checkpoint.json")) else {
        return 0;
    };
    let index: serde_json::Value = serde_json::from_slice(&text).expect("checkpoint.json");
    index["metrics"].as_array().expect("metrics").len()
}

#[tokio::test]
async fn a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("a directory");
    let config = dir.path().join("config.yaml");
    let ws_dir = dir.path().join("ws");
    let ws = ws_dir.to_str().expect("a path");
    let workspace = Workspace::open(ws).await.expect("a workspace");
    let set = waves_set(&workspace).await;
    const EPOCHS: usize = 6;
    let args = |name: &str, checkpoints: &std::path::Path| -> Vec<String> {
        let epochs = EPOCHS.to_string();
        [
            "models",
            "train",
            ws,
            name,
            "--from",
            "waves@v1",
            "--feature",
            "meanLf",
            "--key",
            "uuid",
            "--window",
            "16",
            "--stride",
            "1",
            "--epochs",
            &epochs,
            "--seed",
            "5",
            "--d-model",
            "16",
            "--heads",
            "2",
            "--layers",
            "1",
            "--d-ff",
            "32",
            "--batch-size",
            "16",
            "--learning-rate",
            "3e-3",
            // Dropout, a learning-rate schedule and early stopping all carry across a resume.
            "--dropout",
            "0.1",
            "--warmup",
            "0.2",
            "--patience",
            "20",
            "--checkpoints",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([checkpoints.display().to_string()])
        .collect()
    };
    let trainstore = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trainstore"));
        command
            .env("TRAINSTORE_CONFIG", &config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };

    // Killed with SIGKILL halfway through its third epoch.
    let killed_dir = dir.path().join("killed-checkpoints");
    let mut child = trainstore()
        .args(args("killed", &killed_dir))
        .spawn()
        .expect("started");
    let wait_for = |epochs: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while checkpointed_epochs(&killed_dir) < epochs {
            assert!(Instant::now() < deadline, "no checkpoint of epoch {epochs}");
            std::thread::sleep(Duration::from_millis(2));
        }
        Instant::now()
    };
    let first = wait_for(1);
    let epoch_time = wait_for(2) - first;
    std::thread::sleep(epoch_time / 2);
    child.kill().expect("killed");
    let status = child.wait().expect("reaped");
    assert_eq!(status.signal(), Some(9), "the run ended before the kill");
    let left = checkpointed_epochs(&killed_dir);
    assert!((2..EPOCHS).contains(&left), "{left} epochs checkpointed");

    // The same command again resumes; another run goes through without a stop.
    let resumed = trainstore()
        .args(args("killed", &killed_dir))
        .status()
        .expect("resumed");
    assert!(resumed.success());
    let straight = trainstore()
        .args(args("straight", &dir.path().join("straight-checkpoints")))
        .status()
        .expect("uninterrupted");
    assert!(straight.success());

    let models = Workspace::open(ws).await.expect("reopened").models();
    let get = |name: &str| {
        let models = models.clone();
        let name = DatasetName::new(name).expect("a name");
        async move { models.get(&name, "latest").await.expect("registered") }
    };
    let (killed, straight) = (get("killed").await, get("straight").await);
    // Every epoch's losses, bit for bit, and the final weights: the same forecasts, bit for
    // bit, on every window of the set.
    assert_eq!(killed.card.metrics.len(), EPOCHS);
    assert_eq!(killed.card.metrics, straight.card.metrics);
    let killed_report = models.evaluate(&killed, &set).await.expect("evaluated");
    let straight_report = models.evaluate(&straight, &set).await.expect("evaluated");
    assert_eq!(killed_report, straight_report);
    assert!(killed_report.windows > 300, "{killed_report:?}");
}

#[tokio::test]
async fn the_gate_promotes_a_better_challenger_only_and_the_champion_forecasts_new_rows() {
    let ws = Workspace::open("memory://models-gate")
        .await
        .expect("a workspace");
    let set = waves_set(&ws).await;
    let models = ws.models();
    let name = DatasetName::new("gated").expect("a name");
    let champion = TagName::new("champion").expect("an alias");
    let weak = models
        .train(&name, &set, &small_request(16, 4, 1, 1))
        .await
        .expect("a weak model");
    let strong = models
        .train(&name, &set, &small_request(16, 2, 8, 1))
        .await
        .expect("a strong model");

    let first = models
        .promote_if_better(&weak, &set, &champion, 0.0)
        .await
        .expect("gated");
    assert!(first.promoted && first.comparison.is_none(), "{first:?}");
    let better = models
        .promote_if_better(&strong, &set, &champion, 0.1)
        .await
        .expect("gated");
    let comparison = better.comparison.as_ref().expect("compared");
    assert!(better.promoted, "{better:?}");
    assert!(comparison.improvement > 0.1, "{comparison:?}");
    assert_eq!(
        comparison.champion_errors.windows,
        comparison.challenger_errors.windows
    );
    let worse = models
        .promote_if_better(&weak, &set, &champion, 0.0)
        .await
        .expect("gated");
    assert!(!worse.promoted, "{worse:?}");
    assert!(
        worse.reason.contains("higher than gated@v2"),
        "{}",
        worse.reason
    );
    let held = models.get(&name, "champion").await.expect("the champion");
    assert_eq!(held.version, strong.version);

    // The champion forecasts the step after each device's latest rows, loaded once.
    let forecast = models.predict_version(&held, &set).await.expect("forecast");
    assert_eq!((forecast.rows.num_rows(), forecast.skipped), (2, 0));
    let schema = forecast.rows.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(columns, ["uuid", "as_of", "step", "meanLf"]);
    let first_load = models.predictor(&held).await.expect("loaded");
    let again = models.predictor(&held).await.expect("loaded");
    assert!(Arc::ptr_eq(&first_load, &again));

    // The same forecast from rows streamed a row at a time in reverse order, their time
    // column named as a snapshot source names it.
    let rows = waves();
    let renamed = Schema::new(
        rows.schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "event_timestamp" => f.as_ref().clone().with_name("time"),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    );
    let rows = RecordBatch::try_new(Arc::new(renamed), rows.columns().to_vec()).expect("rows");
    let singles: Vec<trainstore::Result<RecordBatch>> = (0..rows.num_rows())
        .rev()
        .map(|i| Ok(rows.slice(i, 1)))
        .collect();
    let streamed = models
        .predict_stream(
            &held,
            Box::pin(futures::stream::iter(singles)),
            Some("time"),
        )
        .await
        .expect("a streamed forecast");
    assert_eq!(streamed.rows, forecast.rows);
    let missing = models
        .predict_stream(&held, Box::pin(futures::stream::iter(vec![Ok(rows)])), None)
        .await
        .expect_err("no event_timestamp");
    assert!(
        missing.to_string().contains("rows have: uuid, time"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_real_time_forecast_reads_the_window_the_online_store_keeps() {
    use trainstore::core::Timestamp;
    use trainstore::featurestore::{
        Entity, FeatureView, Field as FeatureField, Name, SourceSpec, ValueType,
    };

    let dir = tempfile::tempdir().expect("a directory");
    let table = dir.path().join("waves");
    std::fs::create_dir_all(&table).expect("a directory");
    let rows = waves();
    let mut file = std::fs::File::create(table.join("part.parquet")).expect("a file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut file, rows.schema(), None).expect("a writer");
    writer.write(&rows).expect("written");
    writer.close().expect("closed");

    let ws = Workspace::open(dir.path().join("ws").to_str().expect("a path"))
        .await
        .expect("a workspace");
    let features = ws.features();
    let name = |n: &str| Name::new(n).expect("a name");
    let view = |online_rows: usize| {
        FeatureView::new(
            name("waves"),
            vec![name("device")],
            SourceSpec::Files {
                location: table.to_str().expect("a path").to_owned(),
                format: None,
                snapshots: None,
            },
            vec![FeatureField::new("meanLf", ValueType::Float64)],
        )
        .with_timestamp_field("event_timestamp")
        .with_online_rows(online_rows)
    };
    let device = Entity::new(name("device"), ["uuid"]);
    features
        .apply(vec![device.clone().into(), view(8).into()])
        .await
        .expect("applied");
    let first = Timestamp::from_millis(1_700_000_000_000);
    let last = Timestamp::from_millis(1_700_000_000_000 + 199 * 60_000);
    features
        .materialize(first, last, None)
        .await
        .expect("materialized");
    let set = waves_set(&ws).await;
    let models = ws.models();
    let model = models
        .train(
            &DatasetName::new("live").expect("a name"),
            &set,
            &small_request(16, 4, 1, 1),
        )
        .await
        .expect("a model");
    let entities = RecordBatch::try_from_iter([(
        "uuid",
        Arc::new(StringArray::from(vec!["704A0ED440F4", "unknown"])) as _,
    )])
    .expect("entity rows");

    // The view keeps 8 rows per device; the model's windows read 16.
    let text = models
        .predict_online(&model, &entities)
        .await
        .expect_err("refused")
        .to_string();
    assert!(text.contains("online_rows to at least 16"), "{text}");

    features
        .apply(vec![device.into(), view(16).into()])
        .await
        .expect("applied");
    features
        .materialize(first, last, None)
        .await
        .expect("materialized");
    let models = ws.models();
    let live = models
        .predict_online(&model, &entities)
        .await
        .expect("forecast");
    // The unknown device has no rows: counted, not forecast.
    assert_eq!((live.rows.num_rows(), live.skipped), (1, 1));
    // The same as a forecast from the device's rows in the training set.
    let batch = models
        .predict_version(&model, &set)
        .await
        .expect("forecast");
    let device_rows = arrow::compute::filter_record_batch(
        &batch.rows,
        &arrow::compute::kernels::cmp::eq(
            batch.rows.column(0),
            &StringArray::new_scalar("704A0ED440F4"),
        )
        .expect("compared"),
    )
    .expect("filtered");
    assert_eq!(live.rows.column(3), device_rows.column(3));
    assert_eq!(live.rows.column(1), device_rows.column(1));
}

#[tokio::test]
async fn a_forecast_is_written_back_to_a_table_once_per_label() {
    use mysql_async::prelude::Queryable;

    let server = std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
        "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
    );
    let db = format!("ts_forecast_{}", std::process::id());
    let mut conn = mysql_async::Conn::from_url(server.as_str())
        .await
        .expect("MariaDB");
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .await
        .expect("a database");
    let url = format!("{}/{db}", server.trim_end_matches('/'));

    let dir = tempfile::tempdir().expect("a directory");
    let config = dir.path().join("config.yaml");
    let ws_dir = dir.path().join("ws");
    let ws = Workspace::open(ws_dir.to_str().expect("a path"))
        .await
        .expect("a workspace");
    let set = waves_set(&ws).await;
    ws.models()
        .train(
            &DatasetName::new("writer").expect("a name"),
            &set,
            &small_request(16, 4, 1, 1),
        )
        .await
        .expect("a model");
    let predict = [
        "models",
        "predict",
        ws_dir.to_str().expect("a path"),
        "writer@v1",
        "--on",
        "waves",
        "--write-table",
        "forecasts",
    ];
    let env = [("TRAINSTORE_DORIS_URL", url.as_str())];
    let (ok, out, err) = crate::cli_with_env(&predict, &config, &env);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("appended 2 rows to forecasts (label \"writer@v1 on waves@v1\")"),
        "{out}"
    );
    let (ok, out, err) = crate::cli_with_env(&predict, &config, &env);
    assert!(ok && out.contains("nothing written"), "{out}{err}");
    let rows: Vec<(String, u32, f64)> = conn
        .query(format!(
            "SELECT uuid, step, meanLf FROM `{db}`.forecasts ORDER BY uuid"
        ))
        .await
        .expect("read back");
    let devices: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(devices, ["704A0ED440F4", "704A0ED440F5"]);
    assert!(rows.iter().all(|r| r.1 == 1 && r.2.is_finite()), "{rows:?}");
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("dropped");
}

#[tokio::test]
async fn the_cli_trains_evaluates_and_runs_a_classifier() {
    let rows = waves();
    let mean_lf = rows
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("floats");
    // Whether meanLf rose since the minute before.
    let rising: StringArray = (0..rows.num_rows())
        .map(|i| {
            let up = i % 200 > 0 && mean_lf.value(i) > mean_lf.value(i - 1);
            Some(if up { "up" } else { "down" })
        })
        .collect();
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(rising));
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("rising", DataType::Utf8, false));
    let labelled =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("labelled rows");

    let dir = tempfile::tempdir().expect("a directory");
    let config = dir.path().join("config.yaml");
    let ws = dir.path().join("ws");
    let ws = ws.to_str().expect("a path");
    Workspace::open(ws)
        .await
        .expect("a workspace")
        .training_sets()
        .create_from_batches(
            &DatasetName::new("rising").expect("a name"),
            vec![labelled],
            CreateOptions::default(),
        )
        .await
        .expect("a training set");
    let train = [
        "models",
        "train",
        ws,
        "updown",
        "--from",
        "rising",
        "--feature",
        "meanLf",
        "--key",
        "uuid",
        "--classify",
        "rising",
        "--window",
        "8",
        "--stride",
        "1",
        "--epochs",
        "4",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--layers",
        "1",
        "--d-ff",
        "32",
        "--learning-rate",
        "3e-3",
        "--json",
    ];
    let (ok, out, err) = cli(&train, &config);
    assert!(ok, "{err}");
    let card: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(card["layout"]["task"]["kind"], "classify");
    assert_eq!(card["normaliser"]["label"]["names"][1], "up");
    let evaluate = [
        "models", "evaluate", ws, "updown", "--on", "rising", "--json",
    ];
    let (ok, out, err) = cli(&evaluate, &config);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let accuracy = report["classification"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    assert!(accuracy > 0.8, "{report}");
    let predict = ["models", "predict", ws, "updown", "--on", "rising"];
    let (ok, out, err) = cli(&predict, &config);
    assert!(ok && out.contains("rising_probability"), "{out}{err}");
    let regress_a_text = [
        "models",
        "train",
        ws,
        "bad",
        "--from",
        "rising",
        "--feature",
        "meanLf",
        "--key",
        "uuid",
        "--regress",
        "rising",
    ];
    let (ok, _, err) = cli(&regress_a_text, &config);
    assert!(
        !ok && err.contains("a regression label is a number"),
        "{err}"
    );
}
