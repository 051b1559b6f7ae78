//! Historical retrieval against Feast's reference rules (`docs/point-in-time.md`), case by case,
//! over real Parquet and snapshot files.

use arrow::array::{Array, AsArray, ListArray};
use arrow::datatypes::Float64Type;
use trainstore_core::Error;
use trainstore_featurestore::{FeatureRef, FeatureView, HistoricalOptions, SourceSpec, Ttl};

use crate::support::*;

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn refs(list: &[&str]) -> Vec<FeatureRef> {
    list.iter().map(|r| r.parse().unwrap()).collect()
}

#[tokio::test]
async fn ttl_bounds_are_inclusive_and_unmatched_rows_are_kept_in_order() {
    let f = Fixture::new().await;
    let table = f
        .write(
            "basic",
            feature_table(&[
                row("A", "1", T0, 1.0),
                row("A", "1", T0 + 10 * DAY, 2.0),
                row("B", "1", T0, 3.0),
                row("A", "2", T0 + DAY, 4.0),
            ]),
        )
        .await;
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let entities = entity_rows(&[
        (Some("A"), "1", T0 - 1),
        (Some("A"), "1", T0),
        (Some("A"), "1", T0 + 5 * DAY),
        (Some("A"), "1", T0 + 40 * DAY),
        (Some("A"), "1", T0 + 40 * DAY + 1),
        (Some("A"), "2", T0 + 2 * DAY),
        (Some("B"), "2", T0 + 2 * DAY),
        (Some("Z"), "1", T0),
        (None, "1", T0),
        (Some("A"), "1", T0 + 5 * DAY),
    ]);
    let out = f
        .store
        .get_historical_features(
            &entities,
            &refs(&["basic:x"]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        floats(&out, "x"),
        vec![
            None,      // before the first row
            Some(1.0), // upper bound inclusive
            Some(1.0),
            Some(2.0), // exactly ttl old: still valid
            None,      // one millisecond beyond the ttl
            Some(4.0), // both keys must match
            None,
            None,      // unknown key
            None,      // null key never matches
            Some(1.0), // duplicate entity rows each get their answer
        ]
    );
    assert_eq!(
        floats(&out, "label"),
        (0..10).map(|i| Some(i as f64)).collect::<Vec<_>>(),
        "entity rows keep their order and their other columns"
    );
    let names: Vec<_> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["uuid", "nodeId", "event_timestamp", "label", "x"]);
}

