//! The `DataSource` trait: anything that streams Arrow record batches for a scan request.
//!
//! Doris (MySQL protocol or Flight SQL), snapshot files and in-memory tables all implement it,
//! so the feature store and the training-set builder never care where rows come from. A
//! request carries a time range, typed filters, a projection and a limit; sources push as much
//! of it down as they can, and [`MemorySource`] is the reference for what the result must be.

use std::fmt;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar as ArrowScalar};
use arrow::array::{
    BooleanArray as Bools, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::compute::kernels::{boolean, cmp};
use arrow::compute::{cast, filter_record_batch, is_not_null, is_null};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::{TimeRange, Timestamp};

/// The first column name `schema` holds twice, if any: lookups by name would silently read
/// one of the two, so readers refuse such data.
pub fn repeated_column(schema: &Schema) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .find(|name| !seen.insert(*name))
}

/// A stream of record batches that can be sent across threads.
pub type RecordBatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// Shared handle to a data source.
pub type DataSourceRef = Arc<dyn DataSource>;

/// A table of snapshots that can be scanned as Arrow batches.
///
/// Implementers must return, for a given [`ScanRequest`], exactly the rows whose time column
/// lies in the request's range and that pass every filter, with the requested columns in the
/// requested order, and no more than `limit` rows. Order of rows is not specified.
#[async_trait]
pub trait DataSource: Send + Sync + fmt::Debug {
    /// A short description for logs and errors; never includes credentials.
    fn describe(&self) -> String;

    /// The schema of an unprojected scan.
    async fn schema(&self) -> Result<SchemaRef>;

    /// Streams the rows matching `request`.
    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream>;

    /// For a source that parses snapshots, what its parser counted over the most recent
    /// scan (complete once that scan's stream has ended); `None` for a source whose rows
    /// arrive typed.
    fn parse_counts(&self) -> Option<ParseCounts> {
        None
    }

    /// The source's own point-in-time join, for a source that can pick each entity window's
    /// latest row itself (a database); `None` for one that can only be scanned.
    fn as_of(&self) -> Option<&dyn AsOfScan> {
        None
    }

    /// Scans by row position, for a source whose rows keep their places between scans
    /// (files); `None` for one whose rows come in no fixed order (a database).
    fn positioned(&self) -> Option<&dyn PositionedScan> {
        None
    }
}

/// The name of the column [`PositionedScan::scan_with_positions`] adds.
pub const POSITION_COLUMN: &str = "__position";

/// A source whose rows have fixed positions, so that a wide read can skip every row a narrow
/// first scan did not pick: the scanned point-in-time join reads keys and times, finds the
/// winners, then decodes the features of the winners' rows alone.
#[async_trait]
pub trait PositionedScan: Send + Sync {
    /// The rows of [`DataSource::scan`], in the source's order, with one more column at the
    /// end, [`POSITION_COLUMN`] (`UInt64`): each row's position in the source.
    async fn scan_with_positions(&self, request: &ScanRequest) -> Result<RecordBatchStream>;

    /// Of the rows `request` selects, those at `positions` (ascending, distinct; a position
    /// past the end selects nothing), in the source's order, as [`DataSource::scan`] returns
    /// them.
    async fn scan_positions(
        &self,
        request: &ScanRequest,
        positions: &[u64],
    ) -> Result<RecordBatchStream>;
}

/// A source that answers a point-in-time join itself: of the rows a scan would return, only
/// each entity window's latest one. The feature store's `pushdown` engine uses it.
#[async_trait]
pub trait AsOfScan: Send + Sync {
    /// Scans, of the rows `request` selects, only each window's latest one: the row with the
    /// greatest time, then the greatest `tie_break` column (e.g. a created timestamp).
    /// `key_fields` are the fields the windows' keys match. The output is that of
    /// [`DataSource::scan`], in no particular order; a row latest in several windows may come
    /// back once per window.
    async fn scan_latest_in_windows(
        &self,
        request: &ScanRequest,
        key_fields: &[String],
        tie_break: Option<&str>,
        windows: &AsOfWindows,
    ) -> Result<RecordBatchStream>;
}

