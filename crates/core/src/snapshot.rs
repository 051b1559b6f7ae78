//! Snapshot schemas: which fields a feature snapshot has, of what kind, and where they are read.
//!
//! The design document's layout is the default: a `time` column and a `feature` column holding
//! a JSON document with the keys, the tag, numeric features, arrays as comma-separated strings
//! and an `extend` JSON object. Flat tables (one column per field) use the same schema with no
//! document column. Either way, a field is read from the input column of its name when there
//! is one, otherwise from the document.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// What a feature field holds, and so how it is parsed and typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// A number (JSON number or numeric text) → `Float64`.
    Number,
    /// Numbers as `"1.5,2"`, `"[1.5, 2]"` or a JSON array → `List<Float32>`.
    Array,
    /// Any JSON value (or JSON text in a string) → its compact JSON text, `Utf8`.
    Json,
    /// Text → `Utf8`.
    Text,
    /// `true`/`false` (also `1`/`0`, `"true"`/`"false"`) → `Boolean`.
    Bool,
}

impl FeatureKind {
    fn data_type(self) -> DataType {
        match self {
            FeatureKind::Number => DataType::Float64,
            FeatureKind::Array => {
                DataType::List(Arc::new(Field::new("item", DataType::Float32, false)))
            }
            FeatureKind::Json | FeatureKind::Text => DataType::Utf8,
            FeatureKind::Bool => DataType::Boolean,
        }
    }
}

/// One feature field of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureField {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FeatureKind,
}

/// The shape of feature snapshots and how to read them into typed Arrow.
///
/// ```
/// use trainstore_core::{FeatureKind, SnapshotSchema};
/// let doc = SnapshotSchema::design_doc();
/// assert_eq!(doc.document_column(), Some("feature"));
/// let flat = SnapshotSchema::builder()
///     .flat()
///     .keys(["device"])
///     .time("ts")
///     .feature("rms", FeatureKind::Number)
///     .build()
///     .unwrap();
/// assert_eq!(flat.output_schema().field(1).name(), "ts");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "SchemaSpec", into = "SchemaSpec")]
pub struct SnapshotSchema {
    spec: SchemaSpec,
    output: SchemaRef,
}

/// The serialized form (YAML) of a [`SnapshotSchema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaSpec {
    /// The column holding a JSON document of fields; `None` for flat tables.
    #[serde(default)]
    document_column: Option<String>,
    keys: Vec<String>,
    time: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    features: Vec<FeatureField>,
    /// Where document keys not named in the schema are kept, as one JSON object.
    #[serde(default = "default_unknown")]
    unknown_column: String,
}

fn default_unknown() -> String {
    "_unknown".into()
}

impl TryFrom<SchemaSpec> for SnapshotSchema {
    type Error = Error;
    fn try_from(spec: SchemaSpec) -> Result<Self> {
        SnapshotSchema::new(spec)
    }
}

impl From<SnapshotSchema> for SchemaSpec {
    fn from(s: SnapshotSchema) -> Self {
        s.spec
    }
}

impl SnapshotSchema {
    fn new(spec: SchemaSpec) -> Result<Self> {
        let bad = |value: &str, reason: &str| Error::invalid("snapshot schema", value, reason);
        if spec.keys.is_empty() {
            return Err(bad("keys", "at least one key field is required"));
        }
        let mut names = HashSet::new();
        let all = spec
            .keys
            .iter()
            .chain([&spec.time])
            .chain(&spec.tag)
            .chain(spec.features.iter().map(|f| &f.name))
            .chain(
                spec.document_column
                    .is_some()
                    .then_some(&spec.unknown_column),
            );
        for name in all {
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(bad(name, "field names must be non-empty and printable"));
            }
            if !names.insert(name.as_str()) {
                return Err(bad(name, "field named twice"));
            }
        }
        if let Some(doc) = &spec.document_column
            && names.contains(doc.as_str())
        {
            return Err(bad(doc, "the document column cannot also be a field"));
        }
        let mut fields: Vec<Field> = spec
            .keys
            .iter()
            .map(|k| Field::new(k, DataType::Utf8, true))
            .collect();
        fields.push(Field::new(
            &spec.time,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ));
        if let Some(tag) = &spec.tag {
            fields.push(Field::new(tag, DataType::Boolean, true));
        }
        for f in &spec.features {
            fields.push(Field::new(&f.name, f.kind.data_type(), true));
        }
        if spec.document_column.is_some() {
            fields.push(Field::new(&spec.unknown_column, DataType::Utf8, true));
        }
        let output = Arc::new(Schema::new(fields));
        Ok(SnapshotSchema { spec, output })
    }

    /// The design document's layout: `time` and `feature` (JSON) columns; keys `uuid`,
    /// `nodeId`; tag `is_tag`; numbers `meanLf`, `std`, `mean`, `meanHf`, `temperature`;
    /// arrays `peakPowers`, `peakFreqs`, `bandSpectrum`, `feature1`..`feature4`; `extend` JSON.
    pub fn design_doc() -> Self {
        use FeatureKind::*;
        let features = [
            ("meanLf", Number),
            ("std", Number),
            ("mean", Number),
            ("meanHf", Number),
            ("temperature", Number),
            ("peakPowers", Array),
            ("peakFreqs", Array),
            ("bandSpectrum", Array),
            ("feature1", Array),
            ("feature2", Array),
            ("feature3", Array),
            ("feature4", Array),
            ("extend", Json),
        ];
        let mut b = SnapshotSchema::builder()
            .document_column("feature")
            .keys(["uuid", "nodeId"])
            .time("time")
            .tag("is_tag");
        for (name, kind) in features {
            b = b.feature(name, kind);
        }
        b.build().expect("the design document's schema is valid")
    }

    /// Starts a schema (document layout with column `feature`, unknown keys in `_unknown`).
    pub fn builder() -> SnapshotSchemaBuilder {
        SnapshotSchemaBuilder(SchemaSpec {
            document_column: Some("feature".into()),
            keys: Vec::new(),
            time: "time".into(),
            tag: None,
            features: Vec::new(),
            unknown_column: default_unknown(),
        })
    }

    /// Reads a schema from YAML, e.g.
    ///
    /// ```yaml
    /// document_column: feature     # omit for flat tables
    /// keys: [uuid, nodeId]
    /// time: time
    /// tag: is_tag
    /// features:
    ///   - {name: meanLf, type: number}
    ///   - {name: peakPowers, type: array}
    ///   - {name: extend, type: json}
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self> {
        crate::yaml::parse(text).map_err(|e| Error::invalid("snapshot schema", "YAML", e))
    }

    /// The schema as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("schemas serialize")
    }

    /// The column holding the JSON document, if any.
    pub fn document_column(&self) -> Option<&str> {
        self.spec.document_column.as_deref()
    }

    /// The entity key fields.
    pub fn keys(&self) -> &[String] {
        &self.spec.keys
    }

    /// The event-time field (epoch milliseconds or ISO-8601 in the input).
    pub fn time(&self) -> &str {
        &self.spec.time
    }

    /// The tag field, if any.
    pub fn tag(&self) -> Option<&str> {
        self.spec.tag.as_deref()
    }

    /// The feature fields, in output order.
    pub fn features(&self) -> &[FeatureField] {
        &self.spec.features
    }

    /// The column keeping unknown document keys (present with a document column only).
    pub fn unknown_column(&self) -> Option<&str> {
        self.spec
            .document_column
            .as_ref()
            .map(|_| self.spec.unknown_column.as_str())
    }

    /// The typed Arrow schema of parsed snapshots: keys, time, tag, features, unknown.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }
}

