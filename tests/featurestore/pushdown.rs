//! The pushdown engine on the loopback MariaDB returns exactly what the in-process engine
//! returns, for design-document snapshots in a MySQL-protocol table: two views, TTL edges to
//! the millisecond and below, duplicate and unknown entity rows, and keys that differ only in
//! case or trailing spaces (which MariaDB's text collations would confuse).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use mysql_async::prelude::Queryable;
use trainstore_core::Error;
use trainstore_doris::load::load_design_doc_rows;
use trainstore_doris::{SnapshotGenerator, SnapshotSchema, SynthConfig};
use trainstore_featurestore::{
    Engine, FeatureRef, FeatureView, Field as FeatureField, HistoricalOptions, SourceSpec, Ttl,
    ValueType,
};

use crate::support::*;

const MS: i64 = 1_000_000;
const HOUR_MS: i64 = 3_600_000;
const TTL_MS: i64 = 3 * 24 * HOUR_MS;

/// A database of its own on the loopback MariaDB, dropped at the end.
struct TestDb {
    server: String,
    name: String,
}

impl TestDb {
    async fn new() -> Self {
        let server = std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
            "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
        );
        let name = format!("ts_pushdown_{:016x}", {
            use std::hash::BuildHasher;
            std::hash::RandomState::new().hash_one(std::time::SystemTime::now())
        });
        let mut conn = mysql_async::Conn::from_url(&server).await.unwrap();
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        TestDb { server, name }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server.trim_end_matches('/'), self.name)
    }

    async fn drop_db(self) {
        let mut conn = mysql_async::Conn::from_url(&self.server).await.unwrap();
        conn.query_drop(format!("DROP DATABASE `{}`", self.name))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
    }
}

/// Generated snapshots (1 % malformed values), plus copies of one device's rows under the
/// same uuid in lower case and with a trailing space, at other times and with other values.
fn snapshots() -> Vec<RecordBatch> {
    let config = SynthConfig {
        devices: 5,
        nodes_per_device: 2,
        snapshots: 40,
        interval_ms: 12 * HOUR_MS,
        malformed_rate: 0.01,
        seed: 7,
        ..SynthConfig::default()
    };
    let mut batches: Vec<RecordBatch> = SnapshotGenerator::new(config)
        .unwrap()
        .batches(100)
        .collect();
    let first = batches[0].clone();
    let uuid = document(&first, 0)["uuid"].as_str().unwrap().to_owned();
    for (variant, shift) in [
        (uuid.to_lowercase(), HOUR_MS),
        (format!("{uuid} "), 2 * HOUR_MS),
    ] {
        let times = first
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let docs = first.column(1).as_string::<i32>();
        let moved: arrow::array::Int64Array = times.iter().map(|t| t.map(|t| t + shift)).collect();
        let renamed: StringArray = docs
            .iter()
            .map(|d| d.map(|d| d.replace(&format!("\"{uuid}\""), &format!("\"{variant}\""))))
            .collect();
        batches.push(
            RecordBatch::try_new(first.schema(), vec![Arc::new(moved), Arc::new(renamed)]).unwrap(),
        );
    }
    batches
}

fn document(batch: &RecordBatch, row: usize) -> serde_json::Value {
    serde_json::from_str(batch.column(1).as_string::<i32>().value(row)).unwrap()
}

