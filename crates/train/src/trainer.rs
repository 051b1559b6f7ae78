//! Training a [`SeriesTransformer`] on a [`Dataset`]'s windows, on the CPU: Adam on the mean
//! squared error of the forecast, the training windows shuffled every epoch by a seeded
//! generator, the validation windows scored after every epoch.

use std::ops::ControlFlow;
use std::sync::{Mutex, MutexGuard};

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use trainstore_core::catalog::hex_sha256;
use trainstore_core::{Error, NoProgress, Progress, Result};

use crate::checkpoint::Checkpoints;
use crate::model::{Masks, ModelConfig, SeriesTransformer, Shapes};
use crate::windows::{Dataset, Task};

/// The CPU backend a trained model runs on.
pub type Cpu = Flex;

/// The CUDA backend (NVIDIA GPUs; kernels compiled at run time by NVRTC).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// How long and how fast to train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Seeds the weights and the order of the windows: equal seeds, equal runs.
    pub seed: u64,
    /// Early stopping: the run ends once the validation loss has not improved for this many
    /// epochs in a row (`None`: every epoch runs).
    #[serde(default)]
    pub patience: Option<usize>,
    /// How the learning rate moves over the run's steps.
    #[serde(default)]
    pub schedule: Schedule,
}

/// How the learning rate moves over a run's optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    /// The configured rate throughout.
    #[default]
    Constant,
    /// Rises linearly over the first `warmup` fraction of the steps, then falls along a half
    /// cosine to zero at the last step: large early steps without the first ones diverging,
    /// small late ones that settle.
    WarmupCosine { warmup: f64 },
}

impl Schedule {
    /// The rate of step `step` (from 0) of `steps`, for a configured rate of `base`.
    ///
    /// ```
    /// use trainstore_train::Schedule;
    /// let schedule = Schedule::WarmupCosine { warmup: 0.1 };
    /// assert_eq!(schedule.rate(1e-3, 99, 100), 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * 89.0 / 90.0).cos()));
    /// assert!(schedule.rate(1e-3, 0, 100) < schedule.rate(1e-3, 9, 100));
    /// assert_eq!(Schedule::Constant.rate(1e-3, 50, 100), 1e-3);
    /// ```
    pub fn rate(&self, base: f64, step: usize, steps: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::WarmupCosine { warmup } => {
                let warm = (warmup * steps as f64).ceil() as usize;
                if step < warm {
                    return base * (step + 1) as f64 / warm as f64;
                }
                let falling = steps.saturating_sub(warm).max(1) as f64;
                let progress = ((step - warm) as f64 / falling).min(1.0);
                base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 32,
            learning_rate: 1e-3,
            seed: 0,
            patience: None,
            schedule: Schedule::Constant,
        }
    }
}

/// What one epoch measured: mean squared errors in normalised units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    /// `None` when the dataset has no validation windows.
    pub validation_loss: Option<f64>,
}

/// A trained model and what each epoch measured.
#[derive(Debug)]
pub struct Trained<B: Backend = Cpu> {
    pub model: SeriesTransformer<B>,
    pub epochs: Vec<EpochMetrics>,
}

/// A model's weights, encoded (burn's named MessagePack record, full precision): how a
/// registered model is stored, and what a run can start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights(pub Vec<u8>);

impl Weights {
    /// `model`'s weights.
    pub fn of<B: Backend>(model: &SeriesTransformer<B>) -> Result<Self> {
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
        Recorder::<B>::record(&recorder, model.clone().into_record(), ())
            .map(Weights)
            .map_err(|e| Error::Internal {
                operation: "encode a model's weights".into(),
                reason: e.to_string(),
            })
    }
}

/// What a run starts from, keeps and reports, besides its data and settings.
#[derive(Clone, Copy, Default)]
pub struct RunOptions<'a> {
    /// Saves a checkpoint there after every epoch, and resumes from the one there: a run
    /// stopped anywhere ends as an uninterrupted one would.
    pub checkpoints: Option<&'a Checkpoints>,
    /// Starts from these weights (a registered model's, trained further on new rows) instead
    /// of fresh ones; the dataset must be scaled by that model's normaliser.
    pub base: Option<&'a Weights>,
    /// Told of every epoch (one unit per batch).
    pub progress: Option<&'a dyn Progress>,
    /// How each batch runs forward and backward.
    pub stepping: Stepping,
}

