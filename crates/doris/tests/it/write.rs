//! Idempotent write-back on MariaDB: labels, reruns, concurrent writers, a killed connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float32Builder, Float64Array, ListBuilder, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use mysql_async::prelude::Queryable;
use trainstore_core::Error;
use trainstore_doris::Timeouts;
use trainstore_doris::write::{WriteOptions, write_batches};
use trainstore_testkit::{Fault, FaultProxy};

use crate::support::{TestDb, assert_timeout, server_addr, url_through, with_password};

fn retries(max_retries: u32) -> WriteOptions {
    WriteOptions {
        max_retries,
        ..WriteOptions::default()
    }
}

fn predictions(rows: usize, pad: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("score", DataType::Float64, true),
        Field::new(
            "spectrum",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
    ]));
    let mut spectrum = ListBuilder::new(Float32Builder::new());
    for i in 0..rows {
        spectrum.values().append_slice(&[i as f32, 0.5]);
        spectrum.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("dev-{i}-{}", "x".repeat(pad))),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(
                (0..rows).map(|i| 1_670_000_000_000 + i as i64),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter(
            (0..rows).map(|i| (i % 7 != 0).then_some(i as f64 / 10.0)),
        )),
        Arc::new(spectrum.finish()),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

async fn count(db: &TestDb, table: &str) -> u64 {
    let mut conn = db.conn().await;
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{table}`"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    n.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_is_written_once_however_often_it_is_sent() {
    let db = TestDb::new().await;
    let batch = predictions(500, 0);
    let first = write_batches(
        &db.url(),
        "predictions",
        "run-1",
        std::slice::from_ref(&batch),
        &retries(3),
    )
    .await
    .unwrap();
    assert_eq!((first.rows_written, first.already_written), (500, false));
    let again = write_batches(
        &db.url(),
        "predictions",
        "run-1",
        std::slice::from_ref(&batch),
        &retries(3),
    )
    .await
    .unwrap();
    assert_eq!((again.rows_written, again.already_written), (0, true));
    assert_eq!(count(&db, "predictions").await, 500);
    let other = write_batches(
        &db.url(),
        "predictions",
        "run-2",
        std::slice::from_ref(&batch),
        &retries(3),
    )
    .await
    .unwrap();
    assert_eq!(other.rows_written, 500);
    assert_eq!(count(&db, "predictions").await, 1000);
    // Values arrive as written: nulls stay null, lists become JSON text, times epoch ms.
    let mut conn = db.conn().await;
    let row: Option<(String, i64, Option<f64>, String)> = conn
        .query_first(
            "SELECT uuid, time, score, spectrum FROM predictions WHERE uuid = 'dev-7-' LIMIT 1",
        )
        .await
        .unwrap();
    assert_eq!(
        row.unwrap(),
        ("dev-7-".into(), 1_670_000_000_007, None, "[7, 0.5]".into())
    );
    conn.disconnect().await.unwrap();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_one_label_write_once() {
    let db = TestDb::new().await;
    let batch = predictions(2000, 10);
    let url = db.url();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (url, batch) = (url.clone(), batch.clone());
            tokio::spawn(async move {
                write_batches(&url, "predictions", "shared", &[batch], &retries(3))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wrote = 0;
    for w in writers {
        let outcome = w.await.unwrap();
        wrote += u64::from(!outcome.already_written);
    }
    assert_eq!(wrote, 1, "exactly one writer writes");
    assert_eq!(count(&db, "predictions").await, 2000);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_write_is_retried_without_duplicates() {
    let db = TestDb::new().await;
    // About 15 MB in several statements of one transaction: long enough to be caught mid-way.
    let batch = predictions(30_000, 500);
    let url = db.url();
    let writer = tokio::spawn(async move {
        write_batches(&url, "predictions", "big", &[batch], &retries(3)).await
    });
    let mut admin = db.conn().await;
    let mut killed = false;
    for _ in 0..2000 {
        let ids: Vec<u64> = admin
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'INSERT INTO `%`.`predictions`%' AND ID <> CONNECTION_ID()",
                (db.name.as_str(),),
            )
            .await
            .unwrap();
        if let Some(id) = ids.first() {
            admin.query_drop(format!("KILL {id}")).await.unwrap();
            killed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    admin.disconnect().await.unwrap();
    assert!(killed, "the write should have been caught while inserting");
    let outcome = writer.await.unwrap().unwrap();
    assert!(outcome.attempts >= 2, "{outcome:?}");
    assert_eq!(
        count(&db, "predictions").await,
        30_000,
        "the killed attempt left nothing behind"
    );
    let again = write_batches(
        &db.url(),
        "predictions",
        "big",
        &[predictions(30_000, 500)],
        &retries(0),
    )
    .await
    .unwrap();
    assert!(again.already_written);
    assert_eq!(count(&db, "predictions").await, 30_000);
    db.drop_db().await;
}

#[tokio::test]
async fn bad_writes_are_refused_before_touching_the_database() {
    let db = TestDb::new().await;
    let batch = predictions(3, 0);
    for label in ["", "a\nb", &"l".repeat(129)] {
        let err = write_batches(
            &db.url(),
            "predictions",
            label,
            std::slice::from_ref(&batch),
            &retries(0),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { .. }),
            "{label:?}: {err}"
        );
    }
    let err = write_batches(
        &db.url(),
        "pred`ictions",
        "l",
        std::slice::from_ref(&batch),
        &retries(0),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(
        write_batches(&db.url(), "predictions", "l", &[], &retries(0))
            .await
            .is_err()
    );
    let hostile = "x'); DROP TABLE predictions; --";
    write_batches(
        &db.url(),
        "predictions",
        hostile,
        std::slice::from_ref(&batch),
        &retries(0),
    )
    .await
    .unwrap();
    assert!(
        write_batches(&db.url(), "predictions", hostile, &[batch], &retries(0))
            .await
            .unwrap()
            .already_written
    );
    assert_eq!(count(&db, "predictions").await, 3);
    db.drop_db().await;
}

