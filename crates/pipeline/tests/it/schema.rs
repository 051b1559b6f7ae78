//! The published JSON Schema (`docs/pipeline.schema.json`) agrees with the parser: the same
//! keys in every section, the design document's example valid under both, and the same
//! mistakes refused by both.
//!
//! Documents are checked against the schema with the validator of `json_schema.rs`, which
//! refuses at load time any keyword of the schema it does not check; `pattern` is the one it
//! knowingly skips, left to the parser's tests.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use trainstore_pipeline::{KEYS, Pipeline};

use crate::json_schema::Schema;
use crate::support::{DESIGN_DOC, types};

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/pipeline.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("docs/pipeline.schema.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// The problems of `document` under the schema, as `path: what`.
fn schema_errors(document: &Value) -> Vec<String> {
    Schema::new(schema(), false).validate_root(document)
}

fn yaml_to_json(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("YAML")
}

#[test]
fn the_schema_names_exactly_the_keys_the_parser_accepts() {
    let root = schema();
    assert_eq!(
        root["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
    for (section, keys) in KEYS {
        let properties = root["$defs"][section]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("the schema has no $defs.{section}.properties"));
        let in_schema: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
        let in_parser: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(in_schema, in_parser, "section {section}");
        assert_eq!(
            root["$defs"][section]["additionalProperties"],
            json!(false),
            "section {section} refuses unknown keys"
        );
    }
}

#[test]
fn the_design_documents_example_is_valid_under_the_schema() {
    let errors = schema_errors(&yaml_to_json(DESIGN_DOC));
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn mistakes_are_refused_by_both_the_schema_and_the_parser() {
    // (the original line, the mistake, what the schema says of it)
    let mistakes: [(&str, &str, &[&str]); 6] = [
        (
            "      image: train-platform/model-eval:latest",
            "      imge: train-platform/model-eval:latest",
            &["$.spec.tasks[4].imge: unknown key"],
        ),
        (
            "kind: Pipeline",
            "kind: Pipelines",
            &["$.kind: \"Pipelines\" is not \"Pipeline\""],
        ),
        (
            "        gpu: \"1\"",
            "        gpu: [1]",
            &["$.spec.tasks[3].resources.gpu: matches 0 of oneOf, not exactly one"],
        ),
        (
            "  name: doris-feast-incremental-pipeline",
            "  nmae: doris-feast-incremental-pipeline",
            &[
                "$.metadata: missing required key \"name\"",
                "$.metadata.nmae: unknown key",
            ],
        ),
        (
            "    - from: model-training\n      to: model-evaluation",
            "    - from: model-training\n      too: model-evaluation",
            &[
                "$.spec.dependencies[3]: missing required key \"to\"",
                "$.spec.dependencies[3].too: unknown key",
            ],
        ),
        (
            "      type: data_query",
            "      type: data_query\n      retries: -1",
            &["$.spec.tasks[0].retries: -1 is below the minimum 0"],
        ),
    ];
    for (from, to, expected) in mistakes {
        assert!(DESIGN_DOC.contains(from), "{from}");
        let text = DESIGN_DOC.replacen(from, to, 1);
        let errors = schema_errors(&yaml_to_json(&text));
        assert!(!errors.is_empty(), "the schema accepts {to:?}");
        assert_eq!(errors, expected, "the schema on {to:?}");
        assert!(
            !Pipeline::validate(&text, &types()).is_empty(),
            "the parser accepts {to:?}"
        );
    }
}
