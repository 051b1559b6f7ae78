//! The snapshot parser: raw snapshot rows (a JSON document column, or flat text columns) into
//! typed Arrow, with a report of every value that could not be read.
//!
//! A bad value never becomes `0.0` or `[]`: it becomes null and is counted per column in the
//! [`ParseReport`]; in strict mode the first one fails the parse with the row's identity
//! (keys and time) and the field. Rules per kind:
//!
//! - number: a JSON number or numeric text (surrounding spaces allowed), finite;
//! - array: `"1.5,2"`, `"[1.5, 2]"` or a JSON array of numbers, each a finite `f32`; empty text
//!   (`""` or `"[]"`) is an empty list;
//! - bool: `true`/`false`, `1`/`0`, or that as text (case-insensitive);
//! - time: integral epoch milliseconds (number or text) or ISO-8601 text (UTC when no offset);
//! - text: a string, or a number's text;
//! - json: any JSON value, or a string holding JSON text; kept as JSON text.
//!
//! JSON `null`, SQL `NULL`, absent fields and blank text (except for text and array fields)
//! are missing, not malformed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use serde::Serialize;
use trainstore_core::{Error, Result, Timestamp};

use crate::scan::{Kind, Raw, for_each_member};
use crate::schema::{FeatureKind, SnapshotSchema};

/// How many example problems a report keeps.
const MAX_EXAMPLES: usize = 20;
/// How much of a bad value an example or error shows.
const MAX_SHOWN: usize = 80;

/// Counts of what could not be read, per output column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnReport {
    /// Values present but unreadable as the column's type (now null).
    pub malformed: u64,
    /// Values absent or null in the input.
    pub missing: u64,
}

/// One problem found while parsing, for showing to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseIssue {
    /// The row's identity as far as it could be read, e.g. `uuid=… nodeId=… time=…`.
    pub row: String,
    pub field: String,
    /// The offending value, shortened.
    pub value: String,
    pub reason: String,
}

/// What a parse found: rows read, and per column how many values were malformed or missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParseReport {
    pub rows: u64,
    /// Per output column; the document column counts documents that are not JSON objects.
    pub columns: BTreeMap<String, ColumnReport>,
    /// The first few problems.
    pub examples: Vec<ParseIssue>,
}

impl ParseReport {
    /// Total malformed values over all columns.
    pub fn malformed(&self) -> u64 {
        self.columns.values().map(|c| c.malformed).sum()
    }

    /// Adds another report's counts (e.g. of the next batch).
    pub fn merge(&mut self, other: &ParseReport) {
        self.rows += other.rows;
        for (name, c) in &other.columns {
            let mine = self.columns.entry(name.clone()).or_default();
            mine.malformed += c.malformed;
            mine.missing += c.missing;
        }
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples
            .extend(other.examples.iter().take(room).cloned());
    }
}

/// Parses raw snapshot batches into the typed layout of a [`SnapshotSchema`].
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch, StringArray};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use trainstore_doris::{SnapshotParser, SnapshotSchema};
///
/// let raw = RecordBatch::try_new(
///     Arc::new(Schema::new(vec![
///         Field::new("time", DataType::Int64, false),
///         Field::new("feature", DataType::Utf8, false),
///     ])),
///     vec![
///         Arc::new(Int64Array::from(vec![1670387403396])),
///         Arc::new(StringArray::from(vec![
///             r#"{"uuid":"704A0ED440F4","nodeId":"1465","meanLf":"oops","peakPowers":"9.31,9.25"}"#,
///         ])),
///     ],
/// ).unwrap();
/// let parser = SnapshotParser::new(SnapshotSchema::design_doc());
/// let (typed, report) = parser.parse(&raw).unwrap();
/// assert!(typed.column_by_name("meanLf").unwrap().is_null(0));
/// assert_eq!(report.columns["meanLf"].malformed, 1);
/// assert!(parser.strict(true).parse(&raw).unwrap_err().to_string().contains("uuid=704A0ED440F4"));
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotParser {
    schema: SnapshotSchema,
    strict: bool,
    /// Every output field except the unknown column, in output order.
    fields: Arc<Vec<Target>>,
    /// Document key (unescaped) → index into `fields`.
    by_key: Arc<HashMap<Vec<u8>, usize>>,
}

