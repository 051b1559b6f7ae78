//! What users declare: entities, feature views, feature services, and the feature references
//! that name their columns.
//!
//! Definitions are plain data, serialized as YAML (what users write) and JSON (what the
//! registry stores). Checks that need nothing but the definitions themselves live here
//! ([`Definitions::validate`]); checks against a source's real schema live in the registry.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};
pub use trainstore_core::SourceSpec;
use trainstore_core::{DatasetName, Error, Result};

use crate::derived::Expr;

/// The name of an entity, feature view or feature service: a validated identifier (letters,
/// digits, `_`, `-`, `.`), so it can never contain the `:` of a feature reference.
pub type Name = DatasetName;

/// The type of a feature column, independent of Arrow's many physical spellings.
///
/// Written in YAML as `string`, `int32`, `int64`, `float32`, `float64`, `bool`, `timestamp`,
/// or `list<…>` of a numeric type (`list<float32>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueType {
    String,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    /// Any timestamp unit, UTC or naive.
    Timestamp,
    /// A list of values; the item type is numeric.
    List(Box<ValueType>),
}

impl ValueType {
    /// The Arrow type this maps to when a column has to be made from nothing (all nulls).
    pub fn arrow_type(&self) -> DataType {
        match self {
            ValueType::String => DataType::Utf8,
            ValueType::Int32 => DataType::Int32,
            ValueType::Int64 => DataType::Int64,
            ValueType::Float32 => DataType::Float32,
            ValueType::Float64 => DataType::Float64,
            ValueType::Bool => DataType::Boolean,
            ValueType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ValueType::List(item) => DataType::new_list(item.arrow_type(), true),
        }
    }

    /// The value type of an Arrow column, if it is one a feature can have.
    pub fn of_arrow(dt: &DataType) -> Option<ValueType> {
        Some(match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ValueType::String,
            DataType::Int32 => ValueType::Int32,
            DataType::Int64 => ValueType::Int64,
            DataType::Float32 => ValueType::Float32,
            DataType::Float64 => ValueType::Float64,
            DataType::Boolean => ValueType::Bool,
            DataType::Timestamp(_, _) => ValueType::Timestamp,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                let item = ValueType::of_arrow(f.data_type())?;
                if !item.is_numeric() {
                    return None;
                }
                ValueType::List(Box::new(item))
            }
            _ => return None,
        })
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self,
            ValueType::Int32 | ValueType::Int64 | ValueType::Float32 | ValueType::Float64
        )
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::String => f.write_str("string"),
            ValueType::Int32 => f.write_str("int32"),
            ValueType::Int64 => f.write_str("int64"),
            ValueType::Float32 => f.write_str("float32"),
            ValueType::Float64 => f.write_str("float64"),
            ValueType::Bool => f.write_str("bool"),
            ValueType::Timestamp => f.write_str("timestamp"),
            ValueType::List(item) => write!(f, "list<{item}>"),
        }
    }
}

impl FromStr for ValueType {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        if let Some(inner) = t.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
            let item: ValueType = inner.parse()?;
            if !item.is_numeric() {
                return Err(Error::invalid(
                    "value type",
                    text,
                    "list items must be int32, int64, float32 or float64",
                ));
            }
            return Ok(ValueType::List(Box::new(item)));
        }
        Ok(match t.as_str() {
            "string" | "str" | "utf8" => ValueType::String,
            "int32" => ValueType::Int32,
            "int64" | "int" => ValueType::Int64,
            "float32" | "float" => ValueType::Float32,
            "float64" | "double" => ValueType::Float64,
            "bool" | "boolean" => ValueType::Bool,
            "timestamp" => ValueType::Timestamp,
            _ => {
                return Err(Error::invalid(
                    "value type",
                    text,
                    "expected string, int32, int64, float32, float64, bool, timestamp or list<…>",
                ));
            }
        })
    }
}

impl Serialize for ValueType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ValueType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A typed column of a feature view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: ValueType,
}

impl Field {
    pub fn new(name: impl Into<String>, dtype: ValueType) -> Self {
        Field {
            name: name.into(),
            dtype,
        }
    }
}

