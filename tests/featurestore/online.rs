//! One conformance suite for both online stores: the embedded `redb` file and Redis (from
//! `scripts/test-services`, `TRAINSTORE_TEST_REDIS_URL`), each test in its own namespace.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ListArray, RecordBatch};
use trainstore_core::Timestamp;
use trainstore_featurestore::{FeatureRef, FeatureStore, OnlineOptions, Ttl, TtlPolicy};

use crate::support::*;

const DAY: i64 = 86_400_000;

enum Backend {
    Embedded,
    Redis,
}

fn namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}-{}",
        std::process::id(),
        Timestamp::now().as_millis(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn with_online(f: &Fixture, backend: &Backend) -> FeatureStore {
    let url = match backend {
        Backend::Embedded => f
            .dir
            .path()
            .join("online/online.redb")
            .to_str()
            .unwrap()
            .to_owned(),
        Backend::Redis => std::env::var("TRAINSTORE_TEST_REDIS_URL").expect(
            "TRAINSTORE_TEST_REDIS_URL: run the tests through scripts/test (it starts Redis)",
        ),
    };
    f.store.clone().with_online_store(url, namespace())
}

/// Materializes the last `days` days up to `now` (ms).
async fn materialize_last_days(store: &FeatureStore, now: i64, days: i64) {
    store
        .materialize(
            Timestamp::from_millis(now - days * DAY),
            Timestamp::from_millis(now),
            None,
        )
        .await
        .unwrap();
}

fn refs(list: &[&str]) -> Vec<FeatureRef> {
    list.iter().map(|r| r.parse().unwrap()).collect()
}

/// Entity keys for online reads.
pub fn keys(rows: &[(Option<&str>, &str)]) -> RecordBatch {
    let all = entity_rows(&rows.iter().map(|(u, n)| (*u, *n, 0)).collect::<Vec<_>>());
    all.project(&[0, 1]).unwrap()
}

async fn read(store: &FeatureStore, rows: &[(Option<&str>, &str)], ttl: TtlPolicy) -> RecordBatch {
    store
        .get_online_features(
            &refs(&["basic:x", "basic:arr"]),
            &keys(rows),
            &OnlineOptions {
                ttl,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

async fn conformance(backend: Backend) {
    let f = Fixture::new().await;
    let now = Timestamp::now().as_millis();
    let t0 = now - 10 * DAY;
    let table = f
        .write(
            "basic",
            feature_table(&[
                row("A", "1", t0, 1.0),
                row("A", "1", t0 + 5 * DAY, 2.0),
                FeatureRow {
                    arr: Some(vec![]),
                    ..row("A", "2", t0, 3.0)
                },
                FeatureRow {
                    arr: None,
                    x: None,
                    ..row("B", "1", t0, 0.0)
                },
                row("OLD", "1", now - 400 * DAY, 9.0),
            ]),
        )
        .await;
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let store = with_online(&f, &backend);
    let ts = Timestamp::from_millis;

    // End inclusive: a window ending right before the newer row serves the older one.
    let done = store
        .materialize(ts(t0 - DAY), ts(t0 + 5 * DAY - 1), None)
        .await
        .unwrap();
    assert_eq!(done[0].entities, 3);
    let out = read(&store, &[(Some("A"), "1")], TtlPolicy::Enforce).await;
    assert_eq!(floats(&out, "x"), vec![Some(1.0)]);
    store
        .materialize(ts(t0 - DAY), ts(t0 + 5 * DAY), None)
        .await
        .unwrap();
    let out = read(&store, &[(Some("A"), "1")], TtlPolicy::Enforce).await;
    assert_eq!(floats(&out, "x"), vec![Some(2.0)]);

    // An older window materialized later never overwrites a newer value.
    let done = store
        .materialize(ts(t0 - DAY), ts(t0 + DAY), None)
        .await
        .unwrap();
    assert_eq!(
        done[0].written, 2,
        "A/2 and B/1 rewritten with equal versions, A/1 kept"
    );
    let out = read(
        &store,
        &[
            (Some("A"), "1"),
            (Some("A"), "2"),
            (Some("B"), "1"),
            (Some("Z"), "1"),
            (None, "1"),
            (Some("A"), "9"),
            (None, "2"),
        ],
        TtlPolicy::Enforce,
    )
    .await;
    assert_eq!(
        floats(&out, "x"),
        vec![Some(2.0), Some(3.0), None, None, None, None, None],
        "newest kept; stored null stays null; unknown and null keys read as nulls"
    );
    let names: Vec<_> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["uuid", "nodeId", "x", "arr"]);
    let arr = out.column(3).as_any().downcast_ref::<ListArray>().unwrap();
    assert_eq!(arr.value(0).len(), 2);
    assert!(
        arr.is_valid(1) && arr.value(1).is_empty(),
        "an empty list stays empty"
    );
    assert!(arr.is_null(2), "a null list stays null");

    // TTL: enforced by default at read time, ignored in the Feast-compatible mode.
    store
        .materialize(ts(now - 500 * DAY), ts(now), None)
        .await
        .unwrap();
    let old = [(Some("OLD"), "1")];
    assert_eq!(
        floats(&read(&store, &old, TtlPolicy::Enforce).await, "x"),
        vec![None]
    );
    assert_eq!(
        floats(&read(&store, &old, TtlPolicy::Ignore).await, "x"),
        vec![Some(9.0)]
    );

    let full = store
        .get_online_features(
            &refs(&["basic:x"]),
            &keys(&[(Some("A"), "1")]),
            &OnlineOptions {
                full_feature_names: true,
                ttl: TtlPolicy::Enforce,
                with_status: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(floats(&full, "basic__x"), vec![Some(2.0)]);
}

async fn incremental(backend: Backend) {
    let f = Fixture::new().await;
    let now = Timestamp::now().as_millis();
    let table = f
        .write(
            "basic",
            feature_table(&[
                row("A", "1", now - 3 * DAY, 1.0),
                row("A", "1", now - DAY, 2.0),
            ]),
        )
        .await;
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let store = with_online(&f, &backend);
    let first = store
        .materialize_incremental(Timestamp::from_millis(now - 2 * DAY), None)
        .await
        .unwrap();
    assert_eq!(first[0].rows_read, 1);
    assert_eq!(
        floats(
            &read(&store, &[(Some("A"), "1")], TtlPolicy::Enforce).await,
            "x"
        ),
        vec![Some(1.0)]
    );
    let second = store
        .materialize_incremental(Timestamp::from_millis(now), None)
        .await
        .unwrap();
    assert_eq!(second[0].rows_read, 1, "continues where the last one ended");
    assert_eq!(
        second[0].range.unwrap().start(),
        Timestamp::from_millis(now - 2 * DAY + 1)
    );
    assert_eq!(
        floats(
            &read(&store, &[(Some("A"), "1")], TtlPolicy::Enforce).await,
            "x"
        ),
        vec![Some(2.0)]
    );
    let again = store
        .materialize_incremental(Timestamp::from_millis(now - DAY), None)
        .await
        .unwrap();
    assert!(again.is_empty(), "nothing left to do for an earlier end");
}

#[tokio::test]
async fn embedded_store_conforms() {
    conformance(Backend::Embedded).await;
}

#[tokio::test]
async fn redis_store_conforms() {
    conformance(Backend::Redis).await;
}

#[tokio::test]
async fn embedded_store_materializes_incrementally() {
    incremental(Backend::Embedded).await;
}

#[tokio::test]
async fn redis_store_materializes_incrementally() {
    incremental(Backend::Redis).await;
}

#[tokio::test]
async fn without_an_online_store_reads_say_so() {
    let f = Fixture::new().await;
    let err = f
        .store
        .materialize(Timestamp::from_millis(0), Timestamp::from_millis(1), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("online store"), "{err}");
}

#[tokio::test]
async fn a_corrupt_row_in_redis_reads_as_corrupt_data_not_a_panic() {
    let f = Fixture::new().await;
    let now = Timestamp::now().as_millis();
    let table = f
        .write("basic", feature_table(&[row("A", "1", now - DAY, 1.0)]))
        .await;
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let namespace = namespace();
    let url = std::env::var("TRAINSTORE_TEST_REDIS_URL").expect("TRAINSTORE_TEST_REDIS_URL");
    let store = f
        .store
        .clone()
        .with_online_store(url.clone(), namespace.clone());
    materialize_last_days(&store, now, 2).await;
    // Another writer (or a broken one) left a value too short to hold its times.
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("trainstore:{namespace}:basic:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let () = redis::cmd("HSET")
        .arg(&stored[0])
        .arg("d")
        .arg(&b"x"[..])
        .query_async(&mut redis)
        .await
        .unwrap();
    let err = store
        .get_online_features(
            &refs(&["basic:x"]),
            &keys(&[(Some("A"), "1")]),
            &OnlineOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, trainstore_core::Error::Corrupt { .. }),
        "{err}"
    );
}

/// The `x` values and times (ms) of the recent rows of entity A/1, oldest first.
async fn recent_x(store: &FeatureStore, ttl: TtlPolicy) -> (Vec<Option<f64>>, Vec<i64>) {
    let rows = store
        .get_online_recent("basic", &keys(&[(Some("A"), "1"), (Some("Z"), "9")]), ttl)
        .await
        .unwrap();
    let schema = rows.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["uuid", "nodeId", "ts", "x", "arr"]);
    let times = rows
        .column(2)
        .as_any()
        .downcast_ref::<arrow::array::TimestampNanosecondArray>()
        .unwrap()
        .values()
        .iter()
        .map(|t| t / 1_000_000)
        .collect();
    (floats(&rows, "x"), times)
}

/// A view keeping 3 rows per entity online: materialized in two windows, in either order,
/// it holds the 3 newest rows overall, oldest first, and the TTL drops old ones at read time.
async fn recent_rows(backend: Backend) {
    let f = Fixture::new().await;
    let now = Timestamp::now().as_millis();
    let table = f
        .write(
            "basic",
            feature_table(&[
                row("A", "1", now - 5 * DAY, 1.0),
                row("A", "1", now - 4 * DAY, 2.0),
                row("A", "1", now - 3 * DAY, 3.0),
                row("A", "1", now - 2 * DAY, 4.0),
                row("A", "1", now - DAY, 5.0),
                row("B", "2", now - DAY, 9.0),
            ]),
        )
        .await;
    f.apply_with_device(vec![
        view("basic", &table, Ttl::days(30)).with_online_rows(3),
    ])
    .await;
    let store = with_online(&f, &backend);
    let at = |ms: i64| Timestamp::from_millis(ms);
    // The later window first: merging the earlier one keeps the newest rows.
    store
        .materialize(at(now - 2 * DAY - 1), at(now), None)
        .await
        .unwrap();
    let (x, _) = recent_x(&store, TtlPolicy::Enforce).await;
    assert_eq!(x, vec![Some(4.0), Some(5.0)]);
    store
        .materialize(at(now - 6 * DAY), at(now - 2 * DAY - 1), None)
        .await
        .unwrap();
    let (x, times) = recent_x(&store, TtlPolicy::Enforce).await;
    assert_eq!(x, vec![Some(3.0), Some(4.0), Some(5.0)]);
    assert_eq!(times, vec![now - 3 * DAY, now - 2 * DAY, now - DAY]);
    // Materializing the same rows again changes nothing.
    store
        .materialize(at(now - 6 * DAY), at(now), None)
        .await
        .unwrap();
    assert_eq!(recent_x(&store, TtlPolicy::Enforce).await.0.len(), 3);
    // The latest-row answer is unchanged by the recent rows beside it.
    assert_eq!(
        floats(
            &read(&store, &[(Some("A"), "1")], TtlPolicy::Enforce).await,
            "x"
        ),
        vec![Some(5.0)]
    );

    // A TTL of 2.5 days leaves out the row 3 days old.
    f.apply_with_device(vec![
        view(
            "basic",
            &table,
            Ttl::new(std::time::Duration::from_secs(60 * 3600)),
        )
        .with_online_rows(3),
    ])
    .await;
    let (x, _) = recent_x(&store, TtlPolicy::Enforce).await;
    assert_eq!(x, vec![Some(4.0), Some(5.0)]);
    assert_eq!(recent_x(&store, TtlPolicy::Ignore).await.0.len(), 3);

    // A view keeping its latest row only says how to keep more.
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let text = store
        .get_online_recent("basic", &keys(&[(Some("A"), "1")]), TtlPolicy::Enforce)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("online_rows"), "{text}");
}

#[tokio::test]
async fn embedded_store_keeps_recent_rows() {
    recent_rows(Backend::Embedded).await;
}

#[tokio::test]
async fn redis_store_keeps_recent_rows() {
    recent_rows(Backend::Redis).await;
}

/// Each view's status column says why a value is what it is: present, expired by the TTL,
/// unknown key (a null key too), or the view never materialized.
async fn statuses(backend: Backend) {
    let f = Fixture::new().await;
    let now = Timestamp::now().as_millis();
    let table = f
        .write(
            "basic",
            feature_table(&[
                row("A", "1", now - DAY, 1.0),
                row("B", "2", now - 40 * DAY, 2.0),
            ]),
        )
        .await;
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let store = with_online(&f, &backend);
    let read = |store: FeatureStore| async move {
        let options = OnlineOptions {
            with_status: true,
            ..Default::default()
        };
        let keys = keys(&[
            (Some("A"), "1"),
            (Some("B"), "2"),
            (Some("Z"), "9"),
            (None, "1"),
        ]);
        let answer = store
            .get_online_features(&refs(&["basic:x"]), &keys, &options)
            .await
            .unwrap();
        let status = answer
            .column_by_name("basic__status")
            .expect("a status column")
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("text")
            .iter()
            .map(|s| s.expect("a status").to_owned())
            .collect::<Vec<_>>();
        (floats(&answer, "x"), status)
    };
    let (_, before) = read(store.clone()).await;
    assert_eq!(before, ["not materialized"; 4]);
    materialize_last_days(&store, now, 50).await;
    let (x, after) = read(store).await;
    assert_eq!(after, ["present", "expired", "unknown key", "unknown key"]);
    assert_eq!(x, [Some(1.0), None, None, None]);
}

#[tokio::test]
async fn embedded_store_says_why_values_are_missing() {
    statuses(Backend::Embedded).await;
}

#[tokio::test]
async fn redis_store_says_why_values_are_missing() {
    statuses(Backend::Redis).await;
}

/// Rule 7.3 online: an integer key finds a row materialized from text keys (snapshots hold
/// `nodeId` as text), for latest values and recent rows alike; text that is not exactly an
/// integer's digits (`"01"`) finds nothing.
async fn integer_keys(backend: Backend) {
    let f = Fixture::new().await;
    let now = Timestamp::now().as_millis();
    let table = f
        .write(
            "basic",
            feature_table(&[row("A", "1", now - DAY, 1.0), row("B", "2", now - DAY, 2.0)]),
        )
        .await;
    f.apply_with_device(vec![
        view("basic", &table, Ttl::days(30)).with_online_rows(2),
    ])
    .await;
    let store = with_online(&f, &backend);
    materialize_last_days(&store, now, 50).await;
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("uuid", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("nodeId", arrow::datatypes::DataType::Int64, true),
    ]));
    let keys = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["B", "A", "A"])),
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![2, 1, 7])),
        ],
    )
    .unwrap();
    let options = OnlineOptions {
        with_status: true,
        ..Default::default()
    };
    let answer = store
        .get_online_features(&refs(&["basic:x"]), &keys, &options)
        .await
        .unwrap();
    assert_eq!(floats(&answer, "x"), [Some(2.0), Some(1.0), None]);
    let recent = store
        .get_online_recent("basic", &keys, TtlPolicy::Enforce)
        .await
        .unwrap();
    assert_eq!(floats(&recent, "x"), [Some(2.0), Some(1.0)]);
    let padded = store
        .get_online_features(
            &refs(&["basic:x"]),
            &self::keys(&[(Some("A"), "01")]),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(floats(&padded, "x"), [None]);
}

#[tokio::test]
async fn embedded_store_finds_text_keys_by_integer_value() {
    integer_keys(Backend::Embedded).await;
}

#[tokio::test]
async fn redis_store_finds_text_keys_by_integer_value() {
    integer_keys(Backend::Redis).await;
}
