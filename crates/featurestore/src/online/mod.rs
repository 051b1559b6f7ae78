//! Online serving: the latest row of each entity, materialized from a view's source into a
//! key-value store, read back by key in microseconds.
//!
//! Stores only keep bytes ([`OnlineStore`]); what the bytes mean (`codec`) and which row
//! is the latest (`materialize_view`) live here, once, so the embedded store and Redis
//! behave the same by construction and one conformance suite checks both. A write never
//! replaces a row with an older one (by event time, then created time), whatever order
//! windows are materialized in: the store compares versions atomically.

mod codec;
pub mod embedded;
pub mod redis;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;
use trainstore_core::{DataSourceRef, Error, Operation, Result, TimeRange, Timestamp};

use crate::historical::{ViewSelection, require_distinct_columns};

pub use embedded::EmbeddedOnlineStore;
pub use redis::RedisOnlineStore;

/// Shared handle to an online store.
pub type OnlineStoreRef = Arc<dyn OnlineStore>;

/// What [`OnlineStore::read`] hands each stored row to.
pub type RowVisitor<'a> = dyn FnMut(Option<&[u8]>) -> Result<()> + Send + 'a;

/// A key-value home for the latest feature row of each entity, one namespace per view.
#[async_trait]
pub trait OnlineStore: Send + Sync + fmt::Debug {
    /// A short description for messages; never includes credentials.
    fn describe(&self) -> String;

    /// Stores each `(key, row)` unless the view already holds a row for the key whose
    /// version (the row's first 16 bytes) is greater; returns how many were stored.
    async fn write(&self, view: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<usize>;

    /// Hands the stored row of each key to `each`, in key order (`None` for a key never
    /// written), and stops at its first error. Rows are lent, not copied out: a lookup is
    /// often one row, read and decoded in a few microseconds.
    async fn read(&self, view: &str, keys: &[Vec<u8>], each: &mut RowVisitor<'_>) -> Result<()>;

    /// Up to which event time (exclusive) `view` has been materialized, if ever.
    async fn materialized_until(&self, view: &str) -> Result<Option<Timestamp>>;

    /// Records that `view` is materialized up to `end` (exclusive); never moves backwards.
    async fn set_materialized_until(&self, view: &str, end: Timestamp) -> Result<()>;
}

/// What one view's materialization did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Materialized {
    pub view: String,
    pub range: Option<TimeRange>,
    /// Source rows read in the window.
    pub rows_read: usize,
    /// Distinct entities found (their latest rows were offered to the store).
    pub entities: usize,
    /// Rows the store took (the rest were older than what it held).
    pub written: usize,
}

/// Writes each entity's latest row in `range` (all time when `None`) of one view's source
/// into `store`.
pub(crate) async fn materialize_view(
    selection: &ViewSelection,
    source: &DataSourceRef,
    store: &OnlineStoreRef,
    range: Option<TimeRange>,
    rows_read_so_far: &Operation<'_>,
) -> Result<Materialized> {
    let view = &selection.view;
    let mut latest: HashMap<Vec<u8>, Vec<u8>, ahash::RandomState> = HashMap::default();
    let keep = view.online_rows;
    let mut recent: HashMap<Vec<u8>, Vec<Vec<u8>>, ahash::RandomState> = HashMap::default();
    let mut rows_read = 0;
    let mut stream = source.scan(&selection.scan_request(range)).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows_read += batch.num_rows();
        rows_read_so_far.advance(batch.num_rows() as u64);
        let parts = selection.split(&batch)?;
        let (event, created) = (parts.event, parts.created);
        let keys = codec::encode_keys(&selection.join_keys, parts.keys)?;
        let encoder = codec::RowEncoder::new(&selection.features, parts.features)?;
        for (row, key) in keys.into_iter().enumerate() {
            let (Some(key), true) = (key, event.is_valid(row)) else {
                continue;
            };
            let c = created
                .as_ref()
                .filter(|c| c.is_valid(row))
                .map_or(i64::MIN, |c| c.value(row));
            let encoded = encoder.encode(row, event.value(row), c);
            if keep > 1 {
                let rows = recent.entry(key.clone()).or_default();
                rows.push(encoded.clone());
                if rows.len() >= 2 * keep {
                    newest(rows, keep)?;
                }
            }
            match latest.get_mut(&key) {
                // Later rows win full ties, as in historical retrieval.
                Some(held) if codec::version(held)? > codec::version(&encoded)? => {}
                Some(held) => *held = encoded,
                None => {
                    latest.insert(key, encoded);
                }
            }
        }
    }
    let entities = latest.len();
    let written = store
        .write(view.name.as_str(), latest.into_iter().collect())
        .await?;
    if keep > 1 {
        write_recent(store, view.name.as_str(), recent, keep).await?;
    }
    Ok(Materialized {
        view: view.name.to_string(),
        range,
        rows_read,
        entities,
        written,
    })
}

