//! Training throughput and single-window forecast latency of trainstore's `SeriesTransformer`
//! on the CPU (burn's `flex` backend), printed as one JSON object. The peer script
//! (`benches/peers/train_peers.py`) runs it beside the same model in PyTorch, on the same data,
//! in one run.
//!
//! `cargo bench --bench training -- [--windows N] [--epochs E] [--batch B]
//! [--forward-calls N] [--forward-warmup N] [--seed S] [--d-model D] [--heads H] [--layers L]
//! [--d-ff F] [--no-online]`
//!
//! On an NVIDIA GPU (built with `--features cuda`): `--device cuda [--precision bf16]` trains
//! on burn's CUDA backend (fp32, or bf16), the whole batch at once on the device
//! (`Stepping::Device`); the first epoch, not counted, is when kernels are compiled and
//! autotuned for each shape, so `warmup_seconds` is the first use's cost. Forecast latency
//! and real-time forecasts are measured on the CPU only. `benches/peers/train_gpu_peers.py`
//! runs it beside PyTorch on CUDA.
//!
//! Data: 8 entities, each `N/8 + 64` rows a minute apart of 12 channels (`c00`..`c11`), each a
//! sum of two sines with periods and phases set by the channel and the entity
//! ([`channel_value`], which the peer script repeats in numpy); windows of 64 steps, stride 1,
//! a horizon of 1, every channel a target, no validation or test share: exactly N training
//! windows. The model is `ModelConfig::default()` (d_model 64, 4 heads, 2 layers, d_ff 128,
//! dropout 0.1); Adam, learning rate 1e-3, MSE, batches of B (32).
//!
//! Training is `trainstore_train::train_with` itself, on `Autodiff<Cpu>`, for 1 + E epochs:
//! the first is a warm-up and is not counted; the clock runs from the end of the first epoch
//! to the end of the last (the hook after each epoch reads it), so `windows_per_s` is E × N
//! windows over that time (the batching, shuffling and the per-batch loss read-back of the
//! trainer included, as a user's run has them). The process's CPU time over the same span
//! gives `cpu_per_wall`: the cores it actually kept busy.
//!
//! Forecast latency: the trained model (`Trained::model`, the inner backend: no autodiff,
//! dropout off) forecasts one window (batch 1) per call, cycling through the first 64 training
//! windows; each call builds the input tensor from the window's values, runs `forward` and
//! reads the forecast back as a `Vec<f32>`. --forward-warmup calls first, then --forward-calls
//! timed ones: p50 and p99 in microseconds.
//!
//! Real-time forecasts: a workspace in a temporary directory holds the same rows (a typed
//! Parquet table, 8 entities × 192 rows) as a feature view keeping 64 rows per entity online
//! (`online_rows`), materialized into the embedded online store, and a model of the same size
//! trained on them for one epoch. Each call is `Models::predict_online` for one entity (read
//! its 64 recent rows from the online store, cut and scale the window, forward, scale back),
//! cycling through the entities, with the same warm-up and call counts: `online_p50_us`,
//! `online_p99_us`.
//!
//! Threads: the trainer runs each batch's two shards on two threads of its own
//! (`trainer.rs::gradients`). This workspace builds burn with default features off (`std`,
//! `flex`, `autodiff`, `simd`), and burn forwards burn-flex's `rayon` feature only through its
//! `default`, so flex is built without rayon: every op runs on the calling thread (gemm with
//! `Parallelism::None`). Were `rayon` on, flex would use rayon's global pool
//! (`Parallelism::Rayon(0)`, batch-parallel matmuls), whose size `RAYON_NUM_THREADS` sets; the
//! peer script sets it to 2 so that the comparison stays at two threads either way. The
//! report carries the variable as seen, the measured `cpu_per_wall` and the process's thread
//! count.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use burn::backend::Autodiff;
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use serde_json::json;
use trainstore_train::{
    Cpu, Dataset, EpochMetrics, FeatureShape, Layout, ModelConfig, RunOptions, SeriesTransformer,
    SplitSpec, Stepping, Task, TrainConfig, WindowFeature, WindowSpec, train_with,
};

