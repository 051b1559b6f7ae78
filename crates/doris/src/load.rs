//! Loading raw snapshot rows into a Doris or MySQL-protocol table: for the synthetic data of
//! tests, benchmarks and demos (`trainstore snapshots load`), in the design document's layout.

use arrow::array::RecordBatch;
use arrow::compute::{sort_to_indices, take_record_batch};
use arrow::datatypes::DataType;
use mysql_async::prelude::Queryable;
use trainstore_core::{Error, Result, Secret};

use crate::mysql::{Dialect, Link};
use crate::net::Timeouts;
use crate::sql::TableRef;
use crate::write::InsertValues;

/// Creates `table` in the design document's layout (`time` BIGINT, `feature` JSON text) when it
/// does not exist, then appends the raw batches (columns `time` and `feature`, as
/// [`crate::synth::raw_schema`]). Returns the rows written. Connecting, and every statement,
/// keep `timeouts`.
pub async fn load_design_doc_rows(
    url: &Secret,
    table: &str,
    batches: impl IntoIterator<Item = RecordBatch>,
    timeouts: Timeouts,
) -> Result<u64> {
    let link = Link::new(url, timeouts)?;
    let table = TableRef::parse(table, link.database())?;
    let mut conn = link.connect().await?;
    let (dialect, literals) = link.session_info(&mut conn).await?;
    let create = match dialect {
        Dialect::Doris => format!(
            "CREATE TABLE IF NOT EXISTS {table} (`time` BIGINT NOT NULL, `feature` STRING) \
             DUPLICATE KEY(`time`) DISTRIBUTED BY HASH(`time`) BUCKETS 8 PROPERTIES (\"replication_num\" = \"1\")"
        ),
        // Rows kept in time order, as Doris keeps them by its duplicate key: a time range,
        // such as one part of a parallel read, then reads only its own rows instead of
        // scanning the table. The sequence that makes the key unique is invisible to
        // `SELECT *`.
        Dialect::MariaDb | Dialect::MySql => format!(
            "CREATE TABLE IF NOT EXISTS {table} (`time` BIGINT NOT NULL, `feature` LONGTEXT, \
             `seq` BIGINT NOT NULL AUTO_INCREMENT INVISIBLE, PRIMARY KEY (`time`, `seq`), KEY `by_seq` (`seq`))"
        ),
    };
    link.step("create table", conn.query_drop(create)).await?;
    let head = format!("INSERT INTO {table} (`time`, `feature`) VALUES ");
    let mut values = InsertValues::new(literals);
    let mut written = 0u64;
    for batch in batches {
        let batch = design_doc_columns(&batch)?;
        written += batch.num_rows() as u64;
        for statement in values.add(&batch) {
            let insert = conn.query_drop(format!("{head}{}", statement.values));
            link.step("insert", insert).await?;
        }
    }
    if let Some(statement) = values.finish() {
        let insert = conn.query_drop(format!("{head}{}", statement.values));
        link.step("insert", insert).await?;
    }
    let _ = link.step("disconnect", conn.disconnect()).await;
    Ok(written)
}

/// The batch's `time` (Int64) and `feature` (Utf8) columns, in that order, its rows sorted by
/// time: a MySQL table keeps its rows in time order, and rows inserted out of order split its
/// pages (a table loaded device by device grew by 40 % and read three times slower).
fn design_doc_columns(batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = design_doc_projection(batch)?;
    let order = sort_to_indices(columns.column(0), None, None)?;
    Ok(take_record_batch(&columns, &order)?)
}

/// The batch's `time` (Int64) and `feature` (Utf8) columns, in that order.
fn design_doc_projection(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let index = |name: &str, ty: DataType| {
        schema
            .index_of(name)
            .ok()
            .filter(|&i| schema.field(i).data_type() == &ty)
    };
    match (
        index("time", DataType::Int64),
        index("feature", DataType::Utf8),
    ) {
        (Some(t), Some(f)) => Ok(batch.project(&[t, f])?),
        _ => Err(Error::invalid(
            "raw snapshot batch",
            format!("{schema:?}"),
            "needs columns time (Int64) and feature (Utf8)",
        )),
    }
}
