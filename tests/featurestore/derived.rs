//! On-demand features: applied with their expressions checked, computed after historical and
//! online retrieval, their inputs fetched when not asked for and dropped again; feature
//! services named instead of their features.

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use trainstore_core::{Error, Timestamp};
use trainstore_featurestore::{
    Definition, FeatureRef, FeatureService, HistoricalOptions, OnDemandFeatureView, OnlineOptions,
    Ttl, TtlPolicy,
};

use crate::support::*;

const T0: i64 = 1_700_000_000_000;

fn stats() -> Definition {
    Definition::OnDemandFeatureView(
        OnDemandFeatureView::new(
            name("stats"),
            [
                ("arr_mean", "mean(basic:arr)"),
                ("arr_peak", "argmax(basic:arr)"),
                ("scaled", "(basic:x - 1) / basic:x"),
            ],
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn on_demand_features_follow_historical_and_online_reads() {
    let f = Fixture::new().await;
    let table = f
        .write(
            "basic",
            feature_table(&[
                FeatureRow {
                    arr: Some(vec![1.0, 4.0, 2.0]),
                    ..row("A", "1", T0, 2.0)
                },
                FeatureRow {
                    arr: Some(vec![]),
                    ..row("B", "1", T0, 0.0)
                },
            ]),
        )
        .await;
    let service = FeatureService {
        name: name("model"),
        features: vec![
            "stats:arr_mean".parse().unwrap(),
            "basic:x".parse().unwrap(),
        ],
        description: String::new(),
    };
    f.store
        .apply(vec![
            device().into(),
            view("basic", &table, Ttl::days(1)).into(),
            stats(),
            service.into(),
        ])
        .await
        .unwrap();
    let entities = entity_rows(&[
        (Some("A"), "1", T0),
        (Some("B"), "1", T0),
        (Some("Z"), "1", T0),
    ]);
    let request: Vec<FeatureRef> = ["stats:arr_peak", "basic:arr", "stats:scaled"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let out = f
        .store
        .get_historical_features(&entities, &request, &HistoricalOptions::default())
        .await
        .unwrap();
    let names: Vec<&str> = out
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>();
    // basic:x is an input only: fetched, used, dropped.
    assert_eq!(
        names,
        [
            "uuid",
            "nodeId",
            "event_timestamp",
            "label",
            "arr",
            "arr_peak",
            "scaled"
        ]
    );
    let peak = out
        .column_by_name("arr_peak")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(peak.iter().collect::<Vec<_>>(), [Some(1), None, None]);
    let scaled = out
        .column_by_name("scaled")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(scaled.iter().collect::<Vec<_>>(), [Some(0.5), None, None]);

    let from_service = f
        .store
        .resolve_features(&["model".to_owned()])
        .await
        .unwrap();
    let out = f
        .store
        .get_historical_features(
            &entities,
            &from_service,
            &HistoricalOptions {
                full_feature_names: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.num_columns(), 6);
    assert_eq!(
        floats(&out, "stats__arr_mean"),
        [Some(7.0 / 3.0), None, None]
    );
    assert_eq!(floats(&out, "basic__x"), [Some(2.0), Some(0.0), None]);

    let online_file = f.dir.path().join("online.redb");
    let store = f
        .store
        .clone()
        .with_online_store(online_file.to_str().unwrap().to_owned(), "derived");
    store
        .materialize(
            Timestamp::from_millis(T0 - 1),
            Timestamp::from_millis(T0),
            None,
        )
        .await
        .unwrap();
    let online = store
        .get_online_features(
            &from_service,
            &crate::online::keys(&[(Some("A"), "1"), (Some("B"), "1")]),
            &OnlineOptions {
                full_feature_names: false,
                ttl: TtlPolicy::Ignore,
                with_status: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(floats(&online, "arr_mean"), [Some(7.0 / 3.0), None]);
    assert_eq!(floats(&online, "x"), [Some(2.0), Some(0.0)]);
}

#[tokio::test]
async fn bad_on_demand_views_and_services_are_refused_at_apply() {
    let f = with_basic_view(&[row("A", "1", T0, 1.0)], Ttl::days(1)).await;
    for (expression, says) in [
        ("mean(basic:x)", "statistics need a list"),
        ("basic:arr * 2", "arithmetic needs a numeric"),
        ("basic:missing + 1", "missing"),
        ("nothing:x + 1", "nothing"),
    ] {
        let bad = OnDemandFeatureView::new(name("bad"), [("f", expression)]).unwrap();
        let err = f
            .store
            .apply(vec![Definition::OnDemandFeatureView(bad)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains(says), "{expression}: {err}");
    }
    let clash = OnDemandFeatureView::new(name("basic"), [("f", "basic:x + 1")]).unwrap();
    assert!(
        f.store
            .apply(vec![Definition::OnDemandFeatureView(clash)])
            .await
            .is_err()
    );
    let err = f
        .store
        .resolve_features(&["no_service".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = OnDemandFeatureView::new(name("bad"), [("f", "median(basic:arr)")]).unwrap_err();
    assert!(err.to_string().contains("unknown function"), "{err}");
}
