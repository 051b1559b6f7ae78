//! Training-set versions: immutable, quality-scored, selectable sets of rows, kept as
//! Parquet files and a manifest in a workspace's versioned catalog.
//!
//! A version is created by streaming batches into it ([`TrainingSets::create`]); its quality
//! is measured in the same pass, its files are hashed as they are stored, and it becomes
//! visible, all at once, when its manifest is committed. The manifest records the set's
//! schema, content hash, quality and lineage (where its rows came from, enough to rebuild
//! it); the version index keeps a small summary of each, so listing and selecting among
//! thousands of versions reads a few files, not every manifest.
//!
//! - [`quality`]: the quality of a set, computed in one pass while it is written.
//! - [`select`]: choosing a version by criteria.
//! - [`compare`]: what differs between two versions; rebuilding one from its lineage.
//! - [`drafts`]: building a version in steps, copy-on-write, seen only by its owner.
//! - [`lifecycle`]: deleting versions, by hand or by a retention policy.
//! - [`sharing`]: who may do what with a set, the audit log, leases.
//! - [`drift`]: how far each feature's distribution moved between two sets (PSI, KS).
//! - `files`: how the rows lie in Parquet files, written and read on every core, or streamed
//!   a few thousand rows at a time.

pub mod compare;
pub mod drafts;
pub mod drift;
mod files;
pub mod lifecycle;
pub mod quality;
pub mod select;
pub mod sharing;

pub use files::SCAN_BATCH_ROWS;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use trainstore_core::object_store::memory::InMemory;

use trainstore_core::catalog::{AliasEntry, FileEntry, NewVersion, TagEntry, UnlistedFile};
use trainstore_core::{
    Catalog, DatasetName, Error, FsckReport, ParseCounts, Permission, Progress, RecordBatchStream,
    Result, TagName, Timestamp, UserName, Version, VersionStore, VersionSummary,
};

use self::compare::{Reproduction, SetDiff};
use self::drift::{DriftOptions, FeatureDrift};
use self::files::SetWriter;
use self::quality::{Quality, QualityOptions};
pub use self::select::Criteria;
use crate::definitions::FeatureRef;
use crate::historical::{self, Engine, HistoricalOptions};
use crate::store::{FeatureStore, PARSE_COUNTS_METADATA, SOURCES_METADATA};

/// The manifest format of a training set this code writes and reads.
const SET_FORMAT: u32 = 1;

/// Where a set's rows came from: enough to say what it is built of and to rebuild it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// How the rows were produced: `rows` (given by the caller) or `historical_features`.
    pub source: String,
    /// The feature references requested, as `view:feature`.
    #[serde(default)]
    pub features: Vec<String>,
    /// The feature registry version the references resolved against.
    pub registry_version: Option<Version>,
    /// Per feature view, what its rows were read from (a source or an offline-store version).
    #[serde(default)]
    pub sources: serde_json::Value,
    /// The entity rows of a historical request, stored with the version so it can be rebuilt.
    pub entity_rows: Option<FileEntry>,
    /// How many entity rows the request had.
    pub entity_count: Option<u64>,
    /// The earliest and latest entity (or row) time, both included.
    pub time_range: Option<(Timestamp, Timestamp)>,
    /// How the historical request was answered, for rebuilding the set.
    pub request: Option<RequestOptions>,
    /// The snapshot parse report's rates, when the rows came through the snapshot parser.
    pub malformed_rate: Option<f64>,
    pub missing_rate: Option<f64>,
    /// The trainstore version that built the set.
    pub library_version: String,
    /// The version a draft started from, for a set committed from a draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Version>,
}

/// The options of the historical request a set was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOptions {
    pub full_feature_names: bool,
    pub timestamp_column: Option<String>,
    /// `in-process` or `pushdown`.
    pub engine: String,
}

/// A column of a set's schema, as recorded in its manifest (for listing and diffs without
/// opening a data file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// What a training-set version's manifest records beyond its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetInfo {
    pub format: u32,
    /// SHA-256 over the schema and the data files' hashes, in order.
    pub content_hash: String,
    /// The size at which its files were cut ([`TrainingSets::with_file_target`]): where
    /// files end is part of the content hash, so a rebuild cuts at the same size.
    #[serde(default = "first_file_target")]
    pub file_target: u64,
    pub rows: u64,
    pub schema: Vec<ColumnInfo>,
    /// The exact Arrow schema (an IPC stream without batches, in hex), for drafts that add
    /// rows to the set and readers of a set without rows.
    pub arrow_schema: String,
    pub label: Option<String>,
    pub time_column: Option<String>,
    pub quality: Quality,
    pub lineage: Lineage,
    /// The caller's own metadata (a description, an experiment id…).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// The file target of the versions written before it was recorded.
