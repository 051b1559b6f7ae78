//! A small JSON Schema validator for Kubernetes-style schemas (`#/definitions/...`), with a
//! strict mode that refuses unknown keys, for checking exported Argo manifests.
//!
//! It knows the keywords Argo's `workflow-schema.json` uses: `$ref`, `type`, `properties`,
//! `required`, `items`, `additionalProperties` (a boolean or a schema), `enum`, `const`,
//! `oneOf`, `anyOf`, `allOf`. `format`, `description`, `title`, `default` and
//! `x-kubernetes-*` are ignored. Loading a schema that uses any other keyword panics, so a
//! keyword the validator would silently skip cannot creep in.

use serde_json::Value;

/// Keywords that constrain values, checked by [`Schema::check`].
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "const",
    "oneOf",
    "anyOf",
    "allOf",
];

/// Keywords that describe without constraining.
const IGNORED: &[&str] = &[
    "description",
    "title",
    "default",
    "format",
    "$id",
    "$schema",
];

/// A schema document and how strictly it is applied.
pub struct Schema {
    root: Value,
    /// Every object schema with `properties` refuses other keys, whatever its
    /// `additionalProperties` says.
    strict: bool,
}

impl Schema {
    /// A schema, checking that it uses only keywords this validator knows.
    pub fn new(root: Value, strict: bool) -> Schema {
        let mut unknown = Vec::new();
        keywords(&root, "#", &mut unknown);
        assert!(
            unknown.is_empty(),
            "the schema uses keywords this validator does not check: {unknown:?}"
        );
        Schema { root, strict }
    }

    /// The problems of `value` under definition `definition` (`io.argoproj...Workflow`), as
    /// `path: what`; empty when it is valid.
    pub fn validate(&self, definition: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let schema = serde_json::json!({ "$ref": format!("#/definitions/{definition}") });
        self.check(&schema, value, "$", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("only #/definitions/ references: {reference}"));
            schema = self.root["definitions"]
                .get(name)
                .unwrap_or_else(|| panic!("no definition {name}"));
        }
        schema
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(expected) = schema.get("type") {
            let allowed: Vec<&str> = match expected {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                other => panic!("type {other}"),
            };
            if !allowed.iter().any(|t| has_type(value, t)) {
                out.push(format!("{path}: {} is not {allowed:?}", type_of(value)));
                return;
            }
        }
        if let Some(c) = schema.get("const")
            && c != value
        {
            out.push(format!("{path}: {value} is not {c}"));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            out.push(format!("{path}: {value} is not one of {options:?}"));
        }
        let passing = |options: &Vec<Value>| {
            options
                .iter()
                .filter(|o| {
                    let mut errors = Vec::new();
                    self.check(o, value, path, &mut errors);
                    errors.is_empty()
                })
                .count()
        };
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let n = passing(options);
            if n != 1 {
                out.push(format!("{path}: matches {n} of oneOf, not exactly one"));
            }
        }
        if let Some(options) = schema.get("anyOf").and_then(Value::as_array)
            && passing(options) == 0
        {
            out.push(format!("{path}: matches none of anyOf"));
        }
        for option in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(option, value, path, out);
        }
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{i}]"), out);
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
                    out.push(format!("{path}: missing required key {key:?}"));
                }
            }
            for (key, v) in map {
                let here = format!("{path}.{key}");
                if let Some(s) = properties.and_then(|p| p.get(key)) {
                    self.check(s, v, &here, out);
                    continue;
                }
                if self.strict && properties.is_some() {
                    out.push(format!("{here}: unknown key"));
                    continue;
                }
                match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{here}: unknown key")),
                    Some(s @ Value::Object(_)) => self.check(s, v, &here, out),
                    _ => {}
                }
            }
        }
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        other => type_of(value) == other,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Collects the keywords of `schema` (and everything below it) that the validator neither
/// checks nor ignores.
fn keywords(schema: &Value, path: &str, unknown: &mut Vec<String>) {
    let Value::Object(map) = schema else {
        return;
    };
    for (key, value) in map {
        let here = format!("{path}/{key}");
        match key.as_str() {
            k if k.starts_with("x-kubernetes-") => {}
            "properties" | "definitions" => {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    keywords(sub, &format!("{here}/{name}"), unknown);
                }
            }
            "items" | "additionalProperties" => keywords(value, &here, unknown),
            "oneOf" | "anyOf" | "allOf" => {
                for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                    keywords(sub, &format!("{here}/{i}"), unknown);
                }
            }
            k if CHECKED.contains(&k) || IGNORED.contains(&k) => {}
            _ => unknown.push(here),
        }
    }
}
