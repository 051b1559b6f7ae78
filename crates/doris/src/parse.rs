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
    Array, ArrayRef, BooleanBuilder, Float32Array, Float64Builder, ListArray, NullBufferBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use serde::Serialize;
use trainstore_core::{Error, Result, Timestamp};

use crate::floats::parse_f32_list;
use crate::scan::{Kind, Members, PlainKey, Raw, ScanError, is_json};
use trainstore_core::snapshot::{FeatureKind, SnapshotSchema};

/// How many example problems a report keeps.
const MAX_EXAMPLES: usize = 20;
/// How much of a bad value an example or error shows.
const MAX_SHOWN: usize = 80;

/// Slices per thread that [`SnapshotParser::parse_batches`] aims for at least: the other
/// threads may sit idle while the last slice is parsed, a thirty-second of each one's share.
const SLICES_PER_THREAD: usize = 32;
/// The fewest rows it cuts a slice to: below this, a slice's setup starts to count.
const MIN_SLICE_ROWS: usize = 512;

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

    /// The report's counts, for a training set's lineage.
    pub fn counts(&self) -> trainstore_core::ParseCounts {
        trainstore_core::ParseCounts {
            rows: self.rows,
            values: self.rows * self.columns.len() as u64,
            malformed: self.malformed(),
            missing: self.columns.values().map(|c| c.missing).sum(),
        }
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
    /// The name as a document key, when it needs no escape.
    key: Option<PlainKey>,
}

