//! What users declare: entities, feature views, feature services, and the feature references
//! that name their columns.
//!
//! Definitions are plain data, serialized as YAML (what users write) and JSON (what the
//! registry stores). Checks that need nothing but the definitions themselves live in
//! `definitions/validation.rs` ([`Definitions::validate`]); checks against a source's real
//! schema live in the registry.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
pub use trainstore_core::SourceSpec;
use trainstore_core::{DatasetName, Error, Result};

use crate::derived::Expr;

mod validation;
mod values;

pub use values::{Field, Ttl, ValueType};

/// The name of an entity, feature view or feature service: a validated identifier (letters,
/// digits, `_`, `-`, `.`), so it can never contain the `:` of a feature reference.
pub type Name = DatasetName;

/// An entity: what feature rows are about, identified by one or more join keys
/// (`uuid` + `nodeId` for a device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: Name,
    pub join_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Entity {
    pub fn new<S: Into<String>>(name: Name, join_keys: impl IntoIterator<Item = S>) -> Self {
        Entity {
            name,
            join_keys: join_keys.into_iter().map(Into::into).collect(),
            description: String::new(),
        }
    }
}

/// A group of features from one source, keyed by entities, valid for `ttl` after their
/// event time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    pub name: Name,
    /// Names of the entities whose join keys the view's rows carry.
    pub entities: Vec<Name>,
    pub source: SourceSpec,
    /// The feature columns; when empty at apply time, every source column that is not a join
    /// key or timestamp.
    #[serde(default)]
    pub schema: Vec<Field>,
    #[serde(default)]
    pub ttl: Ttl,
    /// The source column with each row's event time.
    #[serde(default = "default_timestamp_field")]
    pub timestamp_field: String,
    /// A source column breaking ties between rows with equal event times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    #[serde(default = "yes")]
    pub online: bool,
    /// How many of each entity's latest rows the online store keeps: 1 serves the latest
    /// values; more also serve a model's window of recent rows (real-time forecasts).
    #[serde(default = "one_row", skip_serializing_if = "is_one_row")]
    pub online_rows: usize,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn default_timestamp_field() -> String {
    "time".into()
}

fn yes() -> bool {
    true
}

fn one_row() -> usize {
    1
}

fn is_one_row(rows: &usize) -> bool {
    *rows == 1
}

/// The most rows per entity a view keeps online.
pub const MAX_ONLINE_ROWS: usize = 4096;

impl FeatureView {
    /// A view with the default timestamp field (`time`), no TTL, online, no tags.
    pub fn new(name: Name, entities: Vec<Name>, source: SourceSpec, schema: Vec<Field>) -> Self {
        FeatureView {
            name,
            entities,
            source,
            schema,
            ttl: Ttl::UNLIMITED,
            timestamp_field: default_timestamp_field(),
            created_timestamp_field: None,
            online: true,
            online_rows: 1,
            tags: BTreeMap::new(),
            description: String::new(),
        }
    }

    /// This view, keeping each entity's latest `rows` rows online.
    pub fn with_online_rows(mut self, rows: usize) -> Self {
        self.online_rows = rows;
        self
    }

    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_timestamp_field(mut self, field: impl Into<String>) -> Self {
        self.timestamp_field = field.into();
        self
    }

    pub fn with_created_timestamp_field(mut self, field: impl Into<String>) -> Self {
        self.created_timestamp_field = Some(field.into());
        self
    }

    /// The declared field named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.schema.iter().find(|f| f.name == name)
    }
}

/// A named set of feature references, e.g. what one model consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    pub name: Name,
    pub features: Vec<FeatureRef>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Features computed at retrieval time from other views' features (see [`crate::derived`]).
/// Referenced like any view's features, `name:feature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandFeatureView {
    pub name: Name,
    pub features: Vec<DerivedFeature>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One derived column: its name and the expression that computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedFeature {
    pub name: String,
    pub expression: Expr,
}

