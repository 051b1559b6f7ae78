//! The Flight SQL source against a Doris-shaped Flight SQL server: an FE that authenticates
//! (Basic → Bearer), runs each query on the loopback MariaDB, and spreads the result over
//! endpoints served by BE servers on other loopback addresses, tickets single-use. The same
//! server is checked with the ADBC Flight SQL driver, so it speaks the real protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, Int32Array, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::row::{RowConverter, SortField};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use prost::Message;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};
use trainstore_core::{DataSource, Filter, ScanRequest, Secret, TimeRange, Timestamp};
use trainstore_doris::flight::{FlightOptions, FlightSource};
use trainstore_doris::load::load_design_doc_rows;
use trainstore_doris::{ReadOptions, SnapshotGenerator, SnapshotSchema, SynthConfig, Timeouts};

use trainstore_testkit::{Fault, FaultProxy};

use crate::certs::{ServerCert, TestCa};
use crate::support::{TestDb, scan_all};

type Batches = Arc<Mutex<HashMap<Vec<u8>, Vec<RecordBatch>>>>;
type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// Everything the servers saw, for the assertions.
#[derive(Default)]
pub(crate) struct Log {
    events: Mutex<Vec<String>>,
}

impl Log {
    fn push(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
    pub(crate) fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

fn stream_of(batches: Vec<RecordBatch>) -> DoGetStream {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream)
        .map_err(|e| Status::internal(e.to_string()))
        .boxed()
}

fn handle_of(ticket: &TicketStatementQuery) -> Vec<u8> {
    ticket.statement_handle.to_vec()
}

/// Takes a ticket's batches, once: a second DoGet with the same ticket is refused.
fn take(
    store: &Batches,
    log: &Log,
    server: &str,
    ticket: TicketStatementQuery,
) -> Result<Vec<RecordBatch>, Status> {
    let handle = handle_of(&ticket);
    log.push(format!("doget {server} {}", hex(&handle)));
    store
        .lock()
        .unwrap()
        .remove(&handle)
        .ok_or_else(|| Status::not_found("unknown or already used ticket"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
struct Be {
    name: String,
    tickets: Batches,
    log: Arc<Log>,
    /// Fail the next DoGet after consuming its ticket, like a BE restarting mid-read.
    fail_next: Arc<AtomicBool>,
    /// Break the next DoGet's stream after its first batch, like a BE dying mid-transfer.
    break_next: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl FlightSqlService for Be {
    type FlightService = Be;

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut batches = take(&self.tickets, &self.log, &self.name, ticket)?;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(Status::unavailable("BE restarting"));
        }
        if self.break_next.swap(false, Ordering::SeqCst) {
            batches.truncate(1);
            let broken = futures::stream::once(async { Err(Status::unavailable("BE died")) });
            return Ok(Response::new(stream_of(batches).chain(broken).boxed()));
        }
        Ok(Response::new(stream_of(batches)))
    }

    async fn register_sql_info(&self, _: i32, _: &SqlInfo) {}
}

#[derive(Clone)]
struct Fe {
    mysql_url: String,
    password: String,
    /// Bearer token → whether the session is still open.
    sessions: Arc<Mutex<HashMap<String, bool>>>,
    own: Batches,
    bes: Vec<(Be, String)>,
    location: String,
    log: Arc<Log>,
}

impl Fe {
    fn session(&self, metadata: &tonic::metadata::MetadataMap) -> Result<String, Status> {
        let auth = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = auth
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("no bearer token"))?;
        match self.sessions.lock().unwrap().get(token) {
            Some(true) => Ok(token.to_owned()),
            _ => Err(Status::unauthenticated("invalid bearer token")),
        }
    }

    fn ticket(&self, store: &Batches, batches: Vec<RecordBatch>) -> Ticket {
        let handle: [u8; 8] = rand_bytes();
        store.lock().unwrap().insert(handle.to_vec(), batches);
        let query = TicketStatementQuery {
            statement_handle: handle.to_vec().into(),
        };
        Ticket::new(query.as_any().encode_to_vec())
    }

    async fn run_sql(&self, sql: &str) -> Result<(Arc<Schema>, Vec<RecordBatch>), Status> {
        let mut conn = mysql_async::Conn::from_url(self.mysql_url.as_str())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut result = conn
            .query_iter(sql)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let columns = result.columns().map(|c| c.to_vec()).unwrap_or_default();
        let ints: Vec<bool> = columns
            .iter()
            .map(|c| {
                matches!(
                    c.column_type(),
                    ColumnType::MYSQL_TYPE_LONGLONG | ColumnType::MYSQL_TYPE_LONG
                )
            })
            .collect();
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .zip(&ints)
                .map(|(c, int)| {
                    Field::new(
                        c.name_str(),
                        if *int {
                            DataType::Int64
                        } else {
                            DataType::Utf8
                        },
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        ));
        let rows: Vec<mysql_async::Row> = result
            .collect()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut batches = Vec::new();
        for chunk in rows.chunks(100) {
            let arrays: Vec<ArrayRef> = (0..columns.len())
                .map(|c| -> ArrayRef {
                    if ints[c] {
                        let mut b = Int64Builder::new();
                        for r in chunk {
                            b.append_option(r.get_opt::<i64, _>(c).and_then(Result::ok));
                        }
                        Arc::new(b.finish())
                    } else {
                        let mut b = StringBuilder::new();
                        for r in chunk {
                            b.append_option(r.get_opt::<String, _>(c).and_then(Result::ok));
                        }
                        Arc::new(b.finish())
                    }
                })
                .collect();
            batches.push(
                RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| Status::internal(e.to_string()))?,
            );
        }
        Ok((schema, batches))
    }
}

fn rand_bytes() -> [u8; 8] {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new()
        .hash_one(std::time::Instant::now())
        .to_le_bytes()
}

#[tonic::async_trait]
impl FlightSqlService for Fe {
    type FlightService = Fe;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        use base64::Engine;
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let decoded = auth
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("Basic authentication expected"))?;
        let (user, password) = decoded.split_once(':').unwrap_or_default();
        if user != "root" || password != self.password {
            return Err(Status::unauthenticated("wrong user or password"));
        }
        let token = hex(&rand_bytes());
        self.sessions.lock().unwrap().insert(token.clone(), true);
        self.log.push(format!("handshake {token}"));
        let output = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        })]);
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(output));
        response
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let token = self.session(request.metadata())?;
        let sql = query.query.trim().to_owned();
        self.log.push(format!("query {token} {sql}"));
        let upper = sql.to_ascii_uppercase();
        let (schema, endpoints) = if upper.starts_with("SET ") {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "StatusResult",
                DataType::Int32,
                false,
            )]));
            let status =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![0]))])
                    .unwrap();
            // Answered by the FE itself, on the connection the client already has.
            (
                schema,
                vec![FlightEndpoint::new().with_ticket(self.ticket(&self.own, vec![status]))],
            )
        } else if upper.starts_with("SHOW ") {
            let (schema, batches) = self.run_sql(&sql).await?;
            let endpoint = FlightEndpoint::new()
                .with_ticket(self.ticket(&self.own, batches))
                .with_location(self.location.clone());
            (schema, vec![endpoint])
        } else {
            let (schema, batches) = self.run_sql(&sql).await?;
            // Spread the result over the BEs, as Doris does with a parallel result sink.
            let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.bes.len()];
            for (i, b) in batches.into_iter().enumerate() {
                parts[i % self.bes.len()].push(b);
            }
            let endpoints = parts
                .into_iter()
                .zip(&self.bes)
                .map(|(part, (be, advertised))| {
                    FlightEndpoint::new()
                        .with_ticket(self.ticket(&be.tickets, part))
                        .with_location(advertised.clone())
                })
                .collect();
            (schema, endpoints)
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .unwrap()
            .with_endpoints(endpoints);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.session(request.metadata())?;
        Ok(Response::new(stream_of(take(
            &self.own, &self.log, "fe", ticket,
        )?)))
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        if request.get_ref().r#type == "CloseSession" {
            let token = self.session(request.metadata())?;
            self.sessions.lock().unwrap().insert(token.clone(), false);
            self.log.push(format!("close {token}"));
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        }
        Err(Status::unimplemented("unknown action"))
    }

    async fn register_sql_info(&self, _: i32, _: &SqlInfo) {}
}