fn first_file_target() -> u64 {
    256 << 20
}

/// What the version index keeps of each set: what listing and selecting read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetSummary {
    pub rows: u64,
    pub overall_score: f64,
    /// The earliest and latest time of the set's time column, both included.
    pub time_coverage: Option<(Timestamp, Timestamp)>,
    pub content_hash: String,
}

impl SetSummary {
    /// What the version index keeps of the set `info` describes.
    pub fn of(info: &SetInfo) -> Self {
        SetSummary {
            rows: info.rows,
            overall_score: info.quality.overall_score,
            time_coverage: info
                .quality
                .time_coverage
                .as_ref()
                .map(|c| (c.start, c.end)),
            content_hash: info.content_hash.clone(),
        }
    }
}

/// One version as listed: the index's summary, without reading its manifest. As JSON (what
/// the CLI prints and Python reads), the summary's fields sit beside the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
    /// Bytes of data files.
    pub bytes: u64,
    #[serde(flatten)]
    pub summary: SetSummary,
}

/// Every version of a set as [`TrainingSets::list`] ranks them, best quality first (the
/// newer first on a tie). Cheap to clone: one state of the version index, shared.
#[derive(Debug, Clone)]
pub struct Listing(Arc<Ranked>);

/// The versions of one state of the index, ranked.
#[derive(Debug)]
struct Ranked(Vec<Listed>);

impl std::ops::Deref for Listing {
    type Target = [Listed];
    fn deref(&self) -> &[Listed] {
        &self.0.0
    }
}

/// A committed training-set version, its manifest read.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSetVersion {
    pub name: DatasetName,
    pub version: Version,
    pub author: UserName,
    pub created_at: Timestamp,
    /// The data files, in row order (the lineage's entity rows are not among them).
    pub files: Vec<FileEntry>,
    pub info: SetInfo,
}

impl TrainingSetVersion {
    /// `name@vN`: how the version is referred to everywhere.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// How to create a version.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The caller's metadata, kept as given (a JSON object or null).
    pub metadata: serde_json::Value,
    /// The label column, whose class balance is measured.
    pub label: Option<String>,
    /// The column of event times; by default `event_timestamp` when present.
    pub time_column: Option<String>,
    pub lineage: Lineage,
}

/// What a new version is made of, however its files were written.
struct SetParts {
    files: Vec<FileEntry>,
    rows: u64,
    quality: Quality,
    content_hash: String,
    time_column: Option<String>,
    /// The version a draft started from.
    parent: Option<Version>,
}

/// The entity rows' time column a historical request names by default.
const DEFAULT_TIME_COLUMN: &str = "event_timestamp";

/// Training-set versions of a workspace, created as `author`.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Float64Array, RecordBatch};
/// use trainstore_core::{Catalog, DatasetName, UserName};
/// use trainstore_core::object_store::memory::InMemory;
/// use trainstore_featurestore::training::{CreateOptions, Criteria, TrainingSets};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let catalog = Catalog::open(Arc::new(InMemory::new()), "memory://doc").await.unwrap();
/// let sets = TrainingSets::new(Arc::new(catalog), UserName::new("alice").unwrap());
/// let rows = RecordBatch::try_from_iter([(
///     "temperature",
///     Arc::new(Float64Array::from(vec![20.5, 21.0, 22.5])) as _,
/// )])
/// .unwrap();
/// let name = DatasetName::new("vibration").unwrap();
/// let v = sets.create_from_batches(&name, vec![rows], CreateOptions::default()).await.unwrap();
/// assert_eq!((v.id().as_str(), v.info.rows), ("vibration@v1", 3));
/// let best = sets.select_best(&name, &Criteria::default().min_data_size(2)).await.unwrap();
/// assert_eq!(best.version, v.version);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct TrainingSets {
    store: Arc<dyn VersionStore>,
    author: UserName,
    file_target: usize,
}

impl TrainingSets {
    pub fn new(store: Arc<dyn VersionStore>, author: UserName) -> Self {
        TrainingSets {
            store,
            author,
            file_target: files::FILE_TARGET,
        }
    }

