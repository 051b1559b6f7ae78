//! A training run's checkpoints: after every epoch, the model's weights, the optimiser's
//! state and the metrics so far, in a directory, so that a run stopped at any point (a killed
//! process included) resumes from its last finished epoch and ends as an uninterrupted run
//! ends.
//!
//! The directory holds `checkpoint.json` and the two files it names. An epoch's files are
//! written under names of their own first; `checkpoint.json` is then replaced in one rename,
//! and the previous epoch's files removed. A crash at any moment leaves `checkpoint.json`
//! naming complete files, each checked against its SHA-256 before it is decoded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trainstore_core::catalog::hex_sha256;
use trainstore_core::{Error, Result};

use crate::trainer::EpochMetrics;

/// The layout of `checkpoint.json` and its files.
const FORMAT: u32 = 1;
const INDEX: &str = "checkpoint.json";

/// Where a run keeps its checkpoints.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

/// What `checkpoint.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Index {
    format: u32,
    /// What the run trains: a checkpoint of another run is never resumed.
    run: String,
    metrics: Vec<EpochMetrics>,
    model: FileRef,
    optimizer: FileRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileRef {
    name: String,
    sha256: String,
}

/// A run's state after its last finished epoch.
#[derive(Debug)]
pub(crate) struct Saved {
    pub metrics: Vec<EpochMetrics>,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
}

impl Checkpoints {
    /// Checkpoints in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create", e))?;
        Ok(Checkpoints { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state saved by the run `run` describes, if any; a checkpoint of another run, or
    /// of a newer format, is refused, and so is a file that does not match its hash.
    pub(crate) fn load(&self, run: &str) -> Result<Option<Saved>> {
        let path = self.dir.join(INDEX);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path, "read", e)),
        };
        let index: Index = serde_json::from_slice(&text).map_err(|e| corrupt(&path, e))?;
        if index.format > FORMAT {
            return Err(Error::invalid(
                "checkpoint",
                path.display().to_string(),
                format!(
                    "has format {}, written by a newer trainstore (this one reads up to {FORMAT})",
                    index.format
                ),
            ));
        }
        if index.run != run {
            return Err(Error::invalid(
                "checkpoint directory",
                self.dir.display().to_string(),
                "holds the checkpoints of a run with another model, configuration or data; \
                 use a new directory, or remove it to start over",
            ));
        }
        Ok(Some(Saved {
            model: self.read(&index.model)?,
            optimizer: self.read(&index.optimizer)?,
            metrics: index.metrics,
        }))
    }

    /// Saves the state after the last epoch of `metrics`.
    pub(crate) fn save(
        &self,
        run: &str,
        metrics: &[EpochMetrics],
        model: &[u8],
        optimizer: &[u8],
    ) -> Result<()> {
        let epoch = metrics.last().map_or(0, |m| m.epoch);
        let previous = self.current_files();
        let index = Index {
            format: FORMAT,
            run: run.to_owned(),
            metrics: metrics.to_vec(),
            model: self.write(&format!("model-{epoch}.mpk"), model)?,
            optimizer: self.write(&format!("optimizer-{epoch}.mpk"), optimizer)?,
        };
        let text = serde_json::to_vec_pretty(&index).map_err(|e| Error::Internal {
            operation: "write a checkpoint".into(),
            reason: e.to_string(),
        })?;
        self.write(INDEX, &text)?;
        for name in previous {
            if name != index.model.name && name != index.optimizer.name {
                // A leftover file is harmless: nothing names it.
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
        Ok(())
    }

    /// The files the current `checkpoint.json` names.
    fn current_files(&self) -> Vec<String> {
        std::fs::read(self.dir.join(INDEX))
            .ok()
            .and_then(|text| serde_json::from_slice::<Index>(&text).ok())
            .map(|index| vec![index.model.name, index.optimizer.name])
            .unwrap_or_default()
    }

    /// Writes `bytes` to `name` atomically (a temporary file, synced, then renamed).
    fn write(&self, name: &str, bytes: &[u8]) -> Result<FileRef> {
        use std::io::Write;
        let path = self.dir.join(name);
        let temporary = self.dir.join(format!(".{name}.partial"));
        let mut file =
            std::fs::File::create(&temporary).map_err(|e| io_error(&temporary, "create", e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&temporary, "write", e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io_error(&path, "rename", e))?;
        Ok(FileRef {
            name: name.to_owned(),
            sha256: hex_sha256(bytes),
        })
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        let path = self.dir.join(&file.name);
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, "read", e))?;
        if hex_sha256(&bytes) != file.sha256 {
            return Err(Error::Corrupt {
                path: path.display().to_string(),
                reason: "does not match the hash its checkpoint recorded".into(),
            });
        }
        Ok(bytes)
    }
}

fn io_error(path: &Path, operation: &'static str, e: std::io::Error) -> Error {
    Error::Storage {
        operation,
        path: path.display().to_string(),
        source: trainstore_core::object_store::Error::Generic {
            store: "checkpoints",
            source: Box::new(e),
        },
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainstore_testkit::golden::{
        Normalize, assert_matches_golden, copy_into, golden_dir, read_tree,
    };

    #[test]
    fn the_checkpoint_files_match_their_golden_copy_and_golden_files_read_back() {
        let dir = tempfile::tempdir().expect("a directory");
        let checkpoints = Checkpoints::new(dir.path()).expect("checkpoints");
        let metrics = [
            EpochMetrics {
                epoch: 1,
                train_loss: 0.5,
                validation_loss: Some(0.25),
            },
            EpochMetrics {
                epoch: 2,
                train_loss: 0.125,
                validation_loss: None,
            },
        ];
        checkpoints
            .save("run", &metrics[..1], b"weights 1", b"moments 1")
            .expect("epoch 1");
        checkpoints
            .save("run", &metrics, b"weights 2", b"moments 2")
            .expect("epoch 2");
        let written = read_tree(dir.path(), &Normalize::default(), |_| true);
        let golden = golden_dir(env!("CARGO_MANIFEST_DIR"), "checkpoint");
        assert_matches_golden(&written, &golden);

        let copy = tempfile::tempdir().expect("a directory");
        copy_into(
            &read_tree(&golden, &Normalize::default(), |_| true),
            copy.path(),
        );
        let saved = Checkpoints::new(copy.path())
            .expect("checkpoints")
            .load("run")
            .expect("readable")
            .expect("a checkpoint");
        assert_eq!(saved.metrics, metrics);
        assert_eq!(saved.model, b"weights 2");
        assert_eq!(saved.optimizer, b"moments 2");
    }
}