/// The windows of a point-in-time join. Window `i` asks for the rows whose keys equal
/// `keys[k][i]` (for every key `k`) and whose time lies in `[lower[i], upper[i]]`, epoch
/// milliseconds, both included; a null lower bound means no lower bound.
#[derive(Debug, Clone)]
pub struct AsOfWindows {
    /// One column per key field, `Utf8` or `Int64`; a window with a null key matches nothing.
    pub keys: Vec<ArrayRef>,
    pub lower: Int64Array,
    pub upper: Int64Array,
}

impl AsOfWindows {
    /// Checks that there is one key column per key field, of a supported type, and that
    /// every column has one value per window and every window an upper bound.
    pub fn check(&self, key_fields: &[String]) -> Result<()> {
        let n = self.upper.len();
        if self.keys.len() != key_fields.len() || self.keys.is_empty() {
            return Err(Error::invalid(
                "as-of windows",
                format!("{} key columns", self.keys.len()),
                format!("need one per key field ({})", key_fields.join(", ")),
            ));
        }
        if self.lower.len() != n || self.keys.iter().any(|k| k.len() != n) {
            return Err(Error::invalid(
                "as-of windows",
                "columns",
                "keys and bounds must have one value per window",
            ));
        }
        if self.upper.null_count() > 0 {
            return Err(Error::invalid(
                "as-of windows",
                "upper",
                "every window needs an upper bound",
            ));
        }
        for (k, name) in self.keys.iter().zip(key_fields) {
            if !matches!(k.data_type(), DataType::Utf8 | DataType::Int64) {
                return Err(Error::invalid(
                    "as-of windows",
                    name.as_str(),
                    format!("key is {}; Utf8 or Int64 keys only", k.data_type()),
                ));
            }
        }
        Ok(())
    }
}

/// What a snapshot parser counted over a scan: how many values it parsed, and how many of
/// them were malformed or missing. Several scans' counts add up with `+`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseCounts {
    pub rows: u64,
    /// Values parsed: rows times parsed columns.
    pub values: u64,
    pub malformed: u64,
    pub missing: u64,
}

impl std::ops::Add for ParseCounts {
    type Output = ParseCounts;

    /// The counts of both scans.
    fn add(self, other: ParseCounts) -> ParseCounts {
        ParseCounts {
            rows: self.rows + other.rows,
            values: self.values + other.values,
            malformed: self.malformed + other.malformed,
            missing: self.missing + other.missing,
        }
    }
}

impl ParseCounts {
    /// Malformed and missing values as fractions of the values parsed; `None` when none were.
    pub fn rates(&self) -> Option<(f64, f64)> {
        (self.values > 0).then(|| {
            let values = self.values as f64;
            (self.malformed as f64 / values, self.missing as f64 / values)
        })
    }
}

/// A typed value in a filter. Values are never spliced into query text; each source encodes
/// them with its own literal encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Boolean(bool),
    Int64(i64),
    Float64(f64),
    Utf8(String),
    Timestamp(Timestamp),
}

impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::Utf8(v.to_owned())
    }
}
impl From<String> for Scalar {
    fn from(v: String) -> Self {
        Scalar::Utf8(v)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int64(v)
    }
}
impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float64(v)
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Boolean(v)
    }
}
impl From<Timestamp> for Scalar {
    fn from(v: Timestamp) -> Self {
        Scalar::Timestamp(v)
    }
}

/// What a filter requires of a column's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Equal to the value (never matches null).
    Eq(Scalar),
    /// Equal to one of the values (never matches null).
    In(Vec<Scalar>),
    /// Between the bounds, each included, excluded or absent.
    Range {
        lower: Bound<Scalar>,
        upper: Bound<Scalar>,
    },
    /// The value is null.
    IsNull,
    /// The value is not null.
    IsNotNull,
}