/// Entity rows around every key's snapshot times: on them, just after (by half a millisecond),
/// at the TTL's end, just past it (by 1 ms and by 0.4 ms), before the first; unknown keys;
/// each row twice.
fn entity_rows(batches: &[RecordBatch]) -> RecordBatch {
    let mut times: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for b in batches {
        let t = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        for row in 0..b.num_rows() {
            let doc = document(b, row);
            let key = (
                doc["uuid"].as_str().unwrap().to_owned(),
                doc["nodeId"].as_str().unwrap().to_owned(),
            );
            times.entry(key).or_default().push(t.value(row) * MS);
        }
    }
    times.insert(
        ("NO-SUCH-DEVICE".into(), "1465".into()),
        vec![times_of_any(&times)],
    );
    let mut rows: Vec<(String, String, i64)> = Vec::new();
    for ((uuid, node), ts) in &times {
        let first = *ts.iter().min().unwrap();
        rows.push((uuid.clone(), node.clone(), first - 1));
        for (i, &t) in ts.iter().enumerate().step_by(3) {
            let probes = [
                t,
                t + MS / 2,
                t + TTL_MS * MS,
                t + TTL_MS * MS + MS,
                t + TTL_MS * MS + 4 * MS / 10,
                t + (i as i64 % 7) * HOUR_MS * MS,
            ];
            for p in probes {
                rows.push((uuid.clone(), node.clone(), p));
            }
        }
    }
    let doubled: Vec<_> = rows.iter().chain(rows.iter()).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("uuid", DataType::Utf8, false),
            Field::new("nodeId", DataType::Utf8, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
        ])),
        vec![
            Arc::new(
                doubled
                    .iter()
                    .map(|r| Some(r.0.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                doubled
                    .iter()
                    .map(|r| Some(r.1.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                doubled
                    .iter()
                    .map(|r| Some(r.2))
                    .collect::<TimestampNanosecondArray>()
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

fn times_of_any(times: &BTreeMap<(String, String), Vec<i64>>) -> i64 {
    times.values().next().unwrap()[0]
}

fn doris_view(view: &str, url: &str, fields: Vec<FeatureField>) -> FeatureView {
    FeatureView::new(
        name(view),
        vec![name("device")],
        SourceSpec::Doris {
            url: url.to_owned(),
            table: "snapshots".into(),
            flight_url: None,
            snapshots: SnapshotSchema::design_doc(),
        },
        fields,
    )
    .with_timestamp_field("time")
    .with_ttl(Ttl::new(std::time::Duration::from_millis(TTL_MS as u64)))
}

#[tokio::test]
async fn pushdown_on_mariadb_returns_what_the_in_process_engine_returns() {
    let db = TestDb::new().await;
    let batches = snapshots();
    load_design_doc_rows(
        &trainstore_core::Secret::new(db.url()),
        "snapshots",
        "test",
        batches.clone(),
        trainstore_doris::Timeouts::default(),
    )
    .await
    .unwrap();
    let f = Fixture::new().await;
    let list = ValueType::List(Box::new(ValueType::Float32));
    f.store
        .apply(vec![
            device().into(),
            doris_view(
                "basic",
                &db.url(),
                vec![
                    FeatureField::new("meanLf", ValueType::Float64),
                    FeatureField::new("temperature", ValueType::Float64),
                ],
            )
            .into(),
            doris_view(
                "arrays",
                &db.url(),
                vec![
                    FeatureField::new("peakPowers", list.clone()),
                    FeatureField::new("feature4", list),
                ],
            )
            .into(),
        ])
        .await
        .unwrap();
    let entities = entity_rows(&batches);
    let features: Vec<FeatureRef> = [
        "basic:meanLf",
        "arrays:peakPowers",
        "basic:temperature",
        "arrays:feature4",
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect();
    let run = |engine| {
        let options = HistoricalOptions {
            full_feature_names: true,
            engine,
            ..Default::default()
        };
        let (store, entities, features) = (&f.store, &entities, &features);
        async move {
            store
                .get_historical_features(entities, features, &options)
                .await
                .unwrap()
        }
    };
    let here = run(Engine::InProcess).await;
    let pushed = run(Engine::Pushdown).await;
    assert_eq!(here.schema().fields(), pushed.schema().fields());
    for (i, field) in here.schema().fields().iter().enumerate() {
        assert_eq!(
            here.column(i).as_ref(),
            pushed.column(i).as_ref(),
            "column {}",
            field.name()
        );
    }
    // Not a comparison of two empty answers: many rows matched, many did not.
    let matched = here.num_rows() - here.column_by_name("basic__meanLf").unwrap().null_count();
    assert!(
        matched > here.num_rows() / 3,
        "{matched} of {}",
        here.num_rows()
    );
    assert!(
        matched < here.num_rows(),
        "{matched} of {}",
        here.num_rows()
    );
    db.drop_db().await;
}

#[tokio::test]
async fn pushdown_refuses_views_not_read_from_a_database() {
    let f = with_basic_view(&[row("A", "1", 0, 1.0)], Ttl::days(1)).await;
    let err = f
        .store
        .get_historical_features(
            &crate::support::entity_rows(&[(Some("A"), "1", 5)]),
            &["basic:x".parse().unwrap()],
            &HistoricalOptions {
                engine: Engine::Pushdown,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotSupported { implementer, .. } if implementer.contains("basic")),
        "{err}"
    );
}
