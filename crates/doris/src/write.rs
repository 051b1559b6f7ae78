//! Idempotent write-back of Arrow batches (predictions, new rows) to a Doris or MySQL table.
//!
//! Every write carries a label. On MySQL-compatible servers the rows and the label are
//! committed in one transaction, the label into `_trainstore_labels` under a primary key, so
//! a write either lands whole with its label or not at all: a retry after a dropped
//! connection, or a rerun with the same label, finds the label and writes nothing twice. On
//! Doris each statement carries its own label (`INSERT … WITH LABEL`, an identifier derived
//! from the write's label), which Doris keeps for three days; "label already used" means the
//! rows are there. Doris's recommended bulk path is Stream Load; see `docs/doris.md`.

use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMillisecondType, UInt32Type,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts, Value};
use trainstore_core::retry::retry_within;
use trainstore_core::{Error, Result, Secret};

use crate::mysql::{Dialect, Link};
use crate::net::{Timeouts, timed_out};
use crate::sql::{Ident, Literals, TableRef};

/// The table that remembers which labels were written (MySQL-compatible servers).
const LABELS: &str = "_trainstore_labels";
/// Statement size to aim for: well under the servers' default 16 MiB packet limit.
const STATEMENT_BYTES: usize = 4 << 20;

/// The label of a write's `chunk`-th statement on Doris, where a label is an identifier (not
/// a string) of letters, digits, `-`, `_` and `:`: the user's label kept readable as far as
/// those characters go, made unique by a hash of all of it. The same label and chunk always
/// give the same name, which is what makes a rerun find it.
fn doris_label(label: &str, chunk: usize) -> Result<Ident> {
    let readable: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(12)
        .collect();
    // 96 bits of the hash: the name stays within an identifier's 64 characters.
    let hash = xxhash_rust::xxh3::xxh3_128(label.as_bytes()) >> 32;
    Ident::new(&format!("ts_{readable}_{hash:024x}_{chunk}"))
}

/// How a write is run.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Attempts after a transient failure (dropped connection, timeout), with backoff.
    pub max_retries: u32,
    /// Limit for the whole write, its retries included.
    pub timeout: Duration,
    /// How long to wait for a connection and for each statement's answer.
    pub timeouts: Timeouts,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            max_retries: 3,
            timeout: Duration::from_secs(300),
            timeouts: Timeouts::default(),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows this call wrote (0 when the label had been written before).
    pub rows_written: u64,
    /// The label was found: an earlier call (or attempt) had written these rows.
    pub already_written: bool,
    /// Attempts made, retries after transient failures included.
    pub attempts: u32,
}

/// Appends `batches` to `table` under `label`, creating the table from the batches' schema
/// when absent. Safe to call again with the same label: rows are written exactly once.
pub async fn write_batches(
    url: &Secret,
    table: &str,
    label: &str,
    batches: &[RecordBatch],
    options: &WriteOptions,
) -> Result<WriteOutcome> {
    check_label(label)?;
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Err(Error::invalid("write batches", "none", "nothing to write"));
    };
    if let Some(b) = batches.iter().find(|b| b.schema() != schema) {
        return Err(Error::invalid(
            "write batches",
            format!("{:?}", b.schema()),
            "all batches must share one schema",
        ));
    }
    if options.timeout.is_zero() {
        return Err(Error::invalid(
            "write options",
            format!("{options:?}"),
            "the timeout must be positive",
        ));
    }
    let link = Link::new(url, options.timeouts)?;
    let table = TableRef::parse(table, link.database())?;
    let columns: Vec<(Ident, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| Ok((Ident::new(f.name())?, f.data_type())))
        .collect::<Result<_>>()?;
    for (name, ty) in &columns {
        sql_type(ty).ok_or_else(|| {
            Error::invalid(
                "write column",
                name.as_str(),
                format!("type {ty} cannot be written"),
            )
        })?;
    }
    // Every attempt shares the write's deadline; one cut off by it is rolled back with its
    // connection, as any failed attempt is.
    let deadline = tokio::time::Instant::now() + options.timeout;
    let overdue = || timed_out(&link.describe(), "write", options.timeout);
    // A retry reuses the label, so rows an earlier attempt committed are not written twice.
    retry_within(
        "doris write",
        options.max_retries,
        deadline,
        overdue,
        |attempt| {
            let (link, table, columns) = (&link, &table, &columns);
            async move {
                let conn = link.connect().await?;
                let (rows_written, already_written) =
                    write_once(link, conn, table, label, columns, batches).await?;
                Ok(WriteOutcome {
                    rows_written,
                    already_written,
                    attempts: attempt,
                })
            }
        },
    )
    .await
}