    /// Closes a data file once its encoded size reaches about `bytes` (64 MiB by default):
    /// smaller files suit stores that read whole objects, larger ones fewer requests.
    pub fn with_file_target(mut self, bytes: usize) -> Self {
        self.file_target = bytes.max(1);
        self
    }

    /// The store the versions are kept in.
    pub fn store(&self) -> &Arc<dyn VersionStore> {
        &self.store
    }

    /// Creates a version of `name` from `batches` (all of `schema`), streaming them into
    /// Parquet files and measuring their quality on the way. Nothing is visible until the
    /// whole set is stored; on failure the files written are removed.
    pub async fn create(
        &self,
        name: &DatasetName,
        schema: SchemaRef,
        batches: RecordBatchStream,
        options: CreateOptions,
    ) -> Result<TrainingSetVersion> {
        self.store
            .authorize_write(name, &self.author, "create")
            .await?;
        if !(options.metadata.is_null() || options.metadata.is_object()) {
            return Err(Error::invalid(
                "metadata",
                options.metadata.to_string(),
                "must be a mapping of names to values",
            ));
        }
        let time_column = match &options.time_column {
            Some(c) => Some(c.clone()),
            None => schema
                .index_of(DEFAULT_TIME_COLUMN)
                .ok()
                .map(|_| DEFAULT_TIME_COLUMN.to_owned()),
        };
        let quality = QualityOptions {
            label: options.label.clone(),
            time_column: time_column.clone(),
            malformed_rate: options.lineage.malformed_rate,
            missing_rate: options.lineage.missing_rate,
        };
        let written = SetWriter::new(
            self.store.clone(),
            name.clone(),
            schema.clone(),
            self.file_target,
            quality,
        )?
        .write_all(batches)
        .await?;
        let quality = written.quality.finish(Timestamp::now());
        let committed = self
            .commit_set(
                name,
                &schema,
                SetParts {
                    files: written.files.clone(),
                    rows: written.rows,
                    quality,
                    content_hash: written.content_hash,
                    time_column,
                    parent: None,
                },
                options,
            )
            .await;
        if committed.is_err() {
            for f in &written.files {
                self.store.remove_unlisted_file(f).await;
            }
        }
        committed
    }

    /// Commits a version of `name` made of `parts`, records it in the audit log. Shared by
    /// [`Self::create`] and committing a draft.
    async fn commit_set(
        &self,
        name: &DatasetName,
        schema: &SchemaRef,
        parts: SetParts,
        options: CreateOptions,
    ) -> Result<TrainingSetVersion> {
        let info = SetInfo {
            format: SET_FORMAT,
            content_hash: parts.content_hash,
            file_target: self.file_target as u64,
            rows: parts.rows,
            schema: schema
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
            arrow_schema: files::schema_to_hex(schema)?,
            label: options.label,
            time_column: parts.time_column,
            lineage: Lineage {
                library_version: env!("CARGO_PKG_VERSION").to_owned(),
                ..options.lineage
            },
            metadata: options.metadata,
            quality: parts.quality,
        };
        let summary = SetSummary::of(&info);
        let mut new = NewVersion::new(self.author.clone());
        new.files = parts.files.clone();
        new.files.extend(info.lineage.entity_rows.clone());
        new.metadata = serde_json::to_value(&info).expect("set info serializes");
        new.summary = serde_json::to_value(&summary).expect("summary serializes");
        let manifest = self.store.commit(name, new).await?;
        let detail = match parts.parent {
            Some(parent) => format!("{} rows, from a draft on {parent}", info.rows),
            None => format!("{} rows", info.rows),
        };
        self.audit(name, "create", Some(manifest.version), detail)
            .await;
        Ok(TrainingSetVersion {
            name: name.clone(),
            version: manifest.version,
            author: manifest.author,
            created_at: manifest.created_at,
            files: parts.files,
            info,
        })
    }

    /// [`Self::create`] from batches in memory (at least one, all of one schema).
    pub async fn create_from_batches(
        &self,
        name: &DatasetName,
        batches: Vec<RecordBatch>,
        options: CreateOptions,
    ) -> Result<TrainingSetVersion> {
        let Some(first) = batches.first() else {
            return Err(Error::invalid(
                "training-set rows",
                "no batches",
                "give at least one batch (it may have no rows) so the schema is known",
            ));
        };
        let schema = first.schema();
        let stream = futures::stream::iter(batches.into_iter().map(Ok)).boxed();
        self.create(name, schema, stream, options).await
    }

