//! The one small JSON Schema validator of these tests, for the two schemas they check:
//! Argo's Kubernetes-style `workflow-schema.json` (`#/definitions/...` references, applied in
//! strict mode so that exported manifests cannot carry misspelt keys; see `argo.rs`) and the
//! project's own draft 2020-12 `docs/pipeline.schema.json` (`#/$defs/...` references; see
//! `schema.rs`).
//!
//! It checks the keywords those schemas use: `$ref` (local `#/definitions/` and `#/$defs/`
//! only), `type`, `properties`, `required`, `items`, `additionalProperties` (a boolean or a
//! schema), `enum`, `const`, `oneOf`, `anyOf`, `allOf`, `minItems`, `minLength`, `minimum`
//! and `maximum`. `description`, `title`, `default`, `format`, `$id`, `$schema` and
//! `x-kubernetes-*` are ignored, as descriptions. `pattern` is accepted but **not checked**:
//! it would need a regular expression engine, and the patterns of `docs/pipeline.schema.json`
//! are enforced by the parser and covered by its tests instead.
//!
//! Loading a schema that uses any other keyword, a `$ref` beside a keyword it would hide
//! (siblings of `$ref` are not applied here), a reference that does not resolve or an unknown
//! `type` panics, so a constraint the validator would silently skip cannot creep in.

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
    "minItems",
    "minLength",
    "minimum",
    "maximum",
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

/// Keywords that constrain but are knowingly left unchecked (see the module documentation).
const NOT_CHECKED: &[&str] = &["pattern"];

/// The places local references point into: (reference prefix, key of the root's table).
const DEFINITIONS: &[(&str, &str)] = &[("#/definitions/", "definitions"), ("#/$defs/", "$defs")];

/// The names `type` may give.
const TYPES: &[&str] = &[
    "null", "boolean", "integer", "number", "string", "array", "object",
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
        let schema = Schema { root, strict };
        let mut unknown = Vec::new();
        schema.keywords(&schema.root, "#", &mut unknown);
        assert!(
            unknown.is_empty(),
            "the schema uses keywords this validator does not check: {unknown:?}"
        );
        schema
    }

    /// The problems of `value` under definition `definition` (`io.argoproj...Workflow` in
    /// `definitions`, or a name in `$defs`), as `path: what`; empty when it is valid.
    pub fn validate(&self, definition: &str, value: &Value) -> Vec<String> {
        let schema = DEFINITIONS
            .iter()
            .find_map(|(_, table)| self.root.get(table)?.get(definition))
            .unwrap_or_else(|| panic!("no definition {definition}"));
        self.errors(schema, value)
    }

    /// The problems of `value` under the root schema itself, as `path: what`; empty when it
    /// is valid.
    pub fn validate_root(&self, value: &Value) -> Vec<String> {
        self.errors(&self.root, value)
    }

    fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        errors
    }

    /// The schema a local reference names, or `None` when it names nothing.
    fn lookup(&self, reference: &str) -> Option<&Value> {
        DEFINITIONS.iter().find_map(|(prefix, table)| {
            let name = reference.strip_prefix(prefix)?;
            self.root.get(table)?.get(name)
        })
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            schema = self
                .lookup(reference)
                .unwrap_or_else(|| panic!("unresolved reference {reference}"));
        }
        schema
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(expected) = schema.get("type") {
            let allowed = types(expected);
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
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                out.push(format!("{path}: {value} is below the minimum {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                out.push(format!("{path}: {value} is above the maximum {max}"));
            }
        }
        if let (Value::String(s), Some(min)) =
            (value, schema.get("minLength").and_then(Value::as_u64))
            && (s.chars().count() as u64) < min
        {
            out.push(format!("{path}: shorter than {min} characters"));
        }
        if let Value::Array(items) = value {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                out.push(format!("{path}: fewer than {min} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{path}[{i}]"), out);
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

    /// Collects what in `schema` (and everything below it) the validator would not apply:
    /// keywords it neither checks, ignores nor knowingly skips, a `$ref` beside a checked
    /// keyword, a reference that does not resolve, a `type` it does not know.
    fn keywords(&self, schema: &Value, path: &str, unknown: &mut Vec<String>) {
        let Value::Object(map) = schema else {
            unknown.push(format!("{path}: not a schema object"));
            return;
        };
        if let Some(reference) = map.get("$ref") {
            if reference.as_str().and_then(|r| self.lookup(r)).is_none() {
                unknown.push(format!("{path}/$ref: unresolved {reference}"));
            }
            for key in map.keys().filter(|k| *k != "$ref") {
                if CHECKED.contains(&key.as_str()) || NOT_CHECKED.contains(&key.as_str()) {
                    unknown.push(format!("{path}/{key}: beside $ref"));
                }
            }
        }
        for (key, value) in map {
            let here = format!("{path}/{key}");
            match key.as_str() {
                k if k.starts_with("x-kubernetes-") => {}
                "properties" | "definitions" | "$defs" => {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        self.keywords(sub, &format!("{here}/{name}"), unknown);
                    }
                }
                "additionalProperties" if value.is_boolean() => {}
                "items" | "additionalProperties" => self.keywords(value, &here, unknown),
                "oneOf" | "anyOf" | "allOf" => {
                    for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                        self.keywords(sub, &format!("{here}/{i}"), unknown);
                    }
                }
                "type" => {
                    let known = |t: &Value| t.as_str().is_some_and(|t| TYPES.contains(&t));
                    let ok = match value {
                        Value::Array(items) => !items.is_empty() && items.iter().all(known),
                        one => known(one),
                    };
                    if !ok {
                        unknown.push(format!("{here}: {value}"));
                    }
                }
                k if CHECKED.contains(&k) || IGNORED.contains(&k) || NOT_CHECKED.contains(&k) => {}
                _ => unknown.push(here),
            }
        }
    }
}

