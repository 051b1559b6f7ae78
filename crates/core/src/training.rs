//! The one interface models are trained through, in terms every crate knows: streams of
//! training-set rows in, a stored model out.
//!
//! A [`Trainer`] reads the rows of a training-set version (and, training further, replays of
//! the versions its base model learnt from), and answers a [`ModelArtifact`]: the weights in
//! its own encoding and a card, JSON saying what the model needs to be rebuilt and fed and
//! what training measured. What it trains and on which device is its own business; the
//! model registry stores what it answers, and the facade wires one to the other, so a trainer
//! depends on no feature store, database or registry crate.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ProgressRef, RecordBatchStream, Result};

/// A trained model as a registry stores it.
#[derive(Clone, PartialEq)]
pub struct ModelArtifact {
    /// The weights, in the trainer's encoding.
    pub weights: Bytes,
    /// What the model needs to be rebuilt and fed, what training measured, and where the
    /// model came from (the trainer's card format).
    pub card: serde_json::Value,
}

impl fmt::Debug for ModelArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelArtifact")
            .field("weights", &format_args!("{} bytes", self.weights.len()))
            .field("card", &self.card)
            .finish()
    }
}

/// Rows a model learns from, and where they come from.
pub struct TrainingRows {
    /// The training-set version they are (`name@vN`): the model's lineage.
    pub id: String,
    /// The rows, in any order, with at least the columns the settings name.
    pub rows: RecordBatchStream,
}

impl fmt::Debug for TrainingRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainingRows")
            .field("id", &self.id)
            .finish()
    }
}

/// One training run: what it reads, what it starts from and how it is set.
pub struct TrainingRun {
    /// The new rows.
    pub data: TrainingRows,
    /// With a base model: rows of the versions it learnt from, some of which are replayed
    /// beside the new ones so that it does not forget them.
    pub replay: Vec<TrainingRows>,
    /// The registered model (`name@vN`) trained further, and what it was stored as.
    pub base: Option<(String, ModelArtifact)>,
    /// The trainer's settings, in its own schema (a trainer refuses settings it cannot
    /// read, naming what is wrong).
    pub settings: serde_json::Value,
    /// Told of the run's progress (an operation per epoch, say).
    pub progress: Option<ProgressRef>,
}

impl fmt::Debug for TrainingRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainingRun")
            .field("data", &self.data)
            .field("replay", &self.replay)
            .field("base", &self.base)
            .field("settings", &self.settings)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Trains models.
#[async_trait]
pub trait Trainer: Send + Sync {
    /// Which trainer this is, as a model's lineage records it (`burn 0.21 on cpu`, say).
    fn describe(&self) -> String;

    /// Trains a model as `run` says. Long: runs off the async workers.
    async fn train(&self, run: TrainingRun) -> Result<ModelArtifact>;
}