/// How online reads treat old values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlPolicy {
    /// A value older than its view's TTL at read time is returned as null (our default).
    #[default]
    Enforce,
    /// Values are returned however old, as Feast does (rule 11.2 of `docs/point-in-time.md`).
    Ignore,
}

impl TtlPolicy {
    /// How old, in nanoseconds, a row of `selection`'s view may be to be served, if the TTL
    /// applies.
    fn limit_ns(self, selection: &ViewSelection) -> Option<i128> {
        match self {
            TtlPolicy::Enforce => selection.view.ttl.limit().map(|d| d.as_nanos() as i128),
            TtlPolicy::Ignore => None,
        }
    }
}

/// The schema of an online answer, and where its key columns are in the entity rows.
#[derive(Debug)]
struct AnswerShape {
    entity: SchemaRef,
    full_feature_names: bool,
    with_status: bool,
    schema: SchemaRef,
    keys: Vec<usize>,
}

/// The answer shape of the last entity schema a request plan was asked with: a serving loop
/// sends the same columns every time, so names and fields are built once.
#[derive(Debug, Default)]
pub(crate) struct AnswerShapes(Mutex<Option<Arc<AnswerShape>>>);

impl AnswerShapes {
    fn get(
        &self,
        entity: &SchemaRef,
        selections: &[ViewSelection],
        full_feature_names: bool,
        with_status: bool,
    ) -> Result<Arc<AnswerShape>> {
        let mut held = self.0.lock().expect("answer shapes");
        if let Some(shape) = held.as_ref()
            && shape.full_feature_names == full_feature_names
            && shape.with_status == with_status
            && (Arc::ptr_eq(&shape.entity, entity) || shape.entity == *entity)
        {
            return Ok(shape.clone());
        }
        let shape = Arc::new(answer_shape(
            entity,
            selections,
            full_feature_names,
            with_status,
        )?);
        *held = Some(shape.clone());
        Ok(shape)
    }
}

/// The join-key columns first (each once, in the order views name them), then the features,
/// grouped by view (names like historical retrieval's), each view's followed by its
/// `<view>__status` column when asked for.
fn answer_shape(
    entity: &SchemaRef,
    selections: &[ViewSelection],
    full_feature_names: bool,
    with_status: bool,
) -> Result<AnswerShape> {
    require_distinct_columns(entity)?;
    let mut keys: Vec<usize> = Vec::new();
    for s in selections {
        s.require_join_keys(entity)?;
        for k in &s.join_keys {
            let i = entity.index_of(k).expect("checked");
            if !keys.contains(&i) {
                keys.push(i);
            }
        }
    }
    let mut fields: Vec<ArrowField> = keys.iter().map(|&i| entity.field(i).clone()).collect();
    for s in selections {
        for f in &s.features {
            let name = s.output_name(f, full_feature_names);
            if fields.iter().any(|x| x.name() == &name) {
                return Err(Error::invalid(
                    "feature references",
                    name.as_str(),
                    "two columns of the answer would have this name; ask for full feature names",
                ));
            }
            fields.push(ArrowField::new(name, codec::canonical_type(&f.dtype), true));
        }
        if with_status {
            let name = status_column(s);
            if fields.iter().any(|x| x.name() == &name) {
                return Err(Error::invalid(
                    "feature references",
                    name.as_str(),
                    "a feature has the name of the view's status column",
                ));
            }
            fields.push(ArrowField::new(name, DataType::Utf8, false));
        }
    }
    Ok(AnswerShape {
        entity: entity.clone(),
        full_feature_names,
        with_status,
        schema: Arc::new(Schema::new(fields)),
        keys,
    })
}

