//! One filter semantics on every source: the same rows, by exact comparison, from MariaDB over
//! the MySQL protocol, from the Flight SQL server in front of it, and from Parquet, CSV and
//! JSON-lines files; values that do not fit their column refused before anything is sent.

use std::ops::Bound;
use std::sync::Arc;

use arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimestampMillisecondType};
use futures::TryStreamExt;
use mysql_async::prelude::Queryable;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use trainstore_core::{
    AsOfScan, AsOfWindows, DataSource, Error, Filter, MountTable, Scalar, ScanRequest, Secret,
    StorageOptions, Timestamp,
};
use trainstore_doris::flight::{FlightOptions, FlightSource};
use trainstore_doris::{
    DorisSource, FeatureKind, FileFormat, FileSource, ReadOptions, SnapshotSchema,
    write_snapshot_file,
};

use crate::flight::cluster;
use crate::support::TestDb;

const T0: i64 = 1_670_373_084_698;

/// Keys that a case-insensitive, PAD SPACE collation takes for one another.
const ROWS: &[(&str, &str, f64)] = &[
    ("aaa", "1465", 1.0),
    ("AAA", "1465", 2.0),
    ("aaa ", "1465 ", 3.0),
    (" aaa", "1466", 4.0),
    ("äaa", "1466", 5.0),
];

fn schema() -> SnapshotSchema {
    SnapshotSchema::builder()
        .flat()
        .keys(["uuid", "nodeId"])
        .time("time")
        .feature("meanLf", FeatureKind::Number)
        .build()
        .unwrap()
}

