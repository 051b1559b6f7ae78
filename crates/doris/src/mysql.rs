//! Doris (or any MySQL-protocol server) as a [`DataSource`]: rows streamed over the text
//! protocol straight into Arrow builders (by our own client, `wire`), then parsed into
//! typed snapshots.
//!
//! What a Doris client must get right (see `docs/doris.md`): no server-side prepared statements
//! (values go through the literal encoder), `prefer_socket = false`, no `COM_RESET_CONNECTION`,
//! database-qualified table names. Reads split the time range into parts read in parallel, one
//! connection each. After a transient failure a part is read again, skipping the rows it has
//! already handed out (known by a fingerprint of their content, counted, so identical rows are
//! not confused): rows already returned are never repeated or lost, and no ORDER BY is needed.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::sync::mpsc;
use trainstore_core::{
    DataSource, Error, RecordBatchStream, Result, ScanRequest, Secret, TimeRange,
};

use crate::net::{Timeouts, within};
use crate::parse::{ParseReport, SnapshotParser};
use crate::sql::{Ident, Literals, Storage, TableColumns, TableRef, snapshot_columns};
use crate::stream::limited;
use trainstore_core::snapshot::SnapshotSchema;

mod asof;
mod auth;
mod part;
mod plan;
mod rows;
pub(crate) mod tls;
mod wire;

use part::{Deadline, MysqlPart, check_columns};
use plan::ScanPlan;
use rows::RawRows;
use tls::Tls;
use wire::{WireConn, WireError, WirePool};

/// How reads are run.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Time-range parts read in parallel, one connection each. The default, 4, keeps a
    /// server's scans busy while each waits on its pages and its socket, even on two cores.
    pub partitions: usize,
    /// Rows per Arrow batch.
    pub batch_rows: usize,
    /// Limit for one query, enforced by the server (session variable) and the client; retries
    /// of a failed read stay within it too.
    pub query_timeout: Duration,
    /// How long to wait for a connection and for a silent server (well below the query's
    /// limit, so a dead server is noticed in seconds).
    pub timeouts: Timeouts,
    /// Attempts after a transient failure (dropped connection, timeout), with backoff.
    pub max_retries: u32,
    /// Strict parsing: the first malformed value fails the read.
    pub strict: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            partitions: 4,
            batch_rows: 8192,
            query_timeout: Duration::from_secs(300),
            timeouts: Timeouts::default(),
            max_retries: 3,
            strict: false,
        }
    }
}

/// Which server answered: the session variables and some SQL differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Apache Doris (its FE says so in `@@version_comment`).
    Doris,
    /// MariaDB (its `@@version` says so), the stand-in for Doris in tests.
    MariaDb,
    /// MySQL 8, or another server of the MySQL protocol.
    MySql,
}

impl Dialect {
    /// The server behind `@@version` and `@@version_comment`.
    fn of(version: &str, version_comment: &str) -> Self {
        if version_comment.to_ascii_lowercase().contains("doris") {
            Dialect::Doris
        } else if version.to_ascii_lowercase().contains("mariadb") {
            Dialect::MariaDb
        } else {
            Dialect::MySql
        }
    }