/// Where a view's recent rows are kept in the store: beside its latest rows, under a name no
/// view can have (names have no `#`).
fn recent_namespace(view: &str) -> String {
    format!("{view}#recent")
}

/// Keeps the `keep` newest of `rows` (by version, later rows winning ties), oldest first.
fn newest(rows: &mut Vec<Vec<u8>>, keep: usize) -> Result<()> {
    for row in rows.iter() {
        codec::version(row)?;
    }
    // A stable sort: of rows with equal versions, the later stays later, and wins below.
    rows.sort_by(|a, b| a[..codec::HEADER].cmp(&b[..codec::HEADER]));
    rows.dedup_by(|later, earlier| {
        let same = later[..codec::HEADER] == earlier[..codec::HEADER];
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    let extra = rows.len().saturating_sub(keep);
    rows.drain(..extra);
    Ok(())
}

/// Merges each entity's `recent` rows with those the store holds for it, and stores the
/// `keep` newest. Two materializations of the same entity at once may each miss the other's
/// rows (read, then write); the store still never goes back to older rows.
async fn write_recent(
    store: &OnlineStoreRef,
    view: &str,
    recent: HashMap<Vec<u8>, Vec<Vec<u8>>, ahash::RandomState>,
    keep: usize,
) -> Result<()> {
    let namespace = recent_namespace(view);
    let (keys, mut rows): (Vec<Vec<u8>>, Vec<Vec<Vec<u8>>>) = recent.into_iter().unzip();
    let mut at = 0;
    let mut each = |held: Option<&[u8]>| -> Result<()> {
        if let Some(held) = held {
            let merged = &mut rows[at];
            let earlier = codec::recent_rows(held)?;
            merged.splice(0..0, earlier.into_iter().map(<[u8]>::to_vec));
        }
        at += 1;
        Ok(())
    };
    store.read(&namespace, &keys, &mut each).await?;
    let mut values = Vec::with_capacity(keys.len());
    for (key, mut rows) in keys.into_iter().zip(rows) {
        newest(&mut rows, keep)?;
        values.push((key, codec::encode_recent(&rows)));
    }
    store.write(&namespace, values).await?;
    Ok(())
}

/// The recent rows `view` keeps online (see [`FeatureView::online_rows`]) of each entity
/// row's entity, oldest first: the join keys, the view's timestamp field and its features,
/// one row per stored row. Rows older than the view's TTL at `now` are left out under
/// [`TtlPolicy::Enforce`]; an entity with no rows has none.
///
/// [`FeatureView::online_rows`]: crate::definitions::FeatureView::online_rows
pub(crate) async fn read_recent(
    store: &OnlineStoreRef,
    entity_rows: &RecordBatch,
    selection: &ViewSelection,
    ttl: TtlPolicy,
    now: Timestamp,
) -> Result<RecordBatch> {
    selection.require_join_keys(&entity_rows.schema())?;
    let key_columns: Vec<ArrayRef> = selection
        .join_keys
        .iter()
        .map(|k| entity_rows.column_by_name(k).expect("checked").clone())
        .collect();
    let namespace = recent_namespace(selection.view.name.as_str());
    let values = read_by_value(store, &namespace, &selection.join_keys, &key_columns).await?;
    let limit = ttl.limit_ns(selection);
    let now_ns = i128::from(now.as_millis()) * 1_000_000;
    let mut found: Vec<&[u8]> = Vec::new();
    let mut entity_of: Vec<u32> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    for (entity_row, value) in values.iter().enumerate() {
        let Some(value) = value else { continue };
        for row in codec::recent_rows(value)? {
            let event = codec::event_time(row)?;
            if limit.is_some_and(|l| now_ns - i128::from(event) > l) {
                continue;
            }
            found.push(row);
            entity_of.push(entity_row as u32);
            times.push(event);
        }
    }
    let mut decoder = codec::RowDecoder::new(&selection.features, found.len());
    for row in &found {
        decoder.append(Some(row))?;
    }
    let entity_of = arrow::array::UInt32Array::from(entity_of);
    let mut fields: Vec<ArrowField> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (name, column) in selection.join_keys.iter().zip(&key_columns) {
        fields.push(ArrowField::new(name, column.data_type().clone(), true));
        columns.push(arrow::compute::take(column, &entity_of, None)?);
    }
    let time = arrow::array::TimestampNanosecondArray::from(times).with_timezone("UTC");
    fields.push(ArrowField::new(
        &selection.view.timestamp_field,
        time.data_type().clone(),
        false,
    ));
    columns.push(Arc::new(time));
    for (f, column) in selection.features.iter().zip(decoder.finish()) {
        fields.push(ArrowField::new(&f.name, column.data_type().clone(), true));
        columns.push(column);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Why an online answer's values are what they are, per view and entity row (the
/// `<view>__status` column).
pub mod status {
    /// The entity's latest row, within the view's TTL.
    pub const PRESENT: &str = "present";
    /// The entity's latest row is older than the view's TTL: its values read as null.
    pub const EXPIRED: &str = "expired";
    /// Nothing is stored for the entity's key (never materialized for it, or a null key).
    pub const UNKNOWN_KEY: &str = "unknown key";
    /// The view has never been materialized: no entity has values.
    pub const NOT_MATERIALIZED: &str = "not materialized";
}

/// The name of `selection`'s status column.
fn status_column(selection: &ViewSelection) -> String {
    format!("{}__status", selection.view.name)
}

/// The latest values of `selections`' features for each entity row: the join-key columns
/// first, then the features, grouped by view (names like historical retrieval's), with each
/// view's [`status`] column after its features when `with_status`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_features(
    store: &OnlineStoreRef,
    entity_rows: &RecordBatch,
    selections: &[ViewSelection],
    shapes: &AnswerShapes,
    full_feature_names: bool,
    with_status: bool,
    ttl: TtlPolicy,
    now: Timestamp,
) -> Result<RecordBatch> {
    let shape = shapes.get(
        &entity_rows.schema(),
        selections,
        full_feature_names,
        with_status,
    )?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(shape.schema.fields().len());
    columns.extend(shape.keys.iter().map(|&i| entity_rows.column(i).clone()));
    let now_ns = i128::from(now.as_millis()) * 1_000_000;
    for s in selections {
        let key_columns: Vec<ArrayRef> = s
            .join_keys
            .iter()
            .map(|k| entity_rows.column_by_name(k).expect("checked").clone())
            .collect();
        let keys = codec::encode_keys(&s.join_keys, &key_columns)?;
        let limit = ttl.limit_ns(s);
        let mut answer = ViewAnswer::new(s, keys.len(), limit, now_ns, with_status);
        let mut has_key = Vec::with_capacity(keys.len());
        let present: Vec<Vec<u8>> = keys
            .into_iter()
            .inspect(|k| has_key.push(k.is_some()))
            .flatten()
            .collect();
        // Rows come for the keys present; an entity row with a null key reads as nulls.
        let mut rows = has_key.into_iter().peekable();
        let mut missed = false;
        let mut each = |row: Option<&[u8]>| -> Result<()> {
            while rows.next_if_eq(&false).is_some() {
                answer.push(None)?;
            }
            rows.next();
            missed |= row.is_none();
            answer.push(row)
        };
        store
            .read(s.view.name.as_str(), &present, &mut each)
            .await?;
        for _ in rows {
            answer.push(None)?;
        }
        // A key that found nothing may have been materialized as the other kind of key.
        if missed {
            let found = read_by_value(store, s.view.name.as_str(), &s.join_keys, &key_columns);
            let found = found.await?;
            answer = ViewAnswer::new(s, found.len(), limit, now_ns, with_status);
            for row in &found {
                answer.push(row.as_deref())?;
            }
        }
        columns.extend(answer.decoder.finish());
        if with_status {
            let mut statuses = answer.statuses;
            let view = s.view.name.as_str();
            if store.materialized_until(view).await?.is_none() {
                statuses.fill(status::NOT_MATERIALIZED);
            }
            columns.push(Arc::new(arrow::array::StringArray::from(statuses)));
        }
    }
    Ok(RecordBatch::try_new(shape.schema.clone(), columns)?)
}

/// One view's columns of an online answer, built one entity row at a time.
struct ViewAnswer<'a> {
    decoder: codec::RowDecoder<'a>,
    /// Why each value is what it is; kept only when asked for: a serving loop's lookup does
    /// not pay for it.
    statuses: Vec<&'static str>,
    with_status: bool,
    /// How old a row may be, in nanoseconds, if the TTL applies.
    limit: Option<i128>,
    now_ns: i128,
}

impl<'a> ViewAnswer<'a> {
    fn new(
        selection: &'a ViewSelection,
        rows: usize,
        limit: Option<i128>,
        now_ns: i128,
        with_status: bool,
    ) -> Self {
        ViewAnswer {
            decoder: codec::RowDecoder::new(&selection.features, rows),
            statuses: Vec::new(),
            with_status,
            limit,
            now_ns,
        }
    }

    /// The next entity row's stored row (`None`: nothing stored for its key, or no key).
    fn push(&mut self, row: Option<&[u8]>) -> Result<()> {
        let fresh = match (row, self.limit) {
            (Some(r), Some(l)) if self.now_ns - i128::from(codec::event_time(r)?) > l => None,
            _ => row,
        };
        if self.with_status {
            self.statuses.push(match (row, fresh) {
                (None, _) => status::UNKNOWN_KEY,
                (Some(_), None) => status::EXPIRED,
                (Some(_), Some(_)) => status::PRESENT,
            });
        }
        self.decoder.append(fresh)
    }
}

/// Each entity row's stored value in `namespace`, looking up the keys that find nothing as
/// given again as the other kind of key ([`codec::other_key_kinds`]): an integer key finds a
/// row materialized from text and the other way round, as historical joins compare keys by
/// value. Values are copied out.
async fn read_by_value(
    store: &OnlineStoreRef,
    namespace: &str,
    join_keys: &[String],
    key_columns: &[ArrayRef],
) -> Result<Vec<Option<Vec<u8>>>> {
    let len = key_columns.first().map_or(0, |c| c.len());
    let mut found: Vec<Option<Vec<u8>>> = vec![None; len];
    let mut spellings = vec![key_columns.to_vec()];
    let mut respelled = false;
    while let Some(columns) = spellings.pop() {
        let keys = codec::encode_keys(join_keys, &columns)?;
        let (rows, lookup): (Vec<usize>, Vec<Vec<u8>>) = keys
            .into_iter()
            .enumerate()
            .filter_map(|(i, k)| k.filter(|_| found[i].is_none()).map(|k| (i, k)))
            .unzip();
        if lookup.is_empty() {
            continue;
        }
        let mut at = 0;
        let mut each = |value: Option<&[u8]>| -> Result<()> {
            found[rows[at]] = value.map(<[u8]>::to_vec);
            at += 1;
            Ok(())
        };
        store.read(namespace, &lookup, &mut each).await?;
        if !respelled && found.iter().any(Option::is_none) {
            respelled = true;
            spellings = codec::other_key_kinds(key_columns)?;
        }
    }
    Ok(found)
}

/// Opens the online store a URL names: `redis://…` for Redis, `memory://name` for an
/// in-memory store of this process, or a local file path for the embedded store.
pub async fn open_online_store(url: &str, namespace: &str) -> Result<OnlineStoreRef> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Arc::new(RedisOnlineStore::connect(url, namespace).await?))
    } else if let Some(name) = url.strip_prefix("memory://") {
        Ok(Arc::new(EmbeddedOnlineStore::in_memory(name)?))
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        Ok(Arc::new(EmbeddedOnlineStore::open(path)?))
    }
}
