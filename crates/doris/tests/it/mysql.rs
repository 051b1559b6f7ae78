//! The Doris source over the MySQL protocol, against the real MariaDB on loopback.

use std::ops::Bound;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMillisecondType};
use futures::TryStreamExt;
use mysql_async::prelude::Queryable;
use trainstore_core::{
    DataSource, Error, Filter, Scalar, ScanRequest, Secret, TimeRange, Timestamp,
};
use trainstore_doris::load::{content_label, load_design_doc_rows};
use trainstore_doris::write::WriteOutcome;
use trainstore_doris::{
    DorisSource, FeatureKind, ReadOptions, SnapshotGenerator, SnapshotParser, SnapshotSchema,
    SynthConfig, Timeouts,
};

use trainstore_testkit::{Fault, FaultProxy};

use crate::support::{TestDb, assert_timeout, server_addr, url_through, with_password};

fn config() -> SynthConfig {
    SynthConfig {
        devices: 6,
        nodes_per_device: 2,
        snapshots: 60,
        malformed_rate: 0.02,
        ..SynthConfig::default()
    }
}

/// uuid, nodeId, time (ms) and meanLf (bits) of one row.
type Identity = (Option<String>, Option<String>, Option<i64>, Option<u64>);

/// The identity of every row, sorted: a canonical form to compare.
fn identities(batches: &[RecordBatch]) -> Vec<Identity> {
    let mut out = Vec::new();
    for b in batches {
        let uuid = b.column_by_name("uuid").unwrap().as_string::<i32>();
        let node = b.column_by_name("nodeId").unwrap().as_string::<i32>();
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let mean = b
            .column_by_name("meanLf")
            .unwrap()
            .as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            out.push((
                uuid.is_valid(r).then(|| uuid.value(r).to_owned()),
                node.is_valid(r).then(|| node.value(r).to_owned()),
                time.is_valid(r).then(|| time.value(r)),
                mean.is_valid(r).then(|| mean.value(r).to_bits()),
            ));
        }
    }
    out.sort();
    out
}

/// Rows per batch the test tables are loaded with.
const LOAD_BATCH_ROWS: usize = 500;

async fn loaded() -> (TestDb, Vec<RecordBatch>) {
    loaded_with(config()).await
}

async fn loaded_with(config: SynthConfig) -> (TestDb, Vec<RecordBatch>) {
    let db = TestDb::new().await;
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config.clone())
        .unwrap()
        .batches(LOAD_BATCH_ROWS)
        .collect();
    let written = load(&db, &raw).await;
    assert_eq!(written.rows_written, config.rows() as u64);
    (db, raw)
}

/// Loads `raw` into the test table under the label naming its content.
async fn load(db: &TestDb, raw: &[RecordBatch]) -> WriteOutcome {
    let label = content_label(raw).unwrap();
    load_design_doc_rows(
        &db.url(),
        "snapshots",
        &label,
        raw.to_vec(),
        Timeouts::default(),
    )
    .await
    .unwrap()
}

