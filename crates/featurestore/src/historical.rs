//! Historical retrieval: for each entity row (join keys + an event time), the feature values
//! that were current at that time, by Feast's point-in-time rules (`docs/point-in-time.md`).
//!
//! Everything that can be checked before reading data is checked first (missing join keys,
//! name collisions, the timestamp column); then every view is joined on its own task, all at
//! once, streaming over its source; the result keeps the entity rows' order and columns and
//! appends the features, grouped by view in order of first request.
//!
//! Two engines read a view's rows. In process, the source is scanned (within the span the
//! entity rows can reach) and every row streams through the as-of join, twice: first its
//! keys and times alone, to find each entity row's winner, then with the features, keeping
//! only the winners' values. So a join holds about its answer, however large the source.
//! (The offline store's segments are mapped, in memory anyway: one pass keeps them by
//! reference.) Pushed down, the
//! database is sent one window per distinct (keys, time) of the entity rows and returns only
//! each window's latest row; the same join then picks among those, so both engines answer by
//! the same code and the same rules.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, UInt64Type};
use futures::{StreamExt, TryStreamExt};
use trainstore_core::{
    AsOfScan, AsOfWindows, DataSourceRef, Error, NoProgress, Operation, Progress, ProgressRef,
    RecordBatchStream, Result, ScanRequest, TimeRange, Timestamp, parallel, repeated_column,
};

use crate::definitions::{Definitions, FeatureRef, FeatureView, Field};
use crate::join::{
    AsOfJoin, EntityIndex, Retention, STREAM_BUDGET, SourceBatch, Winners, align_keys,
    comparison_type, epoch_nanos,
};
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
    /// Which engine joins.
    pub engine: Engine,
}

/// Where the point-in-time join runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// Here: every view's source is scanned and joined in this process.
    #[default]
    InProcess,
    /// In the database: every view must read a Doris (or MySQL-protocol) table.
    Pushdown,
}

impl Engine {
    /// Parses `in-process` or `pushdown`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "in-process" => Ok(Engine::InProcess),
            "pushdown" => Ok(Engine::Pushdown),
            _ => Err(Error::invalid(
                "join engine",
                text,
                "expected in-process or pushdown",
            )),
        }
    }

    /// The name [`Engine::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::InProcess => "in-process",
            Engine::Pushdown => "pushdown",
        }
    }
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

    /// A scan of the join keys and times alone, in [`ViewSelection::split`]'s order (no
    /// features): a two-pass join's first pass.
    pub(crate) fn times_request(&self, time_range: Option<TimeRange>) -> ScanRequest {
        let mut request = self.scan_request(time_range);
        if let Some(p) = request.projection.as_mut() {
            p.truncate(p.len() - self.features.len());
        }
        request
    }

    /// Splits a batch of [`ViewSelection::scan_request`]'s (or [`Self::times_request`]'s)
    /// columns, times in nanoseconds.
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
    pub source: JoinSource,
}

/// How a view's rows reach the join.
#[derive(Debug, Clone)]
pub enum JoinSource {
    /// Scanned within the span the entity rows can reach.
    Scan(DataSourceRef),
    /// The offline store's segments, in memory (mapped) for good: the join keeps every
    /// batch by reference and copies only the final winners.
    Offline(DataSourceRef),
    /// Only each entity window's latest row, chosen by the source itself (a database; its
    /// [`DataSource::as_of`](trainstore_core::DataSource::as_of) is `Some`).
    Pushdown(DataSourceRef),
}

impl JoinSource {
    pub(crate) fn data_source(&self) -> DataSourceRef {
        match self {
            JoinSource::Scan(source)
            | JoinSource::Offline(source)
            | JoinSource::Pushdown(source) => source.clone(),
        }
    }
}

/// Groups feature references by view, views in order of first appearance and features in
/// request order (rule 8.3 of `docs/point-in-time.md`), with each view's join keys. Duplicate
/// references are an error.
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
/// timestamp column (rule 1.1 of `docs/point-in-time.md`).
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

/// Fails when two entity-row columns share a name: lookups by name would silently read the
/// first of them (or the last, in other readers).
pub(crate) fn require_distinct_columns(entity_rows: &Schema) -> Result<()> {
    match repeated_column(entity_rows) {
        Some(name) => Err(Error::invalid(
            "entity rows",
            name,
            "have two columns of this name; keep one",
        )),
        None => Ok(()),
    }
}

