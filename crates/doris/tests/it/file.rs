//! Snapshot files (Parquet, JSON lines, CSV) on a mount, through the same parser.

use std::ops::Bound;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMillisecondType};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use trainstore_core::{
    DataSource, Error, Filter, MountTable, Scalar, ScanRequest, StorageOptions, TimeRange,
    Timestamp,
};
use trainstore_doris::{
    FeatureKind, FileFormat, FileSource, ParseReport, SnapshotGenerator, SnapshotParser,
    SnapshotSchema, SynthConfig, write_snapshot_file,
};

fn config() -> SynthConfig {
    SynthConfig {
        devices: 5,
        nodes_per_device: 2,
        snapshots: 40,
        malformed_rate: 0.03,
        ..SynthConfig::default()
    }
}

fn keys(batches: &[RecordBatch]) -> Vec<(Option<String>, Option<i64>, Option<u64>)> {
    let mut out = Vec::new();
    for b in batches {
        let uuid = b.column_by_name("uuid").unwrap().as_string::<i32>();
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
                time.is_valid(r).then(|| time.value(r)),
                mean.is_valid(r).then(|| mean.value(r).to_bits()),
            ));
        }
    }
    out.sort();
    out
}

fn local_parse(raw: &[RecordBatch]) -> (Vec<RecordBatch>, ParseReport) {
    let parser = SnapshotParser::new(SnapshotSchema::design_doc());
    let mut report = ParseReport::default();
    let typed = raw
        .iter()
        .map(|b| {
            let (t, r) = parser.parse(b).unwrap();
            report.merge(&r);
            t
        })
        .collect();
    (typed, report)
}