    /// Builds a set from a historical request and creates it as a version of `name`: the
    /// point-in-time-correct values of `features` for `entity_rows`, by the registry's
    /// newest definitions. The lineage records the request whole (the entity rows are stored
    /// with the version, the registry version, what each view was read from), so
    /// the set can be rebuilt and checked against its hash.
    pub async fn create_from_features(
        &self,
        features: &FeatureStore,
        name: &DatasetName,
        entity_rows: &RecordBatch,
        refs: &[FeatureRef],
        historical: &HistoricalOptions,
        mut options: CreateOptions,
    ) -> Result<TrainingSetVersion> {
        self.store
            .authorize_write(name, &self.author, "create")
            .await?;
        let bounds = historical::entity_time_bounds(entity_rows, historical)?;
        let answer = answer_in_slices(features, None, entity_rows, refs, historical).await?;
        let stored = self.store_entity_rows(name, entity_rows).await?;
        options.time_column = options
            .time_column
            .or_else(|| historical.timestamp_column.clone());
        options.lineage = Lineage {
            source: "historical_features".into(),
            features: refs.iter().map(ToString::to_string).collect(),
            registry_version: answer.registry_version,
            sources: answer.sources,
            entity_rows: Some(stored.clone()),
            entity_count: Some(entity_rows.num_rows() as u64),
            request: Some(RequestOptions {
                full_feature_names: historical.full_feature_names,
                timestamp_column: historical.timestamp_column.clone(),
                engine: historical.engine.as_str().to_owned(),
            }),
            time_range: bounds.map(|(lo, hi)| {
                (
                    Timestamp::from_millis(lo.div_euclid(1_000_000)),
                    Timestamp::from_millis(hi.div_euclid(1_000_000)),
                )
            }),
            malformed_rate: answer.parse_rates.map(|r| r.0),
            missing_rate: answer.parse_rates.map(|r| r.1),
            ..options.lineage
        };
        let created = self
            .create(name, answer.schema, answer.batches, options)
            .await;
        if created.is_err() {
            self.store.remove_unlisted_file(&stored).await;
        }
        created
    }

