//! Training-set versions on a real catalog in a temporary directory: created from batches and
//! from historical requests, read back whole, listed best first, selected by criteria, named
//! by tags and aliases; failures leave nothing visible.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use tempfile::TempDir;
use trainstore_core::{DatasetName, Error, TagName, Timestamp, UserName};
use trainstore_featurestore::Ttl;
use trainstore_featurestore::training::{CreateOptions, Criteria, TrainingSets};

use crate::support::{entity_rows, feature_table, row, with_basic_view};

async fn sets_in(dir: &TempDir) -> TrainingSets {
    let catalog = crate::support::catalog_in(&dir.path().join("sets")).await;
    TrainingSets::new(Arc::new(catalog), UserName::new("tester").unwrap())
}

fn set_name() -> DatasetName {
    DatasetName::new("vibration").unwrap()
}

/// `rows` rows of `x` (0, 1, 2, …), a label alternating a/b, and times one minute apart from
/// `start_ms`; `nulls` of the first `x` values are null.
fn rows(n: usize, start_ms: i64, nulls: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("label", DataType::Utf8, false),
        Field::new("event_timestamp", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from_iter(
                (0..n).map(|i| (i >= nulls).then_some(i as f64)),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| if i % 2 == 0 { "a" } else { "b" }),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| start_ms + i * 60_000),
            )),
        ],
    )
    .unwrap()
}

fn labelled() -> CreateOptions {
    CreateOptions {
        label: Some("label".into()),
        time_column: Some("event_timestamp".into()),
        ..CreateOptions::default()
    }
}

#[tokio::test]
async fn a_created_set_reads_back_row_for_row_with_its_quality_and_hash() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let batches = vec![rows(700, 0, 70), rows(300, 700 * 60_000, 0)];
    let mut options = labelled();
    options.metadata = serde_json::json!({"description": "first"});
    let v = sets
        .create_from_batches(&set_name(), batches.clone(), options)
        .await
        .unwrap();
    assert_eq!(v.id(), "vibration@v1");
    assert_eq!(v.info.rows, 1000);
    assert_eq!(v.info.metadata["description"], "first");
    let q = &v.info.quality;
    assert_eq!(q.data_size, 1000);
    // 70 of 1,000 x values are null: x is 93 % complete, the other two columns whole.
    assert!((q.completeness - (0.93 + 1.0 + 1.0) / 3.0).abs() < 1e-9);
    assert_eq!(q.duplicate_rows, 0);
    assert!((q.label_balance.as_ref().unwrap().balance - 1.0).abs() < 1e-9);
    let coverage = q.time_coverage.as_ref().unwrap();
    assert_eq!(
        (coverage.start, coverage.end),
        (
            Timestamp::from_millis(0),
            Timestamp::from_millis(999 * 60_000)
        )
    );
    assert!(q.overall_score > 0.9 && q.overall_score < 1.0);

    let again = sets.get(&set_name(), "latest").await.unwrap();
    assert_eq!(again, v);
    let (schema, read) = sets.read(&again).await.unwrap();
    let expected = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(
        arrow::compute::concat_batches(&schema, &read).unwrap(),
        expected
    );

    // The same rows give the same content hash; other rows another.
    let same = sets
        .create_from_batches(&set_name(), vec![expected.clone()], labelled())
        .await
        .unwrap();
    assert_eq!(same.info.content_hash, v.info.content_hash);
    let other = sets
        .create_from_batches(&set_name(), vec![rows(1000, 1, 70)], labelled())
        .await
        .unwrap();
    assert_ne!(other.info.content_hash, v.info.content_hash);
}

