//! Doris (or any MySQL-protocol server) as a [`DataSource`]: rows streamed over the text
//! protocol straight into Arrow builders, then parsed into typed snapshots.
//!
//! What a Doris client must get right (see `DORIS.md`): no server-side prepared statements
//! (values go through the literal encoder), `prefer_socket = false`, no `COM_RESET_CONNECTION`,
//! database-qualified table names. Reads split the time range into parts read in parallel, one
//! connection each. Each part is read in time order so that a transient failure resumes from
//! the first time not yet handed out: rows already returned are never repeated or lost.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Value};
use tokio::sync::mpsc;
use trainstore_core::{
    DataSource, Error, Filter, RecordBatchStream, Result, ScanRequest, Secret, TimeRange,
    Timestamp, apply_filters,
};

use crate::parse::{ParseReport, SnapshotParser};
use crate::schema::SnapshotSchema;
use crate::sql::{Ident, Literals, Select, TableRef, projection, snapshot_columns};
use crate::stream::limited;

/// How reads are run.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Time-range parts read in parallel, one connection each.
    pub partitions: usize,
    /// Rows per Arrow batch.
    pub batch_rows: usize,
    /// Limit for one query, enforced by the server (session variable) and the client.
    pub query_timeout: Duration,
    /// Attempts after a transient failure (dropped connection, timeout), with backoff.
    pub max_retries: u32,
    /// Strict parsing: the first malformed value fails the read.
    pub strict: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            partitions: 2,
            batch_rows: 8192,
            query_timeout: Duration::from_secs(300),
            max_retries: 3,
            strict: false,
        }
    }
}

/// Which server answered: the session variables differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Doris,
    /// MariaDB or MySQL, the stand-in for Doris in tests.
    MySql,
}

/// How a raw column is decoded from the text protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawType {
    Int,
    Text,
}

/// A snapshot table read over the MySQL protocol.
#[derive(Clone)]
pub struct DorisSource {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `host:port`, safe to show (never the credentials).
    endpoint: String,
    table: TableRef,
    /// The table's columns that the parser reads, with their decoding.
    raw: Vec<(Ident, RawType)>,
    raw_schema: SchemaRef,
    /// The table column time ranges apply to (the schema's time field, when the table has it).
    time_column: Option<Ident>,
    table_columns: HashSet<String>,
    parser: SnapshotParser,
    literals: Literals,
    dialect: Dialect,
    options: ReadOptions,
    last_report: Mutex<ParseReport>,
}

impl fmt::Debug for DorisSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the pool or its options: they hold the password.
        write!(
            f,
            "DorisSource({}/{}, {:?})",
            self.inner.endpoint, self.inner.table, self.inner.dialect
        )
    }
}

pub(crate) fn mysql_error(operation: &'static str, e: mysql_async::Error) -> Error {
    // Dropped connections and I/O failures may pass; server errors (syntax, access) will not.
    let transient = matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_));
    Error::Remote {
        service: "doris".into(),
        operation,
        reason: e.to_string(),
        transient,
    }
}

