//! The feature store of a workspace: plan and apply definitions, read them back, and build
//! point-in-time-correct training data from them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use tokio::sync::OnceCell;
use trainstore_core::{
    Catalog, DataSourceRef, Error, NoProgress, Operation, ProgressRef, Result, TimeRange,
    Timestamp, UserName, Version,
};

use crate::definitions::{
    Definition, Definitions, FeatureRef, FeatureView, Field, Name, ValueType,
};
use crate::derived::Derivation;
use crate::historical::{
    self, Engine, HistoricalOptions, JoinSource, ViewRequest, ViewSelection, group_by_view,
};
use crate::offline::{Ingested, OfflineStore};
use crate::online::{self, AnswerShapes, Materialized, OnlineStoreRef, TtlPolicy};
use crate::registry::{Change, Plan, Registry, RegistryVersion};
use crate::sources::{SourceColumns, SourceEnv};

/// The schema metadata key of a historical answer naming, per view, what its rows were read
/// from: a JSON object of view name to description (`offline store offline-<view>@v<N>` for
/// the offline store).
pub const SOURCES_METADATA: &str = "trainstore.sources";

/// The schema metadata key of a historical answer's snapshot parse counts (JSON
/// [`trainstore_core::ParseCounts`], summed over the views read through a snapshot parser;
/// absent when none was).
pub const PARSE_COUNTS_METADATA: &str = "trainstore.parse_counts";

/// The outcome of an apply: the plan carried out, and the new registry version (`None` when
/// nothing changed).
#[derive(Debug, Clone)]
pub struct Applied {
    pub plan: Plan,
    pub version: Option<Version>,
}

/// How to answer an online read.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnlineOptions {
    /// Name feature columns `<view>__<feature>` instead of `<feature>`.
    pub full_feature_names: bool,
    /// Whether values older than their view's TTL are returned.
    pub ttl: TtlPolicy,
    /// Adds a `<view>__status` column after each view's features saying why its values are
    /// what they are: `present`, `expired` (older than the TTL: read as null), `unknown key`
    /// (nothing stored for the key) or `not materialized` (see [`online::status`]).
    pub with_status: bool,
}

/// Which online store to use, opened on first use.
#[derive(Debug, Clone)]
struct OnlineSpec {
    url: String,
    namespace: String,
    opened: Arc<OnceCell<OnlineStoreRef>>,
}

/// How an online request is answered (which views, what is derived after), for the registry
/// state it was planned in.
#[derive(Debug)]
struct CachedOnlinePlan {
    defs: Arc<Definitions>,
    features: Vec<FeatureRef>,
    plan: Arc<OnlinePlan>,
}

#[derive(Debug)]
struct OnlinePlan {
    derivation: Derivation,
    selections: Vec<ViewSelection>,
    shapes: AnswerShapes,
}

/// A historical request's answer, joined but not yet gathered; see
/// [`FeatureStore::historical_answer_at`].
pub struct HistoricalAnswer {
    joined: historical::Joined,
    derivation: Derivation,
    full_feature_names: bool,
    /// [`SOURCES_METADATA`] and [`PARSE_COUNTS_METADATA`], set on every slice's schema.
    metadata: HashMap<String, String>,
}

impl HistoricalAnswer {
    /// How many rows the answer has: one per entity row.
    pub fn rows(&self) -> usize {
        self.joined.rows()
    }

    /// The answer's rows for entity rows `range`, on-demand features included.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<RecordBatch> {
        let fetched = self.joined.slice(range)?;
        let answer = self.derivation.finish(fetched, self.full_feature_names)?;
        let mut metadata = answer.schema().metadata().clone();
        metadata.extend(self.metadata.clone());
        let schema = answer.schema().as_ref().clone().with_metadata(metadata);
        Ok(answer.with_schema(Arc::new(schema))?)
    }
}

