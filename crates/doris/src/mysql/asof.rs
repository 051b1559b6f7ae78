//! A point-in-time join pushed down to the server: the entity windows are uploaded to a
//! temporary table, and the server keeps, for each window, the latest row of its keys within
//! it (`ROW_NUMBER()` over each window, the form both MariaDB and Doris run; Doris 4's
//! `ASOF JOIN` would need date-typed times and leaves ties to chance). At most one row per
//! window comes back, parsed like any scan, so the caller's join only picks among winners.
//!
//! The upload, the query and the clean-up run on one connection, which is closed at the end
//! (a pooled connection would keep the temporary table). A failure fails the whole stream:
//! nothing is retried halfway, since the caller only answers once the stream has ended.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use tokio::sync::mpsc;
use trainstore_core::{AsOfScan, AsOfWindows, Error, RecordBatchStream, Result, ScanRequest};

use super::wire::WireConn;
use super::{Deadline, Dialect, DorisSource, Inner, RawRows, ScanPlan, check_columns};
use crate::parse::ParseReport;
use crate::sql::{Ident, TableRef};
use crate::stream::limited;
use crate::write::InsertValues;

/// How the windows of a pushed-down join are uploaded.
trait Upload {
    /// The upload: window number, keys, bounds.
    fn batch(&self) -> Result<RecordBatch>;
}

impl Upload for AsOfWindows {
    fn batch(&self) -> Result<RecordBatch> {
        let mut fields = vec![Field::new("w", DataType::Int64, false)];
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
            0..self.upper.len() as i64,
        ))];
        for (i, k) in self.keys.iter().enumerate() {
            fields.push(Field::new(format!("k{i}"), k.data_type().clone(), true));
            columns.push(k.clone());
        }
        fields.push(Field::new("lo", DataType::Int64, true));
        fields.push(Field::new("hi", DataType::Int64, false));
        columns.push(Arc::new(self.lower.clone()));
        columns.push(Arc::new(self.upper.clone()));
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

