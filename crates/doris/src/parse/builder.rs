//! The output column of one field, built from raw values: the parsing rules of each kind
//! (number, array, bool, time, text, JSON).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float32Array, Float64Builder, ListArray, NullBufferBuilder,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field};
use trainstore_core::Timestamp;

use super::TargetKind;
use crate::floats::parse_f32_list;
use crate::scan::{Kind, Raw, is_json};
use trainstore_core::snapshot::FeatureKind;

/// What appending one value did.
pub(super) enum Outcome {
    Ok,
    Missing,
    Malformed(&'static str),
}

/// The output builder of one field.
pub(super) enum Builder {
    Text(StringBuilder),
    Json(StringBuilder),
    Time(TimestampMillisecondBuilder),
    Number(Float64Builder),
    Bool(BooleanBuilder),
    Array(FloatLists),
}

impl Builder {
    pub(super) fn new(kind: TargetKind, rows: usize) -> Self {
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
    pub(super) fn end_parsed_row(&mut self) -> Outcome {
        match self {
            Builder::Array(lists) => {
                lists.end_row(true);
                Outcome::Ok
            }
            _ => unreachable!("only array fields read lists ahead"),
        }
    }

    /// Drops values read ahead for the current row (see [`Builder::end_parsed_row`]).
    pub(super) fn discard_pending(&mut self) {
        if let Builder::Array(lists) = self {
            lists.discard_pending();
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Builder::Text(b) | Builder::Json(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Number(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Array(b) => b.append_null(),
        }
    }

    pub(super) fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) | Builder::Json(mut b) => Arc::new(b.finish()),
            Builder::Time(mut b) => Arc::new(b.finish()),
            Builder::Number(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Array(b) => Arc::new(b.finish()),
        }
    }

    /// A value from the JSON document; `scratch` holds a string's unescaped content.
    pub(super) fn append_raw(&mut self, raw: Raw<'_>, scratch: &mut String) -> Outcome {
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
    pub(super) fn append_json_text(&mut self, text: &str) -> Outcome {
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
    pub(super) fn append_text(&mut self, text: &str) -> Outcome {
        if text.trim().is_empty() && !matches!(self, Builder::Text(_)) {
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
    pub(super) fn append_typed(&mut self, array: &ArrayRef, row: usize) -> Outcome {
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
pub(super) struct FloatLists {
    pub(super) values: Vec<f32>,
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

    /// `1.5,2`, `[1.5, 2]` or `[]`: a list of finite `f32`s (blank text is missing, caught
    /// before).
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
