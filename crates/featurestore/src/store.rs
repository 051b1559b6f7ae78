//! The feature store of a workspace: plan and apply definitions, read them back, and build
//! point-in-time-correct training data from them.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use trainstore_core::{Catalog, Error, Result, UserName, Version};

use crate::definitions::{Definition, Definitions, FeatureRef, FeatureView, Field, ValueType};
use crate::historical::{self, HistoricalOptions, ViewRequest, group_by_view};
use crate::registry::{Change, Plan, Registry, RegistryVersion};
use crate::sources::SourceEnv;

/// How often an apply re-plans when someone else applied in between.
const APPLY_ATTEMPTS: u32 = 5;

/// The outcome of an apply: the plan carried out, and the new registry version (`None` when
/// nothing changed).
#[derive(Debug, Clone)]
pub struct Applied {
    pub plan: Plan,
    pub version: Option<Version>,
}

/// Entities, feature views and services of one workspace, and retrieval over them.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    registry: Registry,
    env: SourceEnv,
    author: UserName,
}

impl FeatureStore {
    /// A feature store keeping its registry in `catalog`, opening sources through `env`,
    /// recording `author` on every change.
    pub fn new(catalog: Catalog, env: SourceEnv, author: UserName) -> Self {
        FeatureStore {
            registry: Registry::new(catalog),
            env,
            author,
        }
    }

    /// The registry behind this store.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What applying `definitions` would change. Views new or changed are checked against
    /// their source's real columns, and an empty schema is filled from the source.
    pub async fn plan(&self, definitions: Vec<Definition>) -> Result<Plan> {
        let (base, current) = self.registry.current().await?;
        let mut plan = Plan::new(base, &current, definitions)?;
        for change in plan.changes.clone() {
            if change.kind != "feature view" || change.change == Change::Unchanged {
                continue;
            }
            let keys = plan.result.join_keys(
                plan.result
                    .feature_view(change.name.as_str())
                    .expect("planned view"),
            )?;
            let view = plan
                .result
                .feature_views
                .iter_mut()
                .find(|v| v.name == change.name)
                .expect("planned view");
            self.check_against_source(view, &keys).await?;
        }
        // Filling schemas may have changed what services can resolve.
        plan.result.validate()?;
        Ok(plan)
    }

    /// Applies `definitions` (adding or replacing by name) as one new registry version.
    pub async fn apply(&self, definitions: Vec<Definition>) -> Result<Applied> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let plan = self.plan(definitions.clone()).await?;
            if plan.is_noop() {
                return Ok(Applied {
                    plan,
                    version: None,
                });
            }
            match self
                .registry
                .commit(plan.base, &plan.result, plan.summary(), &self.author)
                .await
            {
                Ok(version) => {
                    tracing::info!(%version, summary = %plan.summary(), "feature definitions applied");
                    return Ok(Applied {
                        plan,
                        version: Some(version),
                    });
                }
                Err(Error::VersionConflict { .. }) if attempt < APPLY_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (base, _) = self.registry.current().await?;
            match self
                .registry
                .commit(base, &old, format!("rollback to {version}"), &self.author)
                .await
            {
                Ok(v) => return Ok(v),
                Err(Error::VersionConflict { .. }) if attempt < APPLY_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Point-in-time-correct values of `features` for each entity row (see
    /// [`historical::get_historical_features`]).
    pub async fn get_historical_features(
        &self,
        entity_rows: &RecordBatch,
        features: &[FeatureRef],
        options: &HistoricalOptions,
    ) -> Result<RecordBatch> {
        let defs = self.definitions().await?;
        let mut views = Vec::new();
        for selection in group_by_view(&defs, features)? {
            let source = self.env.open(&selection.view).await?;
            views.push(ViewRequest { selection, source });
        }
        historical::get_historical_features(entity_rows, views, options).await
    }

    /// Checks a view against its source's columns, filling an empty schema from them.
    async fn check_against_source(&self, view: &mut FeatureView, keys: &[String]) -> Result<()> {
        let source = self.env.open(view).await?;
        let schema = source.schema().await?;
        let name = view.name.to_string();
        let bad = |reason: String| Error::invalid("feature view", name.as_str(), reason);
        let column = |col: &str, role: &str| {
            schema
                .field_with_name(col)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    bad(format!(
                        "its {role} {col:?} is not a column of {} (columns: {})",
                        source.describe(),
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        };
        for k in keys {
            column(k, "join key")?;
        }
        let mut times = vec![view.timestamp_field.clone()];
        times.extend(view.created_timestamp_field.clone());
        for t in &times {
            let dtype = column(t, "timestamp field")?;
            if !matches!(dtype, DataType::Timestamp(_, _) | DataType::Int64) {
                return Err(bad(format!(
                    "its timestamp field {t:?} is {dtype}, expected a timestamp or Int64 epoch milliseconds"
                )));
            }
        }
        if view.schema.is_empty() {
            view.schema = schema
                .fields()
                .iter()
                .filter(|f| !keys.contains(f.name()) && !times.contains(f.name()))
                .filter_map(|f| ValueType::of_arrow(f.data_type()).map(|t| Field::new(f.name(), t)))
                .collect();
            if view.schema.is_empty() {
                return Err(bad(format!(
                    "{} has no feature columns besides its keys and timestamps",
                    source.describe()
                )));
            }
        }
        for f in &view.schema {
            let actual = column(&f.name, "field")?;
            if ValueType::of_arrow(&actual).as_ref() != Some(&f.dtype) {
                return Err(bad(format!(
                    "declares {} as {}, but {} has {actual}",
                    f.name,
                    f.dtype,
                    source.describe()
                )));
            }
        }
        Ok(())
    }
}