async fn write_once(
    link: &Link,
    mut conn: Conn,
    table: &TableRef,
    label: &str,
    columns: &[(Ident, &DataType)],
    batches: &[RecordBatch],
) -> Result<(u64, bool)> {
    let (dialect, literals) = link.session_info(&mut conn).await?;
    let definition = columns
        .iter()
        .map(|(name, ty)| format!("{name} {}", sql_type(ty).expect("checked")))
        .collect::<Vec<_>>()
        .join(", ");
    let column_list = columns
        .iter()
        .map(|(n, _)| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match dialect {
        Dialect::Doris => {
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {table} ({definition}) DUPLICATE KEY({}) DISTRIBUTED BY RANDOM BUCKETS 8 \
                 PROPERTIES (\"replication_num\" = \"1\")",
                columns[0].0
            );
            link.step("create table", conn.query_drop(create)).await?;
            let mut written = 0u64;
            let mut already = true;
            for (n, statement) in statements(batches, literals).into_iter().enumerate() {
                let head = format!("INSERT INTO {table}");
                let tail = format!("({column_list}) VALUES {}", statement.values);
                if insert_labelled(link, &mut conn, &head, &tail, label, n).await? {
                    written += statement.rows;
                    already = false;
                }
            }
            Ok((written, already))
        }
        Dialect::MariaDb | Dialect::MySql => {
            let create = format!("CREATE TABLE IF NOT EXISTS {table} ({definition}) ENGINE=InnoDB");
            link.step("create table", conn.query_drop(create)).await?;
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let Some(mut tx) = claim_label(link, &mut conn, table, label, rows, literals).await?
            else {
                return Ok((0, true));
            };
            for statement in statements(batches, literals) {
                let insert = format!(
                    "INSERT INTO {table} ({column_list}) VALUES {}",
                    statement.values
                );
                link.step("insert", tx.query_drop(insert)).await?;
            }
            link.step("commit", tx.commit()).await?;
            Ok((rows, false))
        }
    }
}

/// The label ledger beside `table` (MySQL-compatible servers).
pub(crate) fn ledger(table: &TableRef) -> Result<TableRef> {
    Ok(TableRef {
        database: table.database.clone(),
        table: Ident::new(LABELS)?,
    })
}

/// Refuses a label that is empty, longer than 128 characters or holds control characters.
pub(crate) fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > 128 || label.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            "write label",
            label,
            "1 to 128 printable characters",
        ));
    }
    Ok(())
}

/// Runs `{head} WITH LABEL <label> {tail}` on Doris, the label being the `chunk`-th of
/// `label` ([`doris_label`]); `false` when Doris had run that label already (the rows are
/// there).
pub(crate) async fn insert_labelled(
    link: &Link,
    conn: &mut Conn,
    head: &str,
    tail: &str,
    label: &str,
    chunk: usize,
) -> Result<bool> {
    let sql = format!("{head} WITH LABEL {} {tail}", doris_label(label, chunk)?);
    match link
        .step("insert", async { Ok(conn.query_drop(sql).await) })
        .await?
    {
        Ok(()) => Ok(true),
        Err(mysql_async::Error::Server(e))
            if e.message.contains("already") && e.message.contains("abel") =>
        {
            Ok(false)
        }
        Err(e) => Err(link.error("insert", e)),
    }
}