/// Point-in-time-correct features for `entity_rows`: the entity columns unchanged, in their
/// order, then each requested feature.
pub async fn get_historical_features(
    entity_rows: &RecordBatch,
    views: Vec<ViewRequest>,
    options: &HistoricalOptions,
) -> Result<RecordBatch> {
    let joined = join(
        entity_rows,
        views,
        options,
        &(Arc::new(NoProgress) as ProgressRef),
    )
    .await?;
    joined.slice(0..joined.rows())
}

/// A request joined, its answer not yet gathered: [`Joined::slice`] gathers the answer for
/// a range of entity rows, so an answer can be produced a slice at a time and never held
/// whole.
pub struct Joined {
    entity_rows: RecordBatch,
    schema: Arc<Schema>,
    /// Per view, in request order.
    winners: Vec<Winners>,
}

impl Joined {
    /// How many entity rows (and so answer rows) there are.
    pub fn rows(&self) -> usize {
        self.entity_rows.num_rows()
    }

    /// The answer's rows for entity rows `range`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<RecordBatch> {
        let mut columns = self
            .entity_rows
            .slice(range.start, range.len())
            .columns()
            .to_vec();
        for w in &self.winners {
            columns.extend(w.gather(range.clone())?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Joins every view of a request; see [`get_historical_features`]. Source rows read are
/// reported to `progress` as they arrive, of all views together.
pub async fn join(
    entity_rows: &RecordBatch,
    views: Vec<ViewRequest>,
    options: &HistoricalOptions,
    progress: &ProgressRef,
) -> Result<Joined> {
    let schema = entity_rows.schema();
    require_distinct_columns(&schema)?;
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

    let rows_read = Operation::begin(
        &**progress,
        &format!("join {} views: source rows", views.len()),
        None,
    );
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
            let progress = progress.clone();
            // The join's loop is CPU work between the source's batches: it runs on a thread
            // of its own, never on one that runs async tasks, and spreads its heavy steps
            // over the compute pool.
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                runtime.block_on(join_view(&v, &keys, &times, &*progress))
            })
        })
        .collect();
    let mut fields: Vec<ArrowField> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut winners = Vec::with_capacity(views.len());
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
        for (f, dtype) in v.selection.features.iter().zip(joined.feature_types()) {
            fields.push(ArrowField::new(
                v.selection.output_name(f, options.full_feature_names),
                dtype.clone(),
                true,
            ));
        }
        winners.push(joined);
    }
    drop(rows_read);
    Ok(Joined {
        entity_rows: entity_rows.clone(),
        schema: Arc::new(Schema::new(fields)),
        winners,
    })
}

fn ttl_nanos(view: &FeatureView) -> Option<i64> {
    view.ttl
        .limit()
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The event times of source rows that entity rows at `first..=last` (epoch nanoseconds) can
/// match: from `first - ttl` on (unbounded without a TTL) through `last`.
fn source_span((first, last): (i64, i64), ttl_ns: Option<i64>) -> Result<Option<TimeRange>> {
    ttl_ns
        .map(|ttl| {
            TimeRange::new(
                Timestamp::from_millis(first.saturating_sub(ttl).div_euclid(1_000_000)),
                Timestamp::from_millis(last.div_euclid(1_000_000) + 1),
            )
        })
        .transpose()
}

/// The span of source event times `view` needs for entity rows with times in `bounds`.
pub(crate) fn needed_span(bounds: Option<(i64, i64)>, view: &FeatureView) -> Result<NeededSpan> {
    Ok(match bounds {
        None => NeededSpan::Nothing,
        Some(bounds) => match source_span(bounds, ttl_nanos(view))? {
            Some(range) => NeededSpan::Range(range),
            None => NeededSpan::Unbounded,
        },
    })
}

/// The earliest and latest entity time (epoch nanoseconds), if any row has one.
pub(crate) fn entity_time_bounds(
    entity_rows: &RecordBatch,
    options: &HistoricalOptions,
) -> Result<Option<(i64, i64)>> {
    let schema = entity_rows.schema();
    let index = entity_time_column(&schema, options.timestamp_column.as_deref())?;
    let times = epoch_nanos(entity_rows.column(index), schema.field(index).name())?;
    Ok(times
        .iter()
        .flatten()
        .fold(None, |b: Option<(i64, i64)>, t| {
            Some(b.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))))
        }))
}