    /// What every read session sets: UTC, and the query timeout the server enforces.
    fn session_settings(self, query_timeout: Duration) -> Vec<String> {
        let secs = query_timeout.as_secs().max(1);
        let timeout = match self {
            Dialect::Doris => format!("SET query_timeout = {secs}"),
            Dialect::MariaDb => format!("SET SESSION max_statement_time = {secs}"),
            // Milliseconds, and for SELECT only (which is all a read runs).
            Dialect::MySql => format!(
                "SET SESSION max_execution_time = {}",
                query_timeout.as_millis().max(1000)
            ),
        };
        vec!["SET time_zone = '+00:00'".to_owned(), timeout]
    }
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
    pool: WirePool,
    /// `host:port`, safe to show (never the credentials).
    endpoint: String,
    table: TableRef,
    /// The table's columns that the parser reads, with their decoding.
    raw: Vec<(Ident, RawType)>,
    raw_schema: SchemaRef,
    /// The table column time ranges apply to (the schema's time field, when the table has it).
    time_column: Option<Ident>,
    table_columns: TableColumns,
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

/// A mysql_async failure of `operation` on the server at `endpoint` (`host:port`).
fn mysql_error(endpoint: &str, operation: &'static str, e: mysql_async::Error) -> Error {
    // Dropped connections and I/O failures may pass; server errors (syntax, access) will not.
    let transient = matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_));
    Error::Remote {
        service: format!("doris at {endpoint}"),
        operation,
        reason: e.to_string(),
        transient,
    }
}

/// Where loading and write-back (over mysql_async) connect, and the deadlines every step of
/// theirs keeps.
pub(crate) struct Link {
    opts: Opts,
    /// `host:port`, safe to show (never the credentials).
    endpoint: String,
    timeouts: Timeouts,
}

impl Link {
    /// The server of `url`, its deadlines checked.
    pub fn new(url: &Secret, timeouts: Timeouts) -> Result<Self> {
        timeouts.check()?;
        let opts = parse_url(url)?;
        let endpoint = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        Ok(Link {
            opts,
            endpoint,
            timeouts,
        })
    }

    /// The database the URL names, if any.
    pub fn database(&self) -> Option<&str> {
        self.opts.db_name()
    }

    /// A new connection, made (TCP and handshake) within the connect timeout.
    pub async fn connect(&self) -> Result<Conn> {
        let opts = mysql_async::OptsBuilder::from_opts(self.opts.clone()).prefer_socket(false);
        self.within("connect", self.timeouts.connect, Conn::new(opts))
            .await
    }

    /// Runs one step (a statement, a commit) within the read timeout: the server answers a
    /// statement only once it is done, so this is how long one may take.
    pub async fn step<T>(
        &self,
        phase: &'static str,
        work: impl Future<Output = mysql_async::Result<T>>,
    ) -> Result<T> {
        self.within(phase, self.timeouts.read, work).await
    }

    async fn within<T>(
        &self,
        phase: &'static str,
        limit: Duration,
        work: impl Future<Output = mysql_async::Result<T>>,
    ) -> Result<T> {
        within(limit, &self.describe(), phase, work)
            .await?
            .map_err(|e| mysql_error(&self.endpoint, phase, e))
    }

    /// How errors name this server.
    pub fn describe(&self) -> String {
        format!("doris at {}", self.endpoint)
    }

    /// The error `e` of `phase` on this server, for results the caller inspects first.
    pub fn error(&self, phase: &'static str, e: mysql_async::Error) -> Error {
        mysql_error(&self.endpoint, phase, e)
    }

    /// Which server `conn` talks to, and how its session escapes literals.
    pub async fn session_info(&self, conn: &mut Conn) -> Result<(Dialect, Literals)> {
        let (version, comment, sql_mode): (String, String, String) = self
            .step("connect", conn.query_first(SESSION_QUERY))
            .await?
            .unwrap_or_default();
        Ok(session_of(&version, &comment, &sql_mode))
    }
}

impl DorisSource {
    /// Connects to `url` (`mysql://user:password@host:port/db`) and reads `table` (`db.table`,
    /// or a table of the URL's database) with `schema`.
    ///
    /// TLS: `?require_ssl=true` encrypts every connection, verifying that the server's
    /// certificate chains to a public root, or to the CA in `ssl_ca=/path/ca.pem` (which also
    /// turns TLS on), and names the host; `verify_identity=false` skips the name check,
    /// `verify_ca=false` every check, `built_in_roots=false` trusts the `ssl_ca` CA only.
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
        options.timeouts.check()?;
        let opts = parse_url(url)?;
        let tls =
            match opts.ssl_opts() {
                Some(ssl) => Some(Tls::new(ssl, opts.ip_or_hostname()).await.map_err(
                    |reason| {
                        Error::invalid(
                            "MySQL URL",
                            trainstore_core::redact_url(url.expose()),
                            reason,
                        )
                    },
                )?),
                None => None,
            };
        let endpoint = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let table = TableRef::parse(table, opts.db_name())?;

