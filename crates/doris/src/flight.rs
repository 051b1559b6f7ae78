//! Doris over Arrow Flight SQL: the fast path for large reads (Doris 2.1+).
//!
//! The flow Doris expects (see `docs/doris.md`): a Basic→Bearer handshake with the FE opens a
//! session; session variables are set with `SET` statements on it; `GetFlightInfo` on the FE
//! runs the query and returns endpoints whose locations are BEs; `DoGet` fetches each endpoint
//! from its BE, in parallel, results kept in endpoint order. Tickets are single-use, so a
//! failed read starts over with a new `GetFlightInfo`, skipping the rows already handed out;
//! the session is closed at the end. Advertised BE addresses can be rewritten for clients that
//! cannot reach them (NAT, proxies, `0.0.0.0`).
//!
//! `grpc+tls://` (or `https://`) URLs encrypt the FE's and the BEs' connections, trusting the
//! public roots or the CA of `?ssl_ca=/path/ca.pem`, the parameter MySQL URLs take too.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, FlightInfo};
use async_trait::async_trait;
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use trainstore_core::{
    DataSource, Error, Filter, RecordBatchStream, Result, ScanRequest, Secret, TimeRange,
    apply_filters,
};

use crate::mysql::ReadOptions;
use crate::net::{Timeouts, timed_out, within};
use crate::parse::{ParseReport, SnapshotParser};
use crate::resume::{HandedOut, batch_keys};
use crate::sql::{Ident, Literals, Select, Storage, TableColumns, TableRef};
use crate::stream::limited;
use trainstore_core::retry::retry_within;
use trainstore_core::snapshot::SnapshotSchema;

/// Flight messages can be far larger than tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// How to reach a Doris FE over Flight SQL.
#[derive(Clone, Default)]
pub struct FlightOptions {
    pub read: ReadOptions,
    /// Advertised endpoint authority (`host:port`) → the one to dial instead.
    pub rewrite: HashMap<String, String>,
}

/// A snapshot table read over Arrow Flight SQL.
#[derive(Clone)]
pub struct FlightSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// `http://host:port` or `https://host:port` of the FE.
    fe: String,
    /// Whom encrypted connections (the FE's, when it is `https`, and any BE's advertised with
    /// TLS) trust.
    tls: ClientTlsConfig,
    user: String,
    password: Secret,
    table: TableRef,
    columns: Vec<Ident>,
    time_column: Option<Ident>,
    table_columns: TableColumns,
    parser: SnapshotParser,
    options: FlightOptions,
    last_report: Mutex<ParseReport>,
    /// Parts read at once, over every scan of this source (twice the partitions): each holds
    /// a session, so this bounds the connections the source opens.
    sessions: Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for FlightSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlightSource({}/{})", self.inner.fe, self.inner.table)
    }
}

/// A failure of `operation` on the Flight server at `endpoint` (`host:port`).
fn flight_error(
    endpoint: &str,
    operation: &'static str,
    e: impl fmt::Display,
    transient: bool,
) -> Error {
    Error::Remote {
        service: service(endpoint),
        operation,
        reason: e.to_string(),
        transient,
    }
}

/// How errors name the Flight server at `endpoint` (`host:port`).
fn service(endpoint: &str) -> String {
    format!("doris flight at {endpoint}")
}

/// The `host:port` of an `http://host:port` URI.
fn authority(uri: &str) -> &str {
    uri.split_once("://").map_or(uri, |(_, rest)| rest)
}

/// Runs `work`, a call to the server at `endpoint`, for at most `limit`; a failure or timeout
/// is an error of `phase`.
async fn call<T, E: fmt::Display>(
    endpoint: &str,
    phase: &'static str,
    limit: Duration,
    transient: bool,
    work: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    within(limit, &service(endpoint), phase, work)
        .await?
        .map_err(|e| flight_error(endpoint, phase, e, transient))
}

