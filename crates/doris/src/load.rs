//! Loading raw snapshot rows into a Doris or MySQL-protocol table: for the synthetic data of
//! tests, benchmarks and demos (`trainstore snapshots load`), in the design document's layout.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{sort_to_indices, take_record_batch};
use arrow::datatypes::DataType;
use arrow::datatypes::Int64Type;
use mysql_async::Value;
use mysql_async::prelude::Queryable;
use trainstore_core::{Error, Result, Secret};

use crate::mysql::{Dialect, Link};
use crate::net::Timeouts;
use crate::sql::TableRef;
use crate::write::{InsertValues, WriteOutcome, check_label, claim_label, insert_labelled, ledger};

/// Creates `table` in the design document's layout (`time` BIGINT, `feature` JSON text) when it
/// does not exist, then appends the raw batches (columns `time` and `feature`, as
/// [`crate::synth::raw_schema`]) under `label`, exactly once: loading again with the same
/// label writes nothing and says so (`already_written`), as [`crate::write::write_batches`]
/// does. [`content_label`] names rows by what they hold. Connecting, and every statement, keep
/// `timeouts`.
pub async fn load_design_doc_rows(
    url: &Secret,
    table: &str,
    label: &str,
    batches: impl IntoIterator<Item = RecordBatch>,
    timeouts: Timeouts,
) -> Result<WriteOutcome> {
    check_label(label)?;
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
    let head = format!("INSERT INTO {table}");
    let columns = "(`time`, `feature`) VALUES";
    let mut values = InsertValues::new(literals);
    let mut written = 0u64;
    if dialect == Dialect::Doris {
        // Each statement carries its own label: a chunk Doris ran before is skipped.
        let mut doris = DorisChunks::default();
        for batch in batches {
            for statement in values.add(&design_doc_columns(&batch)?) {
                let tail = format!("{columns} {}", statement.values);
                doris
                    .send(&link, &mut conn, &head, &tail, label, statement.rows)
                    .await?;
            }
        }
        if let Some(statement) = values.finish() {
            let tail = format!("{columns} {}", statement.values);
            doris
                .send(&link, &mut conn, &head, &tail, label, statement.rows)
                .await?;
        }
        let _ = link.step("disconnect", conn.disconnect()).await;
        return Ok(WriteOutcome {
            rows_written: doris.written,
            already_written: doris.sent > 0 && doris.written == 0,
            attempts: 1,
        });
    }
    let Some(mut tx) = claim_label(&link, &mut conn, &table, label, 0, literals).await? else {
        let _ = link.step("disconnect", conn.disconnect()).await;
        return Ok(WriteOutcome {
            rows_written: 0,
            already_written: true,
            attempts: 1,
        });
    };
    for batch in batches {
        let batch = design_doc_columns(&batch)?;
        written += batch.num_rows() as u64;
        for statement in values.add(&batch) {
            let insert = tx.query_drop(format!("{head} {columns} {}", statement.values));
            link.step("insert", insert).await?;
        }
    }
    if let Some(statement) = values.finish() {
        let insert = tx.query_drop(format!("{head} {columns} {}", statement.values));
        link.step("insert", insert).await?;
    }
    // The ledger row was claimed before the rows were counted.
    let record = format!(
        "UPDATE {} SET `rows_written` = {written} WHERE `label` = {} AND `table_name` = {}",
        ledger(&table)?,
        literals.value(&Value::from(label)),
        literals.value(&Value::from(table.table.as_str()))
    );
    link.step("record rows", tx.query_drop(record)).await?;
    link.step("commit", tx.commit()).await?;
    let _ = link.step("disconnect", conn.disconnect()).await;
    Ok(WriteOutcome {
        rows_written: written,
        already_written: false,
        attempts: 1,
    })
}

/// A label naming the rows `config` generates: the generator is seeded, so the same settings
/// give the same rows, and loading them again finds the label taken.
pub fn synthetic_label(config: &crate::SynthConfig) -> String {
    let settings = format!("{config:?}");
    format!(
        "synthetic:{:032x}",
        xxhash_rust::xxh3::xxh3_128(settings.as_bytes())
    )
}

/// Statements sent to Doris under one load's label, one chunk label each.
#[derive(Default)]
struct DorisChunks {
    sent: usize,
    written: u64,
}

impl DorisChunks {
    async fn send(
        &mut self,
        link: &Link,
        conn: &mut mysql_async::Conn,
        head: &str,
        tail: &str,
        label: &str,
        rows: u64,
    ) -> Result<()> {
        if insert_labelled(link, conn, head, tail, label, self.sent).await? {
            self.written += rows;
        }
        self.sent += 1;
        Ok(())
    }
}

/// A label naming raw rows by what they hold (XXH3-128 of every `time` and `feature`, in
/// order): loading the same rows again finds it taken.
pub fn content_label(batches: &[RecordBatch]) -> Result<String> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for batch in batches {
        let columns = design_doc_projection(batch)?;
        let times = columns.column(0).as_primitive::<Int64Type>();
        let features = columns.column(1).as_string::<i32>();
        for (time, feature) in times.iter().zip(features.iter()) {
            hasher.update(&time.unwrap_or(i64::MIN).to_le_bytes());
            match feature {
                Some(text) => {
                    hasher.update(&(text.len() as u64).to_le_bytes());
                    hasher.update(text.as_bytes());
                }
                None => hasher.update(&u64::MAX.to_le_bytes()),
            }
        }
    }
    Ok(format!("rows:{:032x}", hasher.digest128()))
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
