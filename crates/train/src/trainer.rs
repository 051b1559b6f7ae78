//! Training a [`SeriesTransformer`] on a [`Dataset`]'s windows, on the CPU: Adam on the mean
//! squared error of the forecast, the training windows shuffled every epoch by a seeded
//! generator, the validation windows scored after every epoch.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use trainstore_core::{Error, Result};

use crate::model::{ModelConfig, SeriesTransformer, Shapes};
use crate::windows::Dataset;

/// The CPU backend a trained model runs on.
pub type Cpu = Flex;
type Learning = Autodiff<Cpu>;

/// How long and how fast to train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Seeds the weights and the order of the windows: equal seeds, equal runs.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 32,
            learning_rate: 1e-3,
            seed: 0,
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
pub struct Trained {
    pub model: SeriesTransformer<Cpu>,
    pub epochs: Vec<EpochMetrics>,
}

/// Trains a model of `model`'s size on `dataset`'s training windows.
pub fn train(dataset: &Dataset, model: &ModelConfig, config: &TrainConfig) -> Result<Trained> {
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
    if dataset.train.is_empty() {
        return Err(Error::invalid(
            "training windows",
            "0",
            "no window fits in the rows before the validation cut",
        ));
    }
    let spec = dataset.spec();
    let shapes = Shapes {
        length: spec.length,
        channels: dataset.channels(),
        horizon: spec.horizon,
        targets: dataset.target_channels(),
    };
    let device = Default::default();
    Learning::seed(&device, config.seed);
    let mut learner = SeriesTransformer::<Learning>::new(model, shapes, &device)?;
    let mut optimizer = AdamConfig::new().init();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order = dataset.train.clone();
    let mut epochs = Vec::with_capacity(config.epochs);
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for starts in order.chunks(config.batch_size) {
            let (inputs, targets) = batch::<Learning>(dataset, starts, &device);
            let loss = MseLoss::new().forward(learner.forward(inputs), targets, Reduction::Mean);
            total += loss.clone().into_scalar().elem::<f64>() * starts.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &learner);
            learner = optimizer.step(config.learning_rate, learner, grads);
        }
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
    }
    Ok(Trained {
        model: learner.valid(),
        epochs,
    })
}

/// The mean squared error of `model`'s forecasts over the windows at `starts`.
pub fn mean_loss<B: Backend>(
    model: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    batch_size: usize,
) -> f64 {
    let device = Default::default();
    let mut total = 0.0;
    for chunk in starts.chunks(batch_size.max(1)) {
        let (inputs, targets) = batch::<B>(dataset, chunk, &device);
        let loss = MseLoss::new().forward(model.forward(inputs), targets, Reduction::Mean);
        total += loss.into_scalar().elem::<f64>() * chunk.len() as f64;
    }
    total / starts.len().max(1) as f64
}

/// The windows at `starts` and their targets as tensors.
fn batch<B: Backend>(
    dataset: &Dataset,
    starts: &[usize],
    device: &B::Device,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let spec = dataset.spec();
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    dataset.fill(starts, &mut inputs, &mut targets);
    let n = starts.len();
    (
        Tensor::from_data(
            TensorData::new(inputs, [n, spec.length, dataset.channels()]),
            device,
        ),
        Tensor::from_data(
            TensorData::new(targets, [n, spec.horizon, dataset.target_channels()]),
            device,
        ),
    )
}

#[cfg(test)]
mod tests;
