//! Drafts: a version built in steps, seen only by its owner until committed.
//!
//! A draft starts empty or from a committed version, whose files it lists without copying
//! them (copy-on-write); each append writes new files and lists them too. Other users do not
//! see a draft at all (listing, getting, selecting only ever show committed versions), and
//! `gc` keeps every file a draft lists. Committing measures the whole set's quality, reading
//! each file once, and commits the draft's files as a new version, as a create would;
//! discarding leaves its own files to `gc`.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use trainstore_core::catalog::Draft;
use trainstore_core::{DatasetName, Error, RecordBatchStream, Result, Timestamp, Version};

use super::files::{self, SetWriter};
use super::quality::{QualityAccumulator, QualityOptions};
use super::{CreateOptions, Lineage, SetParts, TrainingSetVersion, TrainingSets};

/// One user's draft of a new version of a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetDraft {
    pub name: DatasetName,
    /// Random; names the draft to its owner.
    pub id: String,
    /// The version it started from.
    pub parent: Option<Version>,
    /// Rows in its files so far.
    pub rows: u64,
    pub created_at: Timestamp,
    draft: Draft,
    state: DraftState,
}

/// What a training-set draft keeps in its document beyond its files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DraftState {
    /// The set's schema ([`files::schema_to_hex`]), once known.
    arrow_schema: Option<String>,
    rows: u64,
    /// From the parent: how its quality was measured and where its rows came from.
    label: Option<String>,
    time_column: Option<String>,
    malformed_rate: Option<f64>,
    missing_rate: Option<f64>,
}

impl SetDraft {
    fn new(draft: Draft) -> Result<Self> {
        let state: DraftState = if draft.metadata.is_null() {
            DraftState::default()
        } else {
            serde_json::from_value(draft.metadata.clone()).map_err(|e| Error::Corrupt {
                path: format!("{} draft {}", draft.item, draft.id),
                reason: format!("not a training-set draft: {e}"),
            })?
        };
        Ok(SetDraft {
            name: draft.item.clone(),
            id: draft.id.clone(),
            parent: draft.parent,
            rows: state.rows,
            created_at: draft.created_at,
            draft,
            state,
        })
    }

    fn schema(&self) -> Result<Option<SchemaRef>> {
        self.state
            .arrow_schema
            .as_deref()
            .map(|hex| files::schema_from_hex(hex, &format!("{} draft {}", self.name, self.id)))
            .transpose()
    }
}

impl TrainingSets {
    /// Starts a draft of a new version of `name`: empty, or holding the rows of version
    /// `base` (`latest`, `v3`, a tag or an alias) without copying them.
    pub async fn draft(&self, name: &DatasetName, base: Option<&str>) -> Result<SetDraft> {
        self.store
            .authorize_write(name, &self.author, "draft")
            .await?;
        let now = Timestamp::now();
        let (parent, files, state) = match base {
            None => (None, Vec::new(), DraftState::default()),
            Some(reference) => {
                let base = self.get(name, reference).await?;
                let state = DraftState {
                    arrow_schema: Some(base.info.arrow_schema.clone()),
                    rows: base.info.rows,
                    label: base.info.label.clone(),
                    time_column: base.info.time_column.clone(),
                    malformed_rate: base.info.lineage.malformed_rate,
                    missing_rate: base.info.lineage.missing_rate,
                };
                (Some(base.version), base.files, state)
            }
        };
        let draft = Draft {
            id: Draft::new_id(),
            item: name.clone(),
            owner: self.author.clone(),
            parent,
            files,
            metadata: serde_json::to_value(&state).expect("draft state serializes"),
            created_at: now,
            updated_at: now,
        };
        self.store.save_draft(&draft).await?;
        SetDraft::new(draft)
    }

    /// This user's drafts of `name`, oldest first.
    pub async fn drafts(&self, name: &DatasetName) -> Result<Vec<SetDraft>> {
        self.store
            .drafts(name, &self.author)
            .await?
            .into_iter()
            .map(SetDraft::new)
            .collect()
    }