/// One Flight SQL session on the FE.
struct Session {
    client: FlightSqlServiceClient<Channel>,
    /// `host:port` of the FE.
    fe: String,
    timeouts: Timeouts,
    tls: ClientTlsConfig,
    rewrite: HashMap<String, String>,
    bes: HashMap<String, FlightSqlServiceClient<Channel>>,
}

/// A connection to `uri` (`http(s)://host:port`), made within the connect timeout and
/// encrypted with `tls` when it is `https://`.
async fn channel(uri: &str, tls: &ClientTlsConfig, timeouts: Timeouts) -> Result<Channel> {
    let mut endpoint = Endpoint::from_shared(uri.to_owned())
        .map_err(|e| Error::invalid("Flight SQL URL", uri, e.to_string()))?
        .connect_timeout(timeouts.connect);
    if uri.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| Error::invalid("Flight SQL URL", uri, causes(&e)))?;
    }
    let fe = authority(uri);
    within(
        timeouts.connect,
        &service(fe),
        "connect",
        endpoint.connect(),
    )
    .await?
    .map_err(|e| {
        // A certificate that is not trusted stays so: only network failures may pass.
        let certificate = certificate_error(&e);
        flight_error(fe, "connect", causes(&e), !certificate)
    })
}

/// An error with the errors that caused it: tonic's own say only "transport error".
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether TLS refused the server's certificate somewhere down `e`'s causes.
fn certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let rustls = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref()?.downcast_ref::<rustls::Error>())
        });
        if matches!(rustls, Some(rustls::Error::InvalidCertificate(_))) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The FE's `http(s)://host:port` and whom TLS trusts, from a Flight SQL URL.
fn parse_flight_url(url: &str) -> Result<(String, ClientTlsConfig)> {
    let invalid = |reason: String| Error::invalid("Flight SQL URL", url, reason);
    let expected = || invalid("expected grpc://host:port or grpc+tls://host:port".to_owned());
    let parsed = url::Url::parse(url).map_err(|_| expected())?;
    let secure = match parsed.scheme() {
        "grpc" | "grpc+tcp" | "http" => false,
        "grpc+tls" | "https" => true,
        _ => return Err(expected()),
    };
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return Err(expected());
    };
    let mut tls = ClientTlsConfig::new();
    let mut ca = None;
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "ssl_ca" if secure => ca = Some(value.into_owned()),
            "ssl_ca" => return Err(invalid("ssl_ca needs a grpc+tls:// URL".to_owned())),
            other => return Err(invalid(format!("unknown parameter {other}"))),
        }
    }
    tls = match ca {
        Some(path) => tls.ca_certificate(Certificate::from_pem(
            crate::mysql::tls::read_ca(std::path::Path::new(&path)).map_err(invalid)?,
        )),
        None => tls.with_webpki_roots(),
    };
    let scheme = if secure { "https" } else { "http" };
    Ok((format!("{scheme}://{host}:{port}"), tls))
}

fn sql_client(channel: Channel) -> FlightSqlServiceClient<Channel> {
    let inner = FlightServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    FlightSqlServiceClient::new_from_inner(inner)
}

impl Session {
    /// Handshake (Basic → Bearer) and the session variables every read needs.
    async fn open(inner: &Inner) -> Result<Self> {
        let timeouts = inner.options.read.timeouts;
        let fe = authority(&inner.fe).to_owned();
        let mut client = sql_client(channel(&inner.fe, &inner.tls, timeouts).await?);
        call(
            &fe,
            "handshake",
            timeouts.connect,
            false,
            client.handshake(&inner.user, inner.password.expose()),
        )
        .await?;
        let mut session = Session {
            client,
            fe,
            timeouts,
            tls: inner.tls.clone(),
            rewrite: inner.options.rewrite.clone(),
            bes: HashMap::new(),
        };
        let secs = inner.options.read.query_timeout.as_secs().max(1);
        for statement in [
            "SET time_zone = '+00:00'".to_owned(),
            format!("SET query_timeout = {secs}"),
        ] {
            let info = session.execute("set session variable", statement).await?;
            session.fetch_all(&info).await?;
        }
        Ok(session)
    }