/// Entities, feature views and services of one workspace, and retrieval over them.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    registry: Registry,
    env: SourceEnv,
    author: UserName,
    online: Option<OnlineSpec>,
    /// The last online request's views: a serving loop asks for the same features on every
    /// call, and resolving them cost as much as the lookup.
    last_online: Arc<Mutex<Option<CachedOnlinePlan>>>,
    progress: ProgressSink,
}

/// Where long operations (historical joins, materialization, ingest) report how far they are.
#[derive(Clone)]
struct ProgressSink(ProgressRef);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

impl FeatureStore {
    /// A feature store keeping its registry in `catalog`, opening sources through `env`,
    /// recording `author` on every change.
    pub fn new(catalog: Catalog, env: SourceEnv, author: UserName) -> Self {
        FeatureStore {
            registry: Registry::new(catalog),
            env,
            author,
            online: None,
            last_online: Arc::default(),
            progress: ProgressSink(Arc::new(NoProgress)),
        }
    }

    /// Reports the progress of historical joins (source rows read), materialization and
    /// ingest (source rows read, per view) to `progress`.
    pub fn with_progress(mut self, progress: ProgressRef) -> Self {
        self.progress = ProgressSink(progress);
        self
    }

    /// Uses the online store at `url`: `redis://host:port/db` (keys under `namespace`), or a
    /// local file path for the embedded store. Opened on first use.
    pub fn with_online_store(
        mut self,
        url: impl Into<String>,
        namespace: impl Into<String>,
    ) -> Self {
        self.online = Some(OnlineSpec {
            url: url.into(),
            namespace: namespace.into(),
            opened: Arc::new(OnceCell::new()),
        });
        self
    }

    /// The online store, opened now if it was not yet.
    pub async fn online_store(&self) -> Result<OnlineStoreRef> {
        let spec = self.online.as_ref().ok_or_else(|| Error::Config {
            key: "online store".into(),
            reason: "this feature store has none; the embedded one needs a workspace on a \
                     local disk, otherwise configure Redis"
                .into(),
        })?;
        spec.opened
            .get_or_try_init(|| online::open_online_store(&spec.url, &spec.namespace))
            .await
            .cloned()
    }

    /// The registry behind this store.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What applying `definitions` would change. Views new or changed, and views of entities
    /// whose join keys changed, are checked against their source's real columns, and an empty
    /// schema is filled from the source.
    pub async fn plan(&self, definitions: Vec<Definition>) -> Result<Plan> {
        let definitions = definitions
            .into_iter()
            .map(with_absolute_paths)
            .collect::<Result<Vec<_>>>()?;
        let (base, current) = self.registry.current().await?;
        let mut plan = Plan::new(base, &current, definitions)?;
        let changed = |kind: &str| -> Vec<Name> {
            plan.changes
                .iter()
                .filter(|c| c.kind == kind && c.change != Change::Unchanged)
                .map(|c| c.name.clone())
                .collect()
        };
        let (views, entities) = (changed("feature view"), changed("entity"));
        let to_check: Vec<Name> = plan
            .result
            .feature_views
            .iter()
            .filter(|v| views.contains(&v.name) || v.entities.iter().any(|e| entities.contains(e)))
            .map(|v| v.name.clone())
            .collect();
        for name in to_check {
            let keys = plan.result.join_keys(
                plan.result
                    .feature_view(name.as_str())
                    .expect("planned view"),
            )?;
            let view = plan
                .result
                .feature_views
                .iter_mut()
                .find(|v| v.name == name)
                .expect("planned view");
            self.check_against_source(view, &keys).await?;
        }
        // Filling schemas may have changed what services can resolve.
        plan.result.validate()?;
        Ok(plan)
    }

    /// Applies `definitions` (adding or replacing by name) as one new registry version. When
    /// someone else applies in between, the apply is planned again on their result.
    pub async fn apply(&self, definitions: Vec<Definition>) -> Result<Applied> {
        self.registry
            .catalog()
            .retry_conflicts(|| async {
                let plan = self.plan(definitions.clone()).await?;
                if plan.is_noop() {
                    return Ok(Applied {
                        plan,
                        version: None,
                    });
                }
                let version = self
                    .registry
                    .commit(plan.base, &plan.result, plan.summary(), &self.author)
                    .await?;
                tracing::info!(%version, summary = %plan.summary(), "feature definitions applied");
                Ok(Applied {
                    plan,
                    version: Some(version),
                })
            })
            .await
    }