/// How far back a feature row stays valid for an entity row: `ttl == 0` means forever
/// (rule 3.3 of `docs/point-in-time.md`).
///
/// Written as an integer with a unit: `30d`, `12h`, `15m`, `45s`, `250ms`, `10us`; `0` alone
/// means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ttl(Duration);

impl Ttl {
    /// No limit.
    pub const UNLIMITED: Ttl = Ttl(Duration::ZERO);

    pub fn new(d: Duration) -> Self {
        Ttl(d)
    }

    pub fn days(n: u64) -> Self {
        Ttl(Duration::from_secs(n * 86_400))
    }

    /// The limit, or `None` when there is none.
    pub fn limit(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

const TTL_UNITS: [(&str, u128); 6] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
];

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return f.write_str("0");
        }
        for (unit, size) in TTL_UNITS {
            if ns.is_multiple_of(size) {
                return write!(f, "{}{unit}", ns / size);
            }
        }
        write!(f, "{ns}ns")
    }
}

impl FromStr for Ttl {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let t = text.trim();
        if t == "0" {
            return Ok(Ttl::UNLIMITED);
        }
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let bad = || {
            Error::invalid(
                "ttl",
                text,
                "expected an integer and a unit (d, h, m, s, ms, us, ns), e.g. 30d; 0 means no limit",
            )
        };
        let n: u128 = number.parse().map_err(|_| bad())?;
        let size = match unit {
            "ns" => 1,
            u => TTL_UNITS
                .iter()
                .find(|(name, _)| *name == u)
                .map(|(_, s)| *s)
                .ok_or_else(bad)?,
        };
        let ns = n.checked_mul(size).ok_or_else(bad)?;
        let ns = u64::try_from(ns).map_err(|_| bad())?;
        Ok(Ttl(Duration::from_nanos(ns)))
    }
}

