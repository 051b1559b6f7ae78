//! [`SeriesTrainer`]: the core [`Trainer`] that trains a
//! [`SeriesTransformer`](crate::SeriesTransformer), on the CPU or (with the `cuda` feature) an
//! NVIDIA GPU, from streamed training-set rows.
//!
//! Its settings are a [`TrainRequest`]. The rows are gathered as they stream in
//! ([`WindowRows`]: the windows' channels are held, not the batches), cut into windows and
//! split by time; training further from a base model keeps the base's scaling and adds, per
//! new training window, `incremental_ratio` windows replayed from the rows the base learnt
//! from.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use trainstore_core::{Error, ModelArtifact, Progress, Result, Trainer, TrainingRows, TrainingRun};

use crate::checkpoint::Checkpoints;
use crate::model::ModelConfig;
use crate::registry::{ModelCard, ModelLineage};
use crate::trainer::{RunOptions, Stepping, TrainConfig, Trained, Weights, train_with};
use crate::windows::{Dataset, Layout, SplitSpec, WindowRows, WindowSpec};

/// What to train: which columns make the windows, how they are cut and split, the model's
/// size and how long to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub layout: Layout,
    pub windows: WindowSpec,
    pub split: SplitSpec,
    pub model: ModelConfig,
    pub training: TrainConfig,
    /// The registered model (`name@ref`) to train further, instead of starting afresh (the
    /// registry finds it; the trainer is handed its weights and card).
    #[serde(default)]
    pub base: Option<String>,
    /// With a base: windows replayed from the base's training sets per new training window.
    #[serde(default)]
    pub incremental_ratio: f64,
    /// A directory for a checkpoint after every epoch: the same request run again resumes
    /// there (after a crash, or with more epochs) and ends as an uninterrupted run would.
    #[serde(default)]
    pub checkpoints: Option<PathBuf>,
}

impl TrainRequest {
    /// Forecasting the next step from windows of 64 steps (every 8; a gap of more than an
    /// hour breaks a window), the last 20 % of the time range held out (10 % validates, 10 %
    /// tests), the benchmark's model size and 10 epochs.
    pub fn new(layout: Layout) -> Self {
        TrainRequest {
            layout,
            windows: WindowSpec {
                length: 64,
                stride: 8,
                horizon: 1,
                max_gap_ms: 3_600_000,
            },
            split: SplitSpec {
                validation: 0.1,
                test: 0.1,
            },
            model: ModelConfig::default(),
            training: TrainConfig::default(),
            base: None,
            incremental_ratio: 0.0,
            checkpoints: None,
        }
    }

    /// Refuses settings no run can have, before any row is read.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.training.validate()?;
        if !(0.0..=100.0).contains(&self.incremental_ratio) {
            return Err(Error::invalid(
                "incremental ratio",
                self.incremental_ratio.to_string(),
                "replayed windows per new one: a number from 0 to 100",
            ));
        }
        if self.base.is_none() && self.incremental_ratio != 0.0 {
            return Err(Error::invalid(
                "incremental ratio",
                self.incremental_ratio.to_string(),
                "replays a base model's training sets: name the base model too",
            ));
        }
        Ok(())
    }
}

/// Where a [`SeriesTrainer`] trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(usize),
}

/// Trains [`SeriesTransformer`](crate::SeriesTransformer)s as a [`TrainRequest`] says.
///
/// ```
/// use trainstore_core::Trainer;
/// use trainstore_train::SeriesTrainer;
/// assert!(SeriesTrainer::cpu().describe().ends_with("on the CPU"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SeriesTrainer {
    device: Device,
}

impl SeriesTrainer {
    /// Training on the CPU: deterministic under a seed.
    pub fn cpu() -> Self {
        SeriesTrainer {
            device: Device::Cpu,
        }
    }

    /// Training on NVIDIA GPU `index` (kernels compiled at run time by NVRTC).
    #[cfg(feature = "cuda")]
    pub fn cuda(index: usize) -> Self {
        SeriesTrainer {
            device: Device::Cuda(index),
        }
    }
}

#[async_trait]
impl Trainer for SeriesTrainer {
    fn describe(&self) -> String {
        let device = match self.device {
            Device::Cpu => "on the CPU".to_owned(),
            #[cfg(feature = "cuda")]
            Device::Cuda(index) => format!("on CUDA GPU {index}"),
        };
        format!("trainstore {} {device}", env!("CARGO_PKG_VERSION"))
    }