/// Loading the same rows again (the same content label) writes nothing and says so; other
/// rows load beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_the_same_rows_twice_writes_them_once() {
    let (db, raw) = loaded().await;
    let again = load(&db, &raw).await;
    assert!(again.already_written);
    assert_eq!(again.rows_written, 0);
    let fewer = &raw[..1];
    assert_ne!(content_label(fewer).unwrap(), content_label(&raw).unwrap());
    let more = load(&db, fewer).await;
    assert_eq!(more.rows_written, fewer[0].num_rows() as u64);
    let count: u64 = db
        .conn()
        .await
        .query_first("SELECT COUNT(*) FROM snapshots")
        .await
        .unwrap()
        .unwrap();
    let total: usize = raw.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(count, (total + fewer[0].num_rows()) as u64);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_tables_keep_rows_in_time_order_so_a_time_range_reads_only_its_rows() {
    let (db, _) = loaded().await;
    let mut conn = db.conn().await;
    let (lo, hi): (i64, i64) = conn
        .query_first("SELECT MIN(time), MAX(time) FROM snapshots")
        .await
        .unwrap()
        .unwrap();
    let explain = format!(
        "EXPLAIN SELECT time, feature FROM snapshots WHERE time >= {lo} AND time < {}",
        (lo + hi) / 2
    );
    let plan: Vec<(String, Option<String>)> = conn
        .query::<mysql_async::Row, _>(explain)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get("type").unwrap(), r.get("key").unwrap()))
        .collect();
    assert_eq!(plan, [("range".to_owned(), Some("PRIMARY".to_owned()))]);
    // The generator's batches are only roughly in time order; each is inserted sorted.
    let times: Vec<i64> = conn
        .query("SELECT time FROM snapshots ORDER BY seq")
        .await
        .unwrap();
    for (i, chunk) in times.chunks(LOAD_BATCH_ROWS).enumerate() {
        assert!(
            chunk.is_sorted(),
            "batch {i} was inserted out of time order"
        );
    }
    assert!(
        !times.is_sorted(),
        "the test data should not already be in order"
    );
    let first: Vec<mysql_async::Row> = conn.query("SELECT * FROM snapshots LIMIT 1").await.unwrap();
    let names: Vec<String> = first[0]
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    assert_eq!(
        names,
        ["time", "feature"],
        "the design document's columns only"
    );
    conn.disconnect().await.unwrap();
    db.drop_db().await;
}

async fn source(db: &TestDb, options: ReadOptions) -> DorisSource {
    DorisSource::connect(
        &db.url(),
        "snapshots",
        SnapshotSchema::design_doc(),
        options,
    )
    .await
    .unwrap()
}