    /// Runs `sql` on the FE (`GetFlightInfo`) within the read timeout; a failure is a
    /// transient error of `phase`.
    async fn execute(&mut self, phase: &'static str, sql: String) -> Result<FlightInfo> {
        let request = self.client.execute(sql, None);
        call(&self.fe, phase, self.timeouts.read, true, request).await
    }

    /// The client for an endpoint's location, and its `host:port`: the FE itself when the
    /// location is empty or says to reuse the connection, else the (rewritten) BE address,
    /// one client per address.
    async fn client_for(
        &mut self,
        location: Option<&str>,
    ) -> Result<(FlightSqlServiceClient<Channel>, String)> {
        let location = match location {
            None | Some("") => return Ok((self.client.clone(), self.fe.clone())),
            Some(l) if l.starts_with("arrow-flight-reuse-connection://") => {
                return Ok((self.client.clone(), self.fe.clone()));
            }
            Some(l) => l,
        };
        let (scheme, authority) = location.split_once("://").unwrap_or(("grpc", location));
        let authority = authority.trim_end_matches('/');
        let dialed = self
            .rewrite
            .get(authority)
            .map_or(authority, String::as_str);
        let uri = format!(
            "{}://{dialed}",
            if scheme.contains("tls") {
                "https"
            } else {
                "http"
            }
        );
        let dialed = dialed.to_owned();
        if let Some(c) = self.bes.get(&uri) {
            return Ok((c.clone(), dialed));
        }
        let mut client = sql_client(channel(&uri, &self.tls, self.timeouts).await?);
        if let Some(token) = self.client.token() {
            client.set_token(token.clone());
        }
        self.bes.insert(uri, client.clone());
        Ok((client, dialed))
    }