impl OnDemandFeatureView {
    /// A view of `features`, each `(name, expression)`; expressions are parsed here.
    pub fn new<'a>(
        name: Name,
        features: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        Ok(OnDemandFeatureView {
            name,
            features: features
                .into_iter()
                .map(|(n, e)| {
                    Ok(DerivedFeature {
                        name: n.to_owned(),
                        expression: e.parse()?,
                    })
                })
                .collect::<Result<_>>()?,
            description: String::new(),
        })
    }

    pub fn feature(&self, name: &str) -> Option<&DerivedFeature> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// `view:feature`, naming one feature column of one view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureRef {
    pub view: Name,
    pub feature: String,
}

impl FeatureRef {
    pub fn new(view: Name, feature: impl Into<String>) -> Self {
        FeatureRef {
            view,
            feature: feature.into(),
        }
    }
}

impl FromStr for FeatureRef {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let (view, feature) = text.split_once(':').ok_or_else(|| {
            Error::invalid(
                "feature reference",
                text,
                "expected view:feature, e.g. basic_features:meanLf",
            )
        })?;
        if feature.is_empty() {
            return Err(Error::invalid(
                "feature reference",
                text,
                "the feature name after ':' is empty",
            ));
        }
        Ok(FeatureRef {
            view: Name::new(view)
                .map_err(|e| Error::invalid("feature reference", text, e.to_string()))?,
            feature: feature.to_owned(),
        })
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

impl Serialize for FeatureRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FeatureRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One definition of any kind, as handed to `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    Entity(Entity),
    FeatureView(Box<FeatureView>),
    OnDemandFeatureView(OnDemandFeatureView),
    FeatureService(FeatureService),
}

impl Definition {
    pub fn kind(&self) -> &'static str {
        match self {
            Definition::Entity(_) => "entity",
            Definition::FeatureView(_) => "feature view",
            Definition::OnDemandFeatureView(_) => "on-demand feature view",
            Definition::FeatureService(_) => "feature service",
        }
    }

    pub fn name(&self) -> &Name {
        match self {
            Definition::Entity(e) => &e.name,
            Definition::FeatureView(v) => &v.name,
            Definition::OnDemandFeatureView(v) => &v.name,
            Definition::FeatureService(s) => &s.name,
        }
    }
}

impl From<Entity> for Definition {
    fn from(e: Entity) -> Self {
        Definition::Entity(e)
    }
}
impl From<FeatureView> for Definition {
    fn from(v: FeatureView) -> Self {
        Definition::FeatureView(Box::new(v))
    }
}
impl From<FeatureService> for Definition {
    fn from(s: FeatureService) -> Self {
        Definition::FeatureService(s)
    }
}

/// A set of definitions: a YAML file's content, or the registry's state.
///
/// ```
/// use trainstore_featurestore::Definitions;
/// let defs = Definitions::from_yaml(r#"
/// entities:
///   - {name: device, join_keys: [uuid, nodeId]}
/// feature_views:
///   - name: basic_features
///     entities: [device]
///     ttl: 30d
///     source: {type: files, location: ./snapshots}
///     schema:
///       - {name: meanLf, type: float64}
/// "#).unwrap();
/// assert_eq!(defs.feature_views[0].ttl.to_string(), "30d");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_demand_feature_views: Vec<OnDemandFeatureView>,
    #[serde(default)]
    pub feature_services: Vec<FeatureService>,
}

