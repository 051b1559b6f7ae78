//! Historical retrieval: for each entity row (join keys + an event time), the feature values
//! that were current at that time, by Feast's point-in-time rules (`FEAST_SEMANTICS.md`).
//!
//! Everything that can be checked before reading data is checked first (missing join keys,
//! name collisions, the timestamp column); then every view is joined on its own task, all at
//! once, streaming over its source; the result keeps the entity rows' order and columns and
//! appends the features, grouped by view in order of first request.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field as ArrowField, Schema};
use futures::StreamExt;
use trainstore_core::{DataSourceRef, Error, Result, ScanRequest, TimeRange, Timestamp};

use crate::definitions::{Definitions, FeatureRef, FeatureView, Field};
use crate::join::{AsOfJoin, EntityIndex, SourceBatch, align_keys, epoch_nanos, null_columns};
use crate::sources::SourceColumns;

/// The entity rows' time column when none is named and there is more than one candidate.
pub const ENTITY_TIMESTAMP: &str = "event_timestamp";

/// How to answer a historical request.
#[derive(Debug, Clone, Default)]
pub struct HistoricalOptions {
    /// Name feature columns `<view>__<feature>` instead of `<feature>`.
    pub full_feature_names: bool,
    /// The entity rows' time column; by default `event_timestamp`, or the only timestamp
    /// column.
    pub timestamp_column: Option<String>,
}

/// One view's part of a request: the view, its join keys, and the requested features in
/// request order.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSelection {
    pub view: FeatureView,
    pub join_keys: Vec<String>,
    pub features: Vec<Field>,
}

/// A batch of a selection's scan, in its parts.
pub(crate) struct SelectionColumns<'b> {
    pub keys: &'b [ArrayRef],
    /// Event times, epoch nanoseconds.
    pub event: Int64Array,
    /// Created times, epoch nanoseconds, when the view has them.
    pub created: Option<Int64Array>,
    pub features: &'b [ArrayRef],
}

impl ViewSelection {
    /// A scan of the selection's columns, in the order [`ViewSelection::split`] reads:
    /// join keys, timestamp, created timestamp (if any), features.
    pub(crate) fn scan_request(&self, time_range: Option<TimeRange>) -> ScanRequest {
        let mut projection = self.join_keys.clone();
        projection.push(self.view.timestamp_field.clone());
        projection.extend(self.view.created_timestamp_field.clone());
        projection.extend(self.features.iter().map(|f| f.name.clone()));
        ScanRequest {
            time_range,
            projection: Some(projection),
            ..Default::default()
        }
    }

    /// Splits a batch of [`ViewSelection::scan_request`]'s columns, times in nanoseconds.
    pub(crate) fn split<'b>(&self, batch: &'b RecordBatch) -> Result<SelectionColumns<'b>> {
        let nkeys = self.join_keys.len();
        let event = epoch_nanos(batch.column(nkeys), &self.view.timestamp_field)?;
        let (created, first_feature) = match &self.view.created_timestamp_field {
            Some(c) => (Some(epoch_nanos(batch.column(nkeys + 1), c)?), nkeys + 2),
            None => (None, nkeys + 1),
        };
        Ok(SelectionColumns {
            keys: &batch.columns()[..nkeys],
            event,
            created,
            features: &batch.columns()[first_feature..],
        })
    }

    /// The output column name of one of the selection's features.
    pub(crate) fn output_name(&self, field: &Field, full: bool) -> String {
        if full {
            format!("{}__{}", self.view.name, field.name)
        } else {
            field.name.clone()
        }
    }

    /// Fails unless `entity_rows` has every join key of the view.
    pub(crate) fn require_join_keys(&self, entity_rows: &Schema) -> Result<()> {
        match self
            .join_keys
            .iter()
            .find(|k| entity_rows.index_of(k).is_err())
        {
            Some(k) => Err(Error::invalid(
                "entity rows",
                k.as_str(),
                format!(
                    "lack join key {k:?}, needed by feature view {}",
                    self.view.name
                ),
            )),
            None => Ok(()),
        }
    }
}

/// A [`ViewSelection`] with the live source to read it from.
#[derive(Debug, Clone)]
pub struct ViewRequest {
    pub selection: ViewSelection,
    pub source: DataSourceRef,
}

/// Groups feature references by view, views in order of first appearance and features in
/// request order (rule 8.3), with each view's join keys. Duplicate references are an error.
pub fn group_by_view(defs: &Definitions, refs: &[FeatureRef]) -> Result<Vec<ViewSelection>> {
    if refs.is_empty() {
        return Err(Error::invalid(
            "feature references",
            "[]",
            "name at least one feature",
        ));
    }
    let mut seen = HashSet::new();
    let mut groups: Vec<ViewSelection> = Vec::new();
    for r in refs {
        if !seen.insert(r) {
            return Err(Error::invalid(
                "feature references",
                r.to_string(),
                "requested twice",
            ));
        }
        let (view, field) = defs.resolve(r)?;
        match groups.iter_mut().find(|g| g.view.name == view.name) {
            Some(g) => g.features.push(field.clone()),
            None => groups.push(ViewSelection {
                view: view.clone(),
                join_keys: defs.join_keys(view)?,
                features: vec![field.clone()],
            }),
        }
    }
    Ok(groups)
}