/// A predicate on one named column.
///
/// Every source gives a filter the same meaning, that of [`apply_filters`]:
/// - Comparisons are exact. Text compares byte for byte: case, accents and leading or trailing
///   spaces all count, whatever collation a database server would apply.
/// - A value is typed by its column before anything is read or sent ([`Filter::typed`]): text
///   given for a number must be that number (`"1465"`, not `"1465 "` or `"1465abc"`), and
///   text given for a timestamp is epoch milliseconds or ISO-8601 as [`Timestamp::parse`]
///   reads it; an integer given for a text column stands for its decimal digits. Anything
///   else is an [`Error::InvalidInput`] naming the column and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub predicate: Predicate,
}

impl Filter {
    /// `column = value`.
    pub fn eq(column: impl Into<String>, value: impl Into<Scalar>) -> Self {
        Filter {
            column: column.into(),
            predicate: Predicate::Eq(value.into()),
        }
    }

    /// `column IN (values…)`.
    pub fn is_in(
        column: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<Scalar>>,
    ) -> Self {
        Filter {
            column: column.into(),
            predicate: Predicate::In(values.into_iter().map(Into::into).collect()),
        }
    }

    /// `lower <= column < upper`, with either side optional.
    pub fn range(column: impl Into<String>, lower: Bound<Scalar>, upper: Bound<Scalar>) -> Self {
        Filter {
            column: column.into(),
            predicate: Predicate::Range { lower, upper },
        }
    }

    /// `column IS NULL`.
    pub fn is_null(column: impl Into<String>) -> Self {
        Filter {
            column: column.into(),
            predicate: Predicate::IsNull,
        }
    }

    /// The filter with every value converted to the type of its column in `schema`, or an
    /// error naming the column and the value when one does not fit (or the column is missing).
    pub fn typed(&self, schema: &Schema) -> Result<Filter> {
        let field = schema.field_with_name(&self.column).map_err(|_| {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            Error::invalid(
                "filter column",
                &self.column,
                format!("no such column; columns are {known:?}"),
            )
        })?;
        self.typed_as(field.data_type())
    }

