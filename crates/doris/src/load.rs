//! Loading raw snapshot rows into a Doris or MySQL-protocol table: for the synthetic data of
//! tests, benchmarks and demos (`trainstore snapshots load`), in the design document's layout.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Value};
use trainstore_core::{Error, Result, Secret};

use crate::mysql::{Dialect, mysql_error as remote, parse_url, session_info};
use crate::sql::{Ident, TableRef};

/// Statement size to aim for: well under the servers' default 16 MiB packet limit.
const STATEMENT_BYTES: usize = 4 << 20;

/// Creates `table` in the design document's layout (`time` BIGINT, `feature` JSON text) when it
/// does not exist, then appends the raw batches (columns `time` and `feature`, as
/// [`crate::synth::raw_schema`]). Returns the rows written.
pub async fn load_design_doc_rows(
    url: &Secret,
    table: &str,
    batches: impl IntoIterator<Item = RecordBatch>,
) -> Result<u64> {
    let opts = parse_url(url)?;
    let table = TableRef::parse(table, opts.db_name())?;
    let mut conn = Conn::new(OptsBuilder::from_opts(opts).prefer_socket(false))
        .await
        .map_err(|e| remote("connect", e))?;
    let (dialect, literals) = session_info(&mut conn).await?;
    let create = match dialect {
        Dialect::Doris => format!(
            "CREATE TABLE IF NOT EXISTS {table} (`time` BIGINT NOT NULL, `feature` STRING) \
             DUPLICATE KEY(`time`) DISTRIBUTED BY HASH(`time`) BUCKETS 8 PROPERTIES (\"replication_num\" = \"1\")"
        ),
        Dialect::MySql => format!(
            "CREATE TABLE IF NOT EXISTS {table} (`time` BIGINT NOT NULL, `feature` LONGTEXT, KEY `by_time` (`time`))"
        ),
    };
    conn.query_drop(create)
        .await
        .map_err(|e| remote("create table", e))?;
    let columns = [Ident::new("time")?, Ident::new("feature")?];
    let head = format!(
        "INSERT INTO {table} ({}, {}) VALUES ",
        columns[0], columns[1]
    );
    let mut written = 0u64;
    let mut sql = String::with_capacity(STATEMENT_BYTES + 4096);
    for batch in batches {
        let (times, docs) = design_doc_columns(&batch)?;
        for row in 0..batch.num_rows() {
            if sql.is_empty() {
                sql.push_str(&head);
            } else {
                sql.push(',');
            }
            let time = if times.is_null(row) {
                Value::NULL
            } else {
                Value::Int(times.value(row))
            };
            let doc = if docs.is_null(row) {
                Value::NULL
            } else {
                Value::Bytes(docs.value(row).as_bytes().to_vec())
            };
            sql.push_str(&format!(
                "({}, {})",
                literals.value(&time),
                literals.value(&doc)
            ));
            written += 1;
            if sql.len() >= STATEMENT_BYTES {
                conn.query_drop(std::mem::take(&mut sql))
                    .await
                    .map_err(|e| remote("insert", e))?;
            }
        }
    }
    if !sql.is_empty() {
        conn.query_drop(sql)
            .await
            .map_err(|e| remote("insert", e))?;
    }
    let _ = conn.disconnect().await;
    Ok(written)
}

fn design_doc_columns(
    batch: &RecordBatch,
) -> Result<(
    &arrow::array::PrimitiveArray<Int64Type>,
    &arrow::array::StringArray,
)> {
    let time = batch
        .column_by_name("time")
        .filter(|c| c.data_type() == &DataType::Int64);
    let doc = batch
        .column_by_name("feature")
        .filter(|c| c.data_type() == &DataType::Utf8);
    match (time, doc) {
        (Some(t), Some(d)) => Ok((t.as_primitive::<Int64Type>(), d.as_string::<i32>())),
        _ => Err(Error::invalid(
            "raw snapshot batch",
            format!("{:?}", batch.schema()),
            "needs columns time (Int64) and feature (Utf8)",
        )),
    }
}