    /// Removes the definitions named `names` (entities, feature views, on-demand views,
    /// services) as one new registry version. Refused, changing nothing, when a name is not
    /// defined or when what is left still refers to a removed definition (a service to a
    /// view, say: remove both at once). What a removed view materialized stays in the online
    /// store, unread.
    pub async fn remove(&self, names: &[Name]) -> Result<Version> {
        self.registry
            .catalog()
            .retry_conflicts(|| async {
                let (base, mut defs) = self.registry.current().await?;
                let count = |d: &Definitions| {
                    d.entities.len()
                        + d.feature_views.len()
                        + d.on_demand_feature_views.len()
                        + d.feature_services.len()
                };
                for name in names {
                    let before = count(&defs);
                    defs.entities.retain(|d| d.name != *name);
                    defs.feature_views.retain(|d| d.name != *name);
                    defs.on_demand_feature_views.retain(|d| d.name != *name);
                    defs.feature_services.retain(|d| d.name != *name);
                    if count(&defs) == before {
                        return Err(Error::NotFound {
                            what: "definition",
                            name: name.to_string(),
                        });
                    }
                }
                defs.validate()?;
                let summary = names
                    .iter()
                    .map(|n| format!("- {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.registry
                    .commit(base, &defs, summary, &self.author)
                    .await
            })
            .await
    }

    /// The current definitions.
    pub async fn definitions(&self) -> Result<Definitions> {
        Ok(self.registry.current().await?.1)
    }

    /// Every registry version, oldest first.
    pub async fn history(&self) -> Result<Vec<RegistryVersion>> {
        self.registry.history().await
    }

    /// Makes the definitions of `version` current again, as a new version.
    pub async fn rollback(&self, version: Version) -> Result<Version> {
        let old = self.registry.at(version).await?;
        self.registry
            .catalog()
            .retry_conflicts(|| async {
                let base = self.registry.latest_version().await?;
                self.registry
                    .commit(base, &old, format!("rollback to {version}"), &self.author)
                    .await
            })
            .await
    }

    /// Point-in-time-correct values of `features` for each entity row (see
    /// [`historical::get_historical_features`]).
    pub async fn get_historical_features(
        &self,
        entity_rows: &RecordBatch,
        features: &[FeatureRef],
        options: &HistoricalOptions,
    ) -> Result<RecordBatch> {
        let defs = self.registry.recent().await?;
        self.historical(&defs, entity_rows, features, options).await
    }

    /// Like [`Self::get_historical_features`], by the definitions of registry `version`
    /// (`None`: the newest, read now); also returns the registry version that answered, for
    /// a training set's lineage and for rebuilding one from it.
    pub async fn get_historical_features_at(
        &self,
        version: Option<Version>,
        entity_rows: &RecordBatch,
        features: &[FeatureRef],
        options: &HistoricalOptions,
    ) -> Result<(Option<Version>, RecordBatch)> {
        let (version, answer) = self
            .historical_answer_at(version, entity_rows, features, options)
            .await?;
        Ok((version, answer.slice(0..answer.rows())?))
    }

    /// Like [`Self::get_historical_features_at`], the answer not yet gathered: it is produced
    /// a slice of entity rows at a time ([`HistoricalAnswer::slice`]), so that a large answer
    /// can be streamed (into a training set) without ever being held whole.
    pub async fn historical_answer_at(
        &self,
        version: Option<Version>,
        entity_rows: &RecordBatch,
        features: &[FeatureRef],
        options: &HistoricalOptions,
    ) -> Result<(Option<Version>, HistoricalAnswer)> {
        let (version, defs) = match version {
            Some(v) => (Some(v), self.registry.at(v).await?),
            None => self.registry.current().await?,
        };
        let answer = self
            .historical_answer(&defs, entity_rows, features, options)
            .await?;
        Ok((version, answer))
    }

    async fn historical(
        &self,
        defs: &Definitions,
        entity_rows: &RecordBatch,
        features: &[FeatureRef],
        options: &HistoricalOptions,
    ) -> Result<RecordBatch> {
        let answer = self
            .historical_answer(defs, entity_rows, features, options)
            .await?;
        answer.slice(0..answer.rows())
    }

    async fn historical_answer(
        &self,
        defs: &Definitions,
        entity_rows: &RecordBatch,
        features: &[FeatureRef],
        options: &HistoricalOptions,
    ) -> Result<HistoricalAnswer> {
        let derivation = Derivation::plan(defs, features)?;
        let bounds = match options.engine {
            Engine::InProcess => historical::entity_time_bounds(entity_rows, options)?,
            Engine::Pushdown => None,
        };
        let mut views = Vec::new();
        for selection in group_by_view(defs, derivation.fetch())? {
            let source = match options.engine {
                Engine::InProcess => {
                    let needed = historical::needed_span(bounds, &selection.view)?;
                    let offline = self.offline().covering(&selection, needed).await?;
                    match offline {
                        Some(segments) => JoinSource::Offline(segments),
                        None => JoinSource::Scan(self.env.open(&selection.view).await?),
                    }
                }
                Engine::Pushdown => {
                    JoinSource::Pushdown(self.env.open_pushdown(&selection.view).await?)
                }
            };
            views.push(ViewRequest { selection, source });
        }
        let sources: serde_json::Map<String, serde_json::Value> = views
            .iter()
            .map(|v| {
                let read = v.source.data_source().describe();
                (v.selection.view.name.to_string(), read.into())
            })
            .collect();
        let read: Vec<DataSourceRef> = views.iter().map(|v| v.source.data_source()).collect();
        let joined = historical::join(entity_rows, views, options, &self.progress.0).await?;
        let parsed = read
            .iter()
            .filter_map(|s| s.parse_counts())
            .reduce(|a, b| a + b);
        // Where each view's rows came from (the offline store's version, or the source), so a
        // training set built from the answer can name the exact data behind it.
        let mut metadata = HashMap::new();
        metadata.insert(
            SOURCES_METADATA.to_owned(),
            serde_json::Value::Object(sources).to_string(),
        );
        if let Some(counts) = parsed {
            metadata.insert(
                PARSE_COUNTS_METADATA.to_owned(),
                serde_json::to_string(&counts).expect("counts serialize"),
            );
        }
        Ok(HistoricalAnswer {
            joined,
            derivation,
            full_feature_names: options.full_feature_names,
            metadata,
        })
    }

    fn offline(&self) -> OfflineStore {
        OfflineStore::new(self.registry.catalog().clone())
    }

    /// Copies `view`'s rows with event times in `[start, end]` (both included) into the
    /// workspace's offline store, sorted for the join; historical requests the store covers
    /// are then answered from it. A range already ingested, in whole or part, is refused.
    pub async fn ingest(&self, view: &Name, start: Timestamp, end: Timestamp) -> Result<Ingested> {
        let defs = self.registry.recent().await?;
        let view = defs
            .feature_view(view.as_str())
            .ok_or_else(|| Error::NotFound {
                what: "feature view",
                name: view.to_string(),
            })?;
        let selection = ViewSelection {
            view: view.clone(),
            join_keys: defs.join_keys(view)?,
            features: view.schema.clone(),
        };
        let range = TimeRange::new(start, end.next()?)?;
        let source = self.env.open(view).await?;
        self.offline()
            .ingest(&selection, &source, range, &self.author, &*self.progress.0)
            .await
    }

    /// Writes each entity's latest row with an event time in `[start, end]` (both included,
    /// as Feast does) of every online view, or of `views`, into the online store.
    pub async fn materialize(
        &self,
        start: Timestamp,
        end: Timestamp,
        views: Option<&[Name]>,
    ) -> Result<Vec<Materialized>> {
        let range = TimeRange::new(start, end.next()?)?;
        self.materialize_ranges(views, |_| async move { Ok(Some(range)) })
            .await
    }

    /// Materializes each online view from where its last materialization ended (or from the
    /// beginning) up to `end` (included).
    pub async fn materialize_incremental(
        &self,
        end: Timestamp,
        views: Option<&[Name]>,
    ) -> Result<Vec<Materialized>> {
        let store = self.online_store().await?;
        let stop = end.next()?;
        self.materialize_ranges(views, |view| {
            let store = store.clone();
            async move {
                match store.materialized_until(&view).await? {
                    Some(from) if from >= stop => Ok(None),
                    Some(from) => Ok(Some(TimeRange::new(from, stop)?)),
                    None => Ok(Some(TimeRange::new(Timestamp::from_millis(0), stop)?)),
                }
            }
        })
        .await
    }

    async fn materialize_ranges<F, Fut>(
        &self,
        views: Option<&[Name]>,
        range_of: F,
    ) -> Result<Vec<Materialized>>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<TimeRange>>>,
    {
        let store = self.online_store().await?;
        let defs = self.registry.recent().await?;
        if let Some(names) = views
            && let Some(unknown) = names
                .iter()
                .find(|n| defs.feature_view(n.as_str()).is_none())
        {
            return Err(Error::NotFound {
                what: "feature view",
                name: unknown.to_string(),
            });
        }
        let mut done = Vec::new();
        for view in &defs.feature_views {
            let wanted = views.is_none_or(|names| names.contains(&view.name));
            if !wanted || !view.online {
                continue;
            }
            let Some(range) = range_of(view.name.to_string()).await? else {
                continue;
            };
            let selection = ViewSelection {
                view: view.clone(),
                join_keys: defs.join_keys(view)?,
                features: view.schema.clone(),
            };
            let source = self.env.open(view).await?;
            let rows = Operation::begin(
                &*self.progress.0,
                &format!("materialize {}: source rows", view.name),
                None,
            );
            let report =
                online::materialize_view(&selection, &source, &store, Some(range), &rows).await?;
            drop(rows);
            store
                .set_materialized_until(view.name.as_str(), range.end())
                .await?;
            tracing::info!(view = %view.name, %range, rows = report.rows_read, entities = report.entities, written = report.written, "materialized");
            done.push(report);
        }
        Ok(done)
    }

    /// The latest values of `features` for each entity row (join keys only), nulls for
    /// entities never materialized.
    pub async fn get_online_features(
        &self,
        features: &[FeatureRef],
        entity_rows: &RecordBatch,
        options: &OnlineOptions,
    ) -> Result<RecordBatch> {
        let defs = self.registry.recent().await?;
        let plan = self.online_plan(&defs, features)?;
        if let Some(s) = plan.selections.iter().find(|s| !s.view.online) {
            return Err(Error::invalid(
                "feature references",
                s.view.name.as_str(),
                "this view is not served online (online: false)",
            ));
        }
        let store = self.online_store().await?;
        let fetched = online::read_features(
            &store,
            entity_rows,
            &plan.selections,
            &plan.shapes,
            options.full_feature_names,
            options.with_status,
            options.ttl,
            Timestamp::now(),
        )
        .await?;
        plan.derivation.finish(fetched, options.full_feature_names)
    }

    /// The latest rows `view` keeps online of each entity row's entity (join keys only), as
    /// many as the view's `online_rows`, oldest first: the join keys, the view's timestamp
    /// field and its features, one row per stored row; an entity never materialized has
    /// none. What a model's window of recent rows is read from, for real-time forecasts.
    pub async fn get_online_recent(
        &self,
        view: &str,
        entity_rows: &RecordBatch,
        ttl: TtlPolicy,
    ) -> Result<RecordBatch> {
        let defs = self.registry.recent().await?;
        let found = defs.feature_view(view).ok_or_else(|| Error::NotFound {
            what: "feature view",
            name: view.to_owned(),
        })?;
        if !found.online || found.online_rows < 2 {
            return Err(Error::invalid(
                "feature view",
                view,
                "keeps only its latest row per entity online: set its online_rows to the \
                 rows a model's window reads, apply, and materialize again",
            ));
        }
        let selection = ViewSelection {
            view: found.clone(),
            join_keys: defs.join_keys(found)?,
            features: found.schema.clone(),
        };
        let store = self.online_store().await?;
        online::read_recent(&store, entity_rows, &selection, ttl, Timestamp::now()).await
    }

    /// How to answer `features`: as planned by the last online request when it asked for the
    /// same features in the same registry state (a serving loop asks the same every time).
    fn online_plan(
        &self,
        defs: &Arc<Definitions>,
        features: &[FeatureRef],
    ) -> Result<Arc<OnlinePlan>> {
        let mut last = self.last_online.lock().expect("online plan");
        if let Some(held) = last.as_ref()
            && Arc::ptr_eq(&held.defs, defs)
            && held.features == features
        {
            return Ok(held.plan.clone());
        }
        let derivation = Derivation::plan(defs, features)?;
        let selections = group_by_view(defs, derivation.fetch())?;
        let plan = Arc::new(OnlinePlan {
            derivation,
            selections,
            shapes: AnswerShapes::default(),
        });
        *last = Some(CachedOnlinePlan {
            defs: defs.clone(),
            features: features.to_vec(),
            plan: plan.clone(),
        });
        Ok(plan)
    }

    /// Feature references from names: `view:feature` as it is, and a feature service's name
    /// as the service's features.
    pub async fn resolve_features(&self, names: &[String]) -> Result<Vec<FeatureRef>> {
        let defs = self.registry.recent().await?;
        let mut refs = Vec::new();
        for name in names {
            if name.contains(':') {
                refs.push(name.parse()?);
            } else {
                let service = defs.feature_service(name).ok_or_else(|| Error::NotFound {
                    what: "feature service",
                    name: format!("{name} (features are named view:feature)"),
                })?;
                refs.extend(service.features.iter().cloned());
            }
        }
        Ok(refs)
    }

    /// Checks a view against its source's columns, filling an empty schema from them.
    async fn check_against_source(&self, view: &mut FeatureView, keys: &[String]) -> Result<()> {
        let source = self.env.open(view).await?;
        let columns = SourceColumns::of(view, &source).await?;
        for k in keys {
            columns.column(k, "join key")?;
        }
        let mut times = vec![view.timestamp_field.clone()];
        times.extend(view.created_timestamp_field.clone());
        for t in &times {
            columns.time(t)?;
        }
        if view.schema.is_empty() {
            view.schema = columns
                .schema
                .fields()
                .iter()
                .filter(|f| !keys.contains(f.name()) && !times.contains(f.name()))
                .filter_map(|f| ValueType::of_arrow(f.data_type()).map(|t| Field::new(f.name(), t)))
                .collect();
            if view.schema.is_empty() {
                return Err(Error::invalid(
                    "feature view",
                    view.name.as_str(),
                    format!(
                        "{} has no feature columns besides its keys and timestamps",
                        source.describe()
                    ),
                ));
            }
        }
        for f in &view.schema {
            columns.feature(f)?;
        }
        Ok(())
    }
}

/// `definition` with a relative local path of a files source made absolute, against this
/// process's working directory: the registry stores where the files are, so the workspace
/// reads them from any directory. URLs and `mount://` locations are kept as written.
fn with_absolute_paths(definition: Definition) -> Result<Definition> {
    let Definition::FeatureView(mut view) = definition else {
        return Ok(definition);
    };
    if let trainstore_core::SourceSpec::Files { location, .. } = &mut view.source
        && !location.contains("://")
        && std::path::Path::new(location.as_str()).is_relative()
    {
        let absolute = std::path::absolute(location.as_str())
            .map_err(|e| Error::invalid("feature view source", location.as_str(), e.to_string()))?;
        *location = absolute.to_string_lossy().into_owned();
    }
    Ok(Definition::FeatureView(view))
}