// The allocator the `trainstore` CLI and the Python extension ship with, configured as they do.
#[global_allocator]
static ALLOCATOR: trainstore::allocator::Allocator = trainstore::allocator::Allocator {};

const ENTITIES: usize = 8;
const CHANNELS: usize = 12;
const LENGTH: usize = 64;
const HORIZON: usize = 1;
/// The windows the latency loop cycles through.
const FORWARD_WINDOWS: usize = 64;

struct Args {
    windows: usize,
    epochs: usize,
    batch: usize,
    forward_calls: usize,
    forward_warmup: usize,
    seed: u64,
    model: ModelConfig,
    device: String,
    precision: String,
    online: bool,
}

fn parse_args() -> Args {
    let mut parsed = Args {
        windows: 4096,
        epochs: 3,
        batch: 32,
        forward_calls: 1000,
        forward_warmup: 100,
        seed: 0,
        model: ModelConfig::default(),
        device: "cpu".into(),
        precision: "f32".into(),
        online: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        let mut count = || -> usize {
            let v = value();
            v.parse()
                .unwrap_or_else(|_| panic!("{arg} is a count, not {v}"))
        };
        match arg.as_str() {
            "--windows" => parsed.windows = count(),
            "--epochs" => parsed.epochs = count(),
            "--batch" => parsed.batch = count(),
            "--forward-calls" => parsed.forward_calls = count(),
            "--forward-warmup" => parsed.forward_warmup = count(),
            "--seed" => parsed.seed = count() as u64,
            "--d-model" => parsed.model.d_model = count(),
            "--heads" => parsed.model.heads = count(),
            "--layers" => parsed.model.layers = count(),
            "--d-ff" => parsed.model.d_ff = count(),
            "--device" => parsed.device = value(),
            "--precision" => parsed.precision = value(),
            "--no-online" => parsed.online = false,
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        parsed.windows > 0 && parsed.windows.is_multiple_of(ENTITIES),
        "--windows must be a positive multiple of {ENTITIES} (the entities)"
    );
    assert!(parsed.epochs > 0 && parsed.batch > 0 && parsed.forward_calls > 0);
    assert!(
        matches!(parsed.device.as_str(), "cpu" | "cuda"),
        "--device is cpu or cuda"
    );
    assert!(
        matches!(parsed.precision.as_str(), "f32" | "bf16")
            && (parsed.precision == "f32" || parsed.device == "cuda"),
        "--precision is f32, or bf16 on cuda"
    );
    parsed.model.validate().expect("a model size");
    parsed
}

/// Channel `c` of entity `e` at row `t`: two sines, their periods set by the channel, their
/// phases by the entity and the channel, and an offset by the channel. The peer script
/// computes the same in numpy (float64).
fn channel_value(e: usize, t: usize, c: usize) -> f64 {
    let (e, t, c) = (e as f64, t as f64, c as f64);
    let tau = std::f64::consts::TAU;
    (tau * t / (16.0 + 4.0 * c) + 0.37 * e + 0.11 * c).sin()
        + 0.5 * (tau * t / (64.0 + 8.0 * c) + 0.7 * e).sin()
        + 0.1 * c
}

/// The rows: `rows` per entity, one a minute, entities `e000`, `e001`, ….
fn rows(rows: usize) -> RecordBatch {
    let n = ENTITIES * rows;
    let (mut entity, mut time) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut channels: Vec<Vec<f64>> = (0..CHANNELS).map(|_| Vec::with_capacity(n)).collect();
    for e in 0..ENTITIES {
        for t in 0..rows {
            entity.push(format!("e{e:03}"));
            time.push(t as i64 * 60_000);
            for (c, values) in channels.iter_mut().enumerate() {
                values.push(channel_value(e, t, c));
            }
        }
    }
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("entity".into(), Arc::new(StringArray::from(entity))),
        (
            "time".into(),
            Arc::new(TimestampMillisecondArray::from(time)),
        ),
    ];
    for (c, values) in channels.into_iter().enumerate() {
        columns.push((format!("c{c:02}"), Arc::new(Float64Array::from(values))));
    }
    RecordBatch::try_from_iter(columns).expect("a batch")
}