impl Target {
    fn new(name: &str, kind: TargetKind) -> Self {
        Target {
            name: name.to_owned(),
            kind,
            key: PlainKey::new(name),
        }
    }
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
            .map(|k| Target::new(k, TargetKind::Key))
            .collect();
        fields.push(Target::new(schema.time(), TargetKind::Time));
        if let Some(tag) = schema.tag() {
            fields.push(Target::new(tag, TargetKind::Feature(FeatureKind::Bool)));
        }
        for f in schema.features() {
            fields.push(Target::new(&f.name, TargetKind::Feature(f.kind)));
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
        let mut doc_row = DocumentRow::new(self.fields.len());
        let mut scratch = String::new();

        for row in 0..rows {
            doc_row.cells.fill(None);
            doc_row.parsed.fill(false);
            doc_row.unknown.clear();
            let mut document_problem = None;
            if let Some(doc) = &document {
                if doc.is_null(row) {
                    let name = self.schema.document_column().expect("document layout");
                    report.columns.entry(name.into()).or_default().missing += 1;
                } else if let Err(reason) =
                    self.read_document(doc.value(row), &mut doc_row, &mut builders, &inputs)
                {
                    // A document that is not one valid JSON object yields no values at all.
                    doc_row.discard(&mut builders);
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
                self.problem(
                    &mut report,
                    row,
                    &doc_row.cells,
                    &inputs,
                    &name,
                    value,
                    reason,
                )?;
            }

            for (i, t) in self.fields.iter().enumerate() {
                let outcome = match &inputs[i] {
                    Some(input) => input.append(row, &mut builders[i]),
                    None if doc_row.parsed[i] => builders[i].end_parsed_row(),
                    None => match doc_row.cells[i] {
                        Some(raw) => builders[i].append_raw(raw, &mut scratch),
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
                        let value = match (&inputs[i], doc_row.cells[i]) {
                            (Some(input), _) => input.show(row),
                            (None, Some(raw)) => show_raw(raw),
                            (None, None) => String::new(),
                        };
                        self.problem(
                            &mut report,
                            row,
                            &doc_row.cells,
                            &inputs,
                            &t.name,
                            value,
                            reason,
                        )?;
                    }
                }
            }
            if let Some(unknown) = unknown.as_mut() {
                if doc_row.unknown.is_empty() {
                    unknown.append_null();
                } else {
                    scratch.clear();
                    scratch.push('{');
                    for (n, (k, v)) in doc_row.unknown.iter().enumerate() {
                        if n > 0 {
                            scratch.push(',');
                        }
                        scratch.push_str(k.text);
                        scratch.push(':');
                        scratch.push_str(v.text);
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

    /// [`SnapshotParser::parse`] on the compute pool, for async callers: a batch's parse is
    /// CPU work that must not hold a thread that runs async tasks.
    pub async fn parse_on_pool(&self, raw: RecordBatch) -> Result<(RecordBatch, ParseReport)> {
        let parser = self.clone();
        trainstore_core::parallel::compute("parse snapshots", move || parser.parse(&raw)).await?
    }

    /// Parses many batches on every core: each is cut into slices of at most `slice_rows` rows
    /// (fewer where the input would make too few slices to keep every core busy), parsed in
    /// parallel, and returned in input order with one merged report.
    pub fn parse_batches(
        &self,
        raw: &[RecordBatch],
        slice_rows: usize,
    ) -> Result<(Vec<RecordBatch>, ParseReport)> {
        // The cores finish together only when the last slices are small next to the whole:
        // 25 slices on two cores left one idle for a twenty-fifth of the work.
        let total: usize = raw.iter().map(RecordBatch::num_rows).sum();
        let balanced = total
            .div_ceil(trainstore_core::parallel::threads() * SLICES_PER_THREAD)
            .max(MIN_SLICE_ROWS);
        let slice_rows = slice_rows.min(balanced).max(1);
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

    /// Reads one document's members into `row` (see [`DocumentRow`]); a field's list of short
    /// decimals goes straight into its builder.
    fn read_document<'a>(
        &self,
        doc: &'a str,
        row: &mut DocumentRow<'a>,
        builders: &mut [Builder],
        inputs: &[Option<Input>],
    ) -> std::result::Result<(), ScanError> {
        let mut members = Members::new(doc)?;
        let mut n = 0;
        loop {
            // The key the previous document had here, most likely this one's too.
            let expected = match row.key_order.get(n) {
                Some(&Some(slot)) => self.fields[slot].key.as_ref(),
                _ => None,
            };
            let Some(key) = members.next_key(expected)? else {
                break;
            };
            let slot = self.slot_at(&mut row.key_order, n, key);
            n += 1;
            let Some(i) = slot else {
                row.unknown.push((key, members.value()?));
                continue;
            };
            // A repeated key: the last value counts.
            if std::mem::take(&mut row.parsed[i]) {
                builders[i].discard_pending();
            }
            row.cells[i] = None;
            if inputs[i].is_none()
                && let Builder::Array(lists) = &mut builders[i]
                && members.float_list(&mut lists.values)
            {
                row.parsed[i] = true;
            } else {
                row.cells[i] = Some(members.value()?);
            }
        }
        Ok(())
    }

    /// The slot of a document's `n`-th key. Documents mostly repeat one key order, so the slot
    /// the previous document had at `n` (kept in `order`) is tried before a lookup.
    fn slot_at(&self, order: &mut Vec<Option<usize>>, n: usize, key: Raw<'_>) -> Option<usize> {
        if let Some(&Some(slot)) = order.get(n)
            && key.kind == (Kind::String { escaped: false })
            && self.fields[slot].name == key.string_content()
        {
            return Some(slot);
        }
        let slot = self.slot_of(key);
        if order.len() <= n {
            order.resize(n + 1, None);
        }
        order[n] = slot;
        slot
    }

    fn slot_of(&self, key: Raw<'_>) -> Option<usize> {
        match key.kind {
            Kind::String { escaped: false } => {
                self.by_key.get(key.string_content().as_bytes()).copied()
            }
            _ => {
                let mut unescaped = String::new();
                key.unescape_into(&mut unescaped)?;
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

/// A document value as a person would write it: strings without their quotes.
fn show_raw(raw: Raw<'_>) -> String {
    shorten(match raw.kind {
        Kind::String { .. } => raw.string_content(),
        _ => raw.text,
    })
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

/// What one document yields before it goes into the builders; reused from row to row.
struct DocumentRow<'a> {
    /// Raw values, by field.
    cells: Vec<Option<Raw<'a>>>,
    /// Fields whose list was read straight into their builder, pending until the row ends.
    parsed: Vec<bool>,
    /// Members that are not fields, for the unknown column.
    unknown: Vec<(Raw<'a>, Raw<'a>)>,
    /// The field at each member position of the last document, tried first for the next.
    key_order: Vec<Option<usize>>,
}

impl DocumentRow<'_> {
    fn new(fields: usize) -> Self {
        DocumentRow {
            cells: vec![None; fields],
            parsed: vec![false; fields],
            unknown: Vec::new(),
            key_order: Vec::new(),
        }
    }

    /// Forgets everything read from the current document, including pending lists.
    fn discard(&mut self, builders: &mut [Builder]) {
        for (i, parsed) in self.parsed.iter_mut().enumerate() {
            if std::mem::take(parsed) {
                builders[i].discard_pending();
            }
        }
        self.cells.fill(None);
        self.unknown.clear();
    }
}

/// The output builder of one field.
enum Builder {
    Text(StringBuilder),
    Json(StringBuilder),
    Time(TimestampMillisecondBuilder),
    Number(Float64Builder),
    Bool(BooleanBuilder),
    Array(FloatLists),
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
            TargetKind::Feature(FeatureKind::Array) => Builder::Array(FloatLists::new(rows)),
        }
    }

    /// Ends a row whose list was read into the builder by [`Members::float_list`].
    fn end_parsed_row(&mut self) -> Outcome {
        match self {
            Builder::Array(lists) => {
                lists.end_row(true);
                Outcome::Ok
            }
            _ => unreachable!("only array fields read lists ahead"),
        }
    }

    /// Drops values read ahead for the current row (see [`Builder::end_parsed_row`]).
    fn discard_pending(&mut self) {
        if let Builder::Array(lists) = self {
            lists.discard_pending();
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Text(b) | Builder::Json(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Number(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Array(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) | Builder::Json(mut b) => Arc::new(b.finish()),
            Builder::Time(mut b) => Arc::new(b.finish()),
            Builder::Number(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Array(b) => Arc::new(b.finish()),
        }
    }

    /// A value from the JSON document; `scratch` holds a string's unescaped content.
    fn append_raw(&mut self, raw: Raw<'_>, scratch: &mut String) -> Outcome {
        match raw.kind {
            Kind::Null => Outcome::Missing,
            Kind::String { escaped: false } => self.append_text(raw.string_content()),
            Kind::String { escaped: true } => match raw.unescape_into(scratch) {
                Some(()) => self.append_text(scratch),
                None => Outcome::Malformed("bad string escape"),
            },
            Kind::Number => match self {
                // The scanner has validated the number and checked it fits an `f64`.
                Builder::Number(b) => match fast_float2::parse::<f64, _>(raw.text) {
                    Ok(v) if v.is_finite() => {
                        b.append_value(v);
                        Outcome::Ok
                    }
                    _ => Outcome::Malformed("not a finite number"),
                },
                Builder::Text(b) => {
                    b.append_value(raw.text);
                    Outcome::Ok
                }
                Builder::Json(b) => {
                    b.append_value(raw.text);
                    Outcome::Ok
                }
                _ => self.append_text(raw.text),
            },
            Kind::True | Kind::False => match self {
                Builder::Bool(b) => {
                    b.append_value(raw.kind == Kind::True);
                    Outcome::Ok
                }
                Builder::Json(b) => {
                    b.append_value(raw.text);
                    Outcome::Ok
                }
                _ => Outcome::Malformed("a boolean where this field wants another type"),
            },
            Kind::Array => match self {
                Builder::Array(..) | Builder::Json(_) => self.append_json_text(raw.text),
                _ => Outcome::Malformed("an array where this field wants another type"),
            },
            Kind::Object => match self {
                Builder::Json(_) => self.append_json_text(raw.text),
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
            Builder::Array(b) => b.append_text(text),
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
                if is_json(text) {
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
            Builder::Array(b) => b.append_text(text),
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
            Builder::Array(b) => {
                let list = array.as_list::<i32>().value(row);
                let values = list.as_primitive::<Float32Type>();
                if values.null_count() > 0 || values.values().iter().any(|v| !v.is_finite()) {
                    return Outcome::Malformed("array element is null or not finite");
                }
                b.append_slice(values.values());
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

/// A `List<Float32>` column under construction. Elements are parsed straight into `values`;
/// a row with a bad element is cut off again, so it leaves no partial list behind.
struct FloatLists {
    values: Vec<f32>,
    /// Where each row's list starts in `values`, plus the end of the last one.
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
    rows: usize,
}

/// After this many rows, `values` is sized once for the whole batch at their average length:
/// growing by doubling would copy the values and touch twice the memory.
const SAMPLE_ROWS: usize = 64;
/// The most values sized ahead from the sample (64 MB), so a sample of outliers cannot reserve
/// memory out of all proportion; beyond it the column grows as it fills.
const MAX_RESERVED_VALUES: usize = 16 << 20;

impl FloatLists {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        FloatLists {
            values: Vec::with_capacity(SAMPLE_ROWS.min(rows) * 64),
            offsets,
            validity: NullBufferBuilder::new(rows),
            rows,
        }
    }

    fn end_row(&mut self, valid: bool) {
        let end = i32::try_from(self.values.len()).expect("fewer than 2^31 elements per batch");
        self.offsets.push(end);
        self.validity.append(valid);
        if self.offsets.len() == SAMPLE_ROWS + 1 {
            let per_row = self.values.len().div_ceil(SAMPLE_ROWS);
            // An eighth more than the sample's average, for rows that run longer.
            let projected = per_row.saturating_mul(self.rows - SAMPLE_ROWS) / 8 * 9;
            self.values.reserve(projected.min(MAX_RESERVED_VALUES));
        }
    }

    fn append_null(&mut self) {
        self.end_row(false);
    }

    /// Drops values appended since the last row ended.
    fn discard_pending(&mut self) {
        let end = self.offsets.last().copied().unwrap_or_default();
        self.values.truncate(end as usize);
    }

    fn append_slice(&mut self, values: &[f32]) {
        self.values.extend_from_slice(values);
        self.end_row(true);
    }

    /// `1.5,2`, `[1.5, 2]`, `""` or `[]`: a list of finite `f32`s.
    fn append_text(&mut self, text: &str) -> Outcome {
        let mut body = text.trim();
        if let Some(inner) = body.strip_prefix('[') {
            match inner.strip_suffix(']') {
                Some(inner) => body = inner.trim(),
                None => return Outcome::Malformed("unbalanced '['"),
            }
        }
        if !body.is_empty() && parse_f32_list(body, &mut self.values).is_none() {
            self.discard_pending();
            return Outcome::Malformed("array element is not a finite number");
        }
        self.end_row(true);
        Outcome::Ok
    }

    fn finish(mut self) -> ListArray {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        ListArray::new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Arc::new(Float32Array::from(self.values)),
            self.validity.finish(),
        )
    }
}