    /// Stores `entity_rows` as a file for the lineage of a set about to be created from them,
    /// returning the lineage's record of them (file, count, hash).
    pub async fn store_entity_rows(
        &self,
        name: &DatasetName,
        entity_rows: &RecordBatch,
    ) -> Result<FileEntry> {
        let encode_error = |e: parquet::errors::ParquetError| Error::Internal {
            operation: "encode entity rows as Parquet".into(),
            reason: e.to_string(),
        };
        let mut buffer = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buffer, entity_rows.schema(), None)
            .map_err(encode_error)?;
        w.write(entity_rows).map_err(encode_error)?;
        w.close().map_err(encode_error)?;
        self.store
            .put_file(name, "entity-rows.parquet", buffer.into())
            .await
    }

    /// Every version of `name`, best quality first (the newer first on a tie).
    ///
    /// The ranking is built once per state of the version index and shared: listing again
    /// before the next commit or deletion costs the same with 10,000 versions as with 100.
    pub async fn list(&self, name: &DatasetName) -> Result<Listing> {
        self.authorize_read(name).await?;
        let index = self.store.summaries(name).await?;
        let ranked = index.view(|summaries| {
            let mut listed: Vec<Listed> = summaries
                .iter()
                .map(|s| listed(name, s))
                .collect::<Result<_>>()?;
            listed.sort_by(|a, b| {
                b.summary
                    .overall_score
                    .total_cmp(&a.summary.overall_score)
                    .then(b.version.cmp(&a.version))
            });
            Ok(Ranked(listed))
        })?;
        Ok(Listing(ranked))
    }

    /// The best version of `name` meeting `criteria`; [`Error::NotFound`] naming the criterion
    /// that excluded the most versions when none does.
    pub async fn select_best(
        &self,
        name: &DatasetName,
        criteria: &Criteria,
    ) -> Result<TrainingSetVersion> {
        let listed = self.list(name).await?;
        let names = if criteria.tags.is_empty() {
            BTreeMap::new()
        } else {
            self.names(name).await?
        };
        let best = select::select_best(name.as_str(), &listed, &names, criteria)?;
        self.get_version(name, best.version).await
    }

    /// Each version's tags and aliases (current positions).
    async fn names(&self, name: &DatasetName) -> Result<BTreeMap<Version, Vec<TagName>>> {
        let mut out: BTreeMap<Version, Vec<TagName>> = BTreeMap::new();
        for t in self.store.tags(name).await? {
            out.entry(t.version).or_default().push(t.tag);
        }
        for a in self.store.aliases_of(name).await? {
            out.entry(a.version).or_default().push(a.alias);
        }
        Ok(out)
    }

    /// The version `reference` (`latest`, `v3`, `3`, a tag or an alias) of `name`.
    pub async fn get(&self, name: &DatasetName, reference: &str) -> Result<TrainingSetVersion> {
        self.authorize_read(name).await?;
        let version = self.store.resolve(name, reference).await?;
        self.get_version(name, version).await
    }

    async fn get_version(
        &self,
        name: &DatasetName,
        version: Version,
    ) -> Result<TrainingSetVersion> {
        let manifest = self.store.get(name, version).await?;
        let info: SetInfo =
            serde_json::from_value(manifest.metadata.clone()).map_err(|e| Error::Corrupt {
                path: format!("{}/{name}@{version}", self.store.url()),
                reason: format!("not a training-set manifest: {e}"),
            })?;
        if info.format > SET_FORMAT {
            return Err(Error::Corrupt {
                path: format!("{}/{name}@{version}", self.store.url()),
                reason: format!(
                    "written in training-set format {}, this trainstore reads up to {SET_FORMAT}: upgrade",
                    info.format
                ),
            });
        }
        let entity_rows = info.lineage.entity_rows.as_ref().map(|f| f.path.as_str());
        Ok(TrainingSetVersion {
            name: name.clone(),
            version,
            author: manifest.author,
            created_at: manifest.created_at,
            files: manifest
                .files
                .into_iter()
                .filter(|f| Some(f.path.as_str()) != entity_rows)
                .collect(),
            info,
        })
    }

    /// Every row of `version`, in the order it was written; files are checked against their
    /// hashes the first time this process reads them.
    pub async fn read(
        &self,
        version: &TrainingSetVersion,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.authorize_read(&version.name).await?;
        let contents: Vec<_> = futures::stream::iter(version.files.iter().cloned())
            .map(|f| {
                let store = self.store.clone();
                async move {
                    let bytes = files::open_file(store, f.clone()).await?;
                    Ok::<_, Error>((f, bytes))
                }
            })
            .buffered(4)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || files::decode_checked(store.as_ref(), contents))
            .await
            .map_err(|e| Error::Internal {
                operation: "decode a training set".into(),
                reason: e.to_string(),
            })?
    }

    /// The rows of `version` as a stream, in the order they were written, a few thousand at
    /// a time and with only `columns` (every column when `None`): how a version larger than
    /// memory is read. Files are checked against their hashes as they are decoded; a stream
    /// that ends in an error (a file that does not match among them) is to be discarded
    /// whole.
    pub async fn scan(
        &self,
        version: &TrainingSetVersion,
        columns: Option<Vec<String>>,
    ) -> Result<RecordBatchStream> {
        self.authorize_read(&version.name).await?;
        Ok(files::scan(
            self.store.clone(),
            version.files.clone(),
            columns,
            version.id(),
        ))
    }

    /// Tags `reference` of `name` as `tag`, once and for all.
    pub async fn tag(
        &self,
        name: &DatasetName,
        reference: &str,
        tag: &TagName,
    ) -> Result<TagEntry> {
        self.store
            .authorize_write(name, &self.author, "tag")
            .await?;
        let version = self.store.resolve(name, reference).await?;
        let entry = self
            .store
            .create_tag(name, tag, version, &self.author)
            .await?;
        self.audit(name, "tag", Some(version), format!("tag {tag}"))
            .await;
        Ok(entry)
    }

    /// Points alias `alias` of `name` at `reference`, keeping its history.
    pub async fn alias(
        &self,
        name: &DatasetName,
        reference: &str,
        alias: &TagName,
    ) -> Result<AliasEntry> {
        self.store
            .authorize_write(name, &self.author, "alias")
            .await?;
        let version = self.store.resolve(name, reference).await?;
        let entry = self
            .store
            .set_alias(name, alias, version, &self.author)
            .await?;
        self.audit(name, "alias", Some(version), format!("alias {alias}"))
            .await;
        Ok(entry)
    }

    /// What differs between versions `before` and `after` of this workspace's sets: schema,
    /// rows (as multisets) and per-column statistics.
    pub async fn diff(
        &self,
        before: &TrainingSetVersion,
        after: &TrainingSetVersion,
    ) -> Result<SetDiff> {
        compare::diff(self, before, self, after).await
    }

    /// How far each numeric and list feature moved from `baseline` to `current` (PSI and
    /// two-sample KS; see [`drift`]).
    pub async fn drift(
        &self,
        baseline: &TrainingSetVersion,
        current: &TrainingSetVersion,
        options: &DriftOptions,
    ) -> Result<Vec<FeatureDrift>> {
        let (_, base) = self.read(baseline).await?;
        let (_, cur) = self.read(current).await?;
        let options = options.clone();
        tokio::task::spawn_blocking(move || drift::drift(&base, &cur, &options))
            .await
            .map_err(|e| Error::Internal {
                operation: "measure drift".into(),
                reason: e.to_string(),
            })?
    }

    /// Rebuilds `version` from its lineage (its stored entity rows, by the registry version
    /// it was built with, through `features`) and checks the rebuilt set's content hash
    /// against the recorded one; when they differ, says what differs. The rebuilt set is
    /// held in memory and not kept. Only sets built from a historical request can be
    /// rebuilt.
    pub async fn reproduce(
        &self,
        features: &FeatureStore,
        version: &TrainingSetVersion,
    ) -> Result<Reproduction> {
        self.authorize_read(&version.name).await?;
        let lineage = &version.info.lineage;
        let (Some(stored), Some(request)) = (&lineage.entity_rows, &lineage.request) else {
            return Err(Error::NotSupported {
                operation: "rebuilding a set from rows given by the caller (only sets built from a historical request can be)",
                implementer: version.id(),
            });
        };
        let bytes = self.store.read_file(stored).await?;
        let entity_rows = decode_entity_rows(stored, bytes)?;
        let refs = lineage
            .features
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<FeatureRef>>>()?;
        let historical = HistoricalOptions {
            full_feature_names: request.full_feature_names,
            timestamp_column: request.timestamp_column.clone(),
            engine: Engine::parse(&request.engine)?,
        };
        let answer = answer_in_slices(
            features,
            lineage.registry_version,
            &entity_rows,
            &refs,
            &historical,
        )
        .await?;
        let scratch = Catalog::open(Arc::new(InMemory::new()), "memory://rebuilt").await?;
        let rebuilt_sets = TrainingSets::new(Arc::new(scratch), self.author.clone())
            .with_file_target(usize::try_from(version.info.file_target).unwrap_or(usize::MAX));
        let options = CreateOptions {
            label: version.info.label.clone(),
            time_column: version.info.time_column.clone(),
            lineage: Lineage {
                malformed_rate: answer.parse_rates.map(|r| r.0),
                missing_rate: answer.parse_rates.map(|r| r.1),
                ..Lineage::default()
            },
            ..CreateOptions::default()
        };
        let rebuilt = rebuilt_sets
            .create(&version.name, answer.schema, answer.batches, options)
            .await?;
        let matches = rebuilt.info.content_hash == version.info.content_hash;
        let differences = if matches {
            None
        } else {
            Some(compare::diff(self, version, &rebuilt_sets, &rebuilt).await?)
        };
        Ok(Reproduction {
            version: version.id(),
            matches,
            recorded_hash: version.info.content_hash.clone(),
            rebuilt_hash: rebuilt.info.content_hash,
            differences,
        })
    }

    /// Checks every version (files re-read and hashed), tag and alias of every set, and
    /// lists orphaned files older than `grace`; see [`VersionStore::fsck`].
    pub async fn fsck(&self, grace: Duration, progress: &dyn Progress) -> Result<FsckReport> {
        self.store.fsck(grace, progress).await
    }

    /// Deletes data files no version lists, older than `grace`, unless `dry_run`; see
    /// [`VersionStore::gc`].
    pub async fn gc(&self, grace: Duration, dry_run: bool) -> Result<Vec<UnlistedFile>> {
        self.store.gc(grace, dry_run).await
    }

    /// Checks that this user may read `name`.
    async fn authorize_read(&self, name: &DatasetName) -> Result<()> {
        self.store
            .authorize(name, &self.author, Permission::Read, "read")
            .await
    }

    /// Records in `name`'s audit log that this user did `action`.
    async fn audit(
        &self,
        name: &DatasetName,
        action: &str,
        version: Option<Version>,
        detail: String,
    ) {
        self.store
            .record_done(name, &self.author, action, version, detail)
            .await;
    }

    /// The user this handle acts as.
    pub fn user(&self) -> &UserName {
        &self.author
    }

    /// The names of every training set with at least one version.
    pub async fn names_of_sets(&self) -> Result<Vec<DatasetName>> {
        self.store.items().await
    }
}