fn dataset(windows: usize) -> Dataset {
    let features: Vec<WindowFeature> = (0..CHANNELS)
        .map(|c| WindowFeature {
            name: format!("c{c:02}"),
            shape: FeatureShape::Scalar,
        })
        .collect();
    let spec = WindowSpec {
        length: LENGTH,
        stride: 1,
        horizon: HORIZON,
        max_gap_ms: 60_000,
    };
    // No validation share: no time is spent scoring between epochs.
    let split = SplitSpec {
        validation: 0.0,
        test: 0.0,
    };
    let layout = Layout {
        keys: vec!["entity".into()],
        time: "time".into(),
        features,
        task: Task::Forecast,
    };
    let batch = rows(windows / ENTITIES + LENGTH);
    let data = Dataset::build(&[batch], &layout, spec, split).expect("the windows");
    assert_eq!(data.train.len(), windows, "training windows");
    data
}

/// User plus system CPU time of the whole process, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: `usage` is a plain C struct that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer to one rusage.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    if ok {
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    } else {
        f64::NAN
    }
}

/// This process's threads now (`Threads:` of /proc/self/status).
fn threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    // Linear interpolation between ranks, as numpy's default.
    let rank = q * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

fn main() {
    trainstore::allocator::configure();
    let args = parse_args();
    let data = dataset(args.windows);

    // The figures the peer script checks its own data against (outside every clock).
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    data.fill(&data.train, &mut inputs, &mut targets);
    let targets_sum: f64 = targets.iter().map(|&v| f64::from(v)).sum();
    let targets_abs_sum: f64 = targets.iter().map(|&v| f64::from(v).abs()).sum();
    let first_window_sum: f64 = inputs[..LENGTH * CHANNELS]
        .iter()
        .map(|&v| f64::from(v))
        .sum();
    drop((inputs, targets));

    let config = TrainConfig {
        epochs: 1 + args.epochs,
        batch_size: args.batch,
        learning_rate: 1e-3,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let (timing, trained) = match args.device.as_str() {
        "cuda" => (on_cuda(&data, &args, &config), None),
        _ => {
            let cpu = Default::default();
            let stepping = Stepping::HostShards;
            let (timing, trained) =
                timed::<Autodiff<Cpu>>(&cpu, &data, &args.model, &config, stepping);
            (timing, Some(trained))
        }
    };
    let Timing { marks, started } = timing;
    assert_eq!(marks.len(), config.epochs, "every epoch ran");
    let warmup_seconds = (marks[0].0 - started).as_secs_f64();
    let (first, last) = (marks[0], marks[marks.len() - 1]);
    let train_seconds = (last.0 - first.0).as_secs_f64();
    let epoch_seconds: Vec<f64> = marks
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64())
        .collect();
    let timed_windows = args.epochs * args.windows;
    let threads_training = threads();
    let mut report = json!({
        "backend": match args.device.as_str() {
            "cuda" => format!("burn CUDA {} (Autodiff<Cuda> for training)", args.precision),
            _ => "burn flex (Autodiff<Flex> for training)".to_owned(),
        },
        "model": args.model,
        "windows": args.windows,
        "epochs": args.epochs,
        "batch_size": args.batch,
        "warmup_seconds": warmup_seconds,
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "windows_per_s": timed_windows as f64 / train_seconds,
        "cpu_per_wall": (last.2 - first.2) / train_seconds,
        "threads": threads_training,
        "rayon_num_threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "first_train_loss": first.1,
        "final_train_loss": last.1,
        "targets_sum": targets_sum,
        "targets_abs_sum": targets_abs_sum,
        "first_window_sum": first_window_sum,
    });
    let Some(net) = trained else {
        println!("{report}");
        return;
    };
    report["params"] = json!(net.num_params());

    // Forecasts, one window a call, on the trained (inference) model.
    let device = Default::default();
    let windows: Vec<Vec<f32>> = data.train[..FORWARD_WINDOWS.min(data.train.len())]
        .iter()
        .map(|&start| {
            let (mut window, mut target) = (Vec::new(), Vec::new());
            data.fill(&[start], &mut window, &mut target);
            window
        })
        .collect();
    let forecast = |i: usize| -> Vec<f32> {
        let window = windows[i % windows.len()].clone();
        let input =
            Tensor::<Cpu, 3>::from_data(TensorData::new(window, [1, LENGTH, CHANNELS]), &device);
        net.forward(input)
            .into_data()
            .to_vec::<f32>()
            .expect("f32 forecasts")
    };
    for i in 0..args.forward_warmup {
        std::hint::black_box(forecast(i));
    }
    let mut micros = Vec::with_capacity(args.forward_calls);
    let mut forecast_sum = 0.0;
    for i in 0..args.forward_calls {
        let begin = Instant::now();
        let out = std::hint::black_box(forecast(i));
        micros.push(begin.elapsed().as_secs_f64() * 1e6);
        assert_eq!(out.len(), HORIZON * CHANNELS);
        forecast_sum += out.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    micros.sort_by(f64::total_cmp);
    report["forward_calls"] = json!(args.forward_calls);
    report["forward_p50_us"] = json!(percentile(&micros, 0.50));
    report["forward_p99_us"] = json!(percentile(&micros, 0.99));
    report["forward_mean_us"] = json!(micros.iter().sum::<f64>() / micros.len() as f64);
    report["forecast_sum"] = json!(forecast_sum);
    if args.online {
        let online = tokio::runtime::Runtime::new()
            .expect("a runtime")
            .block_on(online_forecasts(&args));
        report["online_p50_us"] = json!(percentile(&online, 0.50));
        report["online_p99_us"] = json!(percentile(&online, 0.99));
    }
    println!("{report}");
}

/// When each epoch ended, its mean training loss and the process's CPU seconds then, and
/// when training started.
struct Timing {
    marks: Vec<(Instant, f64, f64)>,
    started: Instant,
}

/// Trains on backend `B`'s `device` as `config` says, timing every epoch.
fn timed<B: AutodiffBackend>(
    device: &B::Device,
    data: &Dataset,
    model: &ModelConfig,
    config: &TrainConfig,
    stepping: Stepping,
) -> (Timing, SeriesTransformer<B::InnerBackend>) {
    let mut marks: Vec<(Instant, f64, f64)> = Vec::with_capacity(config.epochs);
    let started = Instant::now();
    let options = RunOptions {
        stepping,
        ..RunOptions::default()
    };
    let trained = train_with::<B>(device, data, model, config, options, |m: &EpochMetrics| {
        marks.push((Instant::now(), m.train_loss, cpu_seconds()));
        ControlFlow::Continue(())
    })
    .expect("training");
    (Timing { marks, started }, trained.model)
}

/// Trains on CUDA GPU 0 in `--precision`, the whole batch at once on the device.
#[cfg(feature = "cuda")]
fn on_cuda(data: &Dataset, args: &Args, config: &TrainConfig) -> Timing {
    use burn::backend::Cuda;
    let device = burn::backend::cuda::CudaDevice::new(0);
    let (model, stepping) = (&args.model, Stepping::Device);
    match args.precision.as_str() {
        "bf16" => {
            timed::<Autodiff<Cuda<burn::tensor::bf16>>>(&device, data, model, config, stepping).0
        }
        _ => timed::<Autodiff<Cuda>>(&device, data, model, config, stepping).0,
    }
}

#[cfg(not(feature = "cuda"))]
fn on_cuda(_: &Dataset, _: &Args, _: &TrainConfig) -> Timing {
    panic!("--device cuda needs the bench built with `--features cuda`")
}

/// Microseconds of each timed real-time forecast of one entity (see the module's notes),
/// sorted.
async fn online_forecasts(args: &Args) -> Vec<f64> {
    use trainstore::Workspace;
    use trainstore::core::{DatasetName, Timestamp};
    use trainstore::featurestore::training::CreateOptions;
    use trainstore::featurestore::{
        Entity, FeatureView, Field as FeatureField, Name, SourceSpec, ValueType,
    };
    use trainstore::models::TrainRequest;

    const ROWS: usize = 192;
    let dir = tempfile::tempdir().expect("a directory");
    let batch = rows(ROWS);
    // Event times are timestamps in UTC to a feature view.
    let mut columns = batch.columns().to_vec();
    columns[1] = arrow::compute::cast(
        &columns[1],
        &arrow::datatypes::DataType::Timestamp(
            arrow::datatypes::TimeUnit::Millisecond,
            Some("UTC".into()),
        ),
    )
    .expect("a cast");
    let mut fields: Vec<arrow::datatypes::Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[1] = fields[1]
        .clone()
        .with_data_type(columns[1].data_type().clone());
    let batch = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
        .expect("a batch");
    let table = dir.path().join("sensor");
    std::fs::create_dir_all(&table).expect("a directory");
    let file = std::fs::File::create(table.join("part.parquet")).expect("a file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("a writer");
    writer.write(&batch).expect("written");
    writer.close().expect("closed");

    let ws = Workspace::open(dir.path().join("ws").to_str().expect("a path"))
        .await
        .expect("a workspace");
    let name = |n: &str| Name::new(n).expect("a name");
    let channels: Vec<String> = (0..CHANNELS).map(|c| format!("c{c:02}")).collect();
    let view = FeatureView::new(
        name("sensor"),
        vec![name("entity")],
        SourceSpec::Files {
            location: table.to_str().expect("a path").to_owned(),
            format: None,
            snapshots: None,
        },
        channels
            .iter()
            .map(|c| FeatureField::new(c, ValueType::Float64))
            .collect(),
    )
    .with_timestamp_field("time")
    .with_online_rows(LENGTH);
    let features = ws.features();
    features
        .apply(vec![
            Entity::new(name("entity"), ["entity"]).into(),
            view.into(),
        ])
        .await
        .expect("applied");
    let last = Timestamp::from_millis((ROWS as i64 - 1) * 60_000);
    features
        .materialize(Timestamp::from_millis(0), last, None)
        .await
        .expect("materialized");
    let set = ws
        .training_sets()
        .create_from_batches(
            &DatasetName::new("sensor").expect("a name"),
            vec![batch],
            CreateOptions::default(),
        )
        .await
        .expect("a training set");
    let mut request = TrainRequest::new(Layout {
        keys: vec!["entity".into()],
        time: "time".into(),
        features: channels
            .iter()
            .map(|c| WindowFeature {
                name: c.clone(),
                shape: FeatureShape::Scalar,
            })
            .collect(),
        task: Task::Forecast,
    });
    request.windows.max_gap_ms = 60_000;
    request.training.epochs = 1;
    let models = ws.models();
    let model = models
        .train(
            &DatasetName::new("sensor-model").expect("a name"),
            &set,
            &request,
        )
        .await
        .expect("a model");
    let entity = |i: usize| {
        RecordBatch::try_from_iter([(
            "entity",
            Arc::new(StringArray::from(vec![format!("e{:03}", i % ENTITIES)])) as ArrayRef,
        )])
        .expect("an entity row")
    };
    let entities: Vec<RecordBatch> = (0..ENTITIES).map(entity).collect();
    for i in 0..args.forward_warmup {
        let forecast = models.predict_online(&model, &entities[i % ENTITIES]).await;
        assert_eq!(forecast.expect("a forecast").rows.num_rows(), HORIZON);
    }
    let mut micros = Vec::with_capacity(args.forward_calls);
    for i in 0..args.forward_calls {
        let begin = Instant::now();
        let forecast = models.predict_online(&model, &entities[i % ENTITIES]).await;
        micros.push(begin.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(forecast.expect("a forecast"));
    }
    micros.sort_by(f64::total_cmp);
    micros
}