#[tokio::test]
async fn a_set_larger_than_a_file_is_stored_in_several_and_read_in_order() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await.with_file_target(256 << 10);
    let parts: Vec<RecordBatch> = (0..12)
        .map(|p| rows(70_000, p * 70_000 * 60_000, 0))
        .collect();
    let schema = parts[0].schema();
    let stream = futures::stream::iter(parts.clone().into_iter().map(Ok)).boxed();
    let v = sets
        .create(&set_name(), schema, stream, CreateOptions::default())
        .await
        .unwrap();
    assert!(v.files.len() >= 2, "{} files", v.files.len());
    let (_, read) = sets.read(&v).await.unwrap();
    let times: Vec<i64> = read
        .iter()
        .flat_map(|b| {
            b.column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(times.len(), 12 * 70_000);
    assert!(times.windows(2).all(|w| w[0] < w[1]));

    // Streamed: the same rows in the same order, a few thousand at a time, only the columns
    // asked for.
    let columns = Some(vec!["event_timestamp".to_owned(), "x".to_owned()]);
    let mut stream = sets.scan(&v, columns).await.unwrap();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= trainstore_featurestore::training::SCAN_BATCH_ROWS);
        let names: Vec<String> = (batch.schema().fields().iter())
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            ["x", "event_timestamp"],
            "the file's order, nothing else"
        );
        let column = batch.column(1).as_any().downcast_ref::<Int64Array>();
        streamed.extend_from_slice(column.unwrap().values());
    }
    assert_eq!(streamed, times);

    let unknown = Some(vec!["x".to_owned(), "nodeId".to_owned()]);
    let mut stream = sets.scan(&v, unknown).await.unwrap();
    let e = stream.next().await.unwrap().unwrap_err().to_string();
    assert!(
        e.contains("nodeId") && e.contains(&v.id()) && e.contains("x, label, event_timestamp"),
        "{e}"
    );
    assert!(stream.next().await.is_none(), "an error ends the stream");
}

#[tokio::test]
async fn a_set_whose_file_was_edited_is_refused_when_read_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let v = sets
        .create_from_batches(
            &set_name(),
            vec![rows(5_000, 0, 0)],
            CreateOptions::default(),
        )
        .await
        .unwrap();
    // One byte in the middle changed, the size kept: decoding alone might not notice.
    let on_disk = dir.path().join("sets").join(&v.files[0].path);
    let mut bytes = std::fs::read(&on_disk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&on_disk, &bytes).unwrap();
    let e = sets.read(&v).await.unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt { path, reason }
            if path.ends_with(&v.files[0].path) && reason.contains("xxh3")),
        "{e}"
    );
    // A stream of it ends in the same error, whatever it handed on before.
    let mut stream = sets.scan(&v, None).await.unwrap();
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    let e = last.expect("the stream ends in an error").unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt { path, .. } if path.ends_with(&v.files[0].path)),
        "{e}"
    );
}