/// Finds the entity rows' time column: the named one, else `event_timestamp`, else the only
/// timestamp column (rule 1.1).
fn entity_time_column(rows: &Schema, named: Option<&str>) -> Result<usize> {
    if let Some(name) = named {
        return rows.index_of(name).map_err(|_| {
            Error::invalid(
                "entity rows",
                name,
                "the named timestamp column is not among the entity rows' columns",
            )
        });
    }
    if let Ok(i) = rows.index_of(ENTITY_TIMESTAMP) {
        return Ok(i);
    }
    let candidates: Vec<usize> = rows
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(
                f.data_type(),
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
            )
        })
        .map(|(i, _)| i)
        .collect();
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::invalid(
            "entity rows",
            "columns",
            format!("need an {ENTITY_TIMESTAMP} column (or exactly one timestamp column)"),
        )),
        _ => Err(Error::invalid(
            "entity rows",
            "columns",
            format!(
                "have several timestamp columns and no {ENTITY_TIMESTAMP}; name the one to use"
            ),
        )),
    }
}

/// Point-in-time-correct features for `entity_rows`: the entity columns unchanged, in their
/// order, then each requested feature.
pub async fn get_historical_features(
    entity_rows: &RecordBatch,
    views: Vec<ViewRequest>,
    options: &HistoricalOptions,
) -> Result<RecordBatch> {
    let schema = entity_rows.schema();
    if entity_rows.num_rows() >= u32::MAX as usize {
        return Err(Error::invalid(
            "entity rows",
            entity_rows.num_rows().to_string(),
            "at most 4,294,967,294 rows per request",
        ));
    }
    let time_index = entity_time_column(&schema, options.timestamp_column.as_deref())?;
    let times = Arc::new(epoch_nanos(
        entity_rows.column(time_index),
        schema.field(time_index).name(),
    )?);
    let mut names: HashSet<String> = HashSet::new();
    for v in &views {
        v.selection.require_join_keys(&schema)?;
        for f in &v.selection.features {
            let name = v.selection.output_name(f, options.full_feature_names);
            if schema.index_of(&name).is_ok() {
                return Err(Error::invalid(
                    "entity rows",
                    name.as_str(),
                    "have a column named like a requested feature; rename or drop it",
                ));
            }
            if !names.insert(name.clone()) {
                return Err(Error::invalid(
                    "feature references",
                    name.as_str(),
                    "two requested views have a feature of this name; \
                     ask for full feature names (view__feature)",
                ));
            }
        }
    }

    let tasks: Vec<_> = views
        .iter()
        .map(|v| {
            let keys: Vec<ArrayRef> = v
                .selection
                .join_keys
                .iter()
                .map(|k| entity_rows.column_by_name(k).expect("checked").clone())
                .collect();
            let times = times.clone();
            let v = v.clone();
            tokio::spawn(async move { join_view(&v, &keys, &times).await })
        })
        .collect();
    let mut fields: Vec<ArrowField> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = entity_rows.columns().to_vec();
    for (v, task) in views.iter().zip(tasks) {
        let joined = task.await.map_err(|e| Error::Remote {
            service: "feature store".into(),
            operation: "join",
            reason: format!(
                "the join task of view {} failed: {e}",
                v.selection.view.name
            ),
            transient: false,
        })??;
        for (f, column) in v.selection.features.iter().zip(joined) {
            fields.push(ArrowField::new(
                v.selection.output_name(f, options.full_feature_names),
                column.data_type().clone(),
                true,
            ));
            columns.push(column);
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Joins one view: checks the source's columns, scans it, returns the feature columns.
async fn join_view(
    v: &ViewRequest,
    keys: &[ArrayRef],
    times: &Int64Array,
) -> Result<Vec<ArrayRef>> {
    let view_name = v.selection.view.name.as_str();
    let index = EntityIndex::new(keys, times)?;
    let columns = SourceColumns::of(&v.selection.view, &v.source).await?;
    let feature_types = v
        .selection
        .features
        .iter()
        .map(|f| columns.feature(f))
        .collect::<Result<Vec<_>>>()?;
    for k in &v.selection.join_keys {
        columns.column(k, "join key")?;
    }
    columns.time(&v.selection.view.timestamp_field)?;
    if let Some(c) = &v.selection.view.created_timestamp_field {
        columns.time(c)?;
    }
    let Some((first, last)) = index.time_bounds() else {
        return Ok(null_columns(&feature_types, times.len()));
    };
    let ttl_ns = v
        .selection
        .view
        .ttl
        .limit()
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let time_range = match ttl_ns {
        Some(ttl) => Some(TimeRange::new(
            Timestamp::from_millis(first.saturating_sub(ttl).div_euclid(1_000_000)),
            Timestamp::from_millis(last.div_euclid(1_000_000) + 1),
        )?),
        None => None,
    };
    let request = v.selection.scan_request(time_range);
    let mut stream = v.source.scan(&request).await?;
    let mut join = AsOfJoin::new(&index, ttl_ns, feature_types);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let parts = v.selection.split(&batch)?;
        let keys = align_keys(
            view_name,
            &v.selection.join_keys,
            parts.keys.to_vec(),
            index.key_types(),
        )?;
        join.push(&SourceBatch {
            keys: &keys,
            times: &parts.event,
            created: parts.created.as_ref(),
            features: parts.features,
        })?;
    }
    join.finish()
}
