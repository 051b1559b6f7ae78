//! The snapshot parser: raw snapshot rows (a JSON document column, or flat text columns) into
//! typed Arrow, with a report of every value that could not be read.
//!
//! A bad value never becomes `0.0` or `[]`: it becomes null and is counted per column in the
//! [`ParseReport`]; in strict mode the first one fails the parse with the row's identity
//! (keys and time) and the field. Rules per kind:
//!
//! - number: a JSON number or numeric text (surrounding spaces allowed), finite;
//! - array: `"1.5,2"`, `"[1.5, 2]"` or a JSON array of numbers, each a finite `f32`; `"[]"` is
//!   an empty list, and blank text (`""`) is missing, like a blank number;
//! - bool: `true`/`false`, `1`/`0`, or that as text (case-insensitive);
//! - time: integral epoch milliseconds (number or text) or ISO-8601 text (UTC when no offset);
//! - text: a string, or a number's text;
//! - json: any JSON value, or a string holding JSON text; kept as JSON text.
//!
//! JSON `null`, SQL `NULL`, absent fields and blank text (except for text fields) are missing,
//! not malformed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use trainstore_core::{Error, Result};

use crate::scan::{Kind, Members, PlainKey, Raw, ScanError};
use trainstore_core::snapshot::{FeatureKind, SnapshotSchema};

mod builder;
mod input;
mod report;

use builder::{Builder, Outcome};
use input::{DocumentRow, Input};
use report::MAX_EXAMPLES;
pub use report::{ColumnReport, ParseIssue, ParseReport};

/// How much of a bad value an example or error shows.
const MAX_SHOWN: usize = 80;

/// Slices per thread that [`SnapshotParser::parse_batches`] aims for at least: the other
/// threads may sit idle while the last slice is parsed, a thirty-second of each one's share.
const SLICES_PER_THREAD: usize = 32;
/// The fewest rows it cuts a slice to: below this, a slice's setup starts to count.
const MIN_SLICE_ROWS: usize = 512;

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
                    format!(
                        "the schema's document column is missing from the input, whose columns \
                         are {}: if these files are a typed table rather than raw snapshots, \
                         give a feature view the path itself (with its timestamp_field), or in \
                         Python ts.FileSource(path, timestamp_field=...)",
                        column_list(raw)
                    ),
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

/// The names of `batch`'s columns, for messages: the first few, then how many more.
fn column_list(batch: &RecordBatch) -> String {
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    match names.len() {
        0..=8 => names.join(", "),
        n => format!("{} and {} more", names[..8].join(", "), n - 8),
    }
}