#[tokio::test]
async fn ttl_zero_means_no_lower_bound() {
    let f = Fixture::new().await;
    let table = f
        .write("old", feature_table(&[row("A", "1", T0 - 3650 * DAY, 7.0)]))
        .await;
    f.apply_with_device(vec![view("old", &table, Ttl::UNLIMITED)])
        .await;
    let out = f
        .store
        .get_historical_features(
            &entity_rows(&[(Some("A"), "1", T0)]),
            &refs(&["old:x"]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(floats(&out, "x"), vec![Some(7.0)]);
}

#[tokio::test]
async fn ties_go_to_the_created_time_then_to_the_last_row_and_whole_rows_win() {
    let f = Fixture::new().await;
    let with_created = |x: f64, created: Option<i64>| FeatureRow {
        created,
        ..row("A", "1", T0, x)
    };
    let created_table = f
        .write(
            "created",
            feature_table(&[
                with_created(1.0, Some(T0 + 5)),
                with_created(2.0, Some(T0 + 90 * DAY)), // created long after: still used
                with_created(3.0, Some(T0 + 7)),
                FeatureRow {
                    created: None,
                    ..row("A", "1", T0 - DAY, 9.0)
                },
            ]),
        )
        .await;
    let plain_table = f
        .write(
            "plain",
            feature_table(&[
                row("A", "1", T0, 1.0),
                row("A", "1", T0, 5.0),
                row("B", "1", T0 - DAY, 6.0),
                FeatureRow {
                    x: None,
                    ..row("B", "1", T0, 0.0)
                },
            ]),
        )
        .await;
    f.store
        .apply(vec![
            device().into(),
            view("created", &created_table, Ttl::days(30))
                .with_created_timestamp_field("created")
                .into(),
            view("plain", &plain_table, Ttl::days(30)).into(),
        ])
        .await
        .unwrap();
    let out = f
        .store
        .get_historical_features(
            &entity_rows(&[(Some("A"), "1", T0), (Some("B"), "1", T0)]),
            &refs(&["created:x", "plain:x"]),
            &HistoricalOptions {
                full_feature_names: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(floats(&out, "created__x"), vec![Some(2.0), None]);
    // A full tie goes to the row last in source order; the newest row wins whole, even with
    // a null value (no falling back to an older value).
    assert_eq!(floats(&out, "plain__x"), vec![Some(5.0), None]);
}

#[tokio::test]
async fn columns_are_named_and_ordered_like_feast_and_lists_keep_empty_versus_null() {
    let f = Fixture::new().await;
    let a = f
        .write(
            "fa",
            feature_table(&[
                FeatureRow {
                    arr: Some(vec![]),
                    ..row("A", "1", T0, 1.0)
                },
                FeatureRow {
                    arr: None,
                    ..row("B", "1", T0, 2.0)
                },
            ]),
        )
        .await;
    let b = f
        .write("fb", feature_table(&[row("A", "1", T0, 3.0)]))
        .await;
    f.apply_with_device(vec![
        view("fa", &a, Ttl::days(1)),
        view("fb", &b, Ttl::days(1)),
    ])
    .await;
    let entities = entity_rows(&[(Some("A"), "1", T0), (Some("B"), "1", T0)]);
    let request = refs(&["fa:x", "fb:arr", "fa:arr"]);
    let collision = f
        .store
        .get_historical_features(&entities, &request, &HistoricalOptions::default())
        .await
        .unwrap_err();
    assert!(
        collision.to_string().contains("full feature names"),
        "{collision}"
    );

    let out = f
        .store
        .get_historical_features(
            &entities,
            &request,
            &HistoricalOptions {
                full_feature_names: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<_> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "uuid",
            "nodeId",
            "event_timestamp",
            "label",
            "fa__x",
            "fa__arr",
            "fb__arr"
        ]
    );
    let arr = out
        .column_by_name("fa__arr")
        .unwrap()
        .as_any()
        .downcast_ref::<ListArray>()
        .unwrap();
    assert_eq!(arr.value_type(), arrow::datatypes::DataType::Float32);
    assert!(
        arr.is_valid(0) && arr.value(0).is_empty(),
        "an empty list stays empty"
    );
    assert!(arr.is_null(1), "a null list stays null");
}

#[tokio::test]
async fn bad_requests_fail_up_front_with_what_is_wrong() {
    let f = with_basic_view(&[row("A", "1", T0, 1.0)], Ttl::days(30)).await;
    let entities = entity_rows(&[(Some("A"), "1", T0)]);
    let ask = |batch: arrow::array::RecordBatch, list: Vec<&'static str>| {
        let store = f.store.clone();
        async move {
            store
                .get_historical_features(&batch, &refs(&list), &HistoricalOptions::default())
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let missing = ask(entities.project(&[0, 2, 3]).unwrap(), vec!["basic:x"]).await;
    assert!(missing.contains("join key \"nodeId\""), "{missing}");
    let named_like_feature = {
        let mut fields: Vec<_> = entities.schema().fields().iter().cloned().collect();
        let mut columns = entities.columns().to_vec();
        fields[3] = std::sync::Arc::new(arrow::datatypes::Field::new(
            "x",
            arrow::datatypes::DataType::Float64,
            false,
        ));
        columns[3] = columns[3].clone();
        arrow::array::RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
            columns,
        )
        .unwrap()
    };
    let clash = ask(named_like_feature, vec!["basic:x"]).await;
    assert!(clash.contains("named like a requested feature"), "{clash}");
    let no_time = ask(entities.project(&[0, 1, 3]).unwrap(), vec!["basic:x"]).await;
    assert!(no_time.contains("event_timestamp"), "{no_time}");
    assert!(
        ask(entities.clone(), vec!["basic:nope"])
            .await
            .contains("basic:nope")
    );
    assert!(ask(entities.clone(), vec!["nope:x"]).await.contains("nope"));
    assert!(
        ask(entities.clone(), vec!["basic:x", "basic:x"])
            .await
            .contains("requested twice")
    );

    // Integer keys compare with text keys by their digits (rule 7.3): node 1 finds "1".
    let nodes = |column: arrow::array::ArrayRef| {
        let mut columns = entities.columns().to_vec();
        let mut fields: Vec<_> = entities.schema().fields().iter().cloned().collect();
        fields[1] = std::sync::Arc::new(arrow::datatypes::Field::new(
            "nodeId",
            column.data_type().clone(),
            false,
        ));
        columns[1] = column;
        arrow::array::RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
            columns,
        )
        .unwrap()
    };
    let int_nodes = nodes(std::sync::Arc::new(arrow::array::Int32Array::from(vec![1])));
    let answer = f
        .store
        .get_historical_features(
            &int_nodes,
            &refs(&["basic:x"]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap();
    let x = answer
        .column_by_name("x")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!((x.len(), x.value(0)), (1, 1.0));
    assert_eq!(
        answer.column(1).data_type(),
        &arrow::datatypes::DataType::Int32
    );
    // Other types do not compare: a float key is refused, naming the key and both types.
    let float_nodes = nodes(std::sync::Arc::new(arrow::array::Float64Array::from(vec![
        1.0,
    ])));
    let err = f
        .store
        .get_historical_features(
            &float_nodes,
            &refs(&["basic:x"]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = err.to_string();
    assert!(err.contains("nodeId") && err.contains("Float64"), "{err}");
}

#[tokio::test]
async fn design_doc_snapshot_files_feed_views_with_inferred_schemas() {
    use trainstore_doris::{SnapshotSchema, SynthConfig};
    let f = Fixture::new().await;
    let config = SynthConfig {
        devices: 4,
        snapshots: 30,
        malformed_rate: 0.0,
        ..SynthConfig::default()
    };
    let (location, raw) = f.write_snapshots(config).await;
    let source = SourceSpec::Files {
        location: location.clone(),
        format: None,
        snapshots: Some(SnapshotSchema::design_doc()),
    };
    let basic = FeatureView::new(name("basic_features"), vec![name("device")], source, vec![])
        .with_ttl(Ttl::days(30));
    let applied = f
        .store
        .apply(vec![device().into(), basic.into()])
        .await
        .unwrap();
    let inferred = &applied.plan.result.feature_views[0].schema;
    let inferred: Vec<String> = inferred
        .iter()
        .map(|f| format!("{}:{}", f.name, f.dtype))
        .collect();
    assert!(
        inferred.contains(&"meanLf:float64".to_owned()),
        "{inferred:?}"
    );
    assert!(
        inferred.contains(&"peakPowers:list<float32>".to_owned()),
        "{inferred:?}"
    );

    // Ask at every snapshot's own time: each must get exactly that snapshot's values.
    let parsed = trainstore_doris::SnapshotParser::new(SnapshotSchema::design_doc())
        .parse(&arrow::compute::concat_batches(&raw[0].schema(), &raw).unwrap())
        .unwrap()
        .0;
    let entities = parsed.project(&[0, 1, 2]).unwrap();
    let entities = arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            entities.schema().field(0).clone(),
            entities.schema().field(1).clone(),
            entities
                .schema()
                .field(2)
                .clone()
                .with_name("event_timestamp"),
        ])),
        entities.columns().to_vec(),
    )
    .unwrap();
    let out = f
        .store
        .get_historical_features(
            &entities,
            &refs(&["basic_features:meanLf", "basic_features:peakPowers"]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.num_rows(), parsed.num_rows());
    for name in ["meanLf", "peakPowers"] {
        assert_eq!(
            out.column_by_name(name).unwrap().as_ref(),
            parsed.column_by_name(name).unwrap().as_ref(),
            "{name}"
        );
    }
}

/// Counts what a long operation reports: each begin's label, units advanced, finishes.
#[derive(Default)]
struct Recorded(std::sync::Mutex<(Vec<String>, u64, usize)>);

impl trainstore_core::Progress for Recorded {
    fn begin(&self, label: &str, _: Option<u64>) {
        self.0.lock().unwrap().0.push(label.to_owned());
    }
    fn advance(&self, delta: u64) {
        self.0.lock().unwrap().1 += delta;
    }
    fn finish(&self) {
        self.0.lock().unwrap().2 += 1;
    }
}

/// Historical joins, ingest and materialization report the source rows they read, and end
/// what they begin.
#[tokio::test]
async fn long_operations_report_the_rows_they_read() {
    let f = Fixture::new().await;
    let rows: Vec<FeatureRow> = (0..50)
        .map(|i| row("A", "1", T0 + i * 1_000, i as f64))
        .collect();
    let table = f.write("basic", feature_table(&rows)).await;
    f.apply_with_device(vec![view("basic", &table, Ttl::days(30))])
        .await;
    let recorded = std::sync::Arc::new(Recorded::default());
    let store = f
        .store
        .clone()
        .with_online_store(
            f.dir.path().join("online.redb").to_str().unwrap(),
            "progress",
        )
        .with_progress(recorded.clone());
    let take = || std::mem::take(&mut *recorded.0.lock().unwrap());

    let entities = entity_rows(&[(Some("A"), "1", T0 + DAY)]);
    let out = store
        .get_historical_features(
            &entities,
            &refs(&["basic:x"]),
            &HistoricalOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(floats(&out, "x"), [Some(49.0)]);
    assert_eq!(
        take(),
        (vec!["join 1 views: source rows".to_owned()], 50, 1)
    );

    let end = trainstore_core::Timestamp::from_millis(T0 + DAY);
    store
        .ingest(
            &"basic".parse().unwrap(),
            trainstore_core::Timestamp::from_millis(T0),
            end,
        )
        .await
        .unwrap();
    assert_eq!(take(), (vec!["ingest basic: rows".to_owned()], 50, 1));

    store
        .materialize(trainstore_core::Timestamp::from_millis(T0), end, None)
        .await
        .unwrap();
    let (labels, advanced, finished) = take();
    assert_eq!(labels, ["materialize basic: source rows"]);
    assert_eq!((advanced, finished), (50, 1));
}