/// Write options with deadlines short enough for tests.
fn quick(max_retries: u32, timeout: Duration) -> WriteOptions {
    WriteOptions {
        max_retries,
        timeout,
        timeouts: Timeouts {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(2),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_the_write_in_seconds_retries_within_the_deadline() {
    let db = TestDb::new().await;
    let proxy = FaultProxy::start(server_addr(), Fault::Stall { after: 0 }).await;
    let url = with_password(&url_through(&db, &proxy));
    let batch = predictions(10, 0);
    let started = Instant::now();
    let err = write_batches(
        &url,
        "predictions",
        "l",
        std::slice::from_ref(&batch),
        &quick(1, Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    assert_timeout(&err, "connect", proxy.addr());
    assert!(err.to_string().contains("2 attempts"), "{err}");
    assert_eq!(proxy.accepted(), 2);

    // Many retries allowed, but the whole write has 4 s.
    let started = Instant::now();
    let err = write_batches(
        &url,
        "predictions",
        "l",
        std::slice::from_ref(&batch),
        &quick(100, Duration::from_secs(4)),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(8), "{err}");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&proxy.addr().to_string()), "{err}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_mid_insert_leaves_nothing_and_a_rerun_writes_it_once() {
    let db = TestDb::new().await;
    let batch = predictions(20_000, 100);
    for fault in [
        Fault::Stall { after: 256 << 10 },
        Fault::Reset { after: 256 << 10 },
        Fault::Truncate { after: 256 << 10 },
    ] {
        let proxy = FaultProxy::start(server_addr(), fault).await;
        let err = write_batches(
            &url_through(&db, &proxy),
            "predictions",
            "cut",
            std::slice::from_ref(&batch),
            &quick(1, Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&proxy.addr().to_string()),
            "{fault:?}: {text}"
        );
        assert!(text.contains("2 attempts"), "{fault:?}: {text}");
        if matches!(fault, Fault::Stall { .. }) {
            // The retry waits on the label the stalled attempt's open transaction still holds.
            assert_timeout(&err, "claim label", proxy.addr());
        } else {
            assert!(matches!(err, Error::Remote { .. }), "{fault:?}: {text}");
        }
    }
    let mut conn = db.conn().await;
    let labels: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM _trainstore_labels")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    assert_eq!(labels, Some(0), "no cut-off write may claim its label");
    assert_eq!(count(&db, "predictions").await, 0);
    let done = write_batches(
        &db.url(),
        "predictions",
        "cut",
        std::slice::from_ref(&batch),
        &retries(0),
    )
    .await
    .unwrap();
    assert_eq!(done.rows_written, 20_000);
    assert_eq!(count(&db, "predictions").await, 20_000);
    db.drop_db().await;
}
