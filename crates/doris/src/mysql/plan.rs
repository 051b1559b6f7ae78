//! Planning a scan: which conditions the server answers (typed literals, byte-exact
//! comparisons), which filters run after parsing, and the output columns.

use trainstore_core::{Error, Filter, Result, ScanRequest, TimeRange, Timestamp};

use super::Inner;
use super::part::Deadline;
use crate::sql::{Ident, Select};

/// What a request asks of the table: conditions pushed to the server, filters applied after
/// parsing, the output columns, and the time range.
pub(super) struct ScanPlan {
    pub(super) where_sql: Vec<String>,
    pub(super) post: Vec<Filter>,
    pub(super) projection: Option<Vec<usize>>,
    pub(super) range: Option<TimeRange>,
}

impl Inner {
    /// Checks `request` against the table and splits it into what the server and the client do.
    pub(super) fn plan(&self, request: &ScanRequest, parse: bool) -> Result<ScanPlan> {
        let output = if parse {
            self.parser.schema().output_schema()
        } else {
            self.raw_schema.clone()
        };
        let split = self.select().split(
            request,
            &self.table_columns,
            &self.parser.schema().output_schema(),
            &output,
        )?;
        if !parse && !split.post.is_empty() {
            return Err(Error::invalid(
                "raw scan filter",
                &split.post[0].column,
                "raw scans filter on table columns only",
            ));
        }
        Ok(ScanPlan {
            where_sql: split.conditions,
            post: split.post,
            projection: split.projection,
            range: request.time_range,
        })
    }

    pub(super) fn select(&self) -> Select<'_> {
        let columns: Vec<Ident> = self.raw.iter().map(|(c, _)| c.clone()).collect();
        Select::new(
            &self.table,
            &columns,
            self.time_column.as_ref(),
            self.literals,
        )
    }

    /// The smallest range covering every row's time, for splitting a scan without a range.
    pub(super) async fn time_bounds(&self, where_sql: &[String]) -> Result<Option<TimeRange>> {
        let time = self.time_column.as_ref().expect("checked by caller");
        let mut sql = format!("SELECT MIN({time}), MAX({time}) FROM {}", self.table);
        if !where_sql.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&where_sql.join(" AND "));
        }
        let timed = Deadline::after(self.options.query_timeout, &self.endpoint);
        let mut conn = timed.run("connect", self.pool.get()).await?;
        let rows = timed.run("time bounds", conn.text_rows(&sql)).await?;
        self.pool.put(conn);
        let bound = |i: usize| -> Option<i64> { rows.first()?.get(i)?.as_deref()?.parse().ok() };
        Ok(match (bound(0), bound(1)) {
            (Some(lo), Some(hi)) => Some(TimeRange::new(
                Timestamp::from_millis(lo),
                Timestamp::from_millis(hi + 1),
            )?),
            _ => None,
        })
    }
}