/// A running FE with three BEs on 127.0.0.2–4.
pub(crate) struct Cluster {
    pub(crate) fe_addr: SocketAddr,
    be_addrs: Vec<SocketAddr>,
    pub(crate) log: Arc<Log>,
    fail_next: Arc<AtomicBool>,
    break_next: Arc<AtomicBool>,
}

/// Serves `service` on `listener`, over TLS with `tls`'s certificate when given.
fn serve_on<S: FlightService>(
    service: S,
    listener: tokio::net::TcpListener,
    tls: Option<&ServerCert>,
) {
    let mut builder = tonic::transport::Server::builder();
    if let Some(cert) = tls {
        let identity = Identity::from_pem(&cert.cert_pem, &cert.key_pem);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .unwrap();
    }
    tokio::spawn(
        builder
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
}

async fn serve<S: FlightService>(service: S, ip: &str, tls: Option<&ServerCert>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .expect("loopback address");
    let addr = listener.local_addr().unwrap();
    serve_on(service, listener, tls);
    addr
}

/// `advertise_unreachable`: the FE advertises the last BE at a dead address, as a BE behind
/// NAT would, so only a client with the rewrite hook can read it.
pub(crate) async fn cluster(mysql_url: String, advertise_unreachable: bool) -> Cluster {
    cluster_with(mysql_url, advertise_unreachable, None).await
}

/// A cluster whose FE and BEs serve TLS with `tls` (a certificate for 127.0.0.1–4), and
/// advertise `grpc+tls://` locations.
async fn cluster_with(
    mysql_url: String,
    advertise_unreachable: bool,
    tls: Option<&ServerCert>,
) -> Cluster {
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    let log = Arc::new(Log::default());
    let fail_next = Arc::new(AtomicBool::new(false));
    let break_next = Arc::new(AtomicBool::new(false));
    let mut bes = Vec::new();
    let mut be_addrs = Vec::new();
    for k in 2..=4 {
        let be = Be {
            name: format!("be{k}"),
            tickets: Default::default(),
            log: log.clone(),
            // Only the BE of every query's first endpoint fails: a failure there always comes
            // before its part handed anything out, the case a retry with a new ticket is for.
            // (A later endpoint failing after earlier ones were delivered is an error by
            // design; which DoGet reaches a BE first would otherwise be a race.)
            fail_next: if k == 2 {
                fail_next.clone()
            } else {
                Arc::new(AtomicBool::new(false))
            },
            // The last endpoint's BE breaks off: by then the earlier endpoints, and its own
            // first batch, have been handed out.
            break_next: if k == 4 {
                break_next.clone()
            } else {
                Arc::new(AtomicBool::new(false))
            },
        };
        let addr = serve(be.clone(), &format!("127.0.0.{k}"), tls).await;
        be_addrs.push(addr);
        let advertised = if advertise_unreachable && k == 4 {
            format!("{scheme}://127.0.0.1:1")
        } else {
            format!("{scheme}://{addr}")
        };
        bes.push((be, advertised));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fe_addr = listener.local_addr().unwrap();
    let fe = Fe {
        mysql_url,
        password: "flight-secret".into(),
        sessions: Default::default(),
        own: Default::default(),
        bes,
        location: format!("{scheme}://{fe_addr}"),
        log: log.clone(),
    };
    serve_on(fe, listener, tls);
    Cluster {
        fe_addr,
        be_addrs,
        log,
        fail_next,
        break_next,
    }
}

fn config() -> SynthConfig {
    SynthConfig {
        devices: 5,
        nodes_per_device: 2,
        snapshots: 60,
        malformed_rate: 0.02,
        ..SynthConfig::default()
    }
}

async fn loaded() -> (TestDb, Vec<RecordBatch>) {
    let db = TestDb::new().await;
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config())
        .unwrap()
        .batches(500)
        .collect();
    load_design_doc_rows(
        &db.url(),
        "snapshots",
        "test",
        raw.clone(),
        Timeouts::default(),
    )
    .await
    .unwrap();
    (db, raw)
}

async fn connect(
    cluster: &Cluster,
    db: &TestDb,
    options: FlightOptions,
) -> trainstore_core::Result<FlightSource> {
    FlightSource::connect(
        &format!("grpc://{}", cluster.fe_addr),
        "root",
        Secret::new("flight-secret"),
        &format!("{}.snapshots", db.name),
        SnapshotSchema::design_doc(),
        options,
    )
    .await
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// Every row's values in Arrow's row format, sorted: equal lists mean the same rows.
fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<u8>> {
    let fields = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).unwrap();
    let mut lines: Vec<Vec<u8>> = batches
        .iter()
        .flat_map(|b| {
            let rows = converter.convert_columns(b.columns()).unwrap();
            rows.iter().map(|r| r.as_ref().to_vec()).collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_every_endpoint_on_three_loopback_addresses_in_parallel() {
    let (db, raw) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    let source = connect(&cluster, &db, FlightOptions::default())
        .await
        .unwrap();
    let read: Vec<RecordBatch> = scan_all(&source).await;
    assert_eq!(rows(&read), rows(&raw));
    assert!(source.parse_report().malformed() > 0);
    let events = cluster.log.events();
    for be in ["be2", "be3", "be4"] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("doget {be} "))),
            "{be} never served: {events:#?}"
        );
    }
    for setting in ["SET time_zone = '+00:00'", "SET query_timeout = 300"] {
        assert!(
            events.iter().any(|e| e.ends_with(setting)),
            "{setting} not sent: {events:#?}"
        );
    }
    assert!(
        events.iter().any(|e| e.starts_with("close ")),
        "session not closed: {events:#?}"
    );
    let tickets: Vec<&String> = events.iter().filter(|e| e.starts_with("doget")).collect();
    let unique: std::collections::HashSet<_> =
        tickets.iter().map(|e| e.rsplit(' ').next()).collect();
    assert_eq!(
        unique.len(),
        tickets.len(),
        "a ticket was used twice: {tickets:#?}"
    );

    let day = TimeRange::new(
        config().start,
        Timestamp::from_millis(config().start.as_millis() + 6 * 3_600_000),
    )
    .unwrap();
    let request = ScanRequest {
        time_range: Some(day),
        filters: vec![Filter::eq("nodeId", "1466")],
        ..Default::default()
    };
    let options = FlightOptions {
        read: ReadOptions {
            partitions: 3,
            ..ReadOptions::default()
        },
        ..FlightOptions::default()
    };
    let parted = connect(&cluster, &db, options).await.unwrap();
    let read: Vec<RecordBatch> = parted
        .scan(&request)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(rows(&read) > 0 && rows(&read) < rows(&raw) / 2);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_fetch_starts_over_with_a_new_ticket_never_the_used_one() {
    let (db, raw) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    let source = connect(&cluster, &db, FlightOptions::default())
        .await
        .unwrap();
    cluster.fail_next.store(true, Ordering::SeqCst);
    let read: Vec<RecordBatch> = scan_all(&source).await;
    assert_eq!(rows(&read), rows(&raw));
    let events = cluster.log.events();
    let selects = events.iter().filter(|e| e.contains(" SELECT ")).count();
    assert_eq!(
        selects, 2,
        "the failure must lead to a second GetFlightInfo: {events:#?}"
    );
    let tickets: Vec<&String> = events.iter().filter(|e| e.starts_with("doget")).collect();
    let unique: std::collections::HashSet<_> =
        tickets.iter().map(|e| e.rsplit(' ').next()).collect();
    assert_eq!(
        unique.len(),
        tickets.len(),
        "a consumed ticket was reused: {tickets:#?}"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_broken_after_rows_were_handed_out_is_read_again_without_repeats_or_losses() {
    let (db, _) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    let source = connect(&cluster, &db, FlightOptions::default())
        .await
        .unwrap();
    let read = || async {
        let batches: Vec<RecordBatch> = scan_all(&source).await;
        (rows(&batches), sorted_rows(&batches))
    };
    let (clean_rows, clean) = read().await;
    let before = cluster.log.events().len();
    cluster.break_next.store(true, Ordering::SeqCst);
    let (broken_rows, broken) = read().await;
    let events = &cluster.log.events()[before..];
    let selects = events.iter().filter(|e| e.contains(" SELECT ")).count();
    assert_eq!(
        selects, 2,
        "the break must lead to a second GetFlightInfo: {events:#?}"
    );
    assert_eq!(broken_rows, clean_rows);
    assert!(broken == clean, "rows repeated or lost after the retry");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_advertised_addresses_are_rewritten() {
    let (db, raw) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), true).await;
    let quick = FlightOptions {
        read: ReadOptions {
            max_retries: 0,
            ..ReadOptions::default()
        },
        ..FlightOptions::default()
    };
    let without = connect(&cluster, &db, quick).await.unwrap();
    let failed: Result<Vec<RecordBatch>, _> = async {
        without
            .scan(&ScanRequest::default())
            .await?
            .try_collect()
            .await
    }
    .await;
    assert!(
        failed.is_err(),
        "the dead address cannot be read without the hook"
    );
    let rewrite = [("127.0.0.1:1".to_owned(), cluster.be_addrs[2].to_string())].into();
    let with = connect(
        &cluster,
        &db,
        FlightOptions {
            rewrite,
            ..FlightOptions::default()
        },
    )
    .await
    .unwrap();
    let read: Vec<RecordBatch> = with
        .scan(&ScanRequest::default())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows(&read), rows(&raw));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_over_tls_return_the_rows_of_a_plain_read_and_an_unknown_ca_is_refused() {
    let (db, raw) = loaded().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("flight test CA");
    let ca_path = ca.write(dir.path(), "ca.pem");
    let unknown_ca = TestCa::new("unknown test CA").write(dir.path(), "unknown.pem");
    let cert = ca.server(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let secure = cluster_with(db.url().expose().to_owned(), false, Some(&cert)).await;
    let plain = cluster(db.url().expose().to_owned(), false).await;
    let connect_to = |url: String| {
        let table = format!("{}.snapshots", db.name);
        async move {
            FlightSource::connect(
                &url,
                "root",
                Secret::new("flight-secret"),
                &table,
                SnapshotSchema::design_doc(),
                FlightOptions::default(),
            )
            .await
        }
    };

    let source = connect_to(format!(
        "grpc+tls://{}?ssl_ca={}",
        secure.fe_addr,
        ca_path.display()
    ))
    .await
    .unwrap();
    let encrypted = scan_all(&source).await;
    let clear = scan_all(
        &connect_to(format!("grpc://{}", plain.fe_addr))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rows(&encrypted), rows(&raw));
    assert!(sorted_rows(&encrypted) == sorted_rows(&clear));
    let events = secure.log.events();
    for be in ["be2", "be3", "be4"] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("doget {be} "))),
            "{be} never served over TLS: {events:#?}"
        );
    }

    let fe = secure.fe_addr.to_string();
    for (url, why) in [
        (
            format!("grpc+tls://{fe}?ssl_ca={}", unknown_ca.display()),
            "UnknownIssuer",
        ),
        // The public roots only.
        (format!("grpc+tls://{fe}"), "UnknownIssuer"),
    ] {
        let err = connect_to(url.clone()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                trainstore_core::Error::Remote {
                    transient: false,
                    ..
                }
            ) && text.contains("certificate")
                && text.contains(why)
                && text.contains(&fe),
            "{url}: {err:?}"
        );
    }
    let err = connect_to(format!("grpc://{fe}?ssl_ca={}", ca_path.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, trainstore_core::Error::InvalidInput { .. }),
        "{err}"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_credentials_and_tables_are_clear_errors() {
    let (db, _) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    let err = FlightSource::connect(
        &format!("grpc://{}", cluster.fe_addr),
        "root",
        Secret::new("wrong-password-value"),
        &format!("{}.snapshots", db.name),
        SnapshotSchema::design_doc(),
        FlightOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        !format!("{err} {err:?}").contains("wrong-password-value"),
        "{err}"
    );
    // Refused at the handshake, as a final answer: retrying a wrong password cannot help.
    assert!(
        matches!(
            &err,
            trainstore_core::Error::Remote { operation: "handshake", transient: false, reason, .. }
                if reason.contains("authentication")
        ),
        "{err:?}"
    );
    let err = FlightSource::connect(
        &format!("grpc://{}", cluster.fe_addr),
        "root",
        Secret::new("flight-secret"),
        &format!("{}.missing", db.name),
        SnapshotSchema::design_doc(),
        FlightOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, trainstore_core::Error::NotFound { .. }),
        "{err}"
    );
    let err = FlightSource::connect(
        "ftp://x",
        "root",
        Secret::new("p"),
        "a.b",
        SnapshotSchema::design_doc(),
        FlightOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, trainstore_core::Error::InvalidInput { value, .. } if value == "ftp://x"),
        "{err:?}"
    );
    db.drop_db().await;
}