    /// The filter with every value converted to `column_type`.
    pub fn typed_as(&self, column_type: &DataType) -> Result<Filter> {
        let typed = |v: &Scalar| v.typed_as(&self.column, column_type);
        let bound = |b: &Bound<Scalar>| -> Result<Bound<Scalar>> {
            Ok(match b {
                Bound::Included(v) => Bound::Included(typed(v)?),
                Bound::Excluded(v) => Bound::Excluded(typed(v)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let predicate = match &self.predicate {
            Predicate::Eq(v) => Predicate::Eq(typed(v)?),
            Predicate::In(values) => {
                Predicate::In(values.iter().map(typed).collect::<Result<_>>()?)
            }
            Predicate::Range { lower, upper } => Predicate::Range {
                lower: bound(lower)?,
                upper: bound(upper)?,
            },
            Predicate::IsNull => Predicate::IsNull,
            Predicate::IsNotNull => Predicate::IsNotNull,
        };
        Ok(Filter {
            column: self.column.clone(),
            predicate,
        })
    }
}

/// What a timestamp filter value may be.
const TIMES: &str = "times: epoch milliseconds or ISO-8601 such as 2022-12-07T04:30:00Z";

impl Scalar {
    /// This value as one of `column_type`, the column being `column`: the same value in the
    /// column's own terms, never a guess (see [`Filter`]).
    fn typed_as(&self, column: &str, column_type: &DataType) -> Result<Scalar> {
        let refuse = |holds: &str| {
            let value = match self {
                Scalar::Utf8(s) => s.clone(),
                Scalar::Timestamp(t) => t.to_string(),
                Scalar::Boolean(b) => b.to_string(),
                Scalar::Int64(i) => i.to_string(),
                Scalar::Float64(f) => f.to_string(),
            };
            Error::invalid(
                "filter",
                format!("{column}={value}"),
                format!("column {column:?} holds {holds}"),
            )
        };
        let typed = match column_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match self {
                Scalar::Utf8(_) => Some(self.clone()),
                Scalar::Int64(i) => Some(Scalar::Utf8(i.to_string())),
                _ => None,
            }
            .ok_or_else(|| refuse("text"))?,
            t if t.is_integer() => match self {
                Scalar::Int64(_) => Some(self.clone()),
                Scalar::Utf8(s) => s.parse().ok().map(Scalar::Int64),
                // Integer columns of epoch milliseconds hold times as stored.
                Scalar::Timestamp(t) => Some(Scalar::Int64(t.as_millis())),
                Scalar::Float64(f) if f.fract() == 0.0 && f.abs() < 2f64.powi(63) => {
                    Some(Scalar::Int64(*f as i64))
                }
                _ => None,
            }
            .ok_or_else(|| refuse("integers"))?,
            t if t.is_floating() => match self {
                Scalar::Float64(f) => Some(*f),
                Scalar::Int64(i) => Some(*i as f64),
                Scalar::Utf8(s) => s.parse().ok(),
                _ => None,
            }
            .filter(|f: &f64| f.is_finite())
            .map(Scalar::Float64)
            .ok_or_else(|| refuse("finite numbers"))?,
            DataType::Boolean => match self {
                Scalar::Boolean(_) => Some(self.clone()),
                Scalar::Utf8(s) => s.parse().ok().map(Scalar::Boolean),
                _ => None,
            }
            .ok_or_else(|| refuse("true or false"))?,
            DataType::Timestamp(..) => match self {
                Scalar::Timestamp(_) => self.clone(),
                Scalar::Int64(ms) => Scalar::Timestamp(Timestamp::from_millis(*ms)),
                Scalar::Utf8(s) => {
                    Scalar::Timestamp(Timestamp::parse(s).map_err(|_| refuse(TIMES))?)
                }
                _ => return Err(refuse(TIMES)),
            },
            _ => {
                return Err(refuse(&format!(
                    "{column_type}, which filters cannot compare"
                )));
            }
        };
        Ok(typed)
    }
}

/// What to read from a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanRequest {
    /// Rows whose time column lies in this half-open range; all rows when absent.
    pub time_range: Option<TimeRange>,
    /// Every filter must hold (conjunction).
    pub filters: Vec<Filter>,
    /// The columns to return, in this order; all columns when absent.
    pub projection: Option<Vec<String>>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// An in-memory table: the reference implementation of [`DataSource`], used in tests and for
/// small data handed over from Python.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::array::{Int64Array, StringArray, RecordBatch};
/// # use arrow::datatypes::{DataType, Field, Schema};
/// use trainstore_core::{DataSource, Filter, MemorySource, ScanRequest};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("nodeId", DataType::Utf8, false),
///     Field::new("time", DataType::Int64, false),
/// ]));
/// let batch = RecordBatch::try_new(schema.clone(), vec![
///     Arc::new(StringArray::from(vec!["1465", "1466"])),
///     Arc::new(Int64Array::from(vec![1, 2])),
/// ]).unwrap();
/// let source = MemorySource::new(schema, vec![batch], Some("time")).unwrap();
/// let request = ScanRequest { filters: vec![Filter::eq("nodeId", "1466")], ..Default::default() };
/// let rows = source.scan_all(&request).await.unwrap();
/// assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct MemorySource {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    time_column: Option<String>,
}

impl MemorySource {
    /// A source over `batches`, all of `schema`; `time_column` (Int64 epoch ms or a timestamp
    /// type) is what time ranges apply to.
    pub fn new(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        time_column: Option<&str>,
    ) -> Result<Self> {
        if let Some(b) = batches.iter().find(|b| b.schema() != schema) {
            return Err(Error::invalid(
                "batch",
                format!("{:?}", b.schema()),
                "schema differs from the source's",
            ));
        }
        if let Some(name) = time_column {
            column_index(&schema, name, "time column")?;
        }
        Ok(MemorySource {
            schema,
            batches,
            time_column: time_column.map(str::to_owned),
        })
    }

    /// Collects a whole scan into memory.
    pub async fn scan_all(&self, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        use futures::TryStreamExt;
        self.scan(request).await?.try_collect().await
    }

    fn filter_batch(&self, batch: &RecordBatch, request: &ScanRequest) -> Result<RecordBatch> {
        let mut filters = request.filters.clone();
        if let (Some(range), Some(col)) = (&request.time_range, &self.time_column) {
            filters.push(Filter::range(
                col.clone(),
                Bound::Included(Scalar::Timestamp(range.start())),
                Bound::Excluded(Scalar::Timestamp(range.end())),
            ));
        }
        apply_filters(batch, &filters)
    }
}

/// The rows of `batch` passing every filter: the reference semantics every source must match,
/// and what sources use for filters they cannot push down.
pub fn apply_filters(batch: &RecordBatch, filters: &[Filter]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut mask: Option<BooleanArray> = None;
    for f in filters {
        let f = f.typed(&schema)?;
        let column = batch.column(column_index(&schema, &f.column, "filter column")?);
        let m = predicate_mask(&f.column, column, &f.predicate)?;
        mask = Some(match mask {
            Some(prev) => boolean::and(&prev, &m)?,
            None => m,
        });
    }
    Ok(match mask {
        // Every row passes (and no null stands for a miss): no copy.
        Some(m) if m.null_count() == 0 && m.true_count() == m.len() => batch.clone(),
        Some(m) => filter_record_batch(batch, &m)?,
        None => batch.clone(),
    })
}

#[async_trait]
impl DataSource for MemorySource {
    fn describe(&self) -> String {
        format!("memory table of {} batches", self.batches.len())
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        if request.time_range.is_some() && self.time_column.is_none() {
            return Err(Error::NotSupported {
                operation: "a time range",
                implementer: "a memory table without a time column".into(),
            });
        }
        for f in &request.filters {
            f.typed(&self.schema)?;
        }
        let projection = match &request.projection {
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| column_index(&self.schema, n, "projected column"))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let mut remaining = request.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for batch in &self.batches {
            if remaining == 0 {
                break;
            }
            let mut b = self.filter_batch(batch, request)?;
            if b.num_rows() > remaining {
                b = b.slice(0, remaining);
            }
            remaining -= b.num_rows();
            if let Some(p) = &projection {
                b = b.project(p)?;
            }
            out.push(Ok(b));
        }
        Ok(Box::pin(futures::stream::iter(out)))
    }
}

fn column_index(schema: &SchemaRef, name: &str, what: &'static str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::invalid(what, name, format!("no such column; columns are {known:?}"))
    })
}