/// Which source rows a request can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NeededSpan {
    /// No entity row has a time: no source row matches.
    Nothing,
    /// Rows with event times in this range.
    Range(TimeRange),
    /// Any row (the view has no TTL).
    Unbounded,
}

/// Joins one view: checks the source's columns, scans it, returns each entity row's winner.
///
/// A scanned source is read twice; what a parsing source counts is its last scan's, the
/// second, which reads every column.
async fn join_view(
    v: &ViewRequest,
    keys: &[ArrayRef],
    times: &Int64Array,
    progress: &dyn Progress,
) -> Result<Winners> {
    let view_name = v.selection.view.name.as_str();
    let columns = SourceColumns::of(&v.selection.view, &v.source.data_source()).await?;
    let feature_types = v
        .selection
        .features
        .iter()
        .map(|f| columns.feature(f))
        .collect::<Result<Vec<_>>>()?;
    let source_keys = v
        .selection
        .join_keys
        .iter()
        .map(|k| columns.column(k, "join key"))
        .collect::<Result<Vec<_>>>()?;
    // The entity rows' keys in the types they compare with the source's in.
    let compared = keys
        .iter()
        .zip(&source_keys)
        .zip(&v.selection.join_keys)
        .map(|((k, source), name)| {
            let common = comparison_type(view_name, name, source, k.data_type())?;
            Ok(match k.data_type() == &common {
                true => k.clone(),
                false => cast(k, &common)?,
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let index = EntityIndex::new(&compared, times)?;
    columns.time(&v.selection.view.timestamp_field)?;
    if let Some(c) = &v.selection.view.created_timestamp_field {
        columns.time(c)?;
    }
    let Some((first, last)) = index.time_bounds() else {
        return Ok(Winners::none(feature_types, times.len()));
    };
    let ttl_ns = ttl_nanos(&v.selection.view);
    let time_range = source_span((first, last), ttl_ns)?;
    let request = v.selection.scan_request(time_range);
    let joined =
        |retention: Retention| AsOfJoin::new(&index, ttl_ns, feature_types.clone(), retention);
    match &v.source {
        JoinSource::Offline(source) => {
            // The segments are mapped, so holding all their batches costs nothing: they are
            // taken in on every core, each thread a share of them, and the joins merged.
            let batches: Vec<RecordBatch> = source.scan(&request).await?.try_collect().await?;
            let parts = parallel::threads().min(batches.len()).max(1);
            let joins = parallel::map_indexed(parts, |part| {
                let mut join = joined(Retention::KeepAll);
                for batch in batches.iter().skip(part).step_by(parts) {
                    progress.advance(batch.num_rows() as u64);
                    take_in(v, &index, &mut join, batch.clone(), Positions::Untold)?;
                }
                Ok(join)
            });
            AsOfJoin::merge(joins.into_iter().collect::<Result<_>>()?)?.into_winners()
        }
        JoinSource::Scan(source) => {
            let times_only = v.selection.times_request(time_range);
            let first = AsOfJoin::new(&index, ttl_ns, Vec::new(), Retention::KeepAll);
            if let Some(positioned) = source.positioned() {
                // The first pass reads every row's keys and times, and where it lies; the
                // second decodes the features of the winners' rows alone.
                let times_only = positioned.scan_with_positions(&times_only).await?;
                let first = feed(v, &index, first, (times_only, Positions::Last), progress).await?;
                let last = first.into_final();
                let picked = positioned
                    .scan_positions(&request, last.positions().unwrap_or_default())
                    .await?;
                let second = joined(Retention::FinalOnly(last));
                return feed(v, &index, second, (picked, Positions::Untold), &NoProgress)
                    .await?
                    .into_winners();
            }
            // The first pass reads keys and times only: its rows are not counted twice.
            let times_only = source.scan(&times_only).await?;
            let first = feed(
                v,
                &index,
                first,
                (times_only, Positions::Untold),
                &NoProgress,
            )
            .await?;
            let second = joined(Retention::FinalOnly(first.into_final()));
            let all = (source.scan(&request).await?, Positions::Untold);
            feed(v, &index, second, all, progress).await?.into_winners()
        }
        JoinSource::Pushdown(source) => {
            let Some(doris) = source.as_of() else {
                return Err(Error::NotSupported {
                    operation: "the pushdown engine",
                    implementer: format!(
                        "feature view {view_name}, whose source {} cannot join by itself",
                        source.describe()
                    ),
                });
            };
            let stream = pushdown(v, doris, &request, &index, &compared, ttl_ns).await?;
            let stream = (stream, Positions::Untold);
            feed(v, &index, joined(STREAM_BUDGET), stream, progress)
                .await?
                .into_winners()
        }
    }
}

/// Whether a stream's batches end with each row's position in the source.
#[derive(Clone, Copy)]
enum Positions {
    Last,
    Untold,
}

/// Streams `stream` (batches of one of the selection's requests) through `join`.
async fn feed<'a>(
    v: &ViewRequest,
    index: &EntityIndex,
    mut join: AsOfJoin<'a>,
    (mut stream, told): (RecordBatchStream, Positions),
    progress: &dyn Progress,
) -> Result<AsOfJoin<'a>> {
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.advance(batch.num_rows() as u64);
        take_in(v, index, &mut join, batch, told)?;
    }
    Ok(join)
}

/// Takes one batch of one of the selection's requests into `join`.
fn take_in(
    v: &ViewRequest,
    index: &EntityIndex,
    join: &mut AsOfJoin<'_>,
    mut batch: RecordBatch,
    told: Positions,
) -> Result<()> {
    let positions = match told {
        Positions::Last => {
            let last = batch.num_columns().saturating_sub(1);
            let positions = batch
                .columns()
                .get(last)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| Error::Internal {
                    operation: "the join's first pass".into(),
                    reason: "the source's batch does not end with row positions".into(),
                })?
                .clone();
            batch.remove_column(last);
            Some(positions)
        }
        Positions::Untold => None,
    };
    let parts = v.selection.split(&batch)?;
    let keys = align_keys(parts.keys.to_vec(), index.key_types())?;
    join.push(&SourceBatch {
        keys: &keys,
        times: &parts.event,
        created: parts.created.as_ref(),
        features: parts.features,
        positions: positions.as_ref(),
    })
}