/// How a batch runs forward and backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stepping {
    /// Cut into two shards run at once on two threads, dropout masks drawn on the host by a
    /// generator per shard: the CPU's way, the same model from a seed on every machine.
    #[default]
    HostShards,
    /// Whole, on the backend's device, dropout masks drawn by the backend's generator: a
    /// GPU's way (one kernel launch for thousands of windows; masks never cross the bus).
    Device,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("checkpoints", &self.checkpoints)
            .field("base", &self.base.map(|w| w.0.len()))
            .field("progress", &self.progress.is_some())
            .field("stepping", &self.stepping)
            .finish()
    }
}

/// Trains a model of `model`'s size on `dataset`'s training windows, on the CPU.
pub fn train(dataset: &Dataset, model: &ModelConfig, config: &TrainConfig) -> Result<Trained> {
    train_on_cpu(dataset, model, config, RunOptions::default())
}

/// [`train`], as `options` say.
pub fn train_on_cpu(
    dataset: &Dataset,
    model: &ModelConfig,
    config: &TrainConfig,
    options: RunOptions<'_>,
) -> Result<Trained> {
    let go = |_: &EpochMetrics| ControlFlow::Continue(());
    let device = Default::default();
    train_with::<Autodiff<Cpu>>(&device, dataset, model, config, options, go)
}

/// [`train`] on backend `B`'s `device`, as `options` say, calling `after_epoch` with each
/// epoch's metrics: `Break` stops the run there (early stopping).
pub fn train_with<B: AutodiffBackend>(
    device: &B::Device,
    dataset: &Dataset,
    model: &ModelConfig,
    config: &TrainConfig,
    options: RunOptions<'_>,
    mut after_epoch: impl FnMut(&EpochMetrics) -> ControlFlow<()>,
) -> Result<Trained<B::InnerBackend>> {
    let checkpoints = options.checkpoints;
    model.validate()?;
    validate(dataset, config)?;
    let _turn = take_turn();
    let (horizon, targets) = dataset.output_shape();
    let shapes = Shapes {
        length: dataset.spec().length,
        channels: dataset.channels(),
        horizon,
        targets,
    };
    let run = run_fingerprint(dataset, model, config, shapes, options.base);
    B::seed(device, config.seed);
    // burn draws a parameter's first value when it is first read, separately for every
    // clone that reads it: drawn here, once, every shard's fork reads the same weights.
    let mut learner = SeriesTransformer::<B>::new(model, shapes, device)?.fork(device);
    if let Some(base) = options.base {
        learner = learner.load_record(decode::<B, _>(base.0.clone(), device, "the base model")?);
    }
    let mut optimizer = AdamConfig::new().init();
    let mut epochs = Vec::with_capacity(config.epochs);
    if let Some(saved) = checkpoints.map(|c| c.load(&run)).transpose()?.flatten() {
        let dir = checkpoints.map(|c| c.dir().display().to_string());
        let dir = dir.unwrap_or_default();
        learner = learner.load_record(decode::<B, _>(saved.model, device, &dir)?);
        optimizer = optimizer.load_record(decode::<B, _>(saved.optimizer, device, &dir)?);
        epochs = saved.metrics;
    }
    let progress = options.progress.unwrap_or(&NoProgress);
    let batches = dataset.train.len().div_ceil(config.batch_size);
    while epochs.len() < config.epochs && !config.stops_after(&epochs) {
        let epoch = epochs.len() + 1;
        // Every epoch draws from seeds of its own, so a resumed epoch draws what it would
        // have drawn in an uninterrupted run.
        let epoch_seed = mix(config.seed, epoch as u64 - 1);
        let mut order = dataset.train.clone();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed));
        let mut total = 0.0;
        progress.begin(
            &format!("epoch {epoch}/{}", config.epochs),
            Some(batches as u64),
        );
        for (i, starts) in order.chunks(config.batch_size).enumerate() {
            let step = (epoch - 1) * batches + i;
            let masks = mix(epoch_seed, i as u64);
            let (batch_loss, grads) = match options.stepping {
                Stepping::HostShards => gradients(&learner, dataset, starts, masks, device),
                Stepping::Device => whole_batch_gradients(&learner, dataset, starts, device),
            };
            total += batch_loss * starts.len() as f64;
            let rate = (config.schedule).rate(config.learning_rate, step, config.epochs * batches);
            learner = optimizer.step(rate, learner, grads);
            progress.advance(1);
        }
        progress.finish();
        let validation_loss = (!dataset.validation.is_empty()).then(|| {
            mean_loss(
                &learner.valid(),
                dataset,
                &dataset.validation,
                config.batch_size,
            )
        });
        epochs.push(EpochMetrics {
            epoch,
            train_loss: total / order.len() as f64,
            validation_loss,
        });
        if let Some(checkpoints) = checkpoints {
            let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
            let optimizer_bytes = Recorder::<B>::record(&recorder, optimizer.to_record(), ())
                .map_err(|e| Error::Internal {
                    operation: "save a checkpoint".into(),
                    reason: e.to_string(),
                })?;
            let model_bytes = Weights::of(&learner)?.0;
            checkpoints.save(&run, &epochs, &model_bytes, &optimizer_bytes)?;
        }
        if after_epoch(epochs.last().expect("just pushed")).is_break() {
            break;
        }
    }
    Ok(Trained {
        model: learner.valid(),
        epochs,
    })
}