#[async_trait]
impl AsOfScan for DorisSource {
    /// A full tie goes to either row. `key_fields` are table columns or fields of the JSON
    /// document.
    async fn scan_latest_in_windows(
        &self,
        request: &ScanRequest,
        key_fields: &[String],
        tie_break: Option<&str>,
        windows: &AsOfWindows,
    ) -> Result<RecordBatchStream> {
        windows.check(key_fields)?;
        let inner = &self.inner;
        let plan = inner.plan(request, true)?;
        let query = WindowQuery::new(inner, &plan, key_fields, tie_break, windows)?;
        *inner.last_report.lock().expect("report lock") = ParseReport::default();
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2);
        let inner = inner.clone();
        let upload = windows.batch()?;
        tokio::spawn(async move {
            if let Err(e) = query.run(&inner, &plan, upload, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(limited(rx, request.limit))
    }
}

/// The statements of one pushed-down join.
struct WindowQuery {
    table: TableRef,
    create: String,
    insert: String,
    select: String,
    drop: String,
}

impl WindowQuery {
    fn new(
        inner: &Inner,
        plan: &ScanPlan,
        key_fields: &[String],
        tie_break: Option<&str>,
        windows: &AsOfWindows,
    ) -> Result<Self> {
        let unsupported = |what: String| Error::NotSupported {
            operation: "a pushed-down point-in-time join",
            implementer: format!("table {} ({what})", inner.table),
        };
        let time = inner
            .time_column
            .as_ref()
            .ok_or_else(|| unsupported("no time column".into()))?;
        let table = TableRef {
            database: inner.table.database.clone(),
            table: Ident::new(&format!(
                "_ts_windows_{:016x}",
                std::hash::RandomState::new().hash_one(std::time::SystemTime::now())
            ))?,
        };
        let key_exprs = key_fields
            .iter()
            .map(|k| inner.key_expression(k))
            .collect::<Result<Vec<_>>>()?;
        let tie = match tie_break {
            Some(c) if inner.table_columns.contains_key(c) => {
                format!(", f.{} DESC", Ident::new(c)?)
            }
            Some(c) => return Err(unsupported(format!("{c:?} is not a table column"))),
            None => String::new(),
        };

        // Keys compare byte for byte, as in the in-process join: binary columns on MariaDB
        // (its text collations ignore case and trailing spaces); Doris compares bytes anyway.
        let doris = inner.dialect == Dialect::Doris;
        let mut columns = vec!["`_ts_w` BIGINT NOT NULL".to_owned()];
        let mut index = Vec::new();
        for (i, k) in windows.keys.iter().enumerate() {
            let ty = match (k.data_type(), doris) {
                (DataType::Int64, _) => "BIGINT".to_owned(),
                (_, true) => "STRING".to_owned(),
                (_, false) => {
                    let longest = (0..k.len())
                        .filter(|&r| k.is_valid(r))
                        .map(|r| {
                            k.as_any()
                                .downcast_ref::<arrow::array::StringArray>()
                                .map_or(0, |s| s.value(r).len())
                        })
                        .max()
                        .unwrap_or(0);
                    index.push(format!("`_ts_k{i}`({})", longest.clamp(1, 255)));
                    format!("VARBINARY({})", longest.max(1))
                }
            };
            if ty == "BIGINT" {
                index.push(format!("`_ts_k{i}`"));
            }
            columns.push(format!("`_ts_k{i}` {ty} NULL"));
        }
        columns.push("`_ts_lo` BIGINT NULL".to_owned());
        columns.push("`_ts_hi` BIGINT NOT NULL".to_owned());
        let create = if doris {
            format!(
                "CREATE TABLE {table} ({}) DUPLICATE KEY(`_ts_w`) DISTRIBUTED BY HASH(`_ts_w`) \
                 BUCKETS 1 PROPERTIES (\"replication_num\" = \"1\")",
                columns.join(", ")
            )
        } else {
            format!(
                "CREATE TEMPORARY TABLE {table} ({}, KEY ({}))",
                columns.join(", "),
                index.join(", ")
            )
        };
        let insert = format!("INSERT INTO {table} VALUES ");

        let raw: Vec<String> = inner.raw.iter().map(|(c, _)| c.to_string()).collect();
        let qualified: Vec<String> = raw.iter().map(|c| format!("f.{c}")).collect();
        let mut on: Vec<String> = key_exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} = w.`_ts_k{i}`"))
            .collect();
        on.push(format!("f.{time} <= w.`_ts_hi`"));
        on.push(format!("(w.`_ts_lo` IS NULL OR f.{time} >= w.`_ts_lo`)"));
        let mut conditions = plan.where_sql.clone();
        if let Some(r) = &plan.range {
            conditions.push(format!("f.{time} >= {}", r.start().as_millis()));
            conditions.push(format!("f.{time} < {}", r.end().as_millis()));
        }
        let where_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let select = format!(
            "SELECT {} FROM (SELECT {}, ROW_NUMBER() OVER (PARTITION BY w.`_ts_w` \
             ORDER BY f.{time} DESC{tie}) AS `_ts_rank` FROM {table} w JOIN {} f ON {}{where_sql}) \
             ranked WHERE `_ts_rank` = 1",
            raw.join(", "),
            qualified.join(", "),
            inner.table,
            on.join(" AND "),
        );
        let drop = if doris {
            format!("DROP TABLE IF EXISTS {table}")
        } else {
            format!("DROP TEMPORARY TABLE IF EXISTS {table}")
        };
        Ok(WindowQuery {
            table,
            create,
            insert,
            select,
            drop,
        })
    }

    /// Uploads, queries and streams; the window table is dropped and the connection closed
    /// whatever happens.
    async fn run(
        &self,
        inner: &Inner,
        plan: &ScanPlan,
        upload: RecordBatch,
        tx: &mpsc::Sender<Result<RecordBatch>>,
    ) -> Result<()> {
        let timed = Deadline::after(inner.options.query_timeout, &inner.endpoint);
        let mut conn = timed.run("connect", inner.pool.get()).await?;
        let outcome = self.stream(&mut conn, timed, inner, plan, upload, tx).await;
        if let Err(e) = timed
            .run("drop window table", conn.execute(&self.drop))
            .await
        {
            tracing::warn!(table = %self.table, error = %e, "could not drop the window table");
        }
        outcome
    }

    async fn stream(
        &self,
        conn: &mut WireConn,
        timed: Deadline<'_>,
        inner: &Inner,
        plan: &ScanPlan,
        upload: RecordBatch,
        tx: &mpsc::Sender<Result<RecordBatch>>,
    ) -> Result<()> {
        timed
            .run("create window table", conn.execute(&self.create))
            .await?;
        let mut values = InsertValues::new(inner.literals);
        let statements = values.add(&upload).into_iter().chain(values.finish());
        for statement in statements {
            let sql = format!("{}{}", self.insert, statement.values);
            timed.run("upload windows", conn.execute(&sql)).await?;
        }
        tracing::debug!(sql = %self.select, "doris point-in-time query");
        let mut result = timed.run("query", conn.query(&self.select)).await?;
        check_columns(&inner.endpoint, &result, inner.raw.len())?;
        let mut rows = RawRows::new(&inner.raw, inner.options.batch_rows);
        let mut more = true;
        while more {
            more = timed
                .run("read rows", rows.fill(&mut result, |_| true))
                .await?;
            if rows.len() > 0 {
                let batch = rows.finish(&inner.raw_schema)?;
                let out = inner
                    .output(batch, true, &plan.post, plan.projection.as_deref())
                    .await?;
                if !out.send(tx).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl Inner {
    /// How the query reads snapshot field `name`: its table column, or the field of the JSON
    /// document.
    fn key_expression(&self, name: &str) -> Result<String> {
        if self.table_columns.contains_key(name) {
            return Ok(format!("f.{}", Ident::new(name)?));
        }
        let document = self.parser.schema().document_column().ok_or_else(|| {
            Error::invalid(
                "key field",
                name,
                format!("is not a column of table {}", self.table),
            )
        })?;
        // The path names a validated identifier; it still goes through the literal encoder.
        let path = self.literals.value(&mysql_async::Value::from(format!(
            "$.\"{}\"",
            Ident::new(name)?.as_str()
        )));
        let document = Ident::new(document)?;
        Ok(match self.dialect {
            Dialect::Doris => format!("JSON_EXTRACT_STRING(f.{document}, {path})"),
            Dialect::MariaDb | Dialect::MySql => format!("JSON_VALUE(f.{document}, {path})"),
        })
    }
}
