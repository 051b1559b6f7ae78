//! Models in a workspace: trained on its training-set versions, kept in its model registry
//! (a catalog of its own under `models/`), with the training set they came from as lineage.
//!
//! ```no_run
//! # async fn demo(ws: trainstore::Workspace) -> trainstore::Result<()> {
//! use trainstore::core::DatasetName;
//! use trainstore::models::TrainRequest;
//! use trainstore::train::{FeatureShape, Layout, Task, WindowFeature};
//!
//! let set = ws.training_sets().get(&DatasetName::new("vibration")?, "latest").await?;
//! let request = TrainRequest::new(Layout {
//!     keys: vec!["uuid".into(), "nodeId".into()],
//!     time: "event_timestamp".into(),
//!     features: vec![WindowFeature { name: "meanLf".into(), shape: FeatureShape::Scalar }],
//!     task: Task::Forecast,
//! });
//! let model = ws.models().train(&DatasetName::new("vibration-model")?, &set, &request).await?;
//! println!("{} validation loss {:?}", model.id(), model.card.validation_loss());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use futures::TryStreamExt;
use serde::Serialize;
use trainstore_core::{
    DatasetName, Error, ProgressRef, RecordBatchStream, Result, TagName, Trainer, TrainingRows,
    TrainingRun,
};
use trainstore_featurestore::training::{TrainingSetVersion, TrainingSets};
use trainstore_featurestore::{FeatureStore, TtlPolicy};
pub use trainstore_train::TrainRequest;
use trainstore_train::{
    Cpu, Dataset, Forecast, ForecastReport, Layout, ModelRegistry, ModelVersion, Predictor,
    SeriesTrainer, SeriesTransformer, SplitSpec, Weights, WindowRows, WindowSpec, backtest,
    evaluate,
};

/// Rows a streamed forecast holds before it keeps only each entity's latest window.
const STREAM_HOLD_ROWS: usize = 1 << 20;