fn predicate_mask(name: &str, column: &ArrayRef, predicate: &Predicate) -> Result<BooleanArray> {
    Ok(match predicate {
        Predicate::Eq(v) => cmp::eq(column, &scalar_like(name, column, v)?)?,
        Predicate::In(values) => {
            let mut mask = Bools::from(vec![false; column.len()]);
            for v in values {
                mask = boolean::or(&mask, &cmp::eq(column, &scalar_like(name, column, v)?)?)?;
            }
            mask
        }
        Predicate::Range { lower, upper } => range_mask(name, column, lower, upper)?,
        Predicate::IsNull => is_null(column)?,
        Predicate::IsNotNull => is_not_null(column)?,
    })
}

fn range_mask(
    name: &str,
    column: &ArrayRef,
    lower: &Bound<Scalar>,
    upper: &Bound<Scalar>,
) -> Result<BooleanArray> {
    let mut mask = is_not_null(column)?;
    match lower {
        Bound::Included(v) => {
            mask = boolean::and(&mask, &cmp::gt_eq(column, &scalar_like(name, column, v)?)?)?
        }
        Bound::Excluded(v) => {
            mask = boolean::and(&mask, &cmp::gt(column, &scalar_like(name, column, v)?)?)?
        }
        Bound::Unbounded => {}
    }
    match upper {
        Bound::Included(v) => {
            mask = boolean::and(&mask, &cmp::lt_eq(column, &scalar_like(name, column, v)?)?)?
        }
        Bound::Excluded(v) => {
            mask = boolean::and(&mask, &cmp::lt(column, &scalar_like(name, column, v)?)?)?
        }
        Bound::Unbounded => {}
    }
    Ok(mask)
}