impl Serialize for Ttl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Seconds(s) => Ok(Ttl(Duration::from_secs(s))),
        }
    }
}

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
            tags: BTreeMap::new(),
            description: String::new(),
        }
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
        let defs: Definitions = trainstore_core::yaml::parse(text)
            .map_err(|e| Error::invalid("feature definitions", "YAML", e))?;
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

    /// The join keys of a view: its entities' keys in declaration order.
    pub fn join_keys(&self, view: &FeatureView) -> Result<Vec<String>> {
        let mut keys: Vec<String> = Vec::new();
        for name in &view.entities {
            let entity = self.entity(name.as_str()).ok_or_else(|| {
                Error::invalid(
                    "feature view",
                    view.name.as_str(),
                    format!("unknown entity \"{name}\" (apply it with the view, or first)"),
                )
            })?;
            for k in &entity.join_keys {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        Ok(keys)
    }

    fn check_unique(&self) -> Result<()> {
        fn unique<'a>(kind: &'static str, names: impl Iterator<Item = &'a Name>) -> Result<()> {
            let mut seen = HashSet::new();
            for n in names {
                if !seen.insert(n) {
                    return Err(Error::invalid(
                        kind,
                        n.as_str(),
                        "defined twice in the same set of definitions",
                    ));
                }
            }
            Ok(())
        }
        unique("entity", self.entities.iter().map(|e| &e.name))?;
        // References name views of both kinds alike, so they share one namespace.
        unique(
            "feature view",
            self.feature_views
                .iter()
                .map(|v| &v.name)
                .chain(self.on_demand_feature_views.iter().map(|v| &v.name)),
        )?;
        unique(
            "feature service",
            self.feature_services.iter().map(|s| &s.name),
        )
    }

    /// Checks everything that needs only the definitions: unique names, known entities,
    /// well-formed views and services whose references resolve.
    pub fn validate(&self) -> Result<()> {
        self.check_unique()?;
        for e in &self.entities {
            if e.join_keys.is_empty() {
                return Err(Error::invalid(
                    "entity",
                    e.name.as_str(),
                    "needs at least one join key",
                ));
            }
            if let Some(k) = e.join_keys.iter().find(|k| k.is_empty()) {
                return Err(Error::invalid(
                    "entity",
                    e.name.as_str(),
                    format!("empty join key {k:?}"),
                ));
            }
            if let Some(k) = e
                .join_keys
                .iter()
                .enumerate()
                .find_map(|(i, k)| e.join_keys[..i].contains(k).then_some(k))
            {
                return Err(Error::invalid(
                    "entity",
                    e.name.as_str(),
                    format!("join key {k:?} is listed twice"),
                ));
            }
        }
        for v in &self.feature_views {
            self.validate_view(v)?;
        }
        for v in &self.on_demand_feature_views {
            self.validate_on_demand(v)?;
        }
        for s in &self.feature_services {
            if s.features.is_empty() {
                return Err(Error::invalid(
                    "feature service",
                    s.name.as_str(),
                    "names no features",
                ));
            }
            for r in &s.features {
                self.check_ref(r).map_err(|e| {
                    Error::invalid("feature service", s.name.as_str(), e.to_string())
                })?;
            }
        }
        Ok(())
    }

    fn validate_view(&self, v: &FeatureView) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("feature view", v.name.as_str(), reason));
        if v.entities.is_empty() {
            return bad("needs at least one entity".into());
        }
        let longest = trainstore_core::ids::MAX_NAME_LEN - crate::offline::ITEM_PREFIX.len();
        if v.name.as_str().len() > longest {
            return bad(format!(
                "the name is {} characters; a feature view's name has at most {longest}, so \
                 that its offline store ({}<name>) can be named too",
                v.name.as_str().len(),
                crate::offline::ITEM_PREFIX
            ));
        }
        let keys = self.join_keys(v)?;
        if v.timestamp_field.is_empty() {
            return bad("the timestamp field is empty".into());
        }
        let mut seen = HashSet::new();
        for f in &v.schema {
            if f.name.is_empty() {
                return bad("a field has an empty name".into());
            }
            if !seen.insert(f.name.as_str()) {
                return bad(format!("field {:?} is declared twice", f.name));
            }
            if keys.contains(&f.name)
                || f.name == v.timestamp_field
                || v.created_timestamp_field.as_deref() == Some(f.name.as_str())
            {
                return bad(format!(
                    "field {:?} is a join key or timestamp, not a feature",
                    f.name
                ));
            }
        }
        v.source.validate(v.name.as_str())
    }

    fn validate_on_demand(&self, v: &OnDemandFeatureView) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::invalid(
                "on-demand feature view",
                v.name.as_str(),
                reason,
            ))
        };
        if v.features.is_empty() {
            return bad("derives no features".into());
        }
        let mut seen = HashSet::new();
        for f in &v.features {
            if f.name.is_empty() || !seen.insert(f.name.as_str()) {
                return bad(format!("feature name {:?} is empty or repeated", f.name));
            }
            if let Err(e) = f
                .expression
                .check(&|r| self.resolve(r).map(|(_, field)| field.dtype.clone()))
            {
                return bad(format!("feature {}: {e}", f.name));
            }
        }
        Ok(())
    }

    /// Checks that a reference names a feature of a view of either kind.
    pub fn check_ref(&self, r: &FeatureRef) -> Result<()> {
        match self.on_demand_feature_view(r.view.as_str()) {
            Some(v) if v.feature(&r.feature).is_none() => Err(Error::NotFound {
                what: "feature",
                name: format!(
                    "{r} (the on-demand view has: {})",
                    v.features
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            Some(_) => Ok(()),
            None => self.resolve(r).map(|_| ()),
        }
    }

    /// The view and field a reference names.
    pub fn resolve(&self, r: &FeatureRef) -> Result<(&FeatureView, &Field)> {
        let view = self
            .feature_view(r.view.as_str())
            .ok_or_else(|| Error::NotFound {
                what: "feature view",
                name: r.view.to_string(),
            })?;
        let field = view.field(&r.feature).ok_or_else(|| Error::NotFound {
            what: "feature",
            name: format!(
                "{r} (the view has: {})",
                view.schema
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        Ok((view, field))
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
