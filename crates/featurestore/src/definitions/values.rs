//! The vocabulary of a view's schema: value types (as Arrow types and as written in
//! definitions), fields, and time-to-live durations such as `30d`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};
use trainstore_core::{Error, Result};

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