/// The filter value as a one-element Arrow scalar of the column's type.
fn scalar_like(name: &str, column: &ArrayRef, value: &Scalar) -> Result<ArrowScalar<ArrayRef>> {
    let single: ArrayRef = match value {
        Scalar::Boolean(v) => Arc::new(Bools::from(vec![*v])),
        Scalar::Int64(v) => Arc::new(Int64Array::from(vec![*v])),
        Scalar::Float64(v) => Arc::new(Float64Array::from(vec![*v])),
        Scalar::Utf8(v) => Arc::new(StringArray::from(vec![v.as_str()])),
        Scalar::Timestamp(v) => {
            // Same instant, labelled with the column's zone: a cast from a zoneless timestamp
            // would instead reinterpret wall-clock time.
            let zone = match column.data_type() {
                DataType::Timestamp(_, zone) => zone.clone(),
                _ => None,
            };
            Arc::new(TimestampMillisecondArray::from(vec![v.as_millis()]).with_timezone_opt(zone))
        }
    };
    let target = column.data_type();
    let typed = cast(&single, target)
        .ok()
        .filter(|a| a.is_valid(0))
        .ok_or_else(|| {
            Error::invalid(
                "filter value",
                format!("{value:?}"),
                format!("cannot compare with column {name:?} of type {target}"),
            )
        })?;
    Ok(ArrowScalar::new(typed))
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::{Field, Int64Type, Schema, TimeUnit};

    use super::*;

    /// uuid, nodeId, time (ms, UTC), meanLf (nullable), in two batches.
    fn source() -> MemorySource {
        let schema = Arc::new(Schema::new(vec![
            Field::new("uuid", DataType::Utf8, false),
            Field::new("nodeId", DataType::Utf8, false),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("meanLf", DataType::Float64, true),
        ]));
        let batch =
            |uuids: Vec<&str>, nodes: Vec<&str>, times: Vec<i64>, values: Vec<Option<f64>>| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(uuids)),
                        Arc::new(StringArray::from(nodes)),
                        Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
                        Arc::new(Float64Array::from(values)),
                    ],
                )
                .unwrap()
            };
        let b1 = batch(
            vec!["a", "a", "b"],
            vec!["1", "2", "1"],
            vec![10, 20, 30],
            vec![Some(1.0), None, Some(3.0)],
        );
        let b2 = batch(
            vec!["b", "c"],
            vec!["2", "1"],
            vec![40, 50],
            vec![Some(4.0), Some(5.0)],
        );
        MemorySource::new(schema, vec![b1, b2], Some("time")).unwrap()
    }

    async fn times(request: ScanRequest) -> Vec<i64> {
        let batches = source().scan_all(&request).await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let col = b.column_by_name("time").expect("time projected");
            let col = arrow::compute::cast(col, &DataType::Int64).unwrap();
            out.extend(col.as_primitive::<Int64Type>().values().iter().copied());
        }
        out
    }

    fn range(start: i64, end: i64) -> Option<TimeRange> {
        Some(TimeRange::new(Timestamp::from_millis(start), Timestamp::from_millis(end)).unwrap())
    }

    #[tokio::test]
    async fn time_range_is_half_open() {
        let r = ScanRequest {
            time_range: range(20, 40),
            ..Default::default()
        };
        assert_eq!(times(r).await, [20, 30]);
    }

    #[tokio::test]
    async fn filters_combine_as_a_conjunction() {
        let eq = ScanRequest {
            filters: vec![Filter::eq("uuid", "b")],
            ..Default::default()
        };
        assert_eq!(times(eq).await, [30, 40]);
        let both = ScanRequest {
            filters: vec![Filter::is_in("uuid", ["a", "c"]), Filter::eq("nodeId", "1")],
            ..Default::default()
        };
        assert_eq!(times(both).await, [10, 50]);
        let null = ScanRequest {
            filters: vec![Filter::is_null("meanLf")],
            ..Default::default()
        };
        assert_eq!(times(null).await, [20]);
        let numeric = ScanRequest {
            filters: vec![Filter::range(
                "meanLf",
                Bound::Excluded(1.0.into()),
                Bound::Included(4.into()),
            )],
            ..Default::default()
        };
        assert_eq!(times(numeric).await, [30, 40]);
        let hostile = ScanRequest {
            filters: vec![Filter::eq("uuid", "a' OR '1'='1")],
            ..Default::default()
        };
        assert_eq!(times(hostile).await, Vec::<i64>::new());
    }

    #[tokio::test]
    async fn values_are_typed_by_their_column_and_compared_exactly() {
        let eq = |column: &str, value: Scalar| ScanRequest {
            filters: vec![Filter::eq(column, value)],
            ..Default::default()
        };
        for near_miss in ["A", "a ", " a", "a\t"] {
            assert_eq!(times(eq("uuid", near_miss.into())).await, Vec::<i64>::new());
        }
        assert_eq!(times(eq("nodeId", 2.into())).await, [20, 40]);
        for same_instant in [
            Scalar::Int64(30),
            "30".into(),
            "1970-01-01T00:00:00.030Z".into(),
            "1970-01-01 00:00:00.030".into(),
        ] {
            assert_eq!(times(eq("time", same_instant)).await, [30]);
        }
        assert_eq!(times(eq("meanLf", "4".into())).await, [40]);
        for (column, value) in [
            ("time", "30abc".into()),
            ("time", "30 OR 1=1".into()),
            ("meanLf", "4 ".into()),
            ("meanLf", "NaN".into()),
            ("uuid", Scalar::Float64(1.5)),
        ] {
            let err = source().scan(&eq(column, value)).await.err().unwrap();
            let Error::InvalidInput { value: shown, .. } = &err else {
                panic!("{err}");
            };
            assert!(shown.starts_with(&format!("{column}=")), "{err}");
        }
    }

    #[tokio::test]
    async fn projection_and_limit() {
        let request = ScanRequest {
            projection: Some(vec!["time".into(), "uuid".into()]),
            limit: Some(4),
            ..Default::default()
        };
        let batches = source().scan_all(&request).await.unwrap();
        assert!(
            batches
                .iter()
                .all(|b| b.schema().field(0).name() == "time" && b.num_columns() == 2)
        );
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
        let none = ScanRequest {
            limit: Some(0),
            ..Default::default()
        };
        assert!(times(none).await.is_empty());
    }

    #[tokio::test]
    async fn bad_requests_name_the_problem() {
        let unknown = ScanRequest {
            filters: vec![Filter::eq("nope", "x")],
            ..Default::default()
        };
        let err = source().scan(&unknown).await.err().unwrap().to_string();
        assert!(err.contains("nope") && err.contains("uuid"), "{err}");
        let projection = ScanRequest {
            projection: Some(vec!["ghost".into()]),
            ..Default::default()
        };
        assert!(source().scan(&projection).await.is_err());
        let mismatch = ScanRequest {
            filters: vec![Filter::eq("meanLf", "not a number")],
            ..Default::default()
        };
        let err = source().scan_all(&mismatch).await.unwrap_err().to_string();
        assert!(err.contains("meanLf"), "{err}");
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let untimed = MemorySource::new(schema.clone(), vec![], None).unwrap();
        let err = untimed
            .scan(&ScanRequest {
                time_range: range(0, 1),
                ..Default::default()
            })
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::NotSupported { .. }), "{err}");
        assert!(MemorySource::new(schema, vec![], Some("time")).is_err());
    }
}
