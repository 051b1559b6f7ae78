//! Typed Parquet files read as stored: row groups decode in parallel, yet rows come out in
//! file and row order, filtered and projected as asked, from local files (read page by page)
//! and from object stores (read a row group at a time) alike; by position, a scan reads only
//! the rows asked for.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, UInt64Type};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use trainstore_core::{
    DataSource, Error, MountTable, POSITION_COLUMN, ScanRequest, StorageOptions, TimeRange,
    Timestamp,
};
use trainstore_doris::ParquetSource;

use crate::support::{collect, scan_all};

/// A Parquet file of `rows` rows with ids from `first` and times `id * 10` ms, in row groups
/// of 97 rows.
fn parquet(first: i64, rows: i64) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]));
    let ids: Vec<i64> = (first..first + rows).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(
                TimestampMillisecondArray::from(ids.iter().map(|i| i * 10).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(97))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

// Files are read in name order: b's ids come after a's.
const FILES: [(&str, i64, i64); 2] = [("a.parquet", 0, 3_000), ("b.parquet", 3_000, 2_000)];

#[tokio::test]
async fn local_row_groups_decode_in_parallel_and_come_out_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for (name, first, rows) in FILES {
        std::fs::write(dir.path().join(name), parquet(first, rows)).unwrap();
    }
    reads_in_order(dir.path().to_str().unwrap()).await;
}

#[tokio::test]
async fn object_store_row_groups_decode_in_parallel_and_come_out_in_order() {
    let location = format!("memory://table-{}", std::process::id());
    let store = MountTable::default()
        .resolve_with(&location, &StorageOptions::new())
        .unwrap()
        .store;
    for (name, first, rows) in FILES {
        store
            .put(&Path::from(name), parquet(first, rows).into())
            .await
            .unwrap();
    }
    reads_in_order(&location).await;
}

async fn reads_in_order(location: &str) {
    let source = ParquetSource::open(
        &MountTable::default(),
        location,
        &StorageOptions::new(),
        Some("ts"),
    )
    .await
    .unwrap();
    let ids = |batches: Vec<RecordBatch>| -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    };
    let all: Vec<RecordBatch> = scan_all(&source).await;
    assert_eq!(ids(all), (0..5_000).collect::<Vec<_>>());

    let request = ScanRequest {
        time_range: Some(
            TimeRange::new(
                Timestamp::from_millis(25_000),
                Timestamp::from_millis(41_000),
            )
            .unwrap(),
        ),
        projection: Some(vec!["id".into()]),
        ..Default::default()
    };
    let some: Vec<RecordBatch> = collect(source.scan(&request).await).await;
    assert_eq!(some[0].num_columns(), 1);
    assert!(some.iter().all(|b| b.column(0).null_count() == 0));
    assert_eq!(ids(some), (2_500..4_100).collect::<Vec<_>>());

    // A row's position is its place in the files read in order: here, its id.
    let positioned = source.positioned().expect("files have fixed positions");
    let told: Vec<RecordBatch> = collect(positioned.scan_with_positions(&request).await).await;
    assert_eq!(told[0].schema().field(1).name(), POSITION_COLUMN);
    let positions: Vec<i64> = told
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<UInt64Type>().values().to_vec())
        .map(|p| p as i64)
        .collect();
    assert_eq!(positions, ids(told));

    // Picks in both files, in row groups before and inside the time range, next to each
    // other, at a file's last row and past the end: only those in range come back.
    let picks = [
        5, 96, 97, 2_499, 2_500, 2_501, 2_999, 3_000, 3_001, 3_777, 4_099, 4_100, 9_999,
    ];
    let picked: Vec<RecordBatch> = collect(positioned.scan_positions(&request, &picks).await).await;
    assert_eq!(
        ids(picked),
        vec![2_500, 2_501, 2_999, 3_000, 3_001, 3_777, 4_099]
    );
    let none: Vec<RecordBatch> = collect(positioned.scan_positions(&request, &[]).await).await;
    assert_eq!(ids(none), Vec::<i64>::new());
    let err = positioned
        .scan_positions(&request, &[3, 2])
        .await
        .err()
        .expect("positions out of order are refused");
    assert!(
        matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("ascend"),
        "{err}"
    );
}

#[tokio::test]
async fn parquet_files_with_two_columns_of_one_name_are_refused() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![2])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.parquet");
    std::fs::write(&file, out).unwrap();
    let err = ParquetSource::open(
        &MountTable::default(),
        file.to_str().unwrap(),
        &StorageOptions::new(),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, trainstore_core::Error::Corrupt { path, reason }
            if path.ends_with("twice.parquet") && reason.contains("\"id\"")),
        "{err}"
    );
}