impl DorisSource {
    /// Connects to `url` (`mysql://user:password@host:port/db`) and reads `table` (`db.table`,
    /// or a table of the URL's database) with `schema`.
    pub async fn connect(
        url: &Secret,
        table: &str,
        schema: SnapshotSchema,
        options: ReadOptions,
    ) -> Result<Self> {
        if options.partitions == 0 || options.batch_rows == 0 {
            return Err(Error::invalid(
                "read options",
                format!("{options:?}"),
                "partitions and batch_rows must be positive",
            ));
        }
        let opts = parse_url(url)?;
        let endpoint = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let table = TableRef::parse(table, opts.db_name())?;

        // One plain connection first: which server, and how it escapes.
        let base = OptsBuilder::from_opts(opts.clone()).prefer_socket(false);
        let mut probe = Conn::new(base.clone())
            .await
            .map_err(|e| connect_error(&endpoint, e))?;
        let (dialect, literals) = session_info(&mut probe).await?;
        let describe = format!("SHOW COLUMNS FROM {table}");
        let columns: Vec<Vec<Option<Value>>> = probe
            .query_iter(describe)
            .await
            .map_err(|e| not_found_or(&table, e))?
            .collect::<mysql_async::Row>()
            .await
            .map_err(|e| not_found_or(&table, e))?
            .into_iter()
            .map(mysql_async::Row::unwrap_raw)
            .collect();
        let _ = probe.disconnect().await;
        let mut table_columns = HashSet::new();
        let mut types = std::collections::HashMap::new();
        for col in columns {
            let text = |v: &Option<Value>| match v {
                Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            let name = text(&col[0]);
            let ty = text(&col[1]).to_ascii_lowercase();
            table_columns.insert(name.clone());
            types.insert(name, ty);
        }

        let parser = SnapshotParser::new(schema.clone()).strict(options.strict);
        let (raw, time_column) = snapshot_columns(&schema, &table, |name| {
            types.get(name).map(|ty| {
                if is_integer_type(ty) {
                    RawType::Int
                } else {
                    RawType::Text
                }
            })
        })?;
        let raw_schema = Arc::new(Schema::new(
            raw.iter()
                .map(|(name, ty)| {
                    let dt = if *ty == RawType::Int {
                        DataType::Int64
                    } else {
                        DataType::Utf8
                    };
                    Field::new(name.as_str(), dt, true)
                })
                .collect::<Vec<_>>(),
        ));

        let secs = options.query_timeout.as_secs().max(1);
        let setup = match dialect {
            Dialect::Doris => vec![
                "SET time_zone = '+00:00'".to_owned(),
                format!("SET query_timeout = {secs}"),
            ],
            Dialect::MySql => vec![
                "SET time_zone = '+00:00'".to_owned(),
                format!("SET SESSION max_statement_time = {secs}"),
            ],
        };
        let pool_opts = PoolOpts::default()
            .with_reset_connection(false)
            .with_constraints(
                PoolConstraints::new(0, options.partitions.max(1) * 2).expect("valid pool bounds"),
            );
        let pool = Pool::new(base.pool_opts(pool_opts).setup(setup));

        tracing::info!(%endpoint, %table, ?dialect, "doris source connected");
        Ok(DorisSource {
            inner: Arc::new(Inner {
                pool,
                endpoint,
                table,
                raw,
                raw_schema,
                time_column,
                table_columns,
                parser,
                literals,
                dialect,
                options,
                last_report: Mutex::new(ParseReport::default()),
            }),
        })
    }

    /// Which server this is.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The parse report of the most recent scan (complete once its stream has ended).
    pub fn parse_report(&self) -> ParseReport {
        self.inner.last_report.lock().expect("report lock").clone()
    }

    /// The raw columns as stored (text and integers), before parsing; for time ranges and
    /// filters on table columns only.
    pub async fn scan_raw(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        self.start(request, false).await
    }

    async fn start(&self, request: &ScanRequest, parse: bool) -> Result<RecordBatchStream> {
        let inner = &self.inner;
        let (pushed, post): (Vec<Filter>, Vec<Filter>) = request
            .filters
            .iter()
            .cloned()
            .partition(|f| inner.table_columns.contains(&f.column));
        if !parse && !post.is_empty() {
            return Err(Error::invalid(
                "raw scan filter",
                &post[0].column,
                "raw scans filter on table columns only",
            ));
        }
        let where_sql = pushed
            .iter()
            .map(|f| inner.select().predicate(f))
            .collect::<Result<Vec<_>>>()?;
        let output = if parse {
            inner.parser.schema().output_schema()
        } else {
            inner.raw_schema.clone()
        };
        let projection = projection(&output, request.projection.as_deref())?;
        for f in &post {
            output.index_of(&f.column).map_err(|_| {
                Error::invalid(
                    "filter column",
                    &f.column,
                    "not a column of the table or the snapshots",
                )
            })?;
        }
        let range = match (&request.time_range, &inner.time_column) {
            (Some(r), Some(_)) => Some(*r),
            (Some(_), None) => {
                return Err(Error::NotSupported {
                    operation: "a time range",
                    implementer: format!("table {} without a time column", inner.table),
                });
            }
            (None, Some(_)) if inner.options.partitions > 1 => {
                inner.time_bounds(&where_sql).await?
            }
            (None, _) => None,
        };
        let parts: Vec<Option<TimeRange>> = match range {
            Some(r) => r
                .split(inner.options.partitions)
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None],
        };
        *inner.last_report.lock().expect("report lock") = ParseReport::default();
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2 * parts.len());
        for part in parts {
            let job = Part {
                inner: inner.clone(),
                range: part,
                filters: where_sql.clone(),
                post: post.clone(),
                projection: projection.clone(),
                parse,
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = job.run(&tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
        drop(tx);
        Ok(limited(rx, request.limit))
    }
}

/// Parses a `mysql://` URL without ever echoing it (it holds the password).
pub(crate) fn parse_url(url: &Secret) -> Result<Opts> {
    Opts::from_url(url.expose()).map_err(|_| {
        Error::invalid(
            "MySQL URL",
            redact_url(url.expose()),
            "expected mysql://user:password@host:port/database",
        )
    })
}

/// Which server `conn` talks to, and how its session escapes literals.
pub(crate) async fn session_info(conn: &mut Conn) -> Result<(Dialect, Literals)> {
    let (comment, sql_mode): (String, String) = conn
        .query_first("SELECT @@version_comment, @@SESSION.sql_mode")
        .await
        .map_err(|e| mysql_error("connect", e))?
        .unwrap_or_default();
    let dialect = if comment.to_ascii_lowercase().contains("doris") {
        Dialect::Doris
    } else {
        Dialect::MySql
    };
    Ok((
        dialect,
        Literals {
            no_backslash_escapes: sql_mode.contains("NO_BACKSLASH_ESCAPES"),
        },
    ))
}

fn redact_url(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => format!(
            "{}:***@{host}",
            scheme_user.rsplit_once(':').map_or(scheme_user, |(u, _)| u)
        ),
        None => url.to_owned(),
    }
}

fn connect_error(endpoint: &str, e: mysql_async::Error) -> Error {
    Error::Remote {
        service: format!("doris at {endpoint}"),
        operation: "connect",
        reason: e.to_string(),
        transient: true,
    }
}

fn not_found_or(table: &TableRef, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1146 || s.code == 1049 => Error::NotFound {
            what: "table",
            name: table.to_string(),
        },
        _ => mysql_error("describe table", e),
    }
}

