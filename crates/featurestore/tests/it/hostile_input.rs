//! Hostile definitions: no YAML document and no expression makes parsing, validation,
//! printing or evaluation panic or overflow the stack; each is accepted or refused with an
//! error. Inputs are built from the grammar's own pieces, so most of them get deep into it.

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