        // One connection first: which server, how it escapes, the table's columns. It then
        // starts the pool.
        let timed = Deadline::after(options.query_timeout, &endpoint);
        let mut probe = timed
            .run(
                "connect",
                WireConn::connect(&opts, options.timeouts, tls.as_ref()),
            )
            .await?;
        let session = timed.run("connect", probe.text_rows(SESSION_QUERY)).await?;
        let cell = |row: &[Option<String>], i: usize| row.get(i).cloned().flatten();
        let (dialect, literals) = match session.first() {
            Some(row) => session_of(
                &cell(row, 0).unwrap_or_default(),
                &cell(row, 1).unwrap_or_default(),
                &cell(row, 2).unwrap_or_default(),
            ),
            None => session_of("", "", ""),
        };
        let describe = format!("SHOW COLUMNS FROM {table}");
        let columns = timed
            .within("describe table", probe.text_rows(&describe))
            .await?
            .map_err(|e| not_found_or(&endpoint, &table, e))?;
        let table_columns: TableColumns = columns
            .iter()
            .map(|col| {
                let storage = Storage::of_sql_type(&cell(col, 1).unwrap_or_default());
                (cell(col, 0).unwrap_or_default(), storage)
            })
            .collect();

        let parser = SnapshotParser::new(schema.clone()).strict(options.strict);
        let (raw, time_column) = snapshot_columns(&schema, &table, |name| {
            table_columns.get(name).map(|storage| {
                if *storage == Storage::Integer {
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

        let setup = dialect.session_settings(options.query_timeout);
        for statement in &setup {
            timed.run("connect", probe.execute(statement)).await?;
        }
        let pool = WirePool::new(
            opts,
            options.timeouts,
            tls,
            setup,
            options.partitions * 2,
            probe,
        );

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
        let plan = inner.plan(request, parse)?;
        let range = match (plan.range, &inner.time_column) {
            (Some(r), _) => Some(r),
            (None, Some(_)) if inner.options.partitions > 1 => {
                inner.time_bounds(&plan.where_sql).await?
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
            let job = MysqlPart {
                inner: inner.clone(),
                range: part,
                filters: plan.where_sql.clone(),
                post: plan.post.clone(),
                projection: plan.projection.clone(),
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

/// Parses a `mysql://` URL without ever echoing it (it holds the password): mysql_async's
/// parameters, and `ssl_ca=/path/ca.pem`, the CA the server's certificate may chain to, read
/// here (it turns TLS on, as the MySQL client's `--ssl-ca` does).
pub(crate) fn parse_url(url: &Secret) -> Result<Opts> {
    let invalid = |reason: String| {
        Error::invalid(
            "MySQL URL",
            trainstore_core::redact_url(url.expose()),
            reason,
        )
    };
    let bad = || invalid("expected mysql://user:password@host:port/database".to_owned());
    let mut parsed = url::Url::parse(url.expose()).map_err(|_| bad())?;
    let (ca, rest): (Vec<_>, Vec<_>) = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| k == "ssl_ca");
    if ca.is_empty() {
        return Opts::from_url(url.expose()).map_err(|_| bad());
    }
    let tls_asked = rest.iter().any(|(k, _)| k == "require_ssl");
    parsed.query_pairs_mut().clear().extend_pairs(rest);
    if !tls_asked {
        // mysql_async applies `verify_ca` and the like only when TLS is asked for.
        parsed.query_pairs_mut().append_pair("require_ssl", "true");
    }
    let opts = Opts::from_url(parsed.as_str()).map_err(|_| bad())?;
    let Some(ssl) = opts.ssl_opts().cloned() else {
        return Err(invalid("ssl_ca with require_ssl=false".to_owned()));
    };
    let mut roots = Vec::new();
    for (_, path) in ca {
        roots.push(
            tls::read_ca(std::path::Path::new(&path))
                .map_err(invalid)?
                .into(),
        );
    }
    Ok(mysql_async::OptsBuilder::from_opts(opts)
        .ssl_opts(ssl.with_root_certs(roots))
        .into())
}

/// What tells the server and the session's escaping apart.
const SESSION_QUERY: &str = "SELECT @@version, @@version_comment, @@SESSION.sql_mode";

/// The server and the session's escaping, from `@@version`, `@@version_comment` and
/// `@@sql_mode`.
fn session_of(version: &str, version_comment: &str, sql_mode: &str) -> (Dialect, Literals) {
    (
        Dialect::of(version, version_comment),
        Literals {
            no_backslash_escapes: sql_mode.contains("NO_BACKSLASH_ESCAPES"),
        },
    )
}

/// A failure of `operation` on the server at `endpoint` (`host:port`, never the credentials).
/// A server that did not answer in time is a timeout of the phase that waited: connecting and
/// logging in are their own, any later silence is the operation's.
fn wire_error(endpoint: &str, operation: &'static str, e: WireError) -> Error {
    let endpoint = format!("doris at {endpoint}");
    match e {
        WireError::TimedOut { phase, after } => Error::Timeout {
            operation: if phase == "read" { operation } else { phase },
            endpoint,
            after,
            attempts: 1,
        },
        e => Error::Remote {
            service: endpoint,
            operation,
            reason: e.to_string(),
            transient: e.is_transient(),
        },
    }
}

fn not_found_or(endpoint: &str, table: &TableRef, e: WireError) -> Error {
    match e.server_code() {
        Some(1146 | 1049) => Error::NotFound {
            what: "table",
            name: table.to_string(),
        },
        _ => wire_error(endpoint, "describe table", e),
    }
}

#[async_trait]
impl DataSource for DorisSource {
    fn parse_counts(&self) -> Option<trainstore_core::ParseCounts> {
        Some(self.parse_report().counts())
    }

    fn as_of(&self) -> Option<&dyn trainstore_core::AsOfScan> {
        Some(self)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_are_told_apart_by_version_and_comment_and_set_their_own_timeout() {
        // `@@version`, `@@version_comment` as each server reports them.
        let cases = [
            (
                "5.7.99",
                "Doris version doris-2.1.7-rc03-443e87e203",
                Dialect::Doris,
            ),
            ("10.11.19-MariaDB-0+deb12u1", "Debian 12", Dialect::MariaDb),
            (
                "11.4.2-MariaDB",
                "mariadb.org binary distribution",
                Dialect::MariaDb,
            ),
            ("8.0.39", "MySQL Community Server - GPL", Dialect::MySql),
            ("8.4.2", "Source distribution", Dialect::MySql),
        ];
        for (version, comment, dialect) in cases {
            assert_eq!(
                Dialect::of(version, comment),
                dialect,
                "{version} {comment}"
            );
        }
        let timeout = |d: Dialect| d.session_settings(Duration::from_millis(2500))[1].clone();
        assert_eq!(timeout(Dialect::Doris), "SET query_timeout = 2");
        assert_eq!(
            timeout(Dialect::MariaDb),
            "SET SESSION max_statement_time = 2"
        );
        assert_eq!(
            timeout(Dialect::MySql),
            "SET SESSION max_execution_time = 2500"
        );
        for d in [Dialect::Doris, Dialect::MariaDb, Dialect::MySql] {
            assert_eq!(
                d.session_settings(Duration::ZERO)[0],
                "SET time_zone = '+00:00'"
            );
        }
    }
}