async fn read(source: &DorisSource, request: &ScanRequest) -> Vec<RecordBatch> {
    source
        .scan(request)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_what_the_local_parser_reads_in_parallel_parts() {
    let (db, raw) = loaded().await;
    let parser = SnapshotParser::new(SnapshotSchema::design_doc());
    let mut local = Vec::new();
    let mut local_report = trainstore_doris::ParseReport::default();
    for b in &raw {
        let (typed, report) = parser.parse(b).unwrap();
        local.push(typed);
        local_report.merge(&report);
    }
    let src = source(
        &db,
        ReadOptions {
            partitions: 3,
            batch_rows: 97,
            ..ReadOptions::default()
        },
    )
    .await;
    let remote = read(&src, &ScanRequest::default()).await;
    assert_eq!(identities(&remote), identities(&local));
    let report = src.parse_report();
    assert_eq!(report.rows, local_report.rows);
    assert_eq!(report.columns, local_report.columns);
    assert!(
        report.malformed() > 0,
        "the generator injects malformed values"
    );
    db.drop_db().await;
}

/// The connections the server holds open to `db`, as it counts them.
async fn open_connections(watcher: &mut mysql_async::Conn, db: &TestDb) -> usize {
    watcher
        .exec_first::<usize, _, _>(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?",
            (db.name.as_str(),),
        )
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_scans_at_once_share_a_bounded_number_of_connections() {
    let (db, raw) = loaded().await;
    let rows: usize = raw.iter().map(RecordBatch::num_rows).sum();
    // One part per scan: the pool lends at most two connections and keeps two idle.
    let options = ReadOptions {
        partitions: 1,
        batch_rows: 16,
        ..ReadOptions::default()
    };
    let src = std::sync::Arc::new(source(&db, options).await);
    let scans: Vec<_> = (0..8)
        .map(|_| {
            let src = src.clone();
            tokio::spawn(async move {
                let mut stream = src.scan(&ScanRequest::default()).await.unwrap();
                let mut read = 0;
                // A slow reader keeps its connection busy.
                while let Some(batch) = stream.try_next().await.unwrap() {
                    read += batch.num_rows();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                read
            })
        })
        .collect();
    let mut watcher = mysql_async::Conn::from_url(crate::support::server_url())
        .await
        .unwrap();
    let mut peak = 0;
    while !scans.iter().all(|s| s.is_finished()) {
        peak = peak.max(open_connections(&mut watcher, &db).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for scan in scans {
        assert_eq!(scan.await.unwrap(), rows, "every scan reads every row");
    }
    assert!(
        peak >= 2,
        "the scans overlapped: {peak} connections at most"
    );
    assert!(peak <= 4, "{peak} connections open at once, the bound is 4");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_ranges_are_half_open_whatever_the_partitioning() {
    let (db, raw) = loaded().await;
    let times = raw[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let (start, end) = (times.value(10), times.value(200));
    let range = TimeRange::new(Timestamp::from_millis(start), Timestamp::from_millis(end)).unwrap();
    let request = ScanRequest {
        time_range: Some(range),
        ..ScanRequest::default()
    };
    let one = read(
        &source(
            &db,
            ReadOptions {
                partitions: 1,
                ..ReadOptions::default()
            },
        )
        .await,
        &request,
    )
    .await;
    let four = read(
        &source(
            &db,
            ReadOptions {
                partitions: 4,
                batch_rows: 13,
                ..ReadOptions::default()
            },
        )
        .await,
        &request,
    )
    .await;
    let ids = identities(&one);
    assert_eq!(ids, identities(&four));
    assert!(ids.iter().any(|r| r.2 == Some(start)), "start is included");
    assert!(
        ids.iter()
            .all(|r| r.2.is_some_and(|t| t >= start && t < end)),
        "end is excluded"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_fields_filter_project_and_limit() {
    let (db, _) = loaded().await;
    let src = source(&db, ReadOptions::default()).await;
    let request = ScanRequest {
        filters: vec![
            Filter::eq("nodeId", "1466"),
            Filter::is_in("uuid", Vec::<String>::new()),
        ],
        ..ScanRequest::default()
    };
    assert!(read(&src, &request).await.iter().all(|b| b.num_rows() == 0));
    let request = ScanRequest {
        filters: vec![Filter::eq("nodeId", "1466")],
        projection: Some(vec!["nodeId".into(), "temperature".into()]),
        ..ScanRequest::default()
    };
    let rows = read(&src, &request).await;
    let total: usize = rows.iter().map(RecordBatch::num_rows).sum();
    assert!(total > 0 && total < config().rows(), "{total}");
    for b in &rows {
        assert_eq!(b.num_columns(), 2);
        let node = b.column(0).as_string::<i32>();
        assert!((0..b.num_rows()).all(|r| node.value(r) == "1466"));
    }
    let limited = read(
        &src,
        &ScanRequest {
            limit: Some(25),
            ..ScanRequest::default()
        },
    )
    .await;
    assert_eq!(limited.iter().map(RecordBatch::num_rows).sum::<usize>(), 25);
    let err = src
        .scan(&ScanRequest {
            filters: vec![Filter::eq("nope", "x")],
            ..Default::default()
        })
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
    db.drop_db().await;
}

const HOSTILE: &[&str] = &[
    "a' OR '1'='1",
    "' OR 1=1 -- ",
    "x'; DROP TABLE flat; --",
    "back\\slash\\",
    "\\' OR 1=1 #",
    "quote\"double",
    "nul\0byte",
    "/* comment */ x",
    "ünïcødé 设备 🚀",
    "%_wildcards%",
];

async fn flat_table(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE TABLE flat (uuid VARCHAR(6000) CHARACTER SET utf8mb4 NOT NULL, time BIGINT NOT NULL, meanLf DOUBLE, KEY (time))",
    )
    .await
    .unwrap();
    let long = "L".repeat(5000);
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.push(long);
    values.push("plain".into());
    for (i, v) in values.iter().enumerate() {
        // Test setup through the driver's own parameter binding, independent of our encoder.
        conn.exec_drop(
            "INSERT INTO flat VALUES (?, ?, ?)",
            (v.as_bytes(), 1_000 + i as i64, i as f64),
        )
        .await
        .unwrap();
    }
    conn.disconnect().await.unwrap();
    values
}

fn flat_schema() -> SnapshotSchema {
    SnapshotSchema::builder()
        .flat()
        .keys(["uuid"])
        .time("time")
        .feature("meanLf", FeatureKind::Number)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_filter_values_match_exactly_and_inject_nothing() {
    let db = TestDb::new().await;
    let values = flat_table(&db).await;
    let src = DorisSource::connect(&db.url(), "flat", flat_schema(), ReadOptions::default())
        .await
        .unwrap();
    for value in &values {
        for request in [
            ScanRequest {
                filters: vec![Filter::eq("uuid", value.as_str())],
                ..Default::default()
            },
            ScanRequest {
                filters: vec![Filter::is_in("uuid", [value.as_str(), "absent"])],
                ..Default::default()
            },
            ScanRequest {
                filters: vec![Filter::eq("uuid", value.as_str())],
                ..Default::default()
            },
        ] {
            let rows = read(&src, &request).await;
            let got: Vec<String> = rows
                .iter()
                .flat_map(|b| {
                    let c = b.column_by_name("uuid").unwrap().as_string::<i32>().clone();
                    (0..c.len())
                        .map(move |r| c.value(r).to_owned())
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(got, vec![value.clone()], "filter on {value:?}");
        }
        let raw: Vec<RecordBatch> = src
            .scan_raw(&ScanRequest {
                filters: vec![Filter::eq("uuid", value.as_str())],
                ..Default::default()
            })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            raw.iter().map(RecordBatch::num_rows).sum::<usize>(),
            1,
            "raw filter on {value:?}"
        );
    }
    // The table survived every attempt.
    let all = read(&src, &ScanRequest::default()).await;
    assert_eq!(
        all.iter().map(RecordBatch::num_rows).sum::<usize>(),
        values.len()
    );
    let range = ScanRequest {
        filters: vec![Filter::range(
            "meanLf",
            Bound::Included(Scalar::Float64(2.0)),
            Bound::Excluded(Scalar::Int64(4)),
        )],
        ..Default::default()
    };
    assert_eq!(
        read(&src, &range)
            .await
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        2
    );

    for table in [
        "flat`; DROP TABLE flat; --",
        "flat where 1=1",
        "../flat",
        "",
    ] {
        let err = DorisSource::connect(&db.url(), table, flat_schema(), ReadOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { .. }),
            "{table:?}: {err}"
        );
    }
    let err = src
        .scan(&ScanRequest {
            filters: vec![Filter::eq("uuid` = uuid OR 1=1 -- ", "x")],
            ..Default::default()
        })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let bad_column = SnapshotSchema::builder()
        .flat()
        .keys(["uuid`x"])
        .time("time")
        .build()
        .unwrap();
    let err = DorisSource::connect(&db.url(), "flat", bad_column, ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_retried_without_repeating_or_losing_rows() {
    // About 20 MB of rows: more than loopback socket buffers hold, so the server is still
    // sending when the reader pauses after its first batch.
    let big = SynthConfig {
        devices: 20,
        snapshots: 200,
        array_len: (64, 64),
        ..config()
    };
    let (db, raw) = loaded_with(big).await;
    let clean = read(
        &source(
            &db,
            ReadOptions {
                partitions: 1,
                ..ReadOptions::default()
            },
        )
        .await,
        &ScanRequest::default(),
    )
    .await;
    let src = source(
        &db,
        ReadOptions {
            partitions: 1,
            batch_rows: 50,
            ..ReadOptions::default()
        },
    )
    .await;
    let mut stream = src.scan(&ScanRequest::default()).await.unwrap();
    let mut got = vec![stream.try_next().await.unwrap().unwrap()];
    // Kill the connection serving the scan while it is still sending rows.
    let mut admin = db.conn().await;
    let ids: Vec<u64> = admin
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT %snapshots%' AND ID <> CONNECTION_ID()",
            (db.name.as_str(),),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1, "the scan's query should still be running");
    admin.query_drop(format!("KILL {}", ids[0])).await.unwrap();
    admin.disconnect().await.unwrap();
    while let Some(b) = stream.try_next().await.unwrap() {
        got.push(b);
    }
    assert_eq!(identities(&got), identities(&clean));
    assert_eq!(
        identities(&got).len(),
        raw.iter().map(RecordBatch::num_rows).sum::<usize>()
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_with_a_password_reads_and_a_wrong_password_is_refused_unechoed() {
    let (db, raw) = loaded().await;
    let user = format!("{}_reader", db.name);
    let mut admin = db.conn().await;
    admin
        .query_drop(format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'right-horse-battery'"
        ))
        .await
        .unwrap();
    admin
        .query_drop(format!("GRANT SELECT ON `{}`.* TO '{user}'@'%'", db.name))
        .await
        .unwrap();
    let connect = |password: &str| {
        let server = crate::support::server_url();
        let server = server.replacen("mysql://root", &format!("mysql://{user}:{password}"), 1);
        let url = Secret::new(format!("{}/{}", server.trim_end_matches('/'), db.name));
        async move {
            DorisSource::connect(
                &url,
                "snapshots",
                SnapshotSchema::design_doc(),
                ReadOptions::default(),
            )
            .await
        }
    };
    let src = connect("right-horse-battery").await.unwrap();
    let rows: usize = read(&src, &ScanRequest::default())
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, raw.iter().map(RecordBatch::num_rows).sum::<usize>());
    let err = connect("wrong-horse-battery").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-horse"), "{err:?}");
    admin
        .query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    admin.disconnect().await.unwrap();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_scans_reuse_the_connections_of_earlier_ones() {
    let (db, raw) = loaded().await;
    let src = source(
        &db,
        ReadOptions {
            partitions: 2,
            ..ReadOptions::default()
        },
    )
    .await;
    let mut admin = db.conn().await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let batches = read(&src, &ScanRequest::default()).await;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, raw.iter().map(RecordBatch::num_rows).sum::<usize>());
        let mut ids: Vec<u64> = admin
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                (db.name.as_str(),),
            )
            .await
            .unwrap();
        ids.sort_unstable();
        sessions.push(ids);
    }
    assert_eq!(sessions[0].len(), 2, "one connection per part, kept");
    assert_eq!(sessions[1], sessions[0]);
    assert_eq!(sessions[2], sessions[0]);
    admin.disconnect().await.unwrap();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_times_out() {
    let (db, _) = loaded().await;
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE VIEW slow AS SELECT time, feature, SLEEP(0.5) AS z FROM snapshots LIMIT 40",
    )
    .await
    .unwrap();
    conn.disconnect().await.unwrap();
    let options = ReadOptions {
        partitions: 1,
        query_timeout: Duration::from_secs(1),
        max_retries: 0,
        ..ReadOptions::default()
    };
    let src = DorisSource::connect(&db.url(), "slow", SnapshotSchema::design_doc(), options)
        .await
        .unwrap();
    let started = Instant::now();
    let result: Result<Vec<RecordBatch>, Error> =
        async { src.scan(&ScanRequest::default()).await?.try_collect().await }.await;
    let err = result.unwrap_err();
    // Stopped at the 1 s limit, long before its 20 s of sleeping are done: by the server
    // (the session's `max_statement_time` on MariaDB, `query_timeout` on Doris) or by the
    // client's own deadline for the query, whichever comes first; either is final.
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    let by_server = matches!(
        &err,
        Error::Remote { operation: "read rows", transient: false, reason, .. }
            if reason.contains("max_statement_time")
    );
    let by_client = matches!(
        &err,
        Error::Timeout { operation: "query", after, attempts: 1, .. } if *after == Duration::from_secs(1)
    );
    assert!(by_server || by_client, "{err:?}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_and_tables_are_clear_errors_without_the_password() {
    let db = TestDb::new().await;
    let connect_error = |url: String, table: &'static str| async move {
        DorisSource::connect(
            &Secret::new(url),
            table,
            SnapshotSchema::design_doc(),
            ReadOptions::default(),
        )
        .await
        .unwrap_err()
    };
    let url =
        crate::support::server_url().replacen("mysql://root", "mysql://root:hunter2secret", 1);
    for err in [
        connect_error(format!("{url}/{}", db.name), "snapshots").await,
        connect_error("mysql://root:hunter2secret@[bad".into(), "t").await,
    ] {
        assert!(
            !format!("{err} {err:?}").contains("hunter2secret"),
            "{err:?}"
        );
    }
    // The shared MariaDB has no TLS: asked for, it is not silently done without.
    let tls = format!("{}?require_ssl=true", db.url().expose());
    let err = connect_error(tls, "snapshots").await;
    assert!(
        matches!(err, Error::Remote { .. }) && err.to_string().contains("does not offer"),
        "{err}"
    );
    let err = connect_error(db.url().expose().to_owned(), "missing").await;
    assert!(
        matches!(err, Error::NotFound { what: "table", .. }),
        "{err}"
    );
    db.drop_db().await;
}

/// Deadlines short enough for tests, long enough for a loaded machine: 3 s to connect, 2 s of
/// silence.
fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(3),
        read: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_the_connect_in_seconds_naming_it() {
    let db = TestDb::new().await;
    let proxy = FaultProxy::start(server_addr(), Fault::Stall { after: 0 }).await;
    let url = with_password(&url_through(&db, &proxy));
    let started = Instant::now();
    let err = DorisSource::connect(
        &url,
        "snapshots",
        SnapshotSchema::design_doc(),
        ReadOptions {
            timeouts: quick(),
            ..ReadOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert_timeout(&err, "handshake", proxy.addr());

    let started = Instant::now();
    let err = load_design_doc_rows(&url, "snapshots", "test", Vec::new(), quick())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert_timeout(&err, "connect", proxy.addr());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_silent_mid_read_is_given_up_on_after_the_read_timeout_and_retries() {
    let (db, _) = loaded().await;
    // Enough for logging in and describing the table, not for the rows.
    let proxy = FaultProxy::start(server_addr(), Fault::Stall { after: 60_000 }).await;
    let options = ReadOptions {
        partitions: 1,
        batch_rows: 10,
        max_retries: 1,
        timeouts: quick(),
        ..ReadOptions::default()
    };
    let src = DorisSource::connect(
        &url_through(&db, &proxy),
        "snapshots",
        SnapshotSchema::design_doc(),
        options.clone(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut stream = src.scan(&ScanRequest::default()).await.unwrap();
    let mut rows = 0;
    let err = loop {
        match stream.try_next().await {
            Ok(Some(batch)) => rows += batch.num_rows(),
            Ok(None) => panic!("the read ended although the server went silent"),
            Err(e) => break e,
        }
    };
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    assert!(rows > 0, "rows before the stall are handed out");
    assert_timeout(&err, "read rows", proxy.addr());
    assert!(err.to_string().contains("2 attempts"), "{err}");
    assert_eq!(proxy.accepted(), 2, "the retry connects again");

    // A server silent once a query is sent: the query's own timeout.
    proxy.set(Fault::PassThrough);
    let src = DorisSource::connect(
        &url_through(&db, &proxy),
        "snapshots",
        SnapshotSchema::design_doc(),
        ReadOptions {
            max_retries: 0,
            ..options
        },
    )
    .await
    .unwrap();
    proxy.set(Fault::Stall { after: 0 });
    let err = match src.scan(&ScanRequest::default()).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
        Err(e) => e,
    };
    assert_timeout(&err, "query", proxy.addr());
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_result_is_not_cut_off_by_the_read_timeout() {
    let (db, _) = loaded().await;
    let mut conn = db.conn().await;
    // Rows longer than the server's 16 KiB write buffer go out one by one, 0.3 s apart (a
    // view with a LIMIT would be computed whole first).
    conn.query_drop("CREATE TABLE few AS SELECT time, feature FROM snapshots LIMIT 12")
        .await
        .unwrap();
    conn.query_drop(
        "CREATE VIEW steady AS SELECT time, \
         CONCAT(feature, IF(SLEEP(0.3) = 0, REPEAT(' ', 20000), '')) AS feature FROM few",
    )
    .await
    .unwrap();
    conn.disconnect().await.unwrap();
    let options = ReadOptions {
        partitions: 1,
        max_retries: 0,
        timeouts: quick(),
        ..ReadOptions::default()
    };
    let src = DorisSource::connect(&db.url(), "steady", SnapshotSchema::design_doc(), options)
        .await
        .unwrap();
    let started = Instant::now();
    let read: Vec<RecordBatch> = src
        .scan(&ScanRequest::default())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 12);
    assert!(
        started.elapsed() > quick().read,
        "the read should outlast the read timeout to show anything"
    );
    db.drop_db().await;
}