/// Builds a [`SnapshotSchema`]; see [`SnapshotSchema::builder`].
#[derive(Debug, Clone)]
pub struct SnapshotSchemaBuilder(SchemaSpec);

impl SnapshotSchemaBuilder {
    /// Fields live in a JSON document in `column`.
    pub fn document_column(mut self, column: &str) -> Self {
        self.0.document_column = Some(column.into());
        self
    }

    /// One input column per field (no document).
    pub fn flat(mut self) -> Self {
        self.0.document_column = None;
        self
    }

    /// The entity key fields, in order.
    pub fn keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.0.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The event-time field.
    pub fn time(mut self, field: &str) -> Self {
        self.0.time = field.into();
        self
    }

    /// The boolean tag field.
    pub fn tag(mut self, field: &str) -> Self {
        self.0.tag = Some(field.into());
        self
    }

    /// Adds a feature field.
    pub fn feature(mut self, name: &str, kind: FeatureKind) -> Self {
        self.0.features.push(FeatureField {
            name: name.into(),
            kind,
        });
        self
    }

    /// Where unknown document keys are kept (default `_unknown`).
    pub fn unknown_column(mut self, column: &str) -> Self {
        self.0.unknown_column = column.into();
        self
    }

    /// Validates and builds the schema.
    pub fn build(self) -> Result<SnapshotSchema> {
        SnapshotSchema::new(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_doc_schema_types_every_field() {
        let s = SnapshotSchema::design_doc().output_schema();
        let ty = |n: &str| s.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(ty("uuid"), DataType::Utf8);
        assert_eq!(
            ty("time"),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(ty("is_tag"), DataType::Boolean);
        assert_eq!(ty("meanLf"), DataType::Float64);
        assert!(
            matches!(ty("peakPowers"), DataType::List(f) if f.data_type() == &DataType::Float32)
        );
        assert_eq!(ty("extend"), DataType::Utf8);
        assert_eq!(ty("_unknown"), DataType::Utf8);
        assert_eq!(s.fields().len(), 2 + 1 + 1 + 13 + 1);
    }

    #[test]
    fn yaml_round_trips_and_is_validated() {
        let doc = SnapshotSchema::design_doc();
        assert_eq!(SnapshotSchema::from_yaml(&doc.to_yaml()).unwrap(), doc);
        let flat = "keys: [device]\ntime: ts\nfeatures:\n  - {name: rms, type: number}\n";
        let flat = SnapshotSchema::from_yaml(flat).unwrap();
        assert_eq!(flat.document_column(), None);
        assert_eq!(flat.unknown_column(), None);
        for bad in [
            "keys: []\ntime: t\n",
            "keys: [a]\ntime: a\n",
            "keys: [a]\ntime: t\nfeatures: [{name: x, type: vector}]\n",
            "keys: [a]\ntime: t\nsurprise: 1\n",
            "document_column: a\nkeys: [a]\ntime: t\n",
        ] {
            assert!(SnapshotSchema::from_yaml(bad).is_err(), "{bad}");
        }
    }
}