#[tokio::test]
async fn a_failing_stream_leaves_no_version_and_no_files() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let good = rows(100_000, 0, 0);
    let schema = good.schema();
    let stream =
        futures::stream::iter(vec![Ok(good.clone()), Ok(good), Err(Error::Cancelled)]).boxed();
    let e = sets
        .create(&set_name(), schema, stream, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(sets.list(&set_name()).await.unwrap().is_empty());
    let left = walk(&dir.path().join("sets"));
    assert!(
        left.iter().all(|p| !p.contains("/data/")),
        "files left: {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn versions_are_listed_best_first_and_selected_by_every_criterion() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let day = 86_400_000;
    // v1: small and clean; v2: large, half its x missing; v3: large and clean, in January
    // 2024; v4: large and clean, spilling into February.
    let jan = Timestamp::parse("2024-01-01T00:00:00Z")
        .unwrap()
        .as_millis();
    for batch in [
        rows(500, jan, 0),
        rows(20_000, jan, 10_000),
        rows(20_000, jan + day, 0),
        rows(20_000, jan + 30 * day, 0),
    ] {
        sets.create_from_batches(&set_name(), vec![batch], labelled())
            .await
            .unwrap();
    }
    let listed = sets.list(&set_name()).await.unwrap();
    let scores: Vec<f64> = listed.iter().map(|l| l.summary.overall_score).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(listed.last().unwrap().version.get(), 2);

    let pick = |c: Criteria| {
        let sets = sets.clone();
        async move { sets.select_best(&set_name(), &c).await }
    };
    // Equal scores: the newest wins.
    assert_eq!(pick(Criteria::default()).await.unwrap().version.get(), 4);
    let january = Criteria::default()
        .min_data_size(10_000)
        .min_quality_score(0.8)
        .unwrap()
        .time_range(
            Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
            Timestamp::parse("2024-01-31T23:59:59Z").unwrap(),
        )
        .unwrap();
    assert_eq!(pick(january.clone()).await.unwrap().version.get(), 3);

    sets.tag(&set_name(), "v1", &TagName::new("paper").unwrap())
        .await
        .unwrap();
    let tagged = Criteria::default().tag(TagName::new("paper").unwrap());
    assert_eq!(pick(tagged).await.unwrap().version.get(), 1);
    sets.alias(&set_name(), "2", &TagName::new("golden").unwrap())
        .await
        .unwrap();
    let golden = Criteria::default().tag(TagName::new("golden").unwrap());
    assert_eq!(pick(golden).await.unwrap().version.get(), 2);
    assert_eq!(
        sets.get(&set_name(), "golden").await.unwrap().version.get(),
        2
    );

    // Nothing qualifies: the error names the criterion that excluded the most.
    let strict = Criteria::default()
        .min_data_size(1_000_000)
        .min_quality_score(0.99)
        .unwrap();
    let e = pick(strict).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("min_data_size excluded 4 of 4"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_criteria_and_metadata_are_refused_naming_them() {
    assert!(Criteria::default().min_quality_score(1.5).is_err());
    assert!(Criteria::default().min_quality_score(f64::NAN).is_err());
    let later = Timestamp::from_millis(10);
    assert!(
        Criteria::default()
            .time_range(later, Timestamp::from_millis(0))
            .is_err()
    );
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let options = CreateOptions {
        metadata: serde_json::json!([1, 2]),
        ..CreateOptions::default()
    };
    let e = sets
        .create_from_batches(&set_name(), vec![rows(3, 0, 0)], options)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("metadata"), "{e}");
    let missing_label = CreateOptions {
        label: Some("nope".into()),
        ..CreateOptions::default()
    };
    let e = sets
        .create_from_batches(&set_name(), vec![rows(3, 0, 0)], missing_label)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(sets.list(&set_name()).await.unwrap().is_empty());
}

/// The `basic` view over three rows (a: 1.0 at 1 s and 2.0 at 2 s, b: 3.0 at 1.5 s) and a
/// reference to its feature `x`.
async fn basic_x() -> (
    crate::support::Fixture,
    Vec<trainstore_featurestore::FeatureRef>,
) {
    let f = with_basic_view(
        &[
            row("a", "1", 1_000, 1.0),
            row("a", "1", 2_000, 2.0),
            row("b", "1", 1_500, 3.0),
        ],
        Ttl::days(1),
    )
    .await;
    let refs = f
        .store
        .resolve_features(&["basic:x".to_owned()])
        .await
        .unwrap();
    (f, refs)
}

/// A set of `set_name()` built from `refs` for `entities`, with default options.
async fn from_features(
    sets: &TrainingSets,
    f: &crate::support::Fixture,
    entities: &RecordBatch,
    refs: &[trainstore_featurestore::FeatureRef],
) -> trainstore_featurestore::training::TrainingSetVersion {
    sets.create_from_features(
        &f.store,
        &set_name(),
        entities,
        refs,
        &Default::default(),
        CreateOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_set_built_from_a_historical_request_records_its_lineage() {
    let (f, refs) = basic_x().await;
    let sets = sets_in(&f.dir).await;
    let entities = entity_rows(&[(Some("a"), "1", 2_500), (Some("b"), "1", 1_600)]);
    let v = from_features(&sets, &f, &entities, &refs).await;
    let lineage = &v.info.lineage;
    assert_eq!(lineage.source, "historical_features");
    assert_eq!(lineage.features, ["basic:x"]);
    assert_eq!(lineage.registry_version.map(|v| v.get()), Some(1));
    assert_eq!(lineage.entity_count, Some(2));
    assert_eq!(
        lineage.time_range,
        Some((Timestamp::from_millis(1_600), Timestamp::from_millis(2_500)))
    );
    assert!(lineage.sources["basic"].is_string(), "{}", lineage.sources);
    // The entity rows are kept with the version, apart from its data files.
    let stored = lineage.entity_rows.as_ref().unwrap();
    assert!(!v.files.contains(stored));
    let bytes = sets.store().read_file(stored).await.unwrap();
    assert!(!bytes.is_empty());
    let (_, read) = sets.read(&v).await.unwrap();
    let x = read[0]
        .column_by_name("x")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(x.iter().collect::<Vec<_>>(), [Some(2.0), Some(3.0)]);
}

#[tokio::test]
async fn diff_counts_added_and_removed_rows_and_columns() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let a = sets
        .create_from_batches(&set_name(), vec![rows(1000, 0, 0)], labelled())
        .await
        .unwrap();
    // The first 100 rows gone, 300 new ones after the last.
    let b = sets
        .create_from_batches(
            &set_name(),
            vec![
                rows(1200, 0, 0).slice(100, 1100),
                rows(200, 1200 * 60_000, 0),
            ],
            labelled(),
        )
        .await
        .unwrap();
    let d = sets.diff(&a, &b).await.unwrap();
    assert!(!d.same_content);
    assert_eq!((d.rows_before, d.rows_after), (1000, 1300));
    assert_eq!((d.rows_removed, d.rows_added), (100, 400));
    assert!(d.columns_added.is_empty() && d.columns_removed.is_empty());
    let x = d.columns_changed.iter().find(|c| c.column == "x").unwrap();
    assert_eq!(x.max.before, Some(999.0));
    assert_eq!(x.max.after, Some(1199.0));

    let same = sets.diff(&a, &a).await.unwrap();
    assert!(same.same_content && same.is_empty());

    let narrower = sets
        .create_from_batches(
            &set_name(),
            vec![rows(1000, 0, 0).project(&[0, 2]).unwrap()],
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let d = sets.diff(&a, &narrower).await.unwrap();
    assert_eq!(d.columns_removed[0].name, "label");
    // Over the columns both have, the rows are the same.
    assert_eq!((d.rows_removed, d.rows_added), (0, 0));
}

#[tokio::test]
async fn drift_is_zero_between_equal_sets_and_grows_with_a_shift() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await;
    let a = sets
        .create_from_batches(&set_name(), vec![rows(5000, 0, 0)], labelled())
        .await
        .unwrap();
    let same = sets
        .create_from_batches(&set_name(), vec![rows(5000, 0, 0)], labelled())
        .await
        .unwrap();
    let later = sets
        .create_from_batches(&set_name(), vec![rows(5000, 0, 2500)], labelled())
        .await
        .unwrap();
    let options = Default::default();
    let none = sets.drift(&a, &same, &options).await.unwrap();
    let x = none.iter().find(|d| d.column == "x").unwrap();
    assert_eq!((x.psi, x.ks_statistic), (0.0, 0.0));
    let moved = sets.drift(&a, &later, &options).await.unwrap();
    let x = moved.iter().find(|d| d.column == "x").unwrap();
    // Half the values (the low half) are gone: the distributions split at the median.
    assert!((x.ks_statistic - 0.5).abs() < 1e-3, "{x:?}");
    assert!(x.psi > 1.0 && x.ks_pvalue < 1e-6, "{x:?}");
}

#[tokio::test]
async fn a_set_rebuilt_from_its_lineage_matches_until_its_source_changes() {
    let (f, refs) = basic_x().await;
    let sets = sets_in(&f.dir).await;
    let entities = entity_rows(&[(Some("a"), "1", 2_500), (Some("b"), "1", 1_600)]);
    let v = from_features(&sets, &f, &entities, &refs).await;
    let again = sets.reproduce(&f.store, &v).await.unwrap();
    assert!(again.matches, "{again:?}");
    assert_eq!(again.rebuilt_hash, v.info.content_hash);

    // The source is rewritten with other values: the rebuild differs, and says where.
    f.write(
        "basic",
        feature_table(&[
            row("a", "1", 1_000, 1.0),
            row("a", "1", 2_000, 20.0),
            row("b", "1", 1_500, 3.0),
        ]),
    )
    .await;
    let changed = sets.reproduce(&f.store, &v).await.unwrap();
    assert!(!changed.matches);
    let diff = changed.differences.unwrap();
    assert_eq!((diff.rows_removed, diff.rows_added), (1, 1));
    let x = diff
        .columns_changed
        .iter()
        .find(|c| c.column == "x")
        .unwrap();
    assert_eq!((x.max.before, x.max.after), (Some(3.0), Some(20.0)));

    // A set given as rows has no request to repeat.
    let given = sets
        .create_from_batches(&set_name(), vec![rows(3, 0, 0)], CreateOptions::default())
        .await
        .unwrap();
    let e = sets.reproduce(&f.store, &given).await.unwrap_err();
    assert!(matches!(e, Error::NotSupported { .. }), "{e}");
}

#[tokio::test]
async fn a_historical_answer_streams_into_the_set_a_slice_at_a_time() {
    let (f, refs) = basic_x().await;
    // 300,000 entity rows: the answer is gathered and written in three slices.
    let wanted: Vec<(Option<&str>, &str, i64)> = (0..300_000)
        .map(|i| {
            (
                Some(if i % 2 == 0 { "a" } else { "b" }),
                "1",
                1_200 + i % 1_000,
            )
        })
        .collect();
    let entities = entity_rows(&wanted);
    // Files cut at every row group: the rebuild below, made with the default target, must
    // cut where this set's manifest says to match its hash.
    let sets = sets_in(&f.dir).await.with_file_target(1);
    let v = from_features(&sets, &f, &entities, &refs).await;
    assert_eq!(v.info.rows, 300_000);
    assert_eq!((v.files.len(), v.info.file_target), (3, 1));
    let whole = f
        .store
        .get_historical_features(&entities, &refs, &Default::default())
        .await
        .unwrap();
    let (_, read) = sets.read(&v).await.unwrap();
    let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
    assert_eq!(read.columns(), whole.columns());
    let again = sets_in(&f.dir).await.reproduce(&f.store, &v).await.unwrap();
    assert!(again.matches, "{again:?}");
}

#[tokio::test]
async fn a_set_from_snapshot_files_carries_the_parsers_malformed_and_missing_rates() {
    use trainstore_doris::{SnapshotSchema, SynthConfig};
    use trainstore_featurestore::{FeatureView, Name, SourceSpec};
    let f = crate::support::Fixture::new().await;
    let config = SynthConfig {
        devices: 4,
        snapshots: 40,
        malformed_rate: 0.05,
        ..SynthConfig::default()
    };
    let (location, raw) = f.write_snapshots(config).await;
    let source = SourceSpec::Files {
        location,
        format: None,
        snapshots: Some(SnapshotSchema::design_doc()),
    };
    let name = |n: &str| Name::new(n).unwrap();
    let device = crate::support::device();
    let view = FeatureView::new(name("basic"), vec![name("device")], source, vec![])
        .with_ttl(Ttl::days(30));
    f.store
        .apply(vec![device.into(), view.into()])
        .await
        .unwrap();

    // What the parser makes of the same files, read whole.
    let (parsed, report) = trainstore_doris::SnapshotParser::new(SnapshotSchema::design_doc())
        .parse(&arrow::compute::concat_batches(&raw[0].schema(), &raw).unwrap())
        .unwrap();
    let expected = report.counts().rates().unwrap();
    assert!(expected.0 > 0.0, "{report:?}");
    let keys = parsed.project(&[0, 1, 2]).unwrap();
    let entities = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            keys.schema().field(0).clone(),
            keys.schema().field(1).clone(),
            keys.schema().field(2).clone().with_name("event_timestamp"),
        ])),
        keys.columns().to_vec(),
    )
    .unwrap();
    let refs = f
        .store
        .resolve_features(&["basic:meanLf".to_owned()])
        .await
        .unwrap();
    let v = sets_in(&f.dir)
        .await
        .create_from_features(
            &f.store,
            &set_name(),
            &entities,
            &refs,
            &Default::default(),
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let lineage = &v.info.lineage;
    assert_eq!(
        (lineage.malformed_rate, lineage.missing_rate),
        (Some(expected.0), Some(expected.1))
    );
    let quality = &v.info.quality;
    assert_eq!(
        (quality.malformed_rate, quality.missing_rate),
        (Some(expected.0), Some(expected.1))
    );
    assert_eq!(quality.overall_score, quality.overall_score());
    // Rows given directly carry no rates.
    let given = sets_in(&f.dir)
        .await
        .create_from_batches(&set_name(), vec![rows(3, 0, 0)], CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(given.info.lineage.malformed_rate, None);
}

#[tokio::test]
async fn where_files_are_cut_and_so_the_hash_depend_on_the_rows_not_their_batches() {
    let dir = TempDir::new().unwrap();
    let sets = sets_in(&dir).await.with_file_target(256 << 10);
    let all = rows(500_000, 0, 0);
    let whole = sets
        .create_from_batches(&set_name(), vec![all.clone()], CreateOptions::default())
        .await
        .unwrap();
    let pieces: Vec<RecordBatch> = [0, 1, 99_999, 250_000, 250_001, 500_000]
        .windows(2)
        .map(|w| all.slice(w[0], w[1] - w[0]))
        .collect();
    let sliced = sets
        .create_from_batches(&set_name(), pieces, CreateOptions::default())
        .await
        .unwrap();
    assert!(whole.files.len() >= 3, "{} files", whole.files.len());
    assert_eq!(sliced.files.len(), whole.files.len());
    assert_eq!(sliced.info.content_hash, whole.info.content_hash);
}