fn listed(name: &DatasetName, s: &VersionSummary) -> Result<Listed> {
    let summary = SetSummary::deserialize(&s.summary).map_err(|e| Error::Corrupt {
        path: format!("{name}@{}", s.version),
        reason: format!("its index summary is not a training set's: {e}"),
    })?;
    Ok(Listed {
        version: s.version,
        author: s.author.clone(),
        created_at: s.created_at,
        bytes: s.bytes,
        summary,
    })
}

/// How many rows of a historical answer are gathered at a time when it streams into a set:
/// the request is joined once, and its answer never held whole.
const ANSWER_SLICE_ROWS: usize = files::ROW_GROUP_ROWS;

/// A historical request's answer as a stream of slices, by one registry version; what each
/// view was read from and the snapshot parser's rates, known once the join is done.
struct StreamedAnswer {
    registry_version: Option<Version>,
    sources: serde_json::Value,
    parse_rates: Option<(f64, f64)>,
    schema: SchemaRef,
    batches: RecordBatchStream,
}

async fn answer_in_slices(
    features: &FeatureStore,
    registry_version: Option<Version>,
    entity_rows: &RecordBatch,
    refs: &[FeatureRef],
    historical: &HistoricalOptions,
) -> Result<StreamedAnswer> {
    let (registry_version, answer) = features
        .historical_answer_at(registry_version, entity_rows, refs, historical)
        .await?;
    let first = answer.slice(0..answer.rows().min(ANSWER_SLICE_ROWS))?;
    let metadata = first.schema().metadata().clone();
    let sources = metadata
        .get(SOURCES_METADATA)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let parse_rates = metadata
        .get(PARSE_COUNTS_METADATA)
        .and_then(|c| serde_json::from_str::<ParseCounts>(c).ok())
        .and_then(|c| c.rates());
    // Where the rows were read from goes into the lineage, not the data: a rebuild that
    // reads them elsewhere (the offline store, once ingested) is still the same set.
    let first = without_schema_metadata(first)?;
    let schema = first.schema();
    let answer = Arc::new(answer);
    let rows = answer.rows();
    let rest = futures::stream::iter((ANSWER_SLICE_ROWS..rows).step_by(ANSWER_SLICE_ROWS)).then(
        move |start| {
            let answer = answer.clone();
            async move {
                let end = (start + ANSWER_SLICE_ROWS).min(rows);
                let slice = tokio::task::spawn_blocking(move || answer.slice(start..end))
                    .await
                    .map_err(|e| Error::Internal {
                        operation: "gather a historical answer".into(),
                        reason: e.to_string(),
                    })??;
                without_schema_metadata(slice)
            }
        },
    );
    Ok(StreamedAnswer {
        registry_version,
        sources,
        parse_rates,
        schema,
        batches: futures::stream::once(async { Ok(first) })
            .chain(rest)
            .boxed(),
    })
}

/// Entity rows stored with a version's lineage, decoded.
fn decode_entity_rows(entry: &FileEntry, bytes: bytes::Bytes) -> Result<RecordBatch> {
    let corrupt = |e: String| Error::Corrupt {
        path: entry.path.clone(),
        reason: format!("stored entity rows unreadable: {e}"),
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| corrupt(e.to_string()))?;
    let schema = reader.schema().clone();
    let batches = reader
        .build()
        .map_err(|e| corrupt(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// `batch` without schema-level metadata (a historical answer's note of where its rows were
/// read from), which would otherwise be written into the data files.
fn without_schema_metadata(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = Arc::new(arrow::datatypes::Schema::new(
        batch.schema().fields().clone(),
    ));
    Ok(RecordBatch::try_new(schema, batch.columns().to_vec())?)
}
