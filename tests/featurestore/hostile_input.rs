//! Hostile definitions and requests: no YAML document and no expression makes parsing,
//! validation, printing or evaluation panic or overflow the stack; each is accepted or refused
//! with an error. Inputs are built from the grammar's own pieces, so most of them get deep into
//! it. Requests at the edges of time, and entity rows whose columns are ambiguous, are refused
//! with an error naming what was wrong rather than answered.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, ListBuilder};
use proptest::prelude::*;
use trainstore_core::Result;
use trainstore_featurestore::derived::Expr;
use trainstore_featurestore::{Definitions, FeatureRef, ValueType};

fn yaml_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "entities:",
        "feature_views:",
        "on_demand_feature_views:",
        "feature_services:",
        "\n",
        "  ",
        "- ",
        "name: ",
        "device",
        "basic",
        "join_keys: [uuid, nodeId]",
        "entities: [device]",
        "ttl: 30d",
        "ttl: -1",
        "ttl: 99999999999999999999d",
        "schema:",
        "{name: x, type: float64}",
        "type: list<float32>",
        "source: {type: files, location: ./x}",
        "source: ./snaps",
        "features:",
        "expression: ",
        "basic:x + ",
        "mean(basic:arr)",
        "band_ratio(basic:arr, 0, ",
        "[",
        "]",
        "{",
        "}",
        ":",
        ",",
        "'",
        "\"",
        "#",
        "&a ",
        "*a",
        "!!str ",
        "<<: *a",
        "~",
        "1e309",
        "\t",
        "---\n",
        "...",
        "|\n",
        ">-\n",
        "%YAML 1.2\n",
        "? ",
        "é",
        "\u{0}",
    ])
}

fn expression_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "v:x",
        "v:l",
        "w:y",
        "1",
        "0",
        "2.5",
        "1e309",
        "1e",
        ".",
        "-",
        "+",
        "*",
        "/",
        "(",
        ")",
        ",",
        "mean(",
        "std(",
        "argmax(",
        "len(",
        "band_ratio(",
        "median(",
        "v:",
        ":x",
        "x",
        " ",
        "é",
        ";",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn yaml_definitions_are_accepted_or_refused_never_crash(
        pieces in prop::collection::vec(yaml_piece(), 0..120),
        depth in 0usize..200,
    ) {
        let text: String = pieces.concat();
        if let Ok(defs) = Definitions::from_yaml(&text) {
            // What is accepted writes back and reads again as itself.
            prop_assert_eq!(Definitions::from_yaml(&defs.to_yaml()).unwrap(), defs);
        }
        let nested = format!("entities: {}{}", "[".repeat(depth), "]".repeat(depth));
        let _ = Definitions::from_yaml(&nested);
    }

    #[test]
    fn expressions_are_accepted_or_refused_never_crash(
        pieces in prop::collection::vec(expression_piece(), 0..300),
    ) {
        let text: String = pieces.concat();
        let Ok(expr) = text.parse::<Expr>() else {
            return Ok(());
        };
        // The stored form reads back as the same tree.
        prop_assert_eq!(expr.to_string().parse::<Expr>().unwrap(), expr.clone());
        let type_of = |r: &FeatureRef| -> Result<ValueType> {
            Ok(match r.feature.as_str() {
                "l" => ValueType::List(Box::new(ValueType::Float64)),
                _ => ValueType::Float64,
            })
        };
        if expr.check(&type_of).is_ok() {
            let mut lists = ListBuilder::new(arrow::array::Float64Builder::new());
            lists.values().append_slice(&[1.0, 0.0, 3.0]);
            lists.append(true);
            lists.append(true);
            let lists: ArrayRef = Arc::new(lists.finish());
            let numbers: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.0), None]));
            let column = |r: &FeatureRef| -> Result<ArrayRef> {
                Ok(if r.feature == "l" { lists.clone() } else { numbers.clone() })
            };
            prop_assert_eq!(expr.evaluate(2, &column).unwrap().len(), 2);
        }
    }
}

#[tokio::test]
async fn time_bounds_at_the_end_of_time_are_refused_not_overflowed() {
    use trainstore_core::Timestamp;
    use trainstore_featurestore::Ttl;

    use crate::support::*;

    let f = with_basic_view(&[row("A", "1", 1, 1.0)], Ttl::days(1)).await;
    let store = embedded_online(&f);
    let last = Timestamp::from_millis(i64::MAX);
    let first = Timestamp::from_millis(i64::MIN);
    let errors = [
        store.materialize(first, last, None).await.unwrap_err(),
        store.materialize_incremental(last, None).await.unwrap_err(),
        store.ingest(&name("basic"), first, last).await.unwrap_err(),
    ];
    for e in errors {
        let e = e.to_string();
        assert!(
            e.contains("9223372036854775807") && e.contains("last"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn entity_rows_with_a_duplicated_column_are_refused() {
    use arrow::array::RecordBatch;
    use arrow::datatypes::Schema;
    use trainstore_featurestore::{FeatureRef, HistoricalOptions, OnlineOptions, Ttl};

    use crate::support::*;

    let f = with_basic_view(&[row("A", "1", 1, 1.0)], Ttl::days(1)).await;
    let rows = entity_rows(&[(Some("A"), "1", 2)]);
    // A second `uuid` column, naming another device: which one the join reads must not be
    // left to chance.
    let mut fields: Vec<_> = rows.schema().fields().iter().cloned().collect();
    let mut columns = rows.columns().to_vec();
    fields.push(fields[0].clone());
    columns.push(Arc::new(arrow::array::StringArray::from(vec!["B"])) as ArrayRef);
    let twice = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let refs: Vec<FeatureRef> = vec!["basic:x".parse().unwrap()];
    let historical = f
        .store
        .get_historical_features(&twice, &refs, &HistoricalOptions::default())
        .await
        .unwrap_err()
        .to_string();
    let online = embedded_online(&f)
        .get_online_features(&refs, &twice, &OnlineOptions::default())
        .await
        .unwrap_err()
        .to_string();
    for e in [historical, online] {
        assert!(e.contains("\"uuid\"") && e.contains("two columns"), "{e}");
    }
}

#[test]
fn an_entity_listing_a_join_key_twice_is_refused() {
    let e = Definitions::from_yaml("entities:\n  - {name: device, join_keys: [uuid, uuid]}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"uuid\" is listed twice"), "{e}");
}

/// The fixture's store with an embedded online store beside its workspace.
fn embedded_online(f: &crate::support::Fixture) -> trainstore_featurestore::FeatureStore {
    let url = f.dir.path().join("online.redb");
    f.store
        .clone()
        .with_online_store(url.to_str().unwrap().to_owned(), "hostile".to_owned())
}

#[tokio::test]
async fn entity_times_beyond_nanosecond_range_are_refused_naming_column_and_row() {
    use trainstore_core::Error;
    use trainstore_featurestore::{FeatureRef, HistoricalOptions, Ttl};

    use crate::support::*;

    let f = with_basic_view(&[row("A", "1", 1, 1.0)], Ttl::days(1)).await;
    // Year 3000 in milliseconds fits, in nanoseconds it does not.
    let rows = entity_rows(&[(Some("A"), "1", 2), (Some("A"), "1", 32_503_680_000_000)]);
    let refs: Vec<FeatureRef> = vec!["basic:x".parse().unwrap()];
    let err = f
        .store
        .get_historical_features(&rows, &refs, &HistoricalOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::InvalidInput { .. })
            && text.contains("event_timestamp")
            && text.contains("row 1"),
        "{text}"
    );
}