fn raw_rows() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new("nodeId", DataType::Utf8, false),
        Field::new("time", DataType::Int64, false),
        Field::new("meanLf", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(ROWS.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(ROWS.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(
                (0..ROWS.len() as i64).map(|i| T0 + i),
            )),
            Arc::new(Float64Array::from_iter_values(ROWS.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

/// The rows in a table of the default collation (utf8mb4_general_ci: case-insensitive, PAD
/// SPACE), with an index on the key.
async fn table(db: &TestDb) {
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE TABLE flat (uuid VARCHAR(16) NOT NULL, nodeId VARCHAR(16) NOT NULL, \
         time BIGINT NOT NULL, meanLf DOUBLE, KEY (uuid), KEY (time))",
    )
    .await
    .unwrap();
    for (i, (uuid, node, mean)) in ROWS.iter().enumerate() {
        conn.exec_drop(
            "INSERT INTO flat VALUES (?, ?, ?, ?)",
            (uuid, node, T0 + i as i64, mean),
        )
        .await
        .unwrap();
    }
    conn.disconnect().await.unwrap();
}

/// The rows as Parquet, JSON lines and CSV files, one directory each.
async fn files(dir: &std::path::Path) -> Vec<FileSource> {
    let mut sources = Vec::new();
    for format in [FileFormat::Parquet, FileFormat::JsonLines, FileFormat::Csv] {
        let sub = dir.join(format.to_string());
        let store = MountTable::default()
            .resolve(sub.to_str().unwrap())
            .unwrap()
            .store;
        let path = Path::from(format!("rows.{format}"));
        if format == FileFormat::Csv {
            let mut csv = String::from("uuid,nodeId,time,meanLf\n");
            for (i, (uuid, node, mean)) in ROWS.iter().enumerate() {
                csv.push_str(&format!("\"{uuid}\",\"{node}\",{},{mean}\n", T0 + i as i64));
            }
            store.put(&path, PutPayload::from(csv)).await.unwrap();
        } else {
            write_snapshot_file(store, &path, format, [raw_rows()])
                .await
                .unwrap();
        }
        let source = FileSource::open(
            &MountTable::default(),
            sub.to_str().unwrap(),
            &StorageOptions::new(),
            None,
            schema(),
            true,
        )
        .await
        .unwrap();
        sources.push(source);
    }
    sources
}

/// The times (as offsets from `T0`) of the rows `source` returns for `filters`, sorted.
async fn offsets(source: &dyn DataSource, filters: Vec<Filter>) -> Vec<i64> {
    let request = ScanRequest {
        filters,
        ..Default::default()
    };
    let batches: Vec<RecordBatch> = source
        .scan(&request)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", source.describe()))
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let t = b.column_by_name("time").unwrap();
            t.as_primitive::<TimestampMillisecondType>()
                .values()
                .iter()
                .map(|t| t - T0)
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_source_compares_exactly_and_refuses_values_that_do_not_fit() {
    let db = TestDb::new().await;
    table(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let flight = cluster(db.url().expose().to_owned(), false).await;
    let mut sources: Vec<Box<dyn DataSource>> = vec![
        Box::new(
            DorisSource::connect(&db.url(), "flat", schema(), ReadOptions::default())
                .await
                .unwrap(),
        ),
        Box::new(
            FlightSource::connect(
                &format!("grpc://{}", flight.fe_addr),
                "root",
                Secret::new("flight-secret"),
                &format!("{}.flat", db.name),
                schema(),
                FlightOptions::default(),
            )
            .await
            .unwrap(),
        ),
    ];
    for file in files(dir.path()).await {
        sources.push(Box::new(file));
    }

    let iso = Timestamp::from_millis(T0 + 1).to_string();
    let cases: Vec<(Vec<Filter>, Vec<i64>)> = vec![
        (vec![Filter::eq("uuid", "aaa")], vec![0]),
        (vec![Filter::eq("uuid", "AAA")], vec![1]),
        (vec![Filter::eq("uuid", "aaa ")], vec![2]),
        (vec![Filter::eq("uuid", "Aaa")], vec![]),
        (vec![Filter::eq("nodeId", "1465")], vec![0, 1]),
        (vec![Filter::eq("nodeId", "1465 ")], vec![2]),
        (vec![Filter::eq("nodeId", 1466)], vec![3, 4]),
        (vec![Filter::is_in("uuid", ["aaa", " aaa"])], vec![0, 3]),
        (vec![Filter::eq("uuid", "aäa")], vec![]),
        // Byte order: ' ' < 'A' < 'a' < 'ä'.
        (
            vec![Filter::range(
                "uuid",
                Bound::Included("AAA".into()),
                Bound::Excluded("aaa".into()),
            )],
            vec![1],
        ),
        (
            vec![Filter::range(
                "uuid",
                Bound::Excluded("aaa".into()),
                Bound::Unbounded,
            )],
            vec![2, 4],
        ),
        (vec![Filter::eq("time", (T0 + 1).to_string())], vec![1]),
        (vec![Filter::eq("time", iso.as_str())], vec![1]),
        (vec![Filter::eq("time", T0 + 1)], vec![1]),
        (vec![Filter::eq("meanLf", "2")], vec![1]),
        (vec![Filter::eq("meanLf", 2)], vec![1]),
    ];
    for (filters, expected) in &cases {
        for source in &sources {
            assert_eq!(
                offsets(source.as_ref(), filters.clone()).await,
                *expected,
                "{} with {filters:?}",
                source.describe()
            );
        }
    }

    let queries = || {
        let events = flight.log.events();
        events.iter().filter(|e| e.starts_with("query ")).count()
    };
    let sent = queries();
    for (column, value) in [
        ("time", format!("{T0}abc")),
        ("time", format!("{T0} OR 1=1")),
        ("time", "yesterday".to_owned()),
        ("meanLf", "2 ".to_owned()),
        ("meanLf", "2 OR 1=1".to_owned()),
    ] {
        for source in &sources {
            let request = ScanRequest {
                filters: vec![Filter::eq(column, value.as_str())],
                ..Default::default()
            };
            let err = source
                .scan(&request)
                .await
                .err()
                .unwrap_or_else(|| panic!("{} accepted {column}={value}", source.describe()));
            let Error::InvalidInput { value: shown, .. } = &err else {
                panic!("{}: {err}", source.describe());
            };
            assert_eq!(*shown, format!("{column}={value}"), "{}", source.describe());
        }
    }
    let err = sources[0]
        .scan(&ScanRequest {
            filters: vec![Filter::eq("uuid", Scalar::Float64(1.5))],
            ..Default::default()
        })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(queries(), sent, "a refused filter reached the server");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pushed_down_join_matches_keys_and_filters_exactly() {
    let db = TestDb::new().await;
    table(&db).await;
    let source = DorisSource::connect(&db.url(), "flat", schema(), ReadOptions::default())
        .await
        .unwrap();
    let windows = AsOfWindows {
        keys: vec![Arc::new(StringArray::from(vec![
            "aaa", "AAA", "aaa ", "Aaa",
        ]))],
        lower: Int64Array::from(vec![None; 4]),
        upper: Int64Array::from(vec![T0 + 10; 4]),
    };
    // "aaa " has nodeId "1465 ": the filter leaves it no row.
    let request = ScanRequest {
        filters: vec![Filter::eq("nodeId", "1465")],
        ..Default::default()
    };
    let batches: Vec<RecordBatch> = source
        .scan_latest_in_windows(&request, &["uuid".to_owned()], None, &windows)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut got: Vec<(String, i64)> = Vec::new();
    for b in &batches {
        let uuid = b.column_by_name("uuid").unwrap().as_string::<i32>();
        let time = b.column_by_name("time").unwrap();
        let time = time.as_primitive::<TimestampMillisecondType>();
        for r in 0..b.num_rows() {
            got.push((uuid.value(r).to_owned(), time.value(r) - T0));
        }
    }
    got.sort();
    assert_eq!(got, [("AAA".to_owned(), 1), ("aaa".to_owned(), 0)]);
    db.drop_db().await;
}