impl Definitions {
    /// Parses and validates a YAML document of definitions.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let defs = Definitions::parse(text)?;
        defs.validate()?;
        Ok(defs)
    }

    /// Parses YAML (or JSON) definitions that may refer to ones already applied: names must
    /// be unique, and the rest is checked by `apply` on the merged result.
    pub fn parse(text: &str) -> Result<Self> {
        let defs: Definitions = trainstore_core::yaml::parse(text).map_err(|e| {
            // serde's words for a source that is not a mapping, in the reader's.
            let e = e.replace(
                "expected internally tagged enum SourceSpec",
                "expected a source: a mapping with `type: files` and `location` (with \
                 `snapshots:` for raw snapshot files) or `type: doris`, `url` and `table` \
                 (docs/definitions.md, \"Sources\")",
            );
            Error::invalid("feature definitions", "YAML", e)
        })?;
        defs.check_unique()?;
        Ok(defs)
    }

    /// The definitions as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("definitions serialize")
    }

    /// Every definition, entities first.
    pub fn into_list(self) -> Vec<Definition> {
        let mut all: Vec<Definition> = Vec::new();
        all.extend(self.entities.into_iter().map(Definition::from));
        all.extend(self.feature_views.into_iter().map(Definition::from));
        all.extend(
            self.on_demand_feature_views
                .into_iter()
                .map(Definition::OnDemandFeatureView),
        );
        all.extend(self.feature_services.into_iter().map(Definition::from));
        all
    }

    /// Collects a list of definitions, failing on the same name given twice for one kind.
    pub fn from_list(list: impl IntoIterator<Item = Definition>) -> Result<Self> {
        let mut defs = Definitions::default();
        for d in list {
            match d {
                Definition::Entity(e) => defs.entities.push(e),
                Definition::FeatureView(v) => defs.feature_views.push(*v),
                Definition::OnDemandFeatureView(v) => defs.on_demand_feature_views.push(v),
                Definition::FeatureService(s) => defs.feature_services.push(s),
            }
        }
        defs.check_unique()?;
        Ok(defs)
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name.as_str() == name)
    }

    pub fn feature_view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name.as_str() == name)
    }

    pub fn on_demand_feature_view(&self, name: &str) -> Option<&OnDemandFeatureView> {
        self.on_demand_feature_views
            .iter()
            .find(|v| v.name.as_str() == name)
    }

    pub fn feature_service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services
            .iter()
            .find(|s| s.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_round_trip_through_text() {
        for t in [
            "string",
            "int32",
            "int64",
            "float32",
            "float64",
            "bool",
            "timestamp",
            "list<float32>",
            "list<int64>",
        ] {
            assert_eq!(t.parse::<ValueType>().unwrap().to_string(), t);
        }
        assert!("list<string>".parse::<ValueType>().is_err());
        assert!("decimal".parse::<ValueType>().is_err());
    }

    #[test]
    fn ttl_text_is_exact() {
        assert_eq!("30d".parse::<Ttl>().unwrap(), Ttl::days(30));
        assert_eq!("0".parse::<Ttl>().unwrap().limit(), None);
        assert_eq!("1500ms".parse::<Ttl>().unwrap().to_string(), "1500ms");
        assert_eq!("7us".parse::<Ttl>().unwrap().to_string(), "7us");
        for bad in ["", "30", "d", "-1d", "1w", "99999999999999999999d"] {
            assert!(bad.parse::<Ttl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn feature_refs_need_a_view_and_a_feature() {
        let r: FeatureRef = "basic_features:meanLf".parse().unwrap();
        assert_eq!(r.view.as_str(), "basic_features");
        assert_eq!(r.feature, "meanLf");
        for bad in ["meanLf", "basic_features:", ":meanLf", "bad view:x"] {
            assert!(bad.parse::<FeatureRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_doris_passwords_are_refused() {
        let yaml = |url: &str| {
            format!(
                "entities: [{{name: d, join_keys: [uuid]}}]\nfeature_views:\n  - name: v\n    entities: [d]\n    source: {{type: doris, url: '{url}', table: t}}\n"
            )
        };
        let err = Definitions::from_yaml(&yaml("mysql://root:hunter2@h:9030/db")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        Definitions::from_yaml(&yaml("mysql://root:${PW}@h:9030/db")).unwrap();
        Definitions::from_yaml(&yaml("mysql://root@h:9030/db")).unwrap();
    }

    #[test]
    fn views_must_name_known_entities_and_distinct_fields() {
        let base = "entities: [{name: d, join_keys: [uuid]}]\nfeature_views:\n  - name: v\n    source: {type: files, location: x}\n";
        let unknown = format!("{base}    entities: [nope]\n");
        assert!(
            Definitions::from_yaml(&unknown)
                .unwrap_err()
                .to_string()
                .contains("unknown entity")
        );
        let twice = format!(
            "{base}    entities: [d]\n    schema: [{{name: a, type: float64}}, {{name: a, type: int64}}]\n"
        );
        assert!(
            Definitions::from_yaml(&twice)
                .unwrap_err()
                .to_string()
                .contains("declared twice")
        );
        let key = format!("{base}    entities: [d]\n    schema: [{{name: uuid, type: string}}]\n");
        assert!(Definitions::from_yaml(&key).is_err());
    }
}