    async fn train(&self, run: TrainingRun) -> Result<ModelArtifact> {
        let request: TrainRequest = serde_json::from_value(run.settings.clone()).map_err(|e| {
            Error::invalid(
                "training settings",
                run.settings.to_string(),
                format!("not a training request: {e}"),
            )
        })?;
        request.validate()?;
        let trainer = *self;
        tokio::task::spawn_blocking(move || trainer.train_blocking(&request, run))
            .await
            .map_err(|e| Error::Internal {
                operation: "train a model".into(),
                reason: e.to_string(),
            })?
    }
}

impl SeriesTrainer {
    fn train_blocking(&self, request: &TrainRequest, run: TrainingRun) -> Result<ModelArtifact> {
        let mut training_sets = vec![run.data.id.clone()];
        for earlier in &run.replay {
            if !training_sets.contains(&earlier.id) {
                training_sets.push(earlier.id.clone());
            }
        }
        let base = match &run.base {
            Some((id, artifact)) => Some((id, ModelCard::from_artifact(artifact)?)),
            None => None,
        };
        let fitted = base.as_ref().map(|(_, card)| &card.normaliser);
        let dataset = dataset(request, fitted, run.data, run.replay)?;
        let weights = run.base.as_ref().map(|(_, a)| Weights(a.weights.to_vec()));
        let checkpoints = request.checkpoints.as_ref().map(Checkpoints::new);
        let checkpoints = checkpoints.transpose()?;
        let stepping = match self.device {
            Device::Cpu => Stepping::HostShards,
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => Stepping::Device,
        };
        let options = RunOptions {
            checkpoints: checkpoints.as_ref(),
            base: weights.as_ref(),
            progress: run.progress.as_deref().map(|p| p as &dyn Progress),
            stepping,
        };
        let lineage = ModelLineage {
            training_sets,
            base: base.map(|(id, _)| id.clone()),
            library: self.describe(),
        };
        let go = |_: &_| std::ops::ControlFlow::Continue(());
        let (model, training) = (&request.model, &request.training);
        match self.device {
            Device::Cpu => {
                type Learning = burn::backend::Autodiff<crate::Cpu>;
                let device = Default::default();
                let trained =
                    train_with::<Learning>(&device, &dataset, model, training, options, go)?;
                artifact(&dataset, request, &trained, lineage)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(index) => {
                type Learning = burn::backend::Autodiff<crate::Cuda>;
                let device = burn::backend::cuda::CudaDevice::new(index);
                let trained =
                    train_with::<Learning>(&device, &dataset, model, training, options, go)?;
                artifact(&dataset, request, &trained, lineage)
            }
        }
    }
}

/// The windows a run trains on: `data`'s rows, scaled by `fitted` (a base model's
/// normaliser) or by statistics of their own training rows, and with a base, windows of
/// `replay`'s rows, `request.incremental_ratio` per new training window, drawn evenly from
/// each.
fn dataset(
    request: &TrainRequest,
    fitted: Option<&crate::Normaliser>,
    data: TrainingRows,
    replay: Vec<TrainingRows>,
) -> Result<Dataset> {
    let (layout, windows, split) = (&request.layout, request.windows, request.split);
    let new = Dataset::from_rows(
        WindowRows::gather(layout, data.rows)?,
        windows,
        split,
        fitted,
    )?;
    let replayed = (new.train.len() as f64 * request.incremental_ratio).ceil() as usize;
    let Some(fitted) = fitted.filter(|_| replayed > 0) else {
        return Ok(new);
    };
    let each = replayed.div_ceil(replay.len().max(1));
    let mut dataset = new;
    for (i, earlier) in replay.into_iter().enumerate() {
        let rows = WindowRows::gather(layout, earlier.rows)?;
        let old = Dataset::from_rows(rows, windows, split, Some(fitted))?;
        let seed = request.training.seed.wrapping_add(i as u64);
        dataset = dataset.with_replay(&old, each, seed)?;
    }
    Ok(dataset)
}

/// What a registry stores of `trained`.
fn artifact<B: burn::tensor::backend::Backend>(
    dataset: &Dataset,
    request: &TrainRequest,
    trained: &Trained<B>,
    lineage: ModelLineage,
) -> Result<ModelArtifact> {
    let card = ModelCard::new(dataset, request.model, request.training, trained, lineage);
    card.into_artifact(&Weights::of(&trained.model)?)
}

#[cfg(test)]
mod tests;