/// Asks `doris` for the latest row of each entity slot's window: keys (`entity_keys`, in the
/// types they compare in) as the source spells them, times widened to whole milliseconds so
/// that no row the join would take is left out (the join applies the exact bounds again).
async fn pushdown(
    v: &ViewRequest,
    doris: &dyn AsOfScan,
    request: &ScanRequest,
    index: &EntityIndex,
    entity_keys: &[ArrayRef],
    ttl_ns: Option<i64>,
) -> Result<RecordBatchStream> {
    const MS: i64 = 1_000_000;
    let (times, rows) = index.slot_rows();
    let keys = entity_keys
        .iter()
        .zip(&v.selection.join_keys)
        .map(|(k, name)| {
            let k = take(k.as_ref(), &rows, None)?;
            Ok(match k.data_type() {
                DataType::Int64 | DataType::Utf8 => k,
                DataType::LargeUtf8 | DataType::Utf8View => cast(&k, &DataType::Utf8)?,
                other => {
                    return Err(Error::NotSupported {
                        operation: "the pushdown engine",
                        implementer: format!("join key {name} of type {other}"),
                    });
                }
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let upper = Int64Array::from_iter_values(times.iter().map(|t| t.div_euclid(MS)));
    let lower: Int64Array = times
        .iter()
        .map(|t| {
            ttl_ns.map(|ttl| {
                let earliest = t.saturating_sub(ttl);
                earliest.div_euclid(MS) + i64::from(earliest.rem_euclid(MS) != 0)
            })
        })
        .collect();
    let windows = AsOfWindows { keys, lower, upper };
    doris
        .scan_latest_in_windows(
            request,
            &v.selection.join_keys,
            v.selection.view.created_timestamp_field.as_deref(),
            &windows,
        )
        .await
}
