//! The model registry: trained models as versions of a versioned catalog (the same machinery
//! as training sets), with aliases such as `champion` whose every position is kept, so a
//! promotion can be rolled back; the same permissions and audit log as training sets.
//!
//! A model version is one data file, `weights.mpk` (burn's named MessagePack record of the
//! weights, full precision), and a [`ModelCard`] as the manifest's metadata: everything needed
//! to rebuild the model and to cut new rows into its windows alike (sizes, window layout,
//! normaliser), what training measured, and its lineage.

use std::sync::Arc;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::Backend;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use trainstore_core::catalog::AliasEntry;
use trainstore_core::{
    DatasetName, Error, ModelArtifact, NewVersion, Permission, Result, TagName, Timestamp,
    UserName, Version, VersionStore,
};

use crate::model::{ModelConfig, SeriesTransformer, Shapes};
use crate::trainer::{Cpu, EpochMetrics, TrainConfig, Trained, Weights};
use crate::windows::{Dataset, Layout, Normaliser, WindowSpec};

/// The layout of a [`ModelCard`] and its weights file.
pub const CARD_FORMAT: u32 = 1;
const WEIGHTS: &str = "weights.mpk";

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLineage {
    /// The training-set versions it was trained on (`name@vN`).
    pub training_sets: Vec<String>,
    /// The model version it started from (`name@vN`), for incremental training.
    pub base: Option<String>,
    /// `trainstore <version>`.
    pub library: String,
}

/// What a model version records besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub model: ModelConfig,
    pub training: TrainConfig,
    pub windows: WindowSpec,
    pub layout: Layout,
    pub shapes: Shapes,
    pub normaliser: Normaliser,
    pub metrics: Vec<EpochMetrics>,
    pub lineage: ModelLineage,
}

impl ModelCard {
    /// The card of `trained`, a model of `model`'s size trained by `training` on `dataset`.
    pub fn new<B: Backend>(
        dataset: &Dataset,
        model: ModelConfig,
        training: TrainConfig,
        trained: &Trained<B>,
        lineage: ModelLineage,
    ) -> Self {
        ModelCard {
            format: CARD_FORMAT,
            model,
            training,
            windows: dataset.spec(),
            layout: dataset.layout().clone(),
            shapes: trained.model.shapes(),
            normaliser: dataset.normaliser.clone(),
            metrics: trained.epochs.clone(),
            lineage,
        }
    }

    /// What a registry stores: `weights` and this card.
    pub fn into_artifact(self, weights: &Weights) -> Result<ModelArtifact> {
        let card = serde_json::to_value(&self).map_err(|e| Error::Internal {
            operation: "describe a model".into(),
            reason: e.to_string(),
        })?;
        Ok(ModelArtifact {
            weights: Bytes::from(weights.0.clone()),
            card,
        })
    }

    /// The card of `artifact`, refused if it is not one (or of a later format), naming why.
    pub fn from_artifact(artifact: &ModelArtifact) -> Result<Self> {
        let card: ModelCard = serde_json::from_value(artifact.card.clone()).map_err(|e| {
            Error::invalid(
                "model card",
                artifact.card.to_string(),
                format!("not a model card: {e}"),
            )
        })?;
        if card.format > CARD_FORMAT {
            return Err(Error::invalid(
                "model card",
                format!("format {}", card.format),
                format!("this trainstore reads model cards up to format {CARD_FORMAT}: upgrade"),
            ));
        }
        Ok(card)
    }

    /// The last epoch's validation loss, by which versions are compared.
    pub fn validation_loss(&self) -> Option<f64> {
        self.metrics.last().and_then(|m| m.validation_loss)
    }
}

/// One version of a model: its number and card (the weights are read by
/// [`ModelRegistry::load`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: DatasetName,
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
    pub card: ModelCard,
}

impl ModelVersion {
    /// `name@vN`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Models kept in a versioned catalog, acting as one user.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    store: Arc<dyn VersionStore>,
    user: UserName,
}

impl ModelRegistry {
    /// The registry in `store`, acting as `user`.
    pub fn new(store: Arc<dyn VersionStore>, user: UserName) -> Self {
        ModelRegistry { store, user }
    }

    /// Stores `artifact` (a trainer's: weights and a [`ModelCard`]) as a new version of
    /// `name`.
    pub async fn register(
        &self,
        name: &DatasetName,
        artifact: &ModelArtifact,
    ) -> Result<ModelVersion> {
        let card = ModelCard::from_artifact(artifact)?;
        self.store
            .authorize_write(name, &self.user, "register")
            .await?;
        let file = self
            .store
            .put_file(name, WEIGHTS, artifact.weights.clone())
            .await?;
        let mut new = NewVersion::new(self.user.clone());
        new.files.push(file.clone());
        new.metadata = serde_json::to_value(&card).map_err(|e| Error::Internal {
            operation: "describe a model".into(),
            reason: e.to_string(),
        })?;
        new.summary = serde_json::json!({
            "validation_loss": card.validation_loss(),
            "epochs": card.metrics.len(),
        });
        let manifest = match self.store.commit(name, new).await {
            Ok(manifest) => manifest,
            Err(e) => {
                self.store.remove_unlisted_file(&file).await;
                return Err(e);
            }
        };
        let version = ModelVersion {
            name: name.clone(),
            version: manifest.version,
            author: manifest.author,
            created_at: manifest.created_at,
            card,
        };
        self.audit(name, "register", Some(version.version), version.id())
            .await;
        Ok(version)
    }