/// The columns of `batch` a forecast reads (the layout's keys, time and features), with
/// `time_column` renamed to the layout's time column.
fn model_columns(
    batch: &RecordBatch,
    layout: &Layout,
    time_column: Option<&str>,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let wanted = layout
        .keys
        .iter()
        .map(|k| (k.as_str(), k.as_str()))
        .chain(std::iter::once((
            time_column.unwrap_or(&layout.time),
            layout.time.as_str(),
        )))
        .chain(
            layout
                .features
                .iter()
                .map(|f| (f.name.as_str(), f.name.as_str())),
        );
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (from, to) in wanted {
        let index = schema.index_of(from).map_err(|_| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            Error::invalid(
                "forecast rows",
                from,
                format!(
                    "a column the model reads is missing; the rows have: {}",
                    names.join(", ")
                ),
            )
        })?;
        let field = schema.field(index);
        fields.push(field.clone().with_name(to));
        columns.push(batch.column(index).clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

/// Each entity's `keep` latest rows of `batches` (all of the same schema), by the layout's
/// keys and time.
fn latest_rows(batches: &[RecordBatch], layout: &Layout, keep: usize) -> Result<RecordBatch> {
    use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
    let schema = batches[0].schema();
    let all = arrow::compute::concat_batches(&schema, batches)?;
    let column = |name: &str| all.column(schema.index_of(name).expect("projected"));
    let sort: Vec<SortColumn> = layout
        .keys
        .iter()
        .chain(std::iter::once(&layout.time))
        .map(|name| SortColumn {
            values: column(name).clone(),
            options: None,
        })
        .collect();
    let sorted = take_record_batch(&all, &lexsort_to_indices(&sort, None)?)?;
    let keys: Vec<_> = layout
        .keys
        .iter()
        .map(|k| {
            sorted
                .column(schema.index_of(k).expect("projected"))
                .clone()
        })
        .collect();
    let mut latest: Vec<u32> = Vec::new();
    for range in arrow::compute::partition(&keys)?.ranges() {
        let first = range.end.saturating_sub(keep).max(range.start);
        latest.extend((first..range.end).map(|i| i as u32));
    }
    Ok(take_record_batch(
        &sorted,
        &arrow::array::UInt32Array::from(latest),
    )?)
}

/// Two models' forecast errors on the same windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `name@vN` of the model compared against.
    pub champion: String,
    pub challenger: String,
    pub champion_errors: ForecastReport,
    pub challenger_errors: ForecastReport,
    /// One minus the mean, over the forecast features, of the challenger's RMSE divided by
    /// the champion's: above 0 when the challenger's errors are lower (0.1: 10 % lower on
    /// average), below 0 when higher. Each feature counts alike, whatever its units. For
    /// classifiers: one minus the challenger's error rate (1 - accuracy) divided by the
    /// champion's.
    pub improvement: f64,
}

impl Comparison {
    fn new(
        champion: String,
        challenger: String,
        champion_errors: ForecastReport,
        challenger_errors: ForecastReport,
    ) -> Self {
        let ratios: Vec<f64> = match (
            &champion_errors.classification,
            &challenger_errors.classification,
        ) {
            (Some(a), Some(b)) if a.accuracy < 1.0 => {
                vec![(1.0 - b.accuracy) / (1.0 - a.accuracy)]
            }
            (Some(_), _) | (_, Some(_)) => Vec::new(),
            (None, None) => champion_errors
                .features
                .iter()
                .zip(&challenger_errors.features)
                .filter(|(a, _)| a.rmse > 0.0)
                .map(|(a, b)| b.rmse / a.rmse)
                .collect(),
        };
        let improvement = if ratios.is_empty() {
            0.0
        } else {
            1.0 - ratios.iter().sum::<f64>() / ratios.len() as f64
        };
        Comparison {
            champion,
            challenger,
            champion_errors,
            challenger_errors,
            improvement,
        }
    }
}

/// What [`Models::promote_if_better`] decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub promoted: bool,
    pub reason: String,
    /// The comparison it decided by (none when nothing held the alias, or the challenger
    /// did already).
    pub comparison: Option<Comparison>,
}

/// The workspace's models: its [`ModelRegistry`] (get, list, promote, rollback, delete, load)
/// and training from its training sets.
#[derive(Clone)]
pub struct Models {
    registry: ModelRegistry,
    training_sets: TrainingSets,
    features: FeatureStore,
    /// What [`Self::train`] trains with: a [`SeriesTrainer`] on the CPU unless
    /// [`Self::with_trainer`] says otherwise.
    trainer: Arc<dyn Trainer>,
    progress: Option<ProgressRef>,
    /// The models loaded for forecasts, most recently used last.
    loaded: Arc<Mutex<Vec<Loaded>>>,
    resolved: Arc<Mutex<Resolved>>,
}

/// Versions as [`Models::resolve`] last read them (by name and reference), and when.
type Resolved = HashMap<(DatasetName, String), (Instant, ModelVersion)>;

/// How long [`Models::resolve`] trusts what it read: a promotion, or a permission changed,
/// is seen by a serving loop within this time.
pub const RESOLVED_FOR: Duration = Duration::from_secs(10);

/// A model loaded for forecasts.
#[derive(Debug, Clone)]
struct Loaded {
    /// `name@vN`.
    id: String,
    predictor: Arc<Predictor>,
}

/// How many loaded models [`Models::predictor`] keeps.
const LOADED_MODELS: usize = 8;

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("registry", &self.registry)
            .field("training_sets", &self.training_sets)
            .finish_non_exhaustive()
    }
}

impl Deref for Models {
    type Target = ModelRegistry;

    fn deref(&self) -> &ModelRegistry {
        &self.registry
    }
}