    /// This user's draft `id` of `name`; other users' drafts are not found.
    pub async fn open_draft(&self, name: &DatasetName, id: &str) -> Result<SetDraft> {
        self.drafts(name)
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::NotFound {
                what: "draft",
                name: format!("{name} draft {id} of {}", self.author),
            })
    }

    /// Adds `batches` (of the draft's schema, or of any schema to an empty draft) to `draft`
    /// as new files; saved at once, so a draft survives its process.
    pub async fn append_to_draft(
        &self,
        draft: &mut SetDraft,
        schema: SchemaRef,
        batches: RecordBatchStream,
    ) -> Result<()> {
        self.store
            .authorize_write(&draft.name, &self.author, "draft")
            .await?;
        let (schema, batches) = match draft.schema()? {
            Some(expected) => {
                let batches = as_draft_schema(&expected, &schema, batches)?;
                (expected, batches)
            }
            None => (schema, batches),
        };
        let written = SetWriter::new(
            self.store.clone(),
            draft.name.clone(),
            schema.clone(),
            self.file_target,
            QualityOptions::default(),
        )?
        .write_all(batches)
        .await?;
        let mut next = draft.clone();
        next.state.arrow_schema = Some(files::schema_to_hex(&schema)?);
        next.state.rows += written.rows;
        next.draft.files.extend(written.files.iter().cloned());
        next.draft.metadata = serde_json::to_value(&next.state).expect("draft state serializes");
        next.draft.updated_at = Timestamp::now();
        if let Err(e) = self.store.save_draft(&next.draft).await {
            for f in &written.files {
                self.store.remove_unlisted_file(f).await;
            }
            return Err(e);
        }
        next.rows = next.state.rows;
        *draft = next;
        Ok(())
    }

    /// Commits `draft` as a new version of its set (measuring the quality of all its rows)
    /// and discards it. `options.label` and `options.time_column` default to the parent's.
    pub async fn commit_draft(
        &self,
        draft: SetDraft,
        mut options: CreateOptions,
    ) -> Result<TrainingSetVersion> {
        self.store
            .authorize_write(&draft.name, &self.author, "create")
            .await?;
        let Some(schema) = draft.schema()? else {
            return Err(Error::invalid(
                "draft to commit",
                format!("{} draft {}", draft.name, draft.id),
                "has no rows yet: append some first",
            ));
        };
        options.label = options.label.or_else(|| draft.state.label.clone());
        let time_column = options
            .time_column
            .clone()
            .or_else(|| draft.state.time_column.clone());
        let quality = QualityOptions {
            label: options.label.clone(),
            time_column: time_column.clone(),
            malformed_rate: draft.state.malformed_rate,
            missing_rate: draft.state.missing_rate,
        };
        let mut accumulator = QualityAccumulator::new(&schema, quality)?;
        let mut rows = 0u64;
        for entry in &draft.draft.files {
            let bytes = files::read_file(self.store.clone(), entry.clone()).await?;
            let (file_rows, acc) = tokio::task::spawn_blocking({
                let entry = entry.clone();
                move || {
                    let (_, batches) = files::decode(vec![(entry, bytes)])?;
                    for b in &batches {
                        accumulator.observe(b)?;
                    }
                    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                    Ok::<_, Error>((rows as u64, accumulator))
                }
            })
            .await
            .map_err(|e| Error::Internal {
                operation: "measure a draft's quality".into(),
                reason: e.to_string(),
            })??;
            rows += file_rows;
            accumulator = acc;
        }
        options.lineage = Lineage {
            source: if options.lineage.source.is_empty() {
                "draft".to_owned()
            } else {
                options.lineage.source
            },
            parent: draft.parent,
            malformed_rate: options
                .lineage
                .malformed_rate
                .or(draft.state.malformed_rate),
            missing_rate: options.lineage.missing_rate.or(draft.state.missing_rate),
            ..options.lineage
        };
        let parts = SetParts {
            content_hash: files::content_hash(&schema, &draft.draft.files),
            files: draft.draft.files.clone(),
            rows,
            quality: accumulator.finish(Timestamp::now()),
            time_column,
            parent: draft.parent,
        };
        let version = self
            .commit_set(&draft.name, &schema, parts, options)
            .await?;
        if let Err(e) = self
            .store
            .discard_draft(&draft.name, &draft.id, &self.author)
            .await
        {
            tracing::warn!(draft = %draft.id, "committed as {}, but the draft remains: {e}", version.id());
        }
        Ok(version)
    }

    /// Gives `draft` up: its own files become collectable by `gc`.
    pub async fn discard_draft(&self, draft: SetDraft) -> Result<()> {
        self.store
            .discard_draft(&draft.name, &draft.id, &self.author)
            .await
    }
}

/// `batches` of `schema` as rows of a draft whose set has the schema `expected`: the same
/// columns in the same order, of the same types up to the names of nested fields (pyarrow's
/// Parquet files name a list's items `element`, Arrow names them `item`), stored as
/// `expected` names them. Any other difference is refused, naming the first column that
/// differs.
fn as_draft_schema(
    expected: &SchemaRef,
    schema: &SchemaRef,
    batches: RecordBatchStream,
) -> Result<RecordBatchStream> {
    let refuse =
        |column: String, reason: String| Err(Error::invalid("rows for a draft", column, reason));
    if expected.fields().len() != schema.fields().len() {
        let names = |s: &SchemaRef| {
            s.fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return refuse(
            names(schema),
            format!("the draft's set has the columns {}", names(expected)),
        );
    }
    for (want, got) in expected.fields().iter().zip(schema.fields()) {
        if want.name() != got.name() || !want.data_type().equals_datatype(got.data_type()) {
            return refuse(
                format!("{}: {}", got.name(), got.data_type()),
                format!(
                    "the draft's set has {}: {} in that place",
                    want.name(),
                    want.data_type()
                ),
            );
        }
    }
    if expected.fields() == schema.fields() {
        return Ok(batches);
    }
    let expected = expected.clone();
    Ok(Box::pin(batches.map(move |batch| {
        let columns = batch?
            .columns()
            .iter()
            .zip(expected.fields())
            .map(|(column, field)| Ok(arrow::compute::cast(column, field.data_type())?))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(expected.clone(), columns)?)
    })))
}