async fn open(location: &str) -> FileSource {
    FileSource::open(
        &MountTable::default(),
        location,
        &StorageOptions::new(),
        None,
        SnapshotSchema::design_doc(),
        false,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_json_lines_read_back_what_was_generated() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config())
        .unwrap()
        .batches(150)
        .collect();
    let (local, local_report) = local_parse(&raw);
    for format in [FileFormat::Parquet, FileFormat::JsonLines] {
        let sub = dir.path().join(format.to_string());
        let store = MountTable::default()
            .resolve(sub.to_str().unwrap())
            .unwrap()
            .store;
        let (first, second) = raw.split_at(2);
        write_snapshot_file(
            store.clone(),
            &Path::from(format!("part-0.{format}")),
            format,
            first.to_vec(),
        )
        .await
        .unwrap();
        write_snapshot_file(
            store.clone(),
            &Path::from(format!("part-1.{format}")),
            format,
            second.to_vec(),
        )
        .await
        .unwrap();
        store
            .put(&Path::from("_SUCCESS"), PutPayload::from_static(b""))
            .await
            .unwrap();

        let source = open(sub.to_str().unwrap()).await;
        assert_eq!(
            source.files(),
            [format!("part-0.{format}"), format!("part-1.{format}")]
        );
        let read = source.scan_all(&ScanRequest::default()).await.unwrap();
        assert_eq!(keys(&read), keys(&local), "{format}");
        let report = source.parse_report();
        assert_eq!(report.columns, local_report.columns, "{format}");
        assert!(report.malformed() > 0);

        let single = open(sub.join(format!("part-1.{format}")).to_str().unwrap()).await;
        assert_eq!(single.files().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_filters_projection_and_limit_apply_to_parsed_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<RecordBatch> = SnapshotGenerator::new(config())
        .unwrap()
        .batches(1000)
        .collect();
    let store = MountTable::default()
        .resolve(dir.path().to_str().unwrap())
        .unwrap()
        .store;
    write_snapshot_file(
        store,
        &Path::from("s.parquet"),
        FileFormat::Parquet,
        raw.clone(),
    )
    .await
    .unwrap();
    let source = open(dir.path().to_str().unwrap()).await;
    let times = raw[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let range = TimeRange::new(
        Timestamp::from_millis(times.value(20)),
        Timestamp::from_millis(times.value(300)),
    )
    .unwrap();
    let request = ScanRequest {
        time_range: Some(range),
        filters: vec![
            Filter::eq("nodeId", "1465"),
            Filter::range(
                "temperature",
                Bound::Unbounded,
                Bound::Excluded(Scalar::Float64(1e9)),
            ),
        ],
        projection: Some(vec!["time".into(), "nodeId".into()]),
        limit: Some(30),
    };
    let read = source.scan_all(&request).await.unwrap();
    assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 30);
    for b in &read {
        assert_eq!(b.num_columns(), 2);
        let t = b.column(0).as_primitive::<TimestampMillisecondType>();
        let n = b.column(1).as_string::<i32>();
        for r in 0..b.num_rows() {
            assert!(range.contains(Timestamp::from_millis(t.value(r))));
            assert_eq!(n.value(r), "1465");
        }
    }
    let err = source
        .scan(&ScanRequest {
            filters: vec![Filter::eq("nope", 1i64)],
            ..Default::default()
        })
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn csv_and_broken_files_are_read_or_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flat.csv"),
        "uuid,time,meanLf\nA,1670387400000,1.5\nB,2022-12-07T04:30:00Z,oops\n",
    )
    .unwrap();
    let schema = SnapshotSchema::builder()
        .flat()
        .keys(["uuid"])
        .time("time")
        .feature("meanLf", FeatureKind::Number)
        .build()
        .unwrap();
    let location = dir.path().join("flat.csv");
    let source = FileSource::open(
        &MountTable::default(),
        location.to_str().unwrap(),
        &StorageOptions::new(),
        None,
        schema.clone(),
        false,
    )
    .await
    .unwrap();
    let read = source.scan_all(&ScanRequest::default()).await.unwrap();
    assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    assert_eq!(source.parse_report().columns["meanLf"].malformed, 1);
    let strict = FileSource::open(
        &MountTable::default(),
        location.to_str().unwrap(),
        &StorageOptions::new(),
        None,
        schema,
        true,
    )
    .await
    .unwrap();
    let err = strict.scan_all(&ScanRequest::default()).await.unwrap_err();
    assert!(
        matches!(err, Error::Malformed { .. }) && err.to_string().contains("uuid=B"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"time\": 1, \"feature\": \"{}\"}\nnot json at all\n",
    )
    .unwrap();
    let source = open(dir.path().join("bad.jsonl").to_str().unwrap()).await;
    source.scan_all(&ScanRequest::default()).await.unwrap();
    assert_eq!(
        source.parse_report().columns["feature"].malformed,
        1,
        "a broken line is a malformed document"
    );

    std::fs::write(dir.path().join("fake.parquet"), "not parquet").unwrap();
    let source = open(dir.path().join("fake.parquet").to_str().unwrap()).await;
    let err = source.scan_all(&ScanRequest::default()).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    let missing = FileSource::open(
        &MountTable::default(),
        dir.path().join("none.parquet").to_str().unwrap(),
        &StorageOptions::new(),
        None,
        SnapshotSchema::design_doc(),
        false,
    )
    .await;
    assert!(matches!(missing, Err(Error::NotFound { .. })));
    let empty = tempfile::tempdir().unwrap();
    let none = FileSource::open(
        &MountTable::default(),
        empty.path().to_str().unwrap(),
        &StorageOptions::new(),
        None,
        SnapshotSchema::design_doc(),
        false,
    )
    .await;
    assert!(matches!(none, Err(Error::NotFound { .. })));
}

/// Raw snapshot rows whose `time` column appears twice, the second with other times.
fn two_time_columns() -> RecordBatch {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![text("uuid"), text("time"), text("time")])),
        vec![
            std::sync::Arc::new(StringArray::from(vec!["A"])),
            std::sync::Arc::new(StringArray::from(vec!["1670387400000"])),
            std::sync::Arc::new(StringArray::from(vec!["1670387999000"])),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn files_with_two_columns_of_one_name_are_refused_naming_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("twice.csv"),
        "uuid,time,time\nA,1670387400000,1670387999000\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("twice.jsonl"),
        "{\"uuid\": \"A\", \"time\": 1670387400000}\n\
         {\"uuid\": \"A\", \"time\": 1670387400000, \"time\": 1670387999000}\n",
    )
    .unwrap();
    let mut parquet = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut parquet, two_time_columns().schema(), None)
            .unwrap();
    writer.write(&two_time_columns()).unwrap();
    writer.close().unwrap();
    std::fs::write(dir.path().join("twice.parquet"), parquet).unwrap();
    let schema = SnapshotSchema::builder()
        .flat()
        .keys(["uuid"])
        .time("time")
        .build()
        .unwrap();
    for name in ["twice.csv", "twice.jsonl", "twice.parquet"] {
        let source = FileSource::open(
            &MountTable::default(),
            dir.path().join(name).to_str().unwrap(),
            &StorageOptions::new(),
            None,
            schema.clone(),
            false,
        )
        .await
        .unwrap();
        let err = source.scan_all(&ScanRequest::default()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, reason }
                if path.ends_with(name) && reason.contains("\"time\"")),
            "{name}: {err}"
        );
        let raw: Result<Vec<RecordBatch>, Error> =
            futures::TryStreamExt::try_collect(source.scan_raw()).await;
        assert!(matches!(raw, Err(Error::Corrupt { .. })), "{name} read raw");
    }
}
