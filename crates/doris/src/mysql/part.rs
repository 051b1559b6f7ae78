//! Reading one time-range part of a scan on its own connection, within the query's deadline,
//! retried after a transient failure without repeating or losing rows.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use tokio::sync::mpsc;
use trainstore_core::{Filter, Result, TimeRange, apply_filters};
use xxhash_rust::xxh3::xxh3_128_with_seed;

use super::rows::RawRows;
use super::wire::{ResultSet, Row, WireError, WireResult};
use super::{Inner, wire_error};
use crate::net::timed_out;
use crate::resume::HandedOut;
use trainstore_core::retry::retry_within;

/// One time-range part of a scan, read on its own connection.
pub(super) struct MysqlPart {
    pub(super) inner: Arc<Inner>,
    pub(super) range: Option<TimeRange>,
    pub(super) filters: Vec<String>,
    pub(super) post: Vec<Filter>,
    pub(super) projection: Option<Vec<usize>>,
    pub(super) parse: bool,
}

impl MysqlPart {
    pub(super) fn sql(&self) -> String {
        self.inner
            .select()
            .sql(&self.filters, self.range.as_ref(), None, false)
    }

    /// Reads the part; after a transient failure it reads it again, skipping the rows already
    /// handed out (recognised by their content), so none is repeated or lost. Every attempt
    /// shares the query's deadline.
    pub(super) async fn run(&self, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<()> {
        let inner = &self.inner;
        let timed = Deadline::after(inner.options.query_timeout, &inner.endpoint);
        // Rows handed out survive a failed attempt: the next one skips them.
        let progress = tokio::sync::Mutex::new(HandedOut::default());
        let overdue = || {
            timed_out(
                &format!("doris at {}", inner.endpoint),
                "query",
                timed.limit,
            )
        };
        retry_within(
            "doris read",
            inner.options.max_retries,
            timed.at,
            overdue,
            |_| async {
                let mut done = progress.lock().await;
                self.attempt(tx, &mut done, timed).await
            },
        )
        .await
    }

    pub(super) async fn attempt(
        &self,
        tx: &mpsc::Sender<Result<RecordBatch>>,
        progress: &mut HandedOut,
        timed: Deadline<'_>,
    ) -> Result<()> {
        let inner = &self.inner;
        let sql = self.sql();
        tracing::debug!(%sql, "doris query");
        let mut conn = timed.run("connect", inner.pool.get()).await?;
        let mut result = timed.run("query", conn.query(&sql)).await?;
        check_columns(&inner.endpoint, &result, inner.raw.len())?;
        // Rows a previous attempt handed out, to be skipped once each this time.
        let mut skip = progress.already_sent()?;
        let track = inner.options.max_retries > 0;
        let mut rows = RawRows::new(&inner.raw, inner.options.batch_rows);
        let mut pending: Vec<u128> = Vec::new();
        let mut more = true;
        while more {
            let keep = |row: &Row<'_>| {
                if !track {
                    return true;
                }
                let key = row_key(row.cells());
                let fresh = !skip.take(key);
                if fresh {
                    pending.push(key);
                }
                fresh
            };
            more = timed.run("read rows", rows.fill(&mut result, keep)).await?;
            if rows.len() > 0 {
                let batch = rows.finish(&inner.raw_schema)?;
                progress.hand_out(&mut pending);
                if !self.send(tx, batch).await? {
                    return Ok(());
                }
            }
        }
        inner.pool.put(conn);
        Ok(())
    }

    /// Parses, filters and projects a raw batch and sends it; `false` once the reader is gone.
    pub(super) async fn send(
        &self,
        tx: &mpsc::Sender<Result<RecordBatch>>,
        raw: RecordBatch,
    ) -> Result<bool> {
        self.inner
            .output(raw, self.parse, &self.post, self.projection.as_deref())
            .await?
            .send(tx)
            .await
    }
}

/// A batch ready for the reader, or nothing when every row was filtered out.
pub(super) struct Outgoing(Option<RecordBatch>);

