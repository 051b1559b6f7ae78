//! Models in a workspace: trained on its training-set versions, kept in its model registry
//! (a catalog of its own under `models/`), with the training set they came from as lineage.
//!
//! ```no_run
//! # async fn demo(ws: trainstore::Workspace) -> trainstore::Result<()> {
//! use trainstore::core::DatasetName;
//! use trainstore::models::TrainRequest;
//! use trainstore::train::{FeatureShape, Layout, WindowFeature};
//!
//! let set = ws.training_sets().get(&DatasetName::new("vibration")?, "latest").await?;
//! let request = TrainRequest::new(Layout {
//!     keys: vec!["uuid".into(), "nodeId".into()],
//!     time: "event_timestamp".into(),
//!     features: vec![WindowFeature { name: "meanLf".into(), shape: FeatureShape::Scalar }],
//! });
//! let model = ws.models().train(&DatasetName::new("vibration-model")?, &set, &request).await?;
//! println!("{} validation loss {:?}", model.id(), model.card.validation_loss());
//! # Ok(()) }
//! ```

use std::ops::Deref;

use serde::{Deserialize, Serialize};
use trainstore_core::{DatasetName, Error, Result};
use trainstore_featurestore::training::{TrainingSetVersion, TrainingSets};
use trainstore_train::{
    Dataset, Layout, ModelCard, ModelConfig, ModelLineage, ModelRegistry, ModelVersion, SplitSpec,
    TrainConfig, WindowSpec, train,
};

/// What to train: which columns make the windows, how they are cut and split, the model's
/// size and how long to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub layout: Layout,
    pub windows: WindowSpec,
    pub split: SplitSpec,
    pub model: ModelConfig,
    pub training: TrainConfig,
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
        }
    }
}

/// The workspace's models: its [`ModelRegistry`] (get, list, promote, rollback, delete, load)
/// and training from its training sets.
#[derive(Debug, Clone)]
pub struct Models {
    registry: ModelRegistry,
    training_sets: TrainingSets,
}

impl Deref for Models {
    type Target = ModelRegistry;

    fn deref(&self) -> &ModelRegistry {
        &self.registry
    }
}

impl Models {
    pub(crate) fn new(registry: ModelRegistry, training_sets: TrainingSets) -> Self {
        Models {
            registry,
            training_sets,
        }
    }

    /// The training sets models are trained on.
    pub fn training_sets(&self) -> &TrainingSets {
        &self.training_sets
    }

    /// Trains a model on training-set version `data` as `request` says (on the CPU, off the
    /// async workers) and registers it as a new version of `name`.
    pub async fn train(
        &self,
        name: &DatasetName,
        data: &TrainingSetVersion,
        request: &TrainRequest,
    ) -> Result<ModelVersion> {
        // Settings no run can have are refused before any row is read.
        request.model.validate()?;
        request.training.validate()?;
        let (_, batches) = self.training_sets.read(data).await?;
        let request = request.clone();
        let (dataset, trained, request) = tokio::task::spawn_blocking(move || {
            let keys: Vec<&str> = request.layout.keys.iter().map(String::as_str).collect();
            let dataset = Dataset::build(
                &batches,
                &keys,
                &request.layout.time,
                &request.layout.features,
                request.windows,
                request.split,
            )?;
            let trained = train(&dataset, &request.model, &request.training)?;
            Ok::<_, Error>((dataset, trained, request))
        })
        .await
        .map_err(|e| Error::Internal {
            operation: "train a model".into(),
            reason: e.to_string(),
        })??;
        let lineage = ModelLineage {
            training_sets: vec![data.id()],
            base: None,
            library: format!("trainstore {}", env!("CARGO_PKG_VERSION")),
        };
        let card = ModelCard::new(&dataset, request.model, request.training, &trained, lineage);
        self.registry.register(name, &trained, card).await
    }
}