fn is_integer_type(ty: &str) -> bool {
    ["bigint", "int", "smallint", "tinyint", "mediumint"]
        .iter()
        .any(|t| ty.starts_with(t))
}

impl Inner {
    fn select(&self) -> Select<'_> {
        let columns: Vec<Ident> = self.raw.iter().map(|(c, _)| c.clone()).collect();
        Select::new(
            &self.table,
            &columns,
            self.time_column.as_ref(),
            self.literals,
        )
    }

    /// The smallest range covering every row's time, for splitting a scan without a range.
    async fn time_bounds(&self, where_sql: &[String]) -> Result<Option<TimeRange>> {
        let time = self.time_column.as_ref().expect("checked by caller");
        let mut sql = format!("SELECT MIN({time}), MAX({time}) FROM {}", self.table);
        if !where_sql.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&where_sql.join(" AND "));
        }
        let mut conn = self
            .pool
            .get_conn()
            .await
            .map_err(|e| mysql_error("connect", e))?;
        let bounds: Option<(Option<i64>, Option<i64>)> = conn
            .query_first(sql)
            .await
            .map_err(|e| mysql_error("time bounds", e))?;
        Ok(match bounds {
            Some((Some(lo), Some(hi))) => Some(TimeRange::new(
                Timestamp::from_millis(lo),
                Timestamp::from_millis(hi + 1),
            )?),
            _ => None,
        })
    }
}

/// One time-range part of a scan, read on its own connection.
struct Part {
    inner: Arc<Inner>,
    range: Option<TimeRange>,
    filters: Vec<String>,
    post: Vec<Filter>,
    projection: Option<Vec<usize>>,
    parse: bool,
}

impl Part {
    fn sql(&self, from: Option<Timestamp>) -> String {
        // Time order makes a failed read resumable from the first time not yet handed out.
        self.inner
            .select()
            .sql(&self.filters, self.range.as_ref(), from, true)
    }