impl Outgoing {
    /// Sends the batch, if any; `false` once the reader is gone.
    pub(super) async fn send(self, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<bool> {
        match self.0 {
            Some(batch) => Ok(tx.send(Ok(batch)).await.is_ok()),
            None => Ok(true),
        }
    }
}

impl Inner {
    /// Parses (when asked), filters and projects a raw batch, merging its parse report.
    pub(super) async fn output(
        &self,
        raw: RecordBatch,
        parse: bool,
        post: &[Filter],
        projection: Option<&[usize]>,
    ) -> Result<Outgoing> {
        let mut batch = if parse {
            let (typed, report) = self.parser.parse_on_pool(raw).await?;
            self.last_report.lock().expect("report lock").merge(&report);
            typed
        } else {
            raw
        };
        if !post.is_empty() {
            batch = apply_filters(&batch, post)?;
        }
        if let Some(p) = projection {
            batch = batch.project(p)?;
        }
        Ok(Outgoing((batch.num_rows() > 0).then_some(batch)))
    }
}

/// Fails unless a result has the columns the builders expect.
pub(super) fn check_columns(endpoint: &str, result: &ResultSet<'_>, expected: usize) -> Result<()> {
    if result.columns() == expected {
        return Ok(());
    }
    Err(wire_error(
        endpoint,
        "query",
        WireError::Protocol(format!(
            "{} columns in the result, {expected} expected",
            result.columns()
        )),
    ))
}

/// A 128-bit fingerprint of a row's values: identical rows share it (and are counted). Each
/// cell is hashed in one pass with a seed of its own position (a null with another), and the
/// cells' hashes are combined by XOR, so rows differing in any cell differ in the fingerprint.
pub(super) fn row_key<'a>(cells: impl IntoIterator<Item = Option<&'a [u8]>>) -> u128 {
    cells.into_iter().enumerate().fold(0u128, |key, (i, cell)| {
        let seed = 2 * i as u64;
        key ^ match cell {
            Some(text) => xxh3_128_with_seed(text, seed),
            None => xxh3_128_with_seed(&[], seed + 1),
        }
    })
}

/// The query timeout, enforced on the client across one query's steps (and its retries) on
/// the server at `endpoint`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline<'a> {
    pub(super) at: tokio::time::Instant,
    pub(super) limit: Duration,
    pub(super) endpoint: &'a str,
}

impl<'a> Deadline<'a> {
    pub(super) fn after(limit: Duration, endpoint: &'a str) -> Self {
        Deadline {
            at: tokio::time::Instant::now() + limit,
            limit,
            endpoint,
        }
    }

    /// Runs one step of the query, failing with a timeout once the deadline has passed.
    pub(super) async fn run<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = WireResult<T>>,
    ) -> Result<T> {
        self.within(operation, work)
            .await?
            .map_err(|e| wire_error(self.endpoint, operation, e))
    }

    /// Runs one step, failing with a timeout once the deadline has passed; its own error is
    /// left to the caller.
    pub(super) async fn within<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = T>,
    ) -> Result<T> {
        tokio::time::timeout_at(self.at, work).await.map_err(|_| {
            crate::net::timed_out(
                &format!("doris at {}", self.endpoint),
                operation,
                self.limit,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_tell_apart_rows_that_differ_in_any_cell_its_place_or_nullness() {
        let bytes = |s: &'static str| Some(s.as_bytes());
        let key = |cells: &[Option<&[u8]>]| row_key(cells.iter().copied());
        let row = [bytes("1670371745720"), bytes("{\"a\":1}")];
        assert_eq!(key(&row), key(&row.clone()), "identical rows share a key");
        let others = [
            vec![bytes("1670371745721"), bytes("{\"a\":1}")],
            vec![bytes("1670371745720"), bytes("{\"a\":2}")],
            vec![bytes("{\"a\":1}"), bytes("1670371745720")],
            vec![bytes("1670371745720"), None],
            vec![bytes("1670371745720"), bytes("")],
            vec![bytes("1670371745720")],
        ];
        for other in &others {
            assert_ne!(key(&row), key(other), "{other:?}");
        }
        assert_ne!(
            key(&others[3]),
            key(&others[4]),
            "null and empty text differ"
        );
    }
}
