//! Training on training-set versions.
//!
//! - [`windows`]: a version's rows as per-entity series in time order, cut into model windows
//!   (length, stride, forecast horizon, no window across a long gap), list features fitted to a
//!   fixed number of channels, split by time into train / validation / test, normalised with
//!   statistics of the training rows only ([`Normaliser`], stored with a model).
//! - [`mod@evaluate`]: a model's forecast errors (MAE, RMSE, MAPE per feature, in its units)
//!   and the distribution of its windows' anomaly scores.
//! - [`predict`]: [`Predictor`], a registered model forecasting what follows each entity's
//!   latest window of new rows.
//! - [`model`]: [`SeriesTransformer`], a Transformer encoder over a window's steps with a
//!   forecast head, built with `burn`.
//! - [`registry`]: [`ModelRegistry`], trained models as versions of a versioned catalog with
//!   aliases (`champion`), promotion and rollback, permissions and an audit log.
//! - [`series_trainer`]: [`SeriesTrainer`], the core `Trainer` of these models: a
//!   [`TrainRequest`] and streamed training-set rows in, a registry's artifact out, on the
//!   CPU or a CUDA GPU.
//! - [`trainer`]: [`train`], Adam on the forecast's squared error on the CPU, deterministic
//!   under a seed, with each epoch's training and validation loss; [`train_with`] adds
//!   [`Checkpoints`] (resume where a stopped run left off) and a per-epoch hook (early stopping).

pub mod checkpoint;
pub mod evaluate;
pub mod model;
pub mod predict;
pub mod registry;
pub mod series_trainer;
pub mod trainer;
pub mod windows;

#[cfg(test)]
mod test_support;

pub use checkpoint::Checkpoints;
pub use evaluate::{
    ClassScore, ClassScores, FeatureErrors, ForecastReport, ScoreDistribution, backtest, evaluate,
};
pub use model::{ModelConfig, SeriesTransformer, Shapes};
pub use predict::{Forecast, Predictor};
pub use registry::{CARD_FORMAT, ModelCard, ModelLineage, ModelRegistry, ModelVersion};
pub use series_trainer::{SeriesTrainer, TrainRequest};
#[cfg(feature = "cuda")]
pub use trainer::Cuda;
pub use trainer::{
    Cpu, EpochMetrics, RunOptions, Schedule, Stepping, TrainConfig, Trained, Weights, train,
    train_on_cpu, train_with,
};
pub use windows::{
    Dataset, FeatureShape, LabelEncoding, LatestWindows, Layout, ListFit, MAX_CLASSES, Normaliser,
    SplitSpec, Task, WindowFeature, WindowRows, WindowSpec,
};