/// On a MySQL-compatible server: starts a transaction holding `label`'s row for `table` in
/// the label ledger (created when absent), recording `rows`; `None` when the label was
/// written before. The rows written in the transaction land with their label, or neither.
pub(crate) async fn claim_label<'c>(
    link: &Link,
    conn: &'c mut Conn,
    table: &TableRef,
    label: &str,
    rows: u64,
    literals: Literals,
) -> Result<Option<mysql_async::Transaction<'c>>> {
    let labels = ledger(table)?;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {labels} (`label` VARCHAR(255) NOT NULL, `table_name` VARCHAR(200) NOT NULL, \
         `rows_written` BIGINT NOT NULL, `written_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         PRIMARY KEY (`label`, `table_name`)) ENGINE=InnoDB"
    );
    link.step("create label table", conn.query_drop(create))
        .await?;
    let mut tx = link
        .step("begin", conn.start_transaction(TxOpts::default()))
        .await?;
    // The label row first: a concurrent writer with the same label waits on its key, then
    // finds it taken.
    let claim = format!(
        "INSERT INTO {labels} (`label`, `table_name`, `rows_written`) VALUES ({}, {}, {rows})",
        literals.value(&Value::from(label)),
        literals.value(&Value::from(table.table.as_str()))
    );
    match link
        .step("claim label", async { Ok(tx.query_drop(claim).await) })
        .await?
    {
        Ok(()) => Ok(Some(tx)),
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
            link.step("rollback", tx.rollback()).await?;
            Ok(None)
        }
        Err(e) => Err(link.error("claim label", e)),
    }
}

/// The column type a table created for this Arrow type gets (times as epoch milliseconds, the
/// portable form snapshot tables use; lists as JSON text).
fn sql_type(ty: &DataType) -> Option<&'static str> {
    Some(match ty {
        DataType::Boolean => "BOOLEAN",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt32 | DataType::Int64 => {
            "BIGINT"
        }
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Utf8 | DataType::LargeUtf8 => "LONGTEXT",
        DataType::Timestamp(TimeUnit::Millisecond, _) => "BIGINT",
        DataType::List(f) if matches!(f.data_type(), DataType::Float32 | DataType::Float64) => {
            "LONGTEXT"
        }
        _ => return None,
    })
}

/// One multi-row `VALUES` list.
pub(crate) struct Statement {
    pub values: String,
    pub rows: u64,
}

/// Turns batches into `VALUES` lists of about [`STATEMENT_BYTES`] each, every value through
/// the literal encoder; lists are handed out as they fill, so rows stream through.
pub(crate) struct InsertValues {
    literals: Literals,
    current: Statement,
}

impl InsertValues {
    pub fn new(literals: Literals) -> Self {
        InsertValues {
            literals,
            current: Statement {
                values: String::new(),
                rows: 0,
            },
        }
    }

    /// Adds a batch's rows; returns the lists that filled up.
    pub fn add(&mut self, batch: &RecordBatch) -> Vec<Statement> {
        let mut full = Vec::new();
        for row in 0..batch.num_rows() {
            let values: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| self.literals.value(&cell(c.as_ref(), row)))
                .collect();
            if !self.current.values.is_empty() {
                self.current.values.push(',');
            }
            self.current.values.push('(');
            self.current.values.push_str(&values.join(", "));
            self.current.values.push(')');
            self.current.rows += 1;
            if self.current.values.len() >= STATEMENT_BYTES {
                full.push(std::mem::replace(
                    &mut self.current,
                    Statement {
                        values: String::new(),
                        rows: 0,
                    },
                ));
            }
        }
        full
    }

    /// The last, partly filled list, if any rows remain.
    pub fn finish(self) -> Option<Statement> {
        (self.current.rows > 0).then_some(self.current)
    }
}

/// Every list for `batches`.
fn statements(batches: &[RecordBatch], literals: Literals) -> Vec<Statement> {
    let mut builder = InsertValues::new(literals);
    let mut out: Vec<Statement> = batches.iter().flat_map(|b| builder.add(b)).collect();
    out.extend(builder.finish());
    out
}

fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::NULL;
    }
    match array.data_type() {
        DataType::Boolean => Value::Int(i64::from(array.as_boolean().value(row))),
        DataType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::UInt32 => Value::Int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Value::Int(array.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            let values =
                arrow::compute::cast(&list, &DataType::Float64).expect("checked numeric list");
            let values = values.as_primitive::<Float64Type>();
            let items: Vec<String> = values
                .iter()
                .map(|v| v.map_or("null".into(), |v| v.to_string()))
                .collect();
            Value::from(format!("[{}]", items.join(", ")))
        }
        _ => unreachable!("types are checked before writing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doris_labels_are_stable_identifiers_doris_accepts() {
        let labels = [
            "predictions-2026-11-27",
            "run 7 / batch 'x'",
            "予測",
            &"x".repeat(128),
        ];
        for label in labels {
            for chunk in [0, 1, usize::MAX] {
                let name = doris_label(label, chunk).unwrap();
                let text = name.as_str();
                // Doris's label rule: 1 to 128 of letters, digits, '-', '_' and ':'.
                assert!(text.len() <= 128);
                assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
                assert_eq!(doris_label(label, chunk).unwrap(), name, "not stable");
                assert_eq!(name.to_string(), format!("`{text}`"));
            }
        }
        // Labels that read the same once cleaned still get names of their own.
        assert_ne!(
            doris_label("a b", 0).unwrap(),
            doris_label("ab", 0).unwrap()
        );
        assert_ne!(doris_label("ab", 0).unwrap(), doris_label("ab", 1).unwrap());
        assert!(
            doris_label("run 7", 3)
                .unwrap()
                .as_str()
                .starts_with("ts_run7_")
        );
    }
}