#[derive(Debug, Clone)]
struct Target {
    name: String,
    kind: TargetKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Key,
    Time,
    Feature(FeatureKind),
}

impl SnapshotParser {
    /// A lenient parser for `schema`.
    pub fn new(schema: SnapshotSchema) -> Self {
        let mut fields: Vec<Target> = schema
            .keys()
            .iter()
            .map(|k| Target {
                name: k.clone(),
                kind: TargetKind::Key,
            })
            .collect();
        fields.push(Target {
            name: schema.time().into(),
            kind: TargetKind::Time,
        });
        if let Some(tag) = schema.tag() {
            fields.push(Target {
                name: tag.into(),
                kind: TargetKind::Feature(FeatureKind::Bool),
            });
        }
        for f in schema.features() {
            fields.push(Target {
                name: f.name.clone(),
                kind: TargetKind::Feature(f.kind),
            });
        }
        let by_key = fields
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_bytes().to_vec(), i))
            .collect();
        SnapshotParser {
            schema,
            strict: false,
            fields: Arc::new(fields),
            by_key: Arc::new(by_key),
        }
    }

    /// In strict mode the first malformed value fails the parse, naming the row and field.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The schema this parser reads.
    pub fn schema(&self) -> &SnapshotSchema {
        &self.schema
    }

    /// Parses one batch of raw rows.
    pub fn parse(&self, raw: &RecordBatch) -> Result<(RecordBatch, ParseReport)> {
        let rows = raw.num_rows();
        let mut report = ParseReport {
            rows: rows as u64,
            ..Default::default()
        };
        for t in self.fields.iter() {
            report
                .columns
                .insert(t.name.clone(), ColumnReport::default());
        }

        let document = match self.schema.document_column() {
            Some(name) => Some(text_column(raw, name)?.ok_or_else(|| {
                Error::invalid(
                    "snapshot rows",
                    name,
                    "the schema's document column is missing from the input",
                )
            })?),
            None => None,
        };
        // Where each field comes from: an input column of its name, else the document.
        let mut inputs: Vec<Option<Input>> = Vec::with_capacity(self.fields.len());
        for t in self.fields.iter() {
            inputs.push(match raw.column_by_name(&t.name) {
                Some(col) => Some(Input::from_column(&t.name, col, t.kind)?),
                None if document.is_some() => None,
                None => {
                    return Err(Error::invalid(
                        "snapshot rows",
                        &t.name,
                        "no input column of this name, and the schema has no document column",
                    ));
                }
            });
        }

        let mut builders: Vec<Builder> = self
            .fields
            .iter()
            .map(|t| Builder::new(t.kind, rows))
            .collect();
        let mut unknown = document
            .as_ref()
            .map(|_| StringBuilder::with_capacity(rows, 16 * rows));
        let mut cells: Vec<Option<Raw<'_>>> = vec![None; self.fields.len()];
        let mut unknown_members: Vec<(Raw<'_>, Raw<'_>)> = Vec::new();
        let mut scratch = String::new();

        for row in 0..rows {
            cells.iter_mut().for_each(|c| *c = None);
            unknown_members.clear();
            let mut document_problem = None;
            if let Some(doc) = &document {
                if doc.is_null(row) {
                    let name = self.schema.document_column().expect("document layout");
                    report.columns.entry(name.into()).or_default().missing += 1;
                } else if let Err(reason) =
                    for_each_member(doc.value(row).as_bytes(), |key, value| {
                        match self.slot_of(key) {
                            Some(i) => cells[i] = Some(value),
                            None => unknown_members.push((key, value)),
                        }
                    })
                {
                    // A document that is not one valid JSON object yields no values at all.
                    cells.iter_mut().for_each(|c| *c = None);
                    unknown_members.clear();
                    document_problem = Some(reason);
                }
            }
            if let Some(reason) = document_problem {
                let name = self
                    .schema
                    .document_column()
                    .expect("document layout")
                    .to_owned();
                let value = shorten(document.as_ref().expect("document layout").value(row));
                self.problem(&mut report, row, &cells, &inputs, &name, value, reason)?;
            }

            for (i, t) in self.fields.iter().enumerate() {
                let outcome = match &inputs[i] {
                    Some(input) => input.append(row, &mut builders[i]),
                    None => match cells[i] {
                        Some(raw) => builders[i].append_raw(raw),
                        None => Outcome::Missing,
                    },
                };
                match outcome {
                    Outcome::Ok => {}
                    Outcome::Missing => {
                        builders[i].append_null();
                        report.columns.get_mut(&t.name).expect("column").missing += 1;
                    }
                    Outcome::Malformed(reason) => {
                        builders[i].append_null();
                        let value = match (&inputs[i], cells[i]) {
                            (Some(input), _) => input.show(row),
                            (None, Some(raw)) => show_raw(raw),
                            (None, None) => String::new(),
                        };
                        self.problem(&mut report, row, &cells, &inputs, &t.name, value, reason)?;
                    }
                }
            }
            if let Some(unknown) = unknown.as_mut() {
                if unknown_members.is_empty() {
                    unknown.append_null();
                } else {
                    scratch.clear();
                    scratch.push('{');
                    for (n, (k, v)) in unknown_members.iter().enumerate() {
                        if n > 0 {
                            scratch.push(',');
                        }
                        scratch.push_str(utf8(k.text));
                        scratch.push(':');
                        scratch.push_str(utf8(v.text));
                    }
                    scratch.push('}');
                    unknown.append_value(&scratch);
                }
            }
        }

        let mut columns: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
        if let Some(mut unknown) = unknown {
            columns.push(Arc::new(unknown.finish()));
        }
        let batch = RecordBatch::try_new(self.schema.output_schema(), columns)?;
        Ok((batch, report))
    }

    /// Parses many batches on every core: each is cut into slices of at most `slice_rows` rows,
    /// parsed in parallel, and returned in input order with one merged report.
    pub fn parse_batches(
        &self,
        raw: &[RecordBatch],
        slice_rows: usize,
    ) -> Result<(Vec<RecordBatch>, ParseReport)> {
        let slice_rows = slice_rows.max(1);
        let slices: Vec<RecordBatch> = raw
            .iter()
            .flat_map(|b| {
                (0..b.num_rows())
                    .step_by(slice_rows)
                    .map(move |at| b.slice(at, slice_rows.min(b.num_rows() - at)))
            })
            .collect();
        let results =
            trainstore_core::parallel::map_indexed(slices.len(), |i| self.parse(&slices[i]));
        let mut batches = Vec::with_capacity(results.len());
        let mut report = ParseReport::default();
        for r in results {
            let (batch, part) = r?;
            report.merge(&part);
            batches.push(batch);
        }
        Ok((batches, report))
    }

    fn slot_of(&self, key: Raw<'_>) -> Option<usize> {
        match key.kind {
            Kind::String { escaped: false } => self.by_key.get(key.string_content()).copied(),
            _ => {
                let unescaped: String = serde_json::from_slice(key.text).ok()?;
                self.by_key.get(unescaped.as_bytes()).copied()
            }
        }
    }

    /// Records one malformed value; in strict mode, fails with the row's identity.
    #[allow(clippy::too_many_arguments)]
    fn problem(
        &self,
        report: &mut ParseReport,
        row: usize,
        cells: &[Option<Raw<'_>>],
        inputs: &[Option<Input>],
        field: &str,
        value: String,
        reason: &str,
    ) -> Result<()> {
        report
            .columns
            .entry(field.to_owned())
            .or_default()
            .malformed += 1;
        if !self.strict && report.examples.len() >= MAX_EXAMPLES {
            return Ok(());
        }
        let identity = self.identity(row, cells, inputs);
        if self.strict {
            return Err(Error::Malformed {
                row: identity,
                field: field.to_owned(),
                reason: format!("{reason}: {value}"),
            });
        }
        report.examples.push(ParseIssue {
            row: identity,
            field: field.to_owned(),
            value,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// `uuid=… nodeId=… time=…` from whatever of the keys and time could be read.
    fn identity(&self, row: usize, cells: &[Option<Raw<'_>>], inputs: &[Option<Input>]) -> String {
        let mut parts = Vec::new();
        for (i, t) in self.fields.iter().enumerate() {
            if !matches!(t.kind, TargetKind::Key | TargetKind::Time) {
                continue;
            }
            let shown = match (&inputs[i], cells[i]) {
                (Some(input), _) => input.show(row),
                (None, Some(raw)) => show_raw(raw),
                (None, None) => "?".into(),
            };
            parts.push(format!("{}={shown}", t.name));
        }
        parts.push(format!("(row {row} of the batch)"));
        parts.join(" ")
    }
}

fn utf8(bytes: &[u8]) -> &str {
    // Slices of a valid UTF-8 document cut at ASCII delimiters are valid UTF-8.
    std::str::from_utf8(bytes).expect("slices of UTF-8 text at ASCII boundaries")
}

/// A document value as a person would write it: strings without their quotes.
fn show_raw(raw: Raw<'_>) -> String {
    let bytes = match raw.kind {
        Kind::String { .. } => raw.string_content(),
        _ => raw.text,
    };
    shorten(&String::from_utf8_lossy(bytes))
}

fn shorten(text: &str) -> String {
    if text.len() <= MAX_SHOWN {
        return text.to_owned();
    }
    let mut end = MAX_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// A text column of the input (any string type), as Utf8.
fn text_column(raw: &RecordBatch, name: &str) -> Result<Option<StringArray>> {
    let Some(col) = raw.column_by_name(name) else {
        return Ok(None);
    };
    let as_utf8 = match col.data_type() {
        DataType::Utf8 => col.clone(),
        DataType::LargeUtf8 | DataType::Utf8View => cast(col, &DataType::Utf8)?,
        other => {
            return Err(Error::invalid(
                "document column",
                name,
                format!("expected text, found {other}"),
            ));
        }
    };
    Ok(Some(
        as_utf8
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("utf8")
            .clone(),
    ))
}

enum Outcome {
    Ok,
    Missing,
    Malformed(&'static str),
}

/// A flat input column feeding one field: text parsed like document values, or values already
/// of a usable type, cast once.
enum Input {
    Text(StringArray),
    Typed(ArrayRef),
}

impl Input {
    fn from_column(name: &str, col: &ArrayRef, kind: TargetKind) -> Result<Self> {
        let target = match kind {
            TargetKind::Key => DataType::Utf8,
            TargetKind::Time => DataType::Int64,
            TargetKind::Feature(FeatureKind::Number) => DataType::Float64,
            TargetKind::Feature(FeatureKind::Bool) => DataType::Boolean,
            TargetKind::Feature(FeatureKind::Array) => {
                DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
            }
            TargetKind::Feature(FeatureKind::Json | FeatureKind::Text) => DataType::Utf8,
        };
        let ty = col.data_type();
        if matches!(
            ty,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            let text = cast(col, &DataType::Utf8)?;
            return Ok(Input::Text(
                text.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8")
                    .clone(),
            ));
        }
        let castable = match (kind, ty) {
            (TargetKind::Time, DataType::Timestamp(..)) => true,
            (TargetKind::Time, t) => t.is_integer(),
            (TargetKind::Feature(FeatureKind::Number), t) => t.is_numeric(),
            (TargetKind::Feature(FeatureKind::Bool), DataType::Boolean) => true,
            (
                TargetKind::Feature(FeatureKind::Array),
                DataType::List(f) | DataType::LargeList(f),
            ) => f.data_type().is_numeric(),
            (TargetKind::Key, t) => t.is_integer(),
            _ => false,
        };
        if !castable {
            return Err(Error::invalid(
                "snapshot column",
                name,
                format!("cannot read {ty} as {kind:?}"),
            ));
        }
        let typed = match (kind, ty) {
            // Same instant whatever the zone tag: take the epoch value in milliseconds.
            (TargetKind::Time, DataType::Timestamp(..)) => cast(
                &cast(
                    col,
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                )?,
                &DataType::Int64,
            )?,
            _ => cast(col, &target)?,
        };
        Ok(Input::Typed(typed))
    }

    fn show(&self, row: usize) -> String {
        match self {
            Input::Text(a) if a.is_valid(row) => shorten(a.value(row)),
            Input::Typed(a) if a.is_valid(row) => {
                arrow::util::display::array_value_to_string(a, row)
                    .map(|s| shorten(&s))
                    .unwrap_or_default()
            }
            _ => "null".into(),
        }
    }

    fn append(&self, row: usize, builder: &mut Builder) -> Outcome {
        match self {
            Input::Text(a) if a.is_valid(row) => builder.append_text(a.value(row)),
            Input::Typed(a) if a.is_valid(row) => builder.append_typed(a, row),
            _ => Outcome::Missing,
        }
    }
}

/// The output builder of one field.
enum Builder {
    Text(StringBuilder),
    Json(StringBuilder),
    Time(TimestampMillisecondBuilder),
    Number(Float64Builder),
    Bool(BooleanBuilder),
    /// With a scratch buffer: a row's elements are parsed there first, so a bad element leaves
    /// no partial list behind.
    Array(ListBuilder<Float32Builder>, Vec<f32>),
}

impl Builder {
    fn new(kind: TargetKind, rows: usize) -> Self {
        match kind {
            TargetKind::Key | TargetKind::Feature(FeatureKind::Text) => {
                Builder::Text(StringBuilder::with_capacity(rows, 16 * rows))
            }
            TargetKind::Feature(FeatureKind::Json) => {
                Builder::Json(StringBuilder::with_capacity(rows, 32 * rows))
            }
            TargetKind::Time => {
                Builder::Time(TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
            TargetKind::Feature(FeatureKind::Number) => {
                Builder::Number(Float64Builder::with_capacity(rows))
            }
            TargetKind::Feature(FeatureKind::Bool) => {
                Builder::Bool(BooleanBuilder::with_capacity(rows))
            }
            TargetKind::Feature(FeatureKind::Array) => Builder::Array(
                ListBuilder::with_capacity(Float32Builder::with_capacity(rows * 32), rows)
                    .with_field(Arc::new(Field::new("item", DataType::Float32, false))),
                Vec::new(),
            ),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Text(b) | Builder::Json(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Number(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Array(b, _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) | Builder::Json(mut b) => Arc::new(b.finish()),
            Builder::Time(mut b) => Arc::new(b.finish()),
            Builder::Number(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Array(mut b, _) => Arc::new(b.finish()),
        }
    }

    /// A value from the JSON document.
    fn append_raw(&mut self, raw: Raw<'_>) -> Outcome {
        match raw.kind {
            Kind::Null => Outcome::Missing,
            Kind::String { escaped: false } => self.append_text(utf8(raw.string_content())),
            Kind::String { escaped: true } => match serde_json::from_slice::<String>(raw.text) {
                Ok(text) => self.append_text(&text),
                Err(_) => Outcome::Malformed("bad string escape"),
            },
            Kind::Number => match self {
                Builder::Text(b) => {
                    b.append_value(utf8(raw.text));
                    Outcome::Ok
                }
                Builder::Json(b) => {
                    b.append_value(utf8(raw.text));
                    Outcome::Ok
                }
                _ => self.append_text(utf8(raw.text)),
            },
            Kind::True | Kind::False => match self {
                Builder::Bool(b) => {
                    b.append_value(raw.kind == Kind::True);
                    Outcome::Ok
                }
                Builder::Json(b) => {
                    b.append_value(utf8(raw.text));
                    Outcome::Ok
                }
                _ => Outcome::Malformed("a boolean where this field wants another type"),
            },
            Kind::Array => match self {
                Builder::Array(..) | Builder::Json(_) => self.append_json_text(utf8(raw.text)),
                _ => Outcome::Malformed("an array where this field wants another type"),
            },
            Kind::Object => match self {
                Builder::Json(_) => self.append_json_text(utf8(raw.text)),
                _ => Outcome::Malformed("an object where this field wants another type"),
            },
        }
    }

    /// Valid JSON text (from the scanner) for array and JSON fields.
    fn append_json_text(&mut self, text: &str) -> Outcome {
        match self {
            Builder::Json(b) => {
                b.append_value(text);
                Outcome::Ok
            }
            Builder::Array(b, floats) => append_floats(b, floats, text),
            _ => Outcome::Malformed("unexpected JSON value"),
        }
    }

    /// A value given as text (a JSON string's content or a text column).
    fn append_text(&mut self, text: &str) -> Outcome {
        if text.trim().is_empty() && !matches!(self, Builder::Text(_) | Builder::Array(..)) {
            return Outcome::Missing;
        }
        match self {
            Builder::Text(b) => {
                b.append_value(text);
                Outcome::Ok
            }
            Builder::Json(b) => {
                if serde_json::from_str::<serde_json::Value>(text).is_ok() {
                    b.append_value(text.trim());
                    Outcome::Ok
                } else {
                    Outcome::Malformed("not JSON text")
                }
            }
            Builder::Number(b) => match parse_f64(text) {
                Some(v) => {
                    b.append_value(v);
                    Outcome::Ok
                }
                None => Outcome::Malformed("not a finite number"),
            },
            Builder::Time(b) => match parse_time(text) {
                Some(t) => {
                    b.append_value(t);
                    Outcome::Ok
                }
                None => Outcome::Malformed("not epoch milliseconds or an ISO-8601 time"),
            },
            Builder::Bool(b) => match parse_bool(text) {
                Some(v) => {
                    b.append_value(v);
                    Outcome::Ok
                }
                None => Outcome::Malformed("not a boolean"),
            },
            Builder::Array(b, floats) => append_floats(b, floats, text),
        }
    }

    /// A value from a typed input column, already cast to the field's type.
    fn append_typed(&mut self, array: &ArrayRef, row: usize) -> Outcome {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float32Type, Float64Type, Int64Type};
        match self {
            Builder::Text(b) | Builder::Json(b) => {
                b.append_value(array.as_string::<i32>().value(row))
            }
            Builder::Time(b) => b.append_value(array.as_primitive::<Int64Type>().value(row)),
            Builder::Number(b) => {
                let v = array.as_primitive::<Float64Type>().value(row);
                if !v.is_finite() {
                    return Outcome::Malformed("not a finite number");
                }
                b.append_value(v);
            }
            Builder::Bool(b) => b.append_value(array.as_boolean().value(row)),
            Builder::Array(b, _) => {
                let list = array.as_list::<i32>().value(row);
                let values = list.as_primitive::<Float32Type>();
                if values.null_count() > 0 || values.values().iter().any(|v| !v.is_finite()) {
                    return Outcome::Malformed("array element is null or not finite");
                }
                b.values().append_slice(values.values());
                b.append(true);
            }
        }
        Outcome::Ok
    }
}

fn parse_f64(text: &str) -> Option<f64> {
    let t = text.trim();
    // fast-float accepts "inf"/"nan" and a leading '+': neither is a number we take.
    if t.is_empty() || !t.as_bytes()[t.len() - 1].is_ascii_digit() && !t.ends_with('.') {
        return None;
    }
    fast_float2::parse::<f64, _>(t)
        .ok()
        .filter(|v| v.is_finite())
}

fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Some(ms);
    }
    if let Some(v) = parse_f64(t)
        && v.fract() == 0.0
        && v.abs() < 9.0e15
    {
        return Some(v as i64);
    }
    Timestamp::parse(t).ok().map(Timestamp::as_millis)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") || t == "1" => Some(true),
        t if t.eq_ignore_ascii_case("false") || t == "0" => Some(false),
        _ => None,
    }
}

/// `1.5,2`, `[1.5, 2]`, `""` or `[]`: a list of finite `f32`s, parsed into `floats` first
/// so that a bad element appends nothing.
fn append_floats(
    b: &mut ListBuilder<Float32Builder>,
    floats: &mut Vec<f32>,
    text: &str,
) -> Outcome {
    let mut body = text.trim();
    if let Some(inner) = body.strip_prefix('[') {
        match inner.strip_suffix(']') {
            Some(inner) => body = inner.trim(),
            None => return Outcome::Malformed("unbalanced '['"),
        }
    }
    floats.clear();
    if !body.is_empty() {
        for item in body.split(',') {
            match parse_f32(item) {
                Some(v) => floats.push(v),
                None => return Outcome::Malformed("array element is not a finite number"),
            }
        }
    }
    b.values().append_slice(floats);
    b.append(true);
    Outcome::Ok
}

fn parse_f32(item: &str) -> Option<f32> {
    let t = item.trim();
    let last = *t.as_bytes().last()?;
    if !(last.is_ascii_digit() || last == b'.') {
        return None;
    }
    fast_float2::parse::<f32, _>(t)
        .ok()
        .filter(|v| v.is_finite())
}