    /// The version `reference` (`latest`, `v3`, `3`, a tag or an alias such as `champion`)
    /// of `name`.
    pub async fn get(&self, name: &DatasetName, reference: &str) -> Result<ModelVersion> {
        self.authorize_read(name).await?;
        let version = self.store.resolve(name, reference).await?;
        self.version(name, version).await
    }

    /// Version `version` of `name`, its reader already authorized.
    async fn version(&self, name: &DatasetName, version: Version) -> Result<ModelVersion> {
        let manifest = self.store.get(name, version).await?;
        let card: ModelCard =
            serde_json::from_value(manifest.metadata).map_err(|e| Error::Corrupt {
                path: format!("{name}@{version}"),
                reason: format!("its model card is unreadable: {e}"),
            })?;
        if card.format > CARD_FORMAT {
            return Err(Error::invalid(
                "model",
                format!("{name}@{version}"),
                format!(
                    "has card format {}, written by a newer trainstore (this one reads up to \
                     {CARD_FORMAT})",
                    card.format
                ),
            ));
        }
        Ok(ModelVersion {
            name: name.clone(),
            version,
            author: manifest.author,
            created_at: manifest.created_at,
            card,
        })
    }

    /// The weights of `version`, as a model on the CPU.
    pub async fn load(&self, version: &ModelVersion) -> Result<SeriesTransformer<Cpu>> {
        let weights = self.weights(version).await?;
        let device = Default::default();
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
        let record =
            Recorder::<Cpu>::load(&recorder, weights.0, &device).map_err(|e| Error::Corrupt {
                path: version.id(),
                reason: format!("its weights are unreadable: {e}"),
            })?;
        let card = &version.card;
        Ok(SeriesTransformer::new(&card.model, card.shapes, &device)?.load_record(record))
    }

    /// The encoded weights of `version` (checked against their hash), to train further from.
    pub async fn weights(&self, version: &ModelVersion) -> Result<Weights> {
        self.authorize_read(&version.name).await?;
        let manifest = self.store.get(&version.name, version.version).await?;
        let entry = manifest
            .files
            .iter()
            .find(|f| f.path.ends_with(WEIGHTS))
            .ok_or_else(|| Error::Corrupt {
                path: version.id(),
                reason: format!("lists no {WEIGHTS}"),
            })?;
        Ok(Weights(self.store.read_file(entry).await?.to_vec()))
    }

    /// Every version of `name`, oldest first.
    pub async fn list(&self, name: &DatasetName) -> Result<Vec<ModelVersion>> {
        self.authorize_read(name).await?;
        let deleted = self.store.deleted(name).await?;
        let mut out = Vec::new();
        for version in self.store.versions_of(name).await? {
            if !deleted.contains(&version) {
                out.push(self.version(name, version).await?);
            }
        }
        Ok(out)
    }

    /// Points `alias` of `name` at the version `reference` names.
    pub async fn promote(
        &self,
        name: &DatasetName,
        reference: &str,
        alias: &TagName,
    ) -> Result<AliasEntry> {
        self.store
            .authorize_write(name, &self.user, "promote")
            .await?;
        let version = self.store.resolve(name, reference).await?;
        let entry = self
            .store
            .set_alias(name, alias, version, &self.user)
            .await?;
        self.audit(
            name,
            "promote",
            Some(version),
            format!("{alias} → {version}"),
        )
        .await;
        Ok(entry)
    }

    /// Points `alias` of `name` back at the version it named before its last move.
    pub async fn rollback(&self, name: &DatasetName, alias: &TagName) -> Result<AliasEntry> {
        self.store
            .authorize_write(name, &self.user, "rollback")
            .await?;
        let history = self.store.alias_history(name, alias).await?;
        let [.., previous, _] = history.as_slice() else {
            return Err(Error::invalid(
                "rollback",
                format!("{name}@{alias}"),
                "the alias has no earlier position to go back to",
            ));
        };
        let entry = self
            .store
            .set_alias(name, alias, previous.version, &self.user)
            .await?;
        let detail = format!("{alias} → {} (rolled back)", previous.version);
        self.audit(name, "rollback", Some(previous.version), detail)
            .await;
        Ok(entry)
    }

    /// Deletes the version `reference` names (not one an alias or tag names).
    pub async fn delete(&self, name: &DatasetName, reference: &str) -> Result<()> {
        self.store
            .authorize_write(name, &self.user, "delete")
            .await?;
        let version = self.store.resolve(name, reference).await?;
        self.store.delete(name, version, &self.user).await?;
        self.audit(name, "delete", Some(version), format!("{name}@{version}"))
            .await;
        Ok(())
    }

    async fn authorize_read(&self, name: &DatasetName) -> Result<()> {
        self.store
            .authorize(name, &self.user, Permission::Read, "read")
            .await
    }

    async fn audit(
        &self,
        name: &DatasetName,
        action: &str,
        version: Option<Version>,
        detail: String,
    ) {
        self.store
            .record_done(name, &self.user, action, version, detail)
            .await;
    }
}

#[cfg(test)]
mod tests;