    /// Every endpoint's batches, fetched in parallel, in endpoint order.
    async fn fetch_all(&mut self, info: &FlightInfo) -> Result<Vec<RecordBatch>> {
        let (tx, mut rx) = mpsc::channel(16);
        self.spawn_fetch(info, tx).await?;
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// Starts one task per endpoint; a forwarder sends their batches on `tx` in endpoint order.
    async fn spawn_fetch(
        &mut self,
        info: &FlightInfo,
        tx: mpsc::Sender<Result<RecordBatch>>,
    ) -> Result<()> {
        let mut receivers = Vec::new();
        for endpoint in &info.endpoint {
            let ticket = endpoint.ticket.clone().ok_or_else(|| {
                flight_error(&self.fe, "plan", "an endpoint without a ticket", false)
            })?;
            let location = endpoint.location.first().map(|l| l.uri.clone());
            let (mut client, at) = self.client_for(location.as_deref()).await?;
            let limit = self.timeouts.read;
            let (etx, erx) = mpsc::channel::<Result<RecordBatch>>(4);
            tokio::spawn(async move {
                let result = async {
                    let mut stream = call(&at, "fetch", limit, true, client.do_get(ticket)).await?;
                    // The idle deadline runs only while waiting on the server, not while the
                    // reader is busy with earlier batches.
                    while let Some(batch) =
                        call(&at, "read", limit, true, stream.try_next()).await?
                    {
                        if etx.send(Ok(batch)).await.is_err() {
                            break;
                        }
                    }
                    Ok::<_, Error>(())
                }
                .await;
                if let Err(e) = result {
                    let _ = etx.send(Err(e)).await;
                }
            });
            receivers.push(erx);
        }
        tokio::spawn(async move {
            for mut erx in receivers {
                while let Some(item) = erx.recv().await {
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        Ok(())
    }

    /// Ends the FE session (Doris keeps abandoned ones until its token cache evicts them);
    /// a server that does not answer is left to evict it.
    async fn close(mut self) {
        let close = self
            .client
            .do_action(Action::new("CloseSession", Vec::<u8>::new()));
        let _ = tokio::time::timeout(self.timeouts.read, close).await;
    }
}

impl FlightSource {
    /// Connects to the FE at `url` (`grpc://host:port`, or `grpc+tls://host:port` with an
    /// optional `?ssl_ca=/path/ca.pem`) as `user` and reads `table` (`db.table`) with `schema`.
    pub async fn connect(
        url: &str,
        user: &str,
        password: Secret,
        table: &str,
        schema: SnapshotSchema,
        options: FlightOptions,
    ) -> Result<Self> {
        let (fe, tls) = parse_flight_url(url)?;
        let table = TableRef::parse(table, None)?;
        options.read.timeouts.check()?;
        let mut inner = Inner {
            fe,
            tls,
            user: user.to_owned(),
            password,
            table,
            columns: Vec::new(),
            time_column: None,
            table_columns: TableColumns::new(),
            parser: SnapshotParser::new(schema.clone()).strict(options.read.strict),
            last_report: Mutex::new(ParseReport::default()),
            sessions: Arc::new(tokio::sync::Semaphore::new(
                options.read.partitions.max(1) * 2,
            )),
            options,
        };
        // Doris answers SHOW on the FE; its first columns are the field name and type.
        let mut session = Session::open(&inner).await?;
        let describe = session
            .client
            .execute(format!("SHOW COLUMNS FROM {}", inner.table), None);
        let info = within(
            session.timeouts.read,
            &service(&session.fe),
            "describe table",
            describe,
        )
        .await?
        .map_err(|e| match e.to_string() {
            m if m.contains("doesn't exist") || m.contains("Unknown table") => Error::NotFound {
                what: "table",
                name: inner.table.to_string(),
            },
            m => flight_error(&session.fe, "describe table", m, false),
        })?;
        let described = session.fetch_all(&info).await?;
        session.close().await;
        for b in &described {
            let text = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
            let (names, types) = (text(0)?, text(1)?);
            let (names, types) = (names.as_string::<i32>(), types.as_string::<i32>());
            for (name, ty) in names.iter().zip(types.iter()) {
                if let Some(name) = name {
                    let storage = Storage::of_sql_type(ty.unwrap_or_default());
                    inner.table_columns.insert(name.to_owned(), storage);
                }
            }
        }
        let (columns, time_column) = crate::sql::snapshot_columns(&schema, &inner.table, |c| {
            inner.table_columns.contains_key(c).then_some(())
        })?;
        inner.columns = columns.into_iter().map(|(c, ())| c).collect();
        inner.time_column = time_column;
        Ok(FlightSource {
            inner: Arc::new(inner),
        })
    }

    /// Like [`FlightSource::connect`], with the user, password and database taken from a
    /// `mysql://user:password@host:port/db` URL (Doris uses the same accounts for both).
    pub async fn connect_with_mysql_url(
        flight_url: &str,
        mysql_url: &Secret,
        table: &str,
        schema: SnapshotSchema,
        options: FlightOptions,
    ) -> Result<Self> {
        let opts = crate::mysql::parse_url(mysql_url)?;
        let table = TableRef::parse(table, opts.db_name())?
            .to_string()
            .replace('`', "");
        let user = opts.user().unwrap_or("root").to_owned();
        let password = Secret::new(opts.pass().unwrap_or_default());
        FlightSource::connect(flight_url, &user, password, &table, schema, options).await
    }

    /// The parse report of the most recent scan (complete once its stream has ended).
    pub fn parse_report(&self) -> ParseReport {
        self.inner.last_report.lock().expect("report lock").clone()
    }
}

#[async_trait]
impl DataSource for FlightSource {
    fn parse_counts(&self) -> Option<trainstore_core::ParseCounts> {
        Some(self.parse_report().counts())
    }

    fn describe(&self) -> String {
        format!(
            "doris flight {}/{}",
            self.inner.fe.split_once("://").map_or("", |(_, fe)| fe),
            self.inner.table
        )
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.inner.parser.schema().output_schema())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        let inner = &self.inner;
        let select = Select::new(
            &inner.table,
            &inner.columns,
            inner.time_column.as_ref(),
            Literals {
                no_backslash_escapes: false,
            },
        );
        let output = inner.parser.schema().output_schema();
        let split = select.split(request, &inner.table_columns, &output, &output)?;
        let (conditions, post, projection) = (split.conditions, split.post, split.projection);
        let parts: Vec<Option<TimeRange>> = match request.time_range {
            Some(r) => r
                .split(inner.options.read.partitions)
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None],
        };
        *inner.last_report.lock().expect("report lock") = ParseReport::default();
        let (tx, rx) = mpsc::channel(2 * parts.len());
        for part in parts {
            // No ORDER BY: Doris funnels a globally ordered result through one endpoint.
            let sql = select.sql(&conditions, part.as_ref(), None, false);
            let job = FlightPart {
                inner: inner.clone(),
                sql,
                post: post.clone(),
                projection: projection.clone(),
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

struct FlightPart {
    inner: Arc<Inner>,
    sql: String,
    post: Vec<Filter>,
    projection: Option<Vec<usize>>,
}

impl FlightPart {
    /// Reads the part; after a transient failure it starts over with a new session and a new
    /// `GetFlightInfo` (tickets are single-use), skipping the rows already handed out
    /// (recognised by their content), so none is repeated or lost. Every attempt shares the
    /// query's deadline.
    async fn run(&self, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<()> {
        let read = &self.inner.options.read;
        let deadline = tokio::time::Instant::now() + read.query_timeout;
        let _session = tokio::time::timeout_at(deadline, self.inner.sessions.acquire())
            .await
            .map_err(|_| self.timed_out())?
            .expect("the session semaphore is never closed");
        // Rows handed out survive a failed attempt: the next one skips them.
        let progress = tokio::sync::Mutex::new(HandedOut::default());
        retry_within(
            "flight read",
            read.max_retries,
            deadline,
            || self.timed_out(),
            |_| async {
                let mut done = progress.lock().await;
                self.attempt(tx, &mut done).await
            },
        )
        .await
    }

    /// The error for a query past its overall limit.
    fn timed_out(&self) -> Error {
        let fe = authority(&self.inner.fe);
        timed_out(&service(fe), "query", self.inner.options.read.query_timeout)
    }

    async fn attempt(
        &self,
        tx: &mpsc::Sender<Result<RecordBatch>>,
        progress: &mut HandedOut,
    ) -> Result<()> {
        let inner = &self.inner;
        let mut session = Session::open(inner).await?;
        tracing::debug!(sql = %self.sql, "flight query");
        let info = session.execute("query", self.sql.clone()).await?;
        let (btx, mut brx) = mpsc::channel(4);
        session.spawn_fetch(&info, btx).await?;
        let track = inner.options.read.max_retries > 0;
        let mut skip = progress.already_sent()?;
        let result = async {
            while let Some(raw) = brx.recv().await {
                let mut raw = raw?;
                let mut keys = if track { batch_keys(&raw)? } else { Vec::new() };
                if track {
                    let fresh: Vec<bool> = keys.iter().map(|k| !skip.take(*k)).collect();
                    let mut fresh_rows = fresh.iter();
                    keys.retain(|_| *fresh_rows.next().expect("one flag per row"));
                    if keys.len() < raw.num_rows() {
                        raw = filter_record_batch(&raw, &BooleanArray::from(fresh))?;
                    }
                }
                let (typed, report) = inner.parser.parse_on_pool(raw).await?;
                inner
                    .last_report
                    .lock()
                    .expect("report lock")
                    .merge(&report);
                let mut batch = apply_filters(&typed, &self.post)?;
                if let Some(p) = &self.projection {
                    batch = batch.project(p)?;
                }
                if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
                    break;
                }
                progress.hand_out(&mut keys);
            }
            Ok(())
        }
        .await;
        session.close().await;
        result
    }
}