/// The test server itself, checked with the ADBC Flight SQL driver (a client we did not write).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_test_server_speaks_flight_sql_to_the_adbc_driver() {
    let (db, raw) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "the ADBC check needs the project venv: run scripts/python-env"
    );
    let script = format!(
        r#"
import adbc_driver_flightsql.dbapi as flight
conn = flight.connect("grpc://{addr}", db_kwargs={{"username": "root", "password": "flight-secret"}})
cur = conn.cursor()
cur.execute("SELECT `time`, `feature` FROM `{db}`.`snapshots`")
table = cur.fetch_arrow_table()
print(table.num_rows, table.schema.names)
cur.close(); conn.close()

# And trainstore's own Python surface over the same Flight path.
import trainstore as ts
source = ts.DorisSource("mysql://root:flight-secret@127.0.0.1:3306/{db}", table="snapshots",
                        flight_url="grpc://{addr}", partitions=1)
typed = source.query(filters={{"nodeId": "1465"}})
print(typed.num_rows, typed.schema.field("time").type)
"#,
        addr = cluster.fe_addr,
        db = db.name
    );
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ADBC failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("{} ['time', 'feature']", rows(&raw)));
    let parser = trainstore_doris::SnapshotParser::new(SnapshotSchema::design_doc());
    let node_1465: usize = raw
        .iter()
        .map(|b| {
            let typed = parser.parse(b).unwrap().0;
            let nodes = typed
                .column_by_name("nodeId")
                .unwrap()
                .as_string::<i32>()
                .clone();
            nodes.iter().filter(|n| *n == Some("1465")).count()
        })
        .sum();
    assert_eq!(lines[1], format!("{node_1465} timestamp[ms, tz=UTC]"));
    let events = cluster.log.events();
    for be in ["be2", "be3", "be4"] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("doget {be} "))),
            "ADBC did not read {be}: {events:#?}"
        );
    }
    db.drop_db().await;
}

