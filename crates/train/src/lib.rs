//! Training on training-set versions.
//!
//! - [`windows`]: a version's rows as per-entity series in time order, cut into model windows
//!   (length, stride, forecast horizon, no window across a long gap), list features fitted to a
//!   fixed number of channels, split by time into train / validation / test, normalised with
//!   statistics of the training rows only ([`Normaliser`], stored with a model).

pub mod windows;

pub use windows::{
    Dataset, FeatureShape, ListFit, Normaliser, SplitSpec, WindowFeature, WindowSpec,
};