impl Models {
    pub(crate) fn new(
        registry: ModelRegistry,
        training_sets: TrainingSets,
        features: FeatureStore,
    ) -> Self {
        Models {
            registry,
            training_sets,
            features,
            trainer: Arc::new(SeriesTrainer::cpu()),
            progress: None,
            loaded: Arc::default(),
            resolved: Arc::default(),
        }
    }

    /// These models, trained by `trainer` (a [`SeriesTrainer`] on a CUDA GPU, say).
    pub fn with_trainer(mut self, trainer: Arc<dyn Trainer>) -> Self {
        self.trainer = trainer;
        self
    }

    /// These models, telling `progress` of every training epoch.
    pub fn with_progress(mut self, progress: ProgressRef) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The training sets models are trained on.
    pub fn training_sets(&self) -> &TrainingSets {
        &self.training_sets
    }

    /// Trains a model on training-set version `data` as `request` says (on the CPU, off the
    /// async workers) and registers it as a new version of `name`.
    ///
    /// With `request.base` (`name@ref` of a registered model), training starts from that
    /// model's weights and keeps its scaling; `request.incremental_ratio` adds, per new
    /// training window, that many windows drawn from the training sets the base was trained on
    /// (found through its lineage), so that it does not forget them. The base's features,
    /// windows and size must be the request's.
    pub async fn train(
        &self,
        name: &DatasetName,
        data: &TrainingSetVersion,
        request: &TrainRequest,
    ) -> Result<ModelVersion> {
        // Settings no run can have are refused before any row is read.
        request.validate()?;
        let base = match &request.base {
            Some(reference) => Some(self.base(reference, request).await?),
            None => None,
        };
        let columns = Some(request.layout.columns());
        let rows = TrainingRows {
            id: data.id(),
            rows: self.training_sets.scan(data, columns.clone()).await?,
        };
        let mut replay = Vec::new();
        for id in base.iter().flat_map(|(b, _)| &b.card.lineage.training_sets) {
            let (set, reference) = id.split_once('@').unwrap_or((id, "latest"));
            let version = self
                .training_sets
                .get(&DatasetName::new(set)?, reference)
                .await?;
            replay.push(TrainingRows {
                id: id.clone(),
                rows: self.training_sets.scan(&version, columns.clone()).await?,
            });
        }
        let base = match base {
            Some((version, weights)) => Some((version.id(), version.card.into_artifact(&weights)?)),
            None => None,
        };
        let settings = serde_json::to_value(request).map_err(|e| Error::Internal {
            operation: "describe a training request".into(),
            reason: e.to_string(),
        })?;
        let run = TrainingRun {
            data: rows,
            replay,
            base,
            settings,
            progress: self.progress.clone(),
        };
        let artifact = self.trainer.train(run).await?;
        self.registry.register(name, &artifact).await
    }

    /// How well `model` forecasts every window of training-set version `data` (cut and scaled
    /// as the model's own training rows were): errors per target feature, in its units.
    pub async fn evaluate(
        &self,
        model: &ModelVersion,
        data: &TrainingSetVersion,
    ) -> Result<ForecastReport> {
        self.evaluate_rows(model, data, model.card.windows).await
    }

    /// [`Self::evaluate`] on `data`, cut into windows as `windows` says.
    async fn evaluate_rows(
        &self,
        model: &ModelVersion,
        data: &TrainingSetVersion,
        windows: WindowSpec,
    ) -> Result<ForecastReport> {
        let rows = self.window_rows(data, &model.card.layout).await?;
        self.on_every_window(model, rows, windows, |model, windows, batch| {
            Ok(evaluate(model, windows, &windows.train, batch))
        })
        .await
    }

