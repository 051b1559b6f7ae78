//! Training on training-set versions.
//!
//! - [`windows`]: a version's rows as per-entity series in time order, cut into model windows
//!   (length, stride, forecast horizon, no window across a long gap), list features fitted to a
//!   fixed number of channels, split by time into train / validation / test, normalised with
//!   statistics of the training rows only ([`Normaliser`], stored with a model).
//! - [`model`]: [`SeriesTransformer`], a Transformer encoder over a window's steps with a
//!   forecast head, built with `burn`.
//! - [`trainer`]: [`train`], Adam on the forecast's squared error on the CPU, deterministic
//!   under a seed, with each epoch's training and validation loss.

pub mod model;
pub mod trainer;
pub mod windows;

pub use model::{ModelConfig, SeriesTransformer, Shapes};
pub use trainer::{EpochMetrics, TrainConfig, Trained, train};
pub use windows::{
    Dataset, FeatureShape, ListFit, Normaliser, SplitSpec, WindowFeature, WindowSpec,
};