/// Deadlines short enough for tests, long enough for a loaded machine.
fn quick(max_retries: u32) -> FlightOptions {
    FlightOptions {
        read: ReadOptions {
            max_retries,
            timeouts: Timeouts {
                connect: Duration::from_secs(3),
                read: Duration::from_secs(2),
            },
            ..ReadOptions::default()
        },
        ..FlightOptions::default()
    }
}

/// A timeout of one of `phases` naming `endpoint`, without the password.
fn assert_timeout(err: &trainstore_core::Error, phases: &[&str], endpoint: SocketAddr) {
    let text = format!("{err} {err:?}");
    assert!(
        matches!(err, trainstore_core::Error::Timeout { operation, .. } if phases.contains(operation)),
        "expected a timeout of {phases:?}: {text}"
    );
    assert!(text.contains(&endpoint.to_string()), "{text}");
    assert!(!text.contains("flight-secret"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_fe_that_never_answers_fails_the_connect_in_seconds_naming_it() {
    let (db, _) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    let proxy = FaultProxy::start(cluster.fe_addr, Fault::Stall { after: 0 }).await;
    let started = Instant::now();
    let err = FlightSource::connect(
        &format!("grpc://{}", proxy.addr()),
        "root",
        Secret::new("flight-secret"),
        &format!("{}.snapshots", db.name),
        SnapshotSchema::design_doc(),
        quick(0),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert_timeout(&err, &["connect", "handshake"], proxy.addr());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_be_gone_silent_mid_stream_is_given_up_on_after_the_read_timeout_and_retries() {
    let (db, _) = loaded().await;
    let cluster = cluster(db.url().expose().to_owned(), false).await;
    // Past the HTTP/2 preface and the request, into the first endpoint's rows.
    let be = cluster.be_addrs[0];
    let proxy = FaultProxy::start(be, Fault::Stall { after: 4_000 }).await;
    let options = FlightOptions {
        rewrite: [(be.to_string(), proxy.addr().to_string())].into(),
        ..quick(1)
    };
    let source = connect(&cluster, &db, options).await.unwrap();
    let started = Instant::now();
    let err = async {
        source
            .scan(&ScanRequest::default())
            .await?
            .try_collect::<Vec<_>>()
            .await
    }
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    assert_timeout(&err, &["fetch", "read"], proxy.addr());
    assert!(err.to_string().contains("2 attempts"), "{err}");
    assert_eq!(proxy.accepted(), 2, "each attempt dials the BE again");
    db.drop_db().await;
}
