//! The published JSON Schema (`docs/pipeline.schema.json`) agrees with the parser: the same
//! keys in every section, the design document's example valid under both, and the same
//! mistakes refused by both.
//!
//! The schema is checked with a small validator of the keywords it uses (`$ref`, `type`,
//! `const`, `properties`, `additionalProperties`, `required`, `items`, `minItems`,
//! `minLength`, `minimum`, `maximum`, `oneOf`); `pattern` is left to the parser's tests.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use trainstore_pipeline::{KEYS, Pipeline};

use crate::support::{DESIGN_DOC, types};

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/pipeline.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("docs/pipeline.schema.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/$defs/").expect("local references only");
            resolve(root, &root["$defs"][name])
        }
        None => schema,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The problems of `value` under `schema`, as `path: what`.
fn check(root: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if let Some(expected) = schema.get("type") {
        let allowed: Vec<&str> = match expected {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = type_of(value);
        if !allowed
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"))
        {
            out.push(format!("{path}: {actual} is not {allowed:?}"));
            return;
        }
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        out.push(format!("{path}: not {c}"));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let passing = options
            .iter()
            .filter(|o| {
                let mut errors = Vec::new();
                check(root, o, value, path, &mut errors);
                errors.is_empty()
            })
            .count();
        if passing != 1 {
            out.push(format!("{path}: matches {passing} of oneOf"));
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        out.push(format!("{path}: below {min}"));
    }
    if let (Some(max), Some(n)) = (
        schema.get("maximum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n > max
    {
        out.push(format!("{path}: above {max}"));
    }
    if let (Some(min), Some(s)) = (
        schema.get("minLength").and_then(Value::as_u64),
        value.as_str(),
    ) && (s.chars().count() as u64) < min
    {
        out.push(format!("{path}: shorter than {min}"));
    }
    if let Value::Array(items) = value {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            out.push(format!("{path}: fewer than {min} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(root, item_schema, item, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = required.as_str().unwrap_or_default();
            if !map.contains_key(key) {
                out.push(format!("{path}: missing {key}"));
            }
        }
        for (key, v) in map {
            let here = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(s) => check(root, s, v, &here, out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{here}: unknown key")),
                    Some(s @ Value::Object(_)) => check(root, s, v, &here, out),
                    _ => {}
                },
            }
        }
    }
}

fn schema_errors(document: &Value) -> Vec<String> {
    let root = schema();
    let mut out = Vec::new();
    check(&root, &root, document, "", &mut out);
    out
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
    let mistakes: [(&str, &str); 6] = [
        (
            "      image: train-platform/model-eval:latest",
            "      imge: train-platform/model-eval:latest",
        ),
        ("kind: Pipeline", "kind: Pipelines"),
        ("        gpu: \"1\"", "        gpu: [1]"),
        (
            "  name: doris-feast-incremental-pipeline",
            "  nmae: doris-feast-incremental-pipeline",
        ),
        (
            "    - from: model-training\n      to: model-evaluation",
            "    - from: model-training\n      too: model-evaluation",
        ),
        (
            "      type: data_query",
            "      type: data_query\n      retries: -1",
        ),
    ];
    for (from, to) in mistakes {
        assert!(DESIGN_DOC.contains(from), "{from}");
        let text = DESIGN_DOC.replacen(from, to, 1);
        assert!(
            !schema_errors(&yaml_to_json(&text)).is_empty(),
            "the schema accepts {to:?}"
        );
        assert!(
            !Pipeline::validate(&text, &types()).is_empty(),
            "the parser accepts {to:?}"
        );
    }
}