    /// Reads the part, retrying transient failures from the first time not yet handed out.
    async fn run(&self, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<()> {
        let mut progress = Progress::default();
        let mut attempt = 0u32;
        loop {
            match self.attempt(tx, &mut progress).await {
                Ok(()) => return Ok(()),
                // Without a time column there is no safe resume point once rows went out.
                Err(e) if progress.sent_any && self.inner.time_column.is_none() => return Err(e),
                Err(e) if e.retryable() && attempt < self.inner.options.max_retries => {
                    attempt += 1;
                    let delay = Duration::from_millis(100 * (1 << attempt.min(6)));
                    tracing::warn!(table = %self.inner.table, attempt, error = %e, "read failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        tx: &mpsc::Sender<Result<RecordBatch>>,
        progress: &mut Progress,
    ) -> Result<()> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + inner.options.query_timeout;
        let timeout = |operation: &'static str| Error::Timeout {
            operation,
            after: inner.options.query_timeout,
        };
        let sql = self.sql(progress.resume);
        tracing::debug!(%sql, "doris query");
        let mut conn = tokio::time::timeout_at(deadline, inner.pool.get_conn())
            .await
            .map_err(|_| timeout("connect"))?
            .map_err(|e| mysql_error("connect", e))?;
        let mut result = tokio::time::timeout_at(deadline, conn.query_iter(sql))
            .await
            .map_err(|_| timeout("query"))?
            .map_err(|e| mysql_error("query", e))?;
        let time_index = inner
            .time_column
            .as_ref()
            .and_then(|t| inner.raw.iter().position(|(c, _)| c == t));
        let mut rows = RawRows::new(&inner.raw);
        let mut flush_at = inner.options.batch_rows;
        loop {
            let row = tokio::time::timeout_at(deadline, result.next())
                .await
                .map_err(|_| timeout("read rows"))?
                .map_err(|e| mysql_error("read rows", e))?;
            let Some(row) = row else { break };
            rows.push(row.unwrap_raw());
            if rows.len() < flush_at {
                continue;
            }
            // Hand out the rows before the newest time; rows at that time wait, so a resumed
            // read (from that time on) repeats none of what went out and loses none.
            let split = match time_index {
                Some(t) => rows.rows_before_last_time(t),
                None => rows.len(),
            };
            if split == 0 {
                // One time shared by every row held: keep reading until it changes.
                flush_at += inner.options.batch_rows;
                continue;
            }
            let batch = rows.take_front(split, &inner.raw_schema)?;
            if let Some(t) = time_index {
                progress.resume = Some(Timestamp::from_millis(rows.time_at(0, t)));
            }
            progress.sent_any = true;
            flush_at = inner.options.batch_rows;
            if !self.send(tx, batch).await? {
                return Ok(());
            }
        }
        if rows.len() > 0 {
            let batch = rows.take_front(rows.len(), &inner.raw_schema)?;
            progress.sent_any = true;
            self.send(tx, batch).await?;
        }
        Ok(())
    }

    /// Parses, filters and projects a raw batch and sends it; `false` once the reader is gone.
    async fn send(&self, tx: &mpsc::Sender<Result<RecordBatch>>, raw: RecordBatch) -> Result<bool> {
        let mut batch = if self.parse {
            let (typed, report) = self.inner.parser.parse(&raw)?;
            self.inner
                .last_report
                .lock()
                .expect("report lock")
                .merge(&report);
            typed
        } else {
            raw
        };
        if !self.post.is_empty() {
            batch = apply_filters(&batch, &self.post)?;
        }
        if let Some(p) = &self.projection {
            batch = batch.project(p)?;
        }
        if batch.num_rows() == 0 {
            return Ok(true);
        }
        Ok(tx.send(Ok(batch)).await.is_ok())
    }
}

/// How far a part has got: what a retry must not repeat.
#[derive(Debug, Default)]
struct Progress {
    /// Every row before this time has been handed out.
    resume: Option<Timestamp>,
    sent_any: bool,
}

/// Rows of the text protocol held until they become a batch.
struct RawRows {
    columns: Vec<Vec<Option<Value>>>,
}

impl RawRows {
    fn new(raw: &[(Ident, RawType)]) -> Self {
        RawRows {
            columns: raw.iter().map(|_| Vec::new()).collect(),
        }
    }

    fn len(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    fn push(&mut self, row: Vec<Option<Value>>) {
        for (col, v) in self.columns.iter_mut().zip(row) {
            col.push(v);
        }
    }

    fn time_at(&self, row: usize, time_index: usize) -> i64 {
        int_of(self.columns[time_index][row].as_ref()).unwrap_or(i64::MIN)
    }

    /// How many leading rows have a time before the last row's (rows are in time order).
    fn rows_before_last_time(&self, time_index: usize) -> usize {
        let n = self.len();
        let last = self.time_at(n - 1, time_index);
        let mut i = n - 1;
        while i > 0 && self.time_at(i - 1, time_index) == last {
            i -= 1;
        }
        i
    }

    /// Builds a batch of the first `n` rows and removes them.
    fn take_front(&mut self, n: usize, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (col, field) in self.columns.iter_mut().zip(schema.fields()) {
            let front: Vec<Option<Value>> = col.drain(..n).collect();
            arrays.push(match field.data_type() {
                DataType::Int64 => {
                    let mut b = Int64Builder::with_capacity(n);
                    for v in &front {
                        b.append_option(int_of(v.as_ref()));
                    }
                    Arc::new(b.finish())
                }
                _ => {
                    let mut b = StringBuilder::with_capacity(n, n * 64);
                    for v in &front {
                        match v {
                            Some(Value::Bytes(bytes)) => {
                                b.append_value(String::from_utf8_lossy(bytes))
                            }
                            Some(Value::NULL) | None => b.append_null(),
                            Some(other) => b.append_value(other.as_sql(true).trim_matches('\'')),
                        }
                    }
                    Arc::new(b.finish())
                }
            });
        }
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
    }
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

#[async_trait]
impl DataSource for DorisSource {
    fn describe(&self) -> String {
        format!("doris mysql://{}/{}", self.inner.endpoint, self.inner.table)
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.inner.parser.schema().output_schema())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        self.start(request, true).await
    }
}

/// Collects a whole stream (tests and small reads).
pub async fn collect(mut stream: RecordBatchStream, schema: SchemaRef) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    while let Some(b) = stream.next().await {
        batches.push(b?);
    }
    let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    Ok(concat_batches(&schema, &batches)?)
}