/// The type names a `type` keyword gives: one string or an array of them.
fn types(expected: &Value) -> Vec<&str> {
    match expected {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        other => type_of(value) == other,
    }
}

/// The JSON type of `value`; every number, integer or not, is `number`.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Schema;

    #[test]
    fn both_reference_styles_resolve_and_the_added_keywords_are_checked() {
        let defs = Schema::new(
            json!({
                "$ref": "#/$defs/list",
                "$defs": {
                    "list": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/word" } },
                    "word": { "type": "string", "minLength": 2, "pattern": "^[a-z]+$" },
                },
            }),
            false,
        );
        assert_eq!(
            defs.validate_root(&json!(["ab", "cd"])),
            Vec::<String>::new()
        );
        assert_eq!(
            defs.validate_root(&json!(["a"])),
            ["$[0]: shorter than 2 characters"]
        );
        assert_eq!(defs.validate_root(&json!([])), ["$: fewer than 1 items"]);
        assert_eq!(
            defs.validate("word", &json!("AB")),
            Vec::<String>::new(),
            "pattern is not checked"
        );
        let definitions = Schema::new(
            json!({
                "definitions": {
                    "n": { "type": "integer", "minimum": 1, "maximum": 3 },
                    "pair": { "type": "object", "properties": { "n": { "$ref": "#/definitions/n" } } },
                },
            }),
            true,
        );
        assert_eq!(definitions.validate("n", &json!(2)), Vec::<String>::new());
        assert_eq!(
            definitions.validate("n", &json!(4)),
            ["$: 4 is above the maximum 3"]
        );
        assert_eq!(
            definitions.validate("n", &json!(0)),
            ["$: 0 is below the minimum 1"]
        );
        assert_eq!(
            definitions.validate("n", &json!(1.5)),
            ["$: number is not [\"integer\"]"]
        );
        assert_eq!(
            definitions.validate("pair", &json!({ "n": 1, "m": 2 })),
            ["$.m: unknown key"],
            "strict"
        );
    }

    #[test]
    #[should_panic(expected = "#/$defs/a/uniqueItems")]
    fn a_keyword_it_does_not_check_is_refused_at_load() {
        Schema::new(json!({ "$defs": { "a": { "uniqueItems": true } } }), false);
    }

    #[test]
    #[should_panic(expected = "#/properties/a/minimum: beside $ref")]
    fn a_keyword_beside_a_reference_is_refused_at_load() {
        Schema::new(
            json!({ "properties": { "a": { "$ref": "#/$defs/b", "minimum": 1 } }, "$defs": { "b": {} } }),
            false,
        );
    }

    #[test]
    #[should_panic(expected = "#/items/$ref: unresolved")]
    fn a_reference_that_does_not_resolve_is_refused_at_load() {
        Schema::new(json!({ "items": { "$ref": "#/definitions/none" } }), false);
    }
}