    /// Every window of training-set version `data`, cut and scaled as `model`'s training rows
    /// were, forecast beside what followed it: one row per window and forecast step, the
    /// keys, `as_of`, `step`, each forecast feature and its `_forecast`, and the window's
    /// `anomaly_score` (see [`trainstore_train::backtest`]).
    pub async fn backtest(
        &self,
        model: &ModelVersion,
        data: &TrainingSetVersion,
    ) -> Result<RecordBatch> {
        let rows = self.window_rows(data, &model.card.layout).await?;
        let windows = model.card.windows;
        self.on_every_window(model, rows, windows, |model, windows, batch| {
            backtest(model, windows, &windows.train, batch)
        })
        .await
    }

    /// The rows of training-set version `data` that windows of `layout` are made of,
    /// streamed from its files and gathered off the async workers: what is held is the
    /// windows' channels, not the version.
    async fn window_rows(&self, data: &TrainingSetVersion, layout: &Layout) -> Result<WindowRows> {
        let stream = self
            .training_sets
            .scan(data, Some(layout.columns()))
            .await?;
        let layout = layout.clone();
        tokio::task::spawn_blocking(move || WindowRows::gather(&layout, stream))
            .await
            .map_err(|e| Error::Internal {
                operation: "read a training set's rows".into(),
                reason: e.to_string(),
            })?
    }