/// Shards a batch is cut into, each run forward and backward on a thread of its own: two,
/// whatever the machine, so that a seed trains the same model on every machine.
const SHARDS: usize = 2;

/// The mean loss of `learner` over the windows at `starts`, and its gradients; `seed` draws
/// the batch's dropout masks.
///
/// The batch is cut into [`SHARDS`] shards, each run forward and backward on a thread of its
/// own on a fork of the model, its dropout masks drawn from a generator of its own (seeded by
/// `seed` and the shard). Each shard's loss is weighted by its share of the windows, so that
/// the gradients, summed in shard order, are those of the whole batch's mean loss.
fn gradients<B: AutodiffBackend>(
    learner: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    seed: u64,
    device: &B::Device,
) -> (f64, GradientsParams) {
    let shard_len = starts.len().div_ceil(SHARDS);
    let whole = starts.len() as f64;
    let results: Vec<(f64, GradientsParams)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (starts.chunks(shard_len).enumerate())
            .map(|(i, shard)| {
                let replica = learner.clone().fork(device);
                let mut masks = Masks::host(mix(seed, i as u64));
                scope.spawn(move || {
                    let (inputs, targets) = batch::<B>(dataset, shard, device);
                    let outputs = replica.forward_training(inputs, &mut masks);
                    let share = shard.len() as f64 / whole;
                    let shard_loss = loss(dataset, outputs, targets).mul_scalar(share);
                    let value = shard_loss.clone().into_scalar().elem::<f64>();
                    let grads = GradientsParams::from_grads(shard_loss.backward(), &replica);
                    (value, grads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut accumulated = GradientsAccumulator::new();
    let mut mean = 0.0;
    for (value, grads) in results {
        mean += value;
        accumulated.accumulate(learner, grads);
    }
    (mean, accumulated.grads())
}

/// The mean loss of `learner` over the windows at `starts`, and its gradients, in one pass on
/// the backend's device, dropout masks drawn by the backend.
fn whole_batch_gradients<B: AutodiffBackend>(
    learner: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    device: &B::Device,
) -> (f64, GradientsParams) {
    let (inputs, targets) = batch::<B>(dataset, starts, device);
    let outputs = learner.forward_training(inputs, &mut Masks::Backend);
    let batch_loss = loss(dataset, outputs, targets);
    let value = batch_loss.clone().into_scalar().elem::<f64>();
    (
        value,
        GradientsParams::from_grads(batch_loss.backward(), learner),
    )
}

/// A seed of its own for part `part` of what `seed` draws (SplitMix64's finaliser over both:
/// parts of parts, an epoch's batch's shard, never meet another's).
fn mix(seed: u64, part: u64) -> u64 {
    let mut z = seed ^ part.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// burn's CPU backend draws a new model's weights from one generator per process: runs take
/// turns, so that each draws only its own numbers and a seed means one run.
pub(crate) fn take_turn() -> MutexGuard<'static, ()> {
    static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A record a checkpoint in `dir` saved (its bytes already checked against their hash).
fn decode<B: Backend, R: Record<B>>(bytes: Vec<u8>, device: &B::Device, dir: &str) -> Result<R> {
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    Recorder::<B>::load(&recorder, bytes, device).map_err(|e| Error::Corrupt {
        path: dir.to_owned(),
        reason: format!("a checkpoint file cannot be read: {e}"),
    })
}

fn validate(dataset: &Dataset, config: &TrainConfig) -> Result<()> {
    config.validate()?;
    if dataset.train.is_empty() {
        return Err(Error::invalid(
            "training windows",
            "0",
            "no window fits in the rows before the validation cut",
        ));
    }
    if config.patience.is_some() && dataset.validation.is_empty() {
        return Err(Error::invalid(
            "patience",
            "no validation windows",
            "early stopping watches the validation loss: give the split a validation share",
        ));
    }
    Ok(())
}

impl TrainConfig {
    /// Whether early stopping ends a run that has measured `epochs`: the validation loss
    /// has not improved on its best for `patience` epochs. Read from the metrics alone, so a
    /// resumed run stops where an uninterrupted one does.
    fn stops_after(&self, epochs: &[EpochMetrics]) -> bool {
        let Some(patience) = self.patience else {
            return false;
        };
        let losses: Vec<f64> = epochs.iter().filter_map(|m| m.validation_loss).collect();
        let best = losses
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i + 1);
        losses.len() - best >= patience
    }

    /// Refuses settings no run can have, naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let config = self;
        if config.epochs == 0 || config.batch_size == 0 {
            return Err(Error::invalid(
                "training config",
                format!(
                    "{} epochs of batches of {}",
                    config.epochs, config.batch_size
                ),
                "epochs and batch size must be at least 1",
            ));
        }
        if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
            return Err(Error::invalid(
                "learning rate",
                config.learning_rate.to_string(),
                "must be a positive number",
            ));
        }
        if config.patience == Some(0) {
            return Err(Error::invalid(
                "patience",
                "0",
                "epochs without improvement before stopping: at least 1",
            ));
        }
        if let Schedule::WarmupCosine { warmup } = config.schedule
            && !(0.0..1.0).contains(&warmup)
        {
            return Err(Error::invalid(
                "warm-up",
                warmup.to_string(),
                "the share of steps spent warming up: a number in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// What identifies a run for resuming: the model, the configuration but its epoch count (a
/// finished run may be resumed for more epochs, unless the learning rate's schedule spans
/// them), and the data (its windows and scaling).
fn run_fingerprint(
    dataset: &Dataset,
    model: &ModelConfig,
    config: &TrainConfig,
    shapes: Shapes,
    base: Option<&Weights>,
) -> String {
    let described = serde_json::json!({
        "base": base.map(|w| hex_sha256(&w.0)),
        "model": model,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "schedule": config.schedule,
        "epochs": (config.schedule != Schedule::Constant).then_some(config.epochs),
        "shapes": shapes,
        "normaliser": dataset.normaliser,
        "train": dataset.train,
        "validation": dataset.validation,
    });
    hex_sha256(described.to_string().as_bytes())
}

/// What training minimises: a classifier's cross-entropy, else the mean squared error.
fn loss<B: Backend>(
    dataset: &Dataset,
    outputs: Tensor<B, 3>,
    targets: Tensor<B, 3>,
) -> Tensor<B, 1> {
    match dataset.layout().task {
        Task::Classify { .. } => {
            let [n, _, classes] = outputs.dims();
            let logits = outputs.reshape([n, classes]);
            let classes = targets.reshape([n]).int();
            CrossEntropyLossConfig::new()
                .init(&logits.device())
                .forward(logits, classes)
        }
        Task::Forecast | Task::Regress { .. } => {
            MseLoss::new().forward(outputs, targets, Reduction::Mean)
        }
    }
}

/// The mean loss of `model` over the windows at `starts` (the squared error of a forecast
/// or a regression, a classifier's cross-entropy).
pub fn mean_loss<B: Backend>(
    model: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    batch_size: usize,
) -> f64 {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let mut total = 0.0;
    for chunk in starts.chunks(batch_size.max(1)) {
        let (inputs, targets) = batch::<B>(dataset, chunk, &device);
        let loss = loss(dataset, model.forward(inputs), targets);
        total += loss.into_scalar().elem::<f64>() * chunk.len() as f64;
    }
    total / starts.len().max(1) as f64
}

/// `model`'s forecasts for a batch of windows, flattened (`[window, step, target]`).
pub(crate) fn forecasts<B: Backend>(
    model: &SeriesTransformer<B>,
    inputs: Tensor<B, 3>,
) -> Vec<f32> {
    model
        .forward(inputs)
        .into_data()
        .to_vec::<f32>()
        .unwrap_or_default()
}

/// The windows at `starts` and their targets as tensors.
pub(crate) fn batch<B: Backend>(
    dataset: &Dataset,
    starts: &[usize],
    device: &B::Device,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let spec = dataset.spec();
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    dataset.fill(starts, &mut inputs, &mut targets);
    let n = starts.len();
    let (steps, values) = dataset.target_shape();
    (
        Tensor::from_data(
            TensorData::new(inputs, [n, spec.length, dataset.channels()]),
            device,
        ),
        Tensor::from_data(TensorData::new(targets, [n, steps, values]), device),
    )
}

#[cfg(test)]
mod tests;
