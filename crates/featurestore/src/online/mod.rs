//! Online serving: the latest row of each entity, materialized from a view's source into a
//! key-value store, read back by key in microseconds.
//!
//! Stores only keep bytes ([`OnlineStore`]); what the bytes mean ([`codec`]) and which row
//! is the latest ([`materialize_view`]) live here, once, so the embedded store and Redis
//! behave the same by construction and one conformance suite checks both. A write never
//! replaces a row with an older one (by event time, then created time), whatever order
//! windows are materialized in: the store compares versions atomically.

mod codec;
pub mod embedded;
pub mod redis;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Field as ArrowField, Schema};
use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;
use trainstore_core::{DataSourceRef, Error, Result, TimeRange, Timestamp};

use crate::historical::ViewSelection;

pub use embedded::EmbeddedOnlineStore;
pub use redis::RedisOnlineStore;

/// Shared handle to an online store.
pub type OnlineStoreRef = Arc<dyn OnlineStore>;

/// A key-value home for the latest feature row of each entity, one namespace per view.
#[async_trait]
pub trait OnlineStore: Send + Sync + fmt::Debug {
    /// A short description for messages; never includes credentials.
    fn describe(&self) -> String;

    /// Stores each `(key, row)` unless the view already holds a row for the key whose
    /// version (the row's first 16 bytes) is greater; returns how many were stored.
    async fn write(&self, view: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<usize>;

    /// The stored row of each key, in order; `None` for keys never written.
    async fn read(&self, view: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;

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
) -> Result<Materialized> {
    let view = &selection.view;
    let mut latest: HashMap<Vec<u8>, Vec<u8>, ahash::RandomState> = HashMap::default();
    let mut rows_read = 0;
    let mut stream = source.scan(&selection.scan_request(range)).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows_read += batch.num_rows();
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
            match latest.get_mut(&key) {
                // Later rows win full ties, as in historical retrieval.
                Some(held) if codec::version(held) > codec::version(&encoded) => {}
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
    /// Values are returned however old, as Feast does (`FEAST_SEMANTICS.md` rule 11.2).
    Ignore,
}

/// The latest values of `selections`' features for each entity row: the join-key columns
/// first, then the features, grouped by view (names like historical retrieval's).
pub(crate) async fn read_features(
    store: &OnlineStoreRef,
    entity_rows: &RecordBatch,
    selections: &[ViewSelection],
    full_feature_names: bool,
    ttl: TtlPolicy,
    now: Timestamp,
) -> Result<RecordBatch> {
    let schema = entity_rows.schema();
    let mut key_names: Vec<String> = Vec::new();
    for s in selections {
        s.require_join_keys(&schema)?;
        for k in &s.join_keys {
            if !key_names.contains(k) {
                key_names.push(k.clone());
            }
        }
    }
    let mut fields: Vec<ArrowField> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for k in &key_names {
        let i = schema.index_of(k).expect("checked");
        fields.push(schema.field(i).clone());
        columns.push(entity_rows.column(i).clone());
    }
    let now_ns = i128::from(now.as_millis()) * 1_000_000;
    for s in selections {
        let key_columns: Vec<ArrayRef> = s
            .join_keys
            .iter()
            .map(|k| entity_rows.column_by_name(k).expect("checked").clone())
            .collect();
        let keys = codec::encode_keys(&s.join_keys, &key_columns)?;
        let present: Vec<Vec<u8>> = keys.iter().flatten().cloned().collect();
        let mut stored = store
            .read(s.view.name.as_str(), &present)
            .await?
            .into_iter();
        let limit = match ttl {
            TtlPolicy::Enforce => s.view.ttl.limit().map(|d| d.as_nanos() as i128),
            TtlPolicy::Ignore => None,
        };
        let mut decoder = codec::RowDecoder::new(&s.features, keys.len());
        for key in &keys {
            let row = match key {
                Some(_) => stored.next().flatten(),
                None => None,
            };
            let fresh = row
                .filter(|r| limit.is_none_or(|l| now_ns - i128::from(codec::event_time(r)) <= l));
            decoder.append(fresh.as_deref())?;
        }
        for (f, column) in s.features.iter().zip(decoder.finish()) {
            let name = s.output_name(f, full_feature_names);
            if fields.iter().any(|x| x.name() == &name) {
                return Err(Error::invalid(
                    "feature references",
                    name.as_str(),
                    "two columns of the answer would have this name; ask for full feature names",
                ));
            }
            fields.push(ArrowField::new(name, column.data_type().clone(), true));
            columns.push(column);
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Opens the online store a URL names: `redis://…` for Redis, or a local file path for the
/// embedded store.
pub async fn open_online_store(url: &str, namespace: &str) -> Result<OnlineStoreRef> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Arc::new(RedisOnlineStore::connect(url, namespace).await?))
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        Ok(Arc::new(EmbeddedOnlineStore::open(path)?))
    }
}