    /// `work` on every window of `rows` (cut as `windows` says, scaled as `model`'s training
    /// rows were), given the loaded model and its batch size, off the async workers.
    async fn on_every_window<T: Send + 'static>(
        &self,
        model: &ModelVersion,
        rows: WindowRows,
        windows: WindowSpec,
        work: impl FnOnce(&SeriesTransformer<Cpu>, &Dataset, usize) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let weights = self.registry.load(model).await?;
        let card = model.card.clone();
        tokio::task::spawn_blocking(move || {
            let every_window = SplitSpec {
                validation: 0.0,
                test: 0.0,
            };
            let windows = Dataset::from_rows(rows, windows, every_window, Some(&card.normaliser))?;
            work(&weights, &windows, card.training.batch_size)
        })
        .await
        .map_err(|e| Error::Internal {
            operation: "run a model over every window".into(),
            reason: e.to_string(),
        })?
    }

    /// `champion` and `challenger` forecasting the same windows of training-set version
    /// `data` (cut as the champion's were): both must forecast the same features from
    /// windows of the same length.
    pub async fn compare(
        &self,
        champion: &ModelVersion,
        challenger: &ModelVersion,
        data: &TrainingSetVersion,
    ) -> Result<Comparison> {
        let (a, b) = (&champion.card, &challenger.card);
        let same_windows = a.layout.keys == b.layout.keys
            && a.layout.time == b.layout.time
            && a.layout.task == b.layout.task
            && a.layout.forecast_channels().iter().map(|f| &f.0).eq(b
                .layout
                .forecast_channels()
                .iter()
                .map(|f| &f.0))
            && (a.windows.length, a.windows.horizon) == (b.windows.length, b.windows.horizon);
        if !same_windows {
            return Err(Error::invalid(
                "comparison",
                format!("{} and {}", champion.id(), challenger.id()),
                "the two models forecast other features, learn other tasks or read other \
                 windows: their errors would not be measured on the same windows",
            ));
        }
        let windows = champion.card.windows;
        let champion_report = self.evaluate_rows(champion, data, windows).await?;
        let challenger_report = self.evaluate_rows(challenger, data, windows).await?;
        Ok(Comparison::new(
            champion.id(),
            challenger.id(),
            champion_report,
            challenger_report,
        ))
    }

    /// Points `alias` (the gate a pipeline passes: `champion`) of `challenger`'s model at
    /// `challenger` if nothing holds the alias yet, or if it forecasts training-set version
    /// `data` better than the version the alias names, by more than `min_improvement` (see
    /// [`Comparison::improvement`]).
    pub async fn promote_if_better(
        &self,
        challenger: &ModelVersion,
        data: &TrainingSetVersion,
        alias: &TagName,
        min_improvement: f64,
    ) -> Result<Gate> {
        if !min_improvement.is_finite() || min_improvement >= 1.0 {
            return Err(Error::invalid(
                "minimum improvement",
                min_improvement.to_string(),
                "a share of the champion's error, below 1",
            ));
        }
        let name = &challenger.name;
        let champion = match self.registry.get(name, alias.as_str()).await {
            Ok(champion) => champion,
            Err(Error::NotFound { .. }) => {
                let reference = challenger.version.to_string();
                self.registry.promote(name, &reference, alias).await?;
                return Ok(Gate {
                    promoted: true,
                    reason: format!("nothing was {alias} yet"),
                    comparison: None,
                });
            }
            Err(e) => return Err(e),
        };
        if champion.version == challenger.version {
            return Ok(Gate {
                promoted: false,
                reason: format!("{} is {alias} already", challenger.id()),
                comparison: None,
            });
        }
        let comparison = self.compare(&champion, challenger, data).await?;
        let better = comparison.improvement > min_improvement;
        if better {
            let reference = challenger.version.to_string();
            self.registry.promote(name, &reference, alias).await?;
        }
        Ok(Gate {
            promoted: better,
            reason: format!(
                "its errors are {:.1} % {} {}'s (promotion needs more than {:.1} % lower)",
                comparison.improvement.abs() * 100.0,
                if comparison.improvement >= 0.0 {
                    "lower than"
                } else {
                    "higher than"
                },
                champion.id(),
                min_improvement * 100.0,
            ),
            comparison: Some(comparison),
        })
    }

    /// The version `reference` (`latest`, `v3`, an alias such as `champion`) of `name`, as
    /// read from the registry at most [`RESOLVED_FOR`] ago: what a serving loop asks on every
    /// call, without reading the registry (and checking its permissions) every time.
    pub async fn resolve(&self, name: &DatasetName, reference: &str) -> Result<ModelVersion> {
        let key = (name.clone(), reference.to_owned());
        if let Some((at, version)) = self.resolved.lock().expect("resolved models").get(&key)
            && at.elapsed() < RESOLVED_FOR
        {
            return Ok(version.clone());
        }
        let version = self.registry.get(name, reference).await?;
        let mut resolved = self.resolved.lock().expect("resolved models");
        if resolved.len() >= 4 * LOADED_MODELS {
            resolved.retain(|_, (at, _)| at.elapsed() < RESOLVED_FOR);
        }
        resolved.insert(key, (Instant::now(), version.clone()));
        Ok(version)
    }

    /// `model` loaded for forecasts: kept, so that a serving loop loads each version once
    /// (the last few used stay loaded).
    pub async fn predictor(&self, model: &ModelVersion) -> Result<Arc<Predictor>> {
        Ok(self.loaded(model).await?.predictor)
    }

    async fn loaded(&self, model: &ModelVersion) -> Result<Loaded> {
        let id = model.id();
        let held = {
            let mut loaded = self.loaded.lock().expect("loaded models");
            let at = loaded
                .iter()
                .position(|l| l.id == id && l.predictor.card() == &model.card);
            at.map(|at| {
                let entry = loaded.remove(at);
                loaded.push(entry.clone());
                entry
            })
        };
        if let Some(held) = held {
            return Ok(held);
        }
        let entry = Loaded {
            id: id.clone(),
            predictor: Arc::new(Predictor::new(
                self.registry.load(model).await?,
                model.card.clone(),
            )),
        };
        let mut loaded = self.loaded.lock().expect("loaded models");
        loaded.retain(|l| l.id != id);
        if loaded.len() == LOADED_MODELS {
            loaded.remove(0);
        }
        loaded.push(entry.clone());
        Ok(entry)
    }

    /// `model`'s real-time forecast for each entity of `entity_rows` (join keys only): what
    /// follows its latest rows as the online store keeps them. The rows come from the one
    /// feature view that has the model's keys and features and keeps at least a window of
    /// rows per entity online (its `online_rows`). An entity row with no forecast (no or too
    /// few recent rows, or a gap among them) is counted in [`Forecast::skipped`]; the entity
    /// rows are taken to be distinct.
    pub async fn predict_online(
        &self,
        model: &ModelVersion,
        entity_rows: &RecordBatch,
    ) -> Result<Forecast> {
        let loaded = self.loaded(model).await?;
        let view = self.serving_view(model).await?;
        let recent = self
            .features
            .get_online_recent(&view, entity_rows, TtlPolicy::Enforce)
            .await?;
        // The window's time column has the training set's name.
        let time = &model.card.layout.time;
        let fields: Vec<_> = recent
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match i == model.card.layout.keys.len() {
                true => Arc::new(f.as_ref().clone().with_name(time)),
                false => f.clone(),
            })
            .collect();
        let recent = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(fields)),
            recent.columns().to_vec(),
        )?;
        let mut forecast = loaded.predictor.predict(&[recent])?;
        // Entities with no recent rows at all are not among the rows read: count them too.
        let forecast_entities = forecast.rows.num_rows() / model.card.windows.horizon.max(1);
        forecast.skipped = entity_rows.num_rows().saturating_sub(forecast_entities);
        Ok(forecast)
    }

    /// The feature view real-time forecasts of `model` read: the one whose join keys are the
    /// model's keys, whose features include the model's, and which keeps a window of rows
    /// per entity online.
    async fn serving_view(&self, model: &ModelVersion) -> Result<String> {
        let layout = &model.card.layout;
        // The registry as read in the last few seconds: a serving loop does not read it per call.
        let defs = self.features.registry().recent().await?;
        let mut keys = layout.keys.clone();
        keys.sort();
        let mut candidates = Vec::new();
        for view in defs.feature_views.iter().filter(|v| v.online) {
            let mut view_keys = defs.join_keys(view)?;
            view_keys.sort();
            let has = |name: &str| view.schema.iter().any(|f| f.name == name);
            if view_keys == keys && layout.features.iter().all(|f| has(&f.name)) {
                candidates.push(view);
            }
        }
        let window = model.card.windows.length;
        let serving: Vec<_> = candidates
            .iter()
            .filter(|v| v.online_rows >= window)
            .collect();
        match (&serving[..], &candidates[..]) {
            ([one], _) => Ok(one.name.to_string()),
            ([], []) => Err(Error::invalid(
                "model",
                model.id(),
                format!(
                    "no online feature view has its keys ({}) and all its features ({}): \
                     real-time forecasts read one view's recent rows",
                    layout.keys.join(", "),
                    layout
                        .features
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            ([], some) => Err(Error::invalid(
                "model",
                model.id(),
                format!(
                    "view {} has its features but keeps {} rows per entity online; its \
                     windows read {window}: set the view's online_rows to at least {window}, \
                     apply, and materialize again",
                    some[0].name, some[0].online_rows
                ),
            )),
            (many, _) => Err(Error::invalid(
                "model",
                model.id(),
                format!(
                    "views {} all serve its features: keep one view's online_rows at its \
                     window ({window}) and the others' below it",
                    many.iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// `model`'s forecast of what follows each entity's latest window in `rows` (the
    /// model's key, time and feature columns, in any order): one row per entity and forecast
    /// step, in the features' units.
    pub async fn predict(&self, model: &ModelVersion, rows: Vec<RecordBatch>) -> Result<Forecast> {
        let predictor = self.predictor(model).await?;
        tokio::task::spawn_blocking(move || predictor.predict(&rows))
            .await
            .map_err(|e| Error::Internal {
                operation: "forecast".into(),
                reason: e.to_string(),
            })?
    }

    /// [`Self::predict`] over rows arriving as a stream (a source's query, a table read a
    /// batch at a time): only each entity's latest window of rows is held, so the stream may
    /// be larger than memory. With `time_column`, that column of the rows is read as the
    /// model's time column (a snapshot source's `time`, for a model trained on a training
    /// set's `event_timestamp`).
    pub async fn predict_stream(
        &self,
        model: &ModelVersion,
        mut rows: RecordBatchStream,
        time_column: Option<&str>,
    ) -> Result<Forecast> {
        let layout = &model.card.layout;
        let keep = model.card.windows.length;
        let (mut held, mut count) = (Vec::new(), 0);
        while let Some(batch) = rows.try_next().await? {
            let batch = model_columns(&batch, layout, time_column)?;
            count += batch.num_rows();
            held.push(batch);
            if count > STREAM_HOLD_ROWS {
                let (full, layout) = (std::mem::take(&mut held), layout.clone());
                let latest = tokio::task::spawn_blocking(move || latest_rows(&full, &layout, keep))
                    .await
                    .map_err(|e| Error::Internal {
                        operation: "keep each entity's latest rows".into(),
                        reason: e.to_string(),
                    })??;
                count = latest.num_rows();
                held.push(latest);
            }
        }
        self.predict(model, held).await
    }

    /// [`Self::predict`] over the rows of training-set version `data`.
    pub async fn predict_version(
        &self,
        model: &ModelVersion,
        data: &TrainingSetVersion,
    ) -> Result<Forecast> {
        let columns = model.card.layout.columns();
        let rows = self.training_sets.scan(data, Some(columns)).await?;
        self.predict_stream(model, rows, None).await
    }

    /// The model `reference` (`name@ref`) names and its weights, refused unless it reads the
    /// same features, windows and size as `request`.
    async fn base(
        &self,
        reference: &str,
        request: &TrainRequest,
    ) -> Result<(ModelVersion, Weights)> {
        let (name, version) = reference.split_once('@').unwrap_or((reference, "latest"));
        let base = self.registry.get(&DatasetName::new(name)?, version).await?;
        let card = &base.card;
        let differs = [
            (
                card.layout != request.layout,
                "features, keys or time column",
            ),
            (card.windows != request.windows, "windows"),
            (card.model != request.model, "model size"),
        ];
        if let Some((_, what)) = differs.iter().find(|(differs, _)| *differs) {
            return Err(Error::invalid(
                "base model",
                base.id(),
                format!(
                    "has other {what} than the request: a model trained further keeps its base's"
                ),
            ));
        }
        let weights = self.registry.weights(&base).await?;
        Ok((base, weights))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        AsArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};
    use trainstore_train::{FeatureShape, Layout, Task, WindowFeature};

    use super::latest_rows;

    /// Each entity's latest rows, in time order, whatever order and batches they came in.
    #[test]
    fn latest_rows_keeps_each_entitys_newest_in_time_order() {
        let layout = Layout {
            keys: vec!["uuid".into()],
            time: "t".into(),
            features: vec![WindowFeature {
                name: "x".into(),
                shape: FeatureShape::Scalar,
            }],
            task: Task::Forecast,
        };
        let batch = |uuids: Vec<&str>, times: Vec<i64>| {
            let x: Vec<f64> = times.iter().map(|&t| t as f64).collect();
            RecordBatch::try_from_iter([
                ("uuid", Arc::new(StringArray::from(uuids)) as _),
                ("t", Arc::new(TimestampMillisecondArray::from(times)) as _),
                ("x", Arc::new(Float64Array::from(x)) as _),
            ])
            .unwrap()
        };
        let batches = [
            batch(vec!["b", "a", "a"], vec![5, 3, 1]),
            batch(vec!["a", "b", "a"], vec![4, 2, 2]),
        ];
        let latest = latest_rows(&batches, &layout, 2).unwrap();
        let uuids: Vec<&str> = latest
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        let times: Vec<i64> = latest
            .column(1)
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec();
        assert_eq!(uuids, ["a", "a", "b", "b"]);
        assert_eq!(times, [3, 4, 2, 5]);
        assert_eq!(latest.column(2).as_primitive::<Float64Type>().value(0), 3.0);
    }
}
