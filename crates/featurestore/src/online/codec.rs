//! Bytes of the online stores: entity keys, and one entity's feature row.
//!
//! A key is its join-key values in order, each tagged (strings length-prefixed, integers as
//! 8 bytes), so `("A", 1)` and `("A1",)` can never collide. A row is its event time and
//! created time (big-endian, sign bit flipped, so byte order is time order) followed by
//! self-describing fields (name, type tag, value): a row written before a view gained a field
//! still reads, and a field whose type changed is reported instead of misread.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, PrimitiveArray, StringArray, StringBuilder,
    TimestampNanosecondArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, FieldRef, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit,
    TimestampNanosecondType,
};
use trainstore_core::{Error, Result};

use crate::definitions::{Field, ValueType};

const KEY_STRING: u8 = 1;
const KEY_INT: u8 = 2;

/// Bytes before the fields of a row: event time and created time.
pub(crate) const HEADER: usize = 16;

/// An ordering-preserving encoding of a signed time.
fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(bytes: &[u8]) -> i64 {
    (u64::from_be_bytes(bytes.try_into().expect("8 bytes")) ^ (1 << 63)) as i64
}

/// The (event, created) version of a stored row, comparable as bytes.
pub(crate) fn version(row: &[u8]) -> Result<&[u8]> {
    row.get(..HEADER).ok_or_else(ends_early)
}

/// The event time of a stored row, epoch nanoseconds.
pub(crate) fn event_time(row: &[u8]) -> Result<i64> {
    Ok(time_from(&version(row)?[..8]))
}

/// An entity's recent rows (oldest first, each an encoded row) as one stored value: the
/// newest row's version first (so the store keeps the newer of two such values, as it does
/// rows), then each row after its length (4 bytes, little-endian).
pub(crate) fn encode_recent(rows: &[Vec<u8>]) -> Vec<u8> {
    let newest = rows.last().map_or(&[][..], |r| &r[..HEADER.min(r.len())]);
    let mut out = Vec::with_capacity(HEADER + rows.iter().map(|r| r.len() + 4).sum::<usize>());
    out.extend_from_slice(newest);
    out.resize(HEADER, 0);
    for row in rows {
        out.extend_from_slice(&(row.len() as u32).to_le_bytes());
        out.extend_from_slice(row);
    }
    out
}

/// The rows of a value [`encode_recent`] made, oldest first.
pub(crate) fn recent_rows(value: &[u8]) -> Result<Vec<&[u8]>> {
    let mut rest = value.get(HEADER..).ok_or_else(ends_early)?;
    let mut rows = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(4).ok_or_else(ends_early)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let (row, tail) = tail.split_at_checked(len).ok_or_else(ends_early)?;
        version(row)?;
        rows.push(row);
        rest = tail;
    }
    Ok(rows)
}

/// A stored row (read back from the store, where anything may have written it) is shorter
/// than its own lengths say.
fn ends_early() -> Error {
    Error::Corrupt {
        path: "online store".into(),
        reason: "a stored row ends early".into(),
    }
}

/// Encodes key columns row by row; `None` where a key is null (such rows never match).
pub(crate) fn encode_keys(names: &[String], columns: &[ArrayRef]) -> Result<Vec<Option<Vec<u8>>>> {
    let len = columns.first().map_or(0, |c| c.len());
    let mut out: Vec<Option<Vec<u8>>> = vec![Some(Vec::new()); len];
    for (name, column) in names.iter().zip(columns) {
        match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                // Cast only other string types: a lookup's key column is usually Utf8.
                let cast_once;
                let strings = match column.as_string_opt::<i32>() {
                    Some(s) => s,
                    None => {
                        cast_once = cast(column, &DataType::Utf8)?;
                        cast_once.as_string::<i32>()
                    }
                };
                for (slot, v) in out.iter_mut().zip(strings.iter()) {
                    match (slot.as_mut(), v) {
                        (Some(key), Some(v)) => {
                            key.push(KEY_STRING);
                            key.extend_from_slice(&(v.len() as u32).to_le_bytes());
                            key.extend_from_slice(v.as_bytes());
                        }
                        _ => *slot = None,
                    }
                }
            }
            t if integer_key(t) => {
                let ints = cast(column, &DataType::Int64)?;
                let ints = ints.as_any().downcast_ref::<Int64Array>().expect("int64");
                for (slot, v) in out.iter_mut().zip(ints.iter()) {
                    match (slot.as_mut(), v) {
                        (Some(key), Some(v)) => {
                            key.push(KEY_INT);
                            key.extend_from_slice(&v.to_le_bytes());
                        }
                        _ => *slot = None,
                    }
                }
            }
            other => {
                return Err(Error::invalid(
                    "join key",
                    name.as_str(),
                    format!("is {other}; online keys must be strings or integers"),
                ));
            }
        }
    }
    Ok(out)
}

/// At most this many other spellings of a request's keys are tried (`other_key_kinds`): a key
/// of many columns would otherwise try every combination of them.
const MAX_OTHER_KEY_KINDS: usize = 15;

/// The key columns spelled as the other kind of key, for keys that found nothing as given:
/// integers as the text of their decimal digits, text of exactly such digits as integers
/// (rule 7.3 of `docs/point-in-time.md`). One entry per combination that respells at least one
/// column; values with no other spelling are null there, so they look nothing up.
pub(crate) fn other_key_kinds(columns: &[ArrayRef]) -> Result<Vec<Vec<ArrayRef>>> {
    let mut combinations: Vec<(Vec<ArrayRef>, bool)> = vec![(Vec::new(), false)];
    for column in columns {
        let other =
            other_kind(column)?.filter(|_| combinations.len() * 2 <= MAX_OTHER_KEY_KINDS + 1);
        let mut next = Vec::with_capacity(combinations.len() * 2);
        for (columns, respelled) in combinations {
            if let Some(other) = &other {
                let mut with_other = columns.clone();
                with_other.push(other.clone());
                next.push((with_other, true));
            }
            let mut as_given = columns;
            as_given.push(column.clone());
            next.push((as_given, respelled));
        }
        combinations = next;
    }
    Ok(combinations
        .into_iter()
        .filter_map(|(columns, respelled)| respelled.then_some(columns))
        .collect())
}

/// The integer types a key may have: every width that fits an `i64` (keys are stored as one).
fn integer_key(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

/// One key column as the other kind of key, or `None` when no value has another spelling.
fn other_kind(column: &ArrayRef) -> Result<Option<ArrayRef>> {
    Ok(match column.data_type() {
        t if integer_key(t) => Some(cast(column, &DataType::Utf8)?),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(column, &DataType::Utf8)?;
            let ints: Int64Array = text
                .as_string::<i32>()
                .iter()
                .map(|v| v.and_then(canonical_integer))
                .collect();
            (ints.null_count() < ints.len()).then(|| Arc::new(ints) as ArrayRef)
        }
        _ => None,
    })
}

/// The integer `text` spells, when it is exactly that integer's decimal digits (`"1465"`,
/// `"-3"`; not `"01465"`, `"+3"` or `" 3"`).
fn canonical_integer(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| n.to_string() == text)
}

/// Value type tags.
mod tag {
    pub const NULL: u8 = 0;
    pub const F64: u8 = 1;
    pub const F32: u8 = 2;
    pub const I64: u8 = 3;
    pub const I32: u8 = 4;
    pub const BOOL: u8 = 5;
    pub const STRING: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LIST_F32: u8 = 8;
    pub const LIST_F64: u8 = 9;
    pub const LIST_I64: u8 = 10;
    pub const LIST_I32: u8 = 11;
}

fn type_tag(t: &ValueType) -> u8 {
    match t {
        ValueType::Float64 => tag::F64,
        ValueType::Float32 => tag::F32,
        ValueType::Int64 => tag::I64,
        ValueType::Int32 => tag::I32,
        ValueType::Bool => tag::BOOL,
        ValueType::String => tag::STRING,
        ValueType::Timestamp => tag::TIMESTAMP,
        ValueType::List(item) => match **item {
            ValueType::Float32 => tag::LIST_F32,
            ValueType::Float64 => tag::LIST_F64,
            ValueType::Int64 => tag::LIST_I64,
            _ => tag::LIST_I32,
        },
    }
}

/// The Arrow type rows are decoded into (and encoded from, after a cast).
pub(crate) fn canonical_type(t: &ValueType) -> DataType {
    match t {
        ValueType::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        other => other.arrow_type(),
    }
}

/// Feature columns cast to their canonical types, ready for [`encode_row`].
pub(crate) struct RowEncoder {
    fields: Vec<(String, u8, ArrayRef)>,
}

impl RowEncoder {
    /// Refuses what a stored row cannot say: more than 65,535 features, or a name longer
    /// than 255 bytes (it would be cut, and never match on reading).
    pub(crate) fn new(fields: &[Field], columns: &[ArrayRef]) -> Result<Self> {
        if u16::try_from(fields.len()).is_err() {
            return Err(Error::invalid(
                "online features",
                fields.len().to_string(),
                "at most 65,535 features per view can be stored online",
            ));
        }
        let fields = fields
            .iter()
            .zip(columns)
            .map(|(f, c)| {
                if f.name.len() > usize::from(u8::MAX) {
                    return Err(Error::invalid(
                        "feature name",
                        &f.name,
                        "longer than 255 bytes, which the online store cannot hold",
                    ));
                }
                let canonical = cast(c, &canonical_type(&f.dtype))?;
                Ok((f.name.clone(), type_tag(&f.dtype), canonical))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RowEncoder { fields })
    }

    /// Row `row` with its times, as stored.
    pub(crate) fn encode(&self, row: usize, event: i64, created: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 16 * self.fields.len());
        out.extend_from_slice(&time_bytes(event));
        out.extend_from_slice(&time_bytes(created));
        // Both fit, as `new` checked.
        out.extend_from_slice(&(self.fields.len() as u16).to_le_bytes());
        for (name, t, column) in &self.fields {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            if column.is_null(row) {
                out.push(tag::NULL);
                continue;
            }
            out.push(*t);
            encode_value(*t, column.as_ref(), row, &mut out);
        }
        out
    }
}

fn prim<T: 'static>(a: &dyn Array) -> &T {
    a.as_any().downcast_ref::<T>().expect("canonical type")
}

fn encode_value(t: u8, column: &dyn Array, row: usize, out: &mut Vec<u8>) {
    match t {
        tag::F64 => out.extend_from_slice(&prim::<Float64Array>(column).value(row).to_le_bytes()),
        tag::F32 => out.extend_from_slice(&prim::<Float32Array>(column).value(row).to_le_bytes()),
        tag::I64 => out.extend_from_slice(&prim::<Int64Array>(column).value(row).to_le_bytes()),
        tag::I32 => out.extend_from_slice(&prim::<Int32Array>(column).value(row).to_le_bytes()),
        tag::TIMESTAMP => out.extend_from_slice(
            &prim::<TimestampNanosecondArray>(column)
                .value(row)
                .to_le_bytes(),
        ),
        tag::BOOL => out.push(prim::<BooleanArray>(column).value(row) as u8),
        tag::STRING => {
            let s = prim::<StringArray>(column).value(row);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        _ => {
            let items = prim::<ListArray>(column).value(row);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            out.push(u8::from(items.null_count() > 0));
            if items.null_count() > 0 {
                out.extend((0..items.len()).map(|i| items.is_valid(i) as u8));
            }
            let item_tag = match t {
                tag::LIST_F32 => tag::F32,
                tag::LIST_F64 => tag::F64,
                tag::LIST_I64 => tag::I64,
                _ => tag::I32,
            };
            for i in 0..items.len() {
                encode_value(item_tag, items.as_ref(), i, out);
            }
        }
    }
}

/// A cursor over a stored row's bytes; running off the end means corrupt data.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(ends_early)?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")) as usize)
    }
}

fn value_len(t: u8, r: &mut Reader<'_>) -> Result<()> {
    match t {
        tag::NULL => {}
        tag::F64 | tag::I64 | tag::TIMESTAMP => {
            r.take(8)?;
        }
        tag::F32 | tag::I32 => {
            r.take(4)?;
        }
        tag::BOOL => {
            r.take(1)?;
        }
        tag::STRING => {
            let n = r.u32()?;
            r.take(n)?;
        }
        tag::LIST_F32 | tag::LIST_I32 | tag::LIST_F64 | tag::LIST_I64 => {
            let n = r.u32()?;
            if r.u8()? == 1 {
                r.take(n)?;
            }
            let width = if matches!(t, tag::LIST_F32 | tag::LIST_I32) {
                4
            } else {
                8
            };
            r.take(n * width)?;
        }
        other => {
            return Err(Error::Corrupt {
                path: "online store".into(),
                reason: format!("unknown value tag {other}"),
            });
        }
    }
    Ok(())
}

/// One requested feature's values, kept as plain vectors and handed to Arrow without a copy:
/// a lookup is often one row, where builders' bookkeeping and per-array validation cost more
/// than the values.
enum Values {
    F64(Vec<f64>),
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    String(StringBuilder),
    Timestamp(Vec<i64>),
    ListF32(List<Float32Type>),
    ListF64(List<Float64Type>),
    ListI64(List<Int64Type>),
    ListI32(List<Int32Type>),
}

/// A list column's offsets and items; item validity only once an item is null.
struct List<T: ArrowPrimitiveType> {
    offsets: Vec<i32>,
    items: Vec<T::Native>,
    item_valid: Option<Vec<bool>>,
}

impl<T: ArrowPrimitiveType> List<T> {
    fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        List {
            offsets,
            items: Vec::with_capacity(rows * 32),
            item_valid: None,
        }
    }

    /// Appends a stored list: its length, a has-nulls byte, the validity bytes if so, the
    /// little-endian items.
    fn append(&mut self, r: &mut Reader<'_>, read: impl Fn(&[u8]) -> T::Native) -> Result<()> {
        let width = std::mem::size_of::<T::Native>();
        let n = r.u32()?;
        let valid = if r.u8()? == 1 { Some(r.take(n)?) } else { None };
        let raw = r.take(n * width)?;
        if valid.is_some() || self.item_valid.is_some() {
            let held = self.items.len();
            let item_valid = self.item_valid.get_or_insert_with(|| vec![true; held]);
            match valid {
                Some(v) => item_valid.extend(v.iter().map(|&b| b == 1)),
                None => item_valid.resize(held + n, true),
            }
        }
        self.items.extend(raw.chunks_exact(width).map(read));
        self.push_offset()
    }

    /// Ends a row: an empty list for a null one, else the items appended since the last.
    fn push_offset(&mut self) -> Result<()> {
        let end = i32::try_from(self.items.len()).map_err(|_| Error::Corrupt {
            path: "online store".into(),
            reason: "more list items than one column can hold".into(),
        })?;
        self.offsets.push(end);
        Ok(())
    }

    fn finish(self, nulls: Option<NullBuffer>) -> ArrayRef {
        let item_nulls = self.item_valid.map(NullBuffer::from);
        let items = PrimitiveArray::<T>::new(self.items.into(), item_nulls);
        let field = item_field(&T::DATA_TYPE);
        let offsets = OffsetBuffer::new(self.offsets.into());
        Arc::new(ListArray::new(field, offsets, Arc::new(items), nulls))
    }
}

/// The item field of list columns of `item`, made once per process and shared.
fn item_field(item: &DataType) -> FieldRef {
    static FIELDS: OnceLock<Vec<FieldRef>> = OnceLock::new();
    let fields = FIELDS.get_or_init(|| {
        [
            DataType::Float32,
            DataType::Float64,
            DataType::Int32,
            DataType::Int64,
        ]
        .map(|t| Arc::new(arrow::datatypes::Field::new_list_field(t, true)))
        .to_vec()
    });
    let field = fields.iter().find(|f| f.data_type() == item);
    field.expect("list items are numeric").clone()
}

impl Values {
    /// Room for `rows` values (sized to them: a lookup is often one row).
    fn new(t: &ValueType, rows: usize) -> Self {
        match type_tag(t) {
            tag::F64 => Values::F64(Vec::with_capacity(rows)),
            tag::F32 => Values::F32(Vec::with_capacity(rows)),
            tag::I64 => Values::I64(Vec::with_capacity(rows)),
            tag::I32 => Values::I32(Vec::with_capacity(rows)),
            tag::BOOL => Values::Bool(Vec::with_capacity(rows)),
            tag::STRING => Values::String(StringBuilder::with_capacity(rows, rows * 16)),
            tag::TIMESTAMP => Values::Timestamp(Vec::with_capacity(rows)),
            tag::LIST_F32 => Values::ListF32(List::with_capacity(rows)),
            tag::LIST_F64 => Values::ListF64(List::with_capacity(rows)),
            tag::LIST_I64 => Values::ListI64(List::with_capacity(rows)),
            _ => Values::ListI32(List::with_capacity(rows)),
        }
    }

    /// A placeholder under a null slot (the column's validity says it is null).
    fn append_null(&mut self) -> Result<()> {
        match self {
            Values::F64(v) => v.push(0.0),
            Values::F32(v) => v.push(0.0),
            Values::I64(v) | Values::Timestamp(v) => v.push(0),
            Values::I32(v) => v.push(0),
            Values::Bool(v) => v.push(false),
            Values::String(b) => b.append_value(""),
            Values::ListF32(l) => l.push_offset()?,
            Values::ListF64(l) => l.push_offset()?,
            Values::ListI64(l) => l.push_offset()?,
            Values::ListI32(l) => l.push_offset()?,
        }
        Ok(())
    }

    /// Appends the value at the reader, which holds a value of this column's type.
    fn append(&mut self, r: &mut Reader<'_>) -> Result<()> {
        let le8 = |b: &[u8]| -> [u8; 8] { b.try_into().expect("8") };
        let le4 = |b: &[u8]| -> [u8; 4] { b.try_into().expect("4") };
        match self {
            Values::F64(v) => v.push(f64::from_le_bytes(le8(r.take(8)?))),
            Values::F32(v) => v.push(f32::from_le_bytes(le4(r.take(4)?))),
            Values::I64(v) | Values::Timestamp(v) => v.push(i64::from_le_bytes(le8(r.take(8)?))),
            Values::I32(v) => v.push(i32::from_le_bytes(le4(r.take(4)?))),
            Values::Bool(v) => v.push(r.u8()? == 1),
            Values::String(b) => {
                let n = r.u32()?;
                let text = std::str::from_utf8(r.take(n)?).map_err(|_| Error::Corrupt {
                    path: "online store".into(),
                    reason: "a stored string is not UTF-8".into(),
                })?;
                b.append_value(text);
            }
            Values::ListF32(l) => l.append(r, |c| f32::from_le_bytes(le4(c)))?,
            Values::ListF64(l) => l.append(r, |c| f64::from_le_bytes(le8(c)))?,
            Values::ListI64(l) => l.append(r, |c| i64::from_le_bytes(le8(c)))?,
            Values::ListI32(l) => l.append(r, |c| i32::from_le_bytes(le4(c)))?,
        }
        Ok(())
    }

    fn finish(self, nulls: Option<NullBuffer>) -> ArrayRef {
        fn primitive<T: ArrowPrimitiveType>(
            v: Vec<T::Native>,
            nulls: Option<NullBuffer>,
        ) -> PrimitiveArray<T> {
            PrimitiveArray::new(v.into(), nulls)
        }
        match self {
            Values::F64(v) => Arc::new(primitive::<Float64Type>(v, nulls)),
            Values::F32(v) => Arc::new(primitive::<Float32Type>(v, nulls)),
            Values::I64(v) => Arc::new(primitive::<Int64Type>(v, nulls)),
            Values::I32(v) => Arc::new(primitive::<Int32Type>(v, nulls)),
            Values::Timestamp(v) => {
                Arc::new(primitive::<TimestampNanosecondType>(v, nulls).with_timezone("UTC"))
            }
            Values::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
            Values::String(mut b) => {
                let strings = b.finish();
                let (offsets, values, _) = strings.into_parts();
                Arc::new(StringArray::new(offsets, values, nulls))
            }
            Values::ListF32(l) => l.finish(nulls),
            Values::ListF64(l) => l.finish(nulls),
            Values::ListI64(l) => l.finish(nulls),
            Values::ListI32(l) => l.finish(nulls),
        }
    }
}

/// One requested feature being decoded: its values, and its validity once a row is null.
struct Column<'f> {
    field: &'f Field,
    tag: u8,
    values: Values,
    valid: Option<Vec<bool>>,
}

impl Column<'_> {
    fn append_null(&mut self, row: usize) -> Result<()> {
        self.valid
            .get_or_insert_with(|| vec![true; row])
            .push(false);
        self.values.append_null()
    }

    fn append(&mut self, r: &mut Reader<'_>) -> Result<()> {
        if let Some(valid) = &mut self.valid {
            valid.push(true);
        }
        self.values.append(r)
    }
}

/// Builds the requested feature columns from stored rows.
pub(crate) struct RowDecoder<'f> {
    columns: Vec<Column<'f>>,
    /// Rows appended so far.
    rows: usize,
    /// Which fields the current row has filled (kept to spare an allocation per row).
    done: Vec<bool>,
}

impl<'f> RowDecoder<'f> {
    /// A decoder of `rows` stored rows into `fields`.
    pub(crate) fn new(fields: &'f [Field], rows: usize) -> Self {
        RowDecoder {
            columns: fields
                .iter()
                .map(|f| Column {
                    field: f,
                    tag: type_tag(&f.dtype),
                    values: Values::new(&f.dtype, rows),
                    valid: None,
                })
                .collect(),
            rows: 0,
            done: vec![false; fields.len()],
        }
    }

    /// Appends one entity's values: nulls for `None`, else the stored row's fields.
    pub(crate) fn append(&mut self, row: Option<&[u8]>) -> Result<()> {
        let at = self.rows;
        self.rows += 1;
        let Some(bytes) = row else {
            for c in &mut self.columns {
                c.append_null(at)?;
            }
            return Ok(());
        };
        let done = &mut self.done;
        done.fill(false);
        let mut r = Reader { bytes, at: HEADER };
        let count = u16::from_le_bytes(r.take(2)?.try_into().expect("2"));
        // Stored fields usually come in the order asked for: try the column after the last
        // match before searching.
        let mut next = 0;
        for _ in 0..count {
            let len = r.u8()? as usize;
            let name = r.take(len)?;
            let t = r.u8()?;
            let named = |c: &Column<'_>| c.field.name.as_bytes() == name;
            let wanted = match self.columns.get(next) {
                Some(c) if named(c) => Some(next),
                _ => self.columns.iter().position(named),
            };
            next = wanted.map_or(next, |i| i + 1);
            if let Some(i) = wanted.filter(|&i| done[i]) {
                // A second value would shift every later row of the column by one.
                return Err(Error::Corrupt {
                    path: "online store".into(),
                    reason: format!(
                        "feature {} is stored twice in one row",
                        self.columns[i].field.name
                    ),
                });
            }
            match wanted {
                Some(i) if t == tag::NULL => {
                    self.columns[i].append_null(at)?;
                    done[i] = true;
                }
                Some(i) if t == self.columns[i].tag => {
                    self.columns[i].append(&mut r)?;
                    done[i] = true;
                }
                Some(i) => {
                    let field = self.columns[i].field;
                    return Err(Error::Corrupt {
                        path: "online store".into(),
                        reason: format!(
                            "feature {} was materialized with another type than its current {}; \
                             materialize the view again",
                            field.name, field.dtype
                        ),
                    });
                }
                None => value_len(t, &mut r)?,
            }
        }
        for (i, c) in self.columns.iter_mut().enumerate() {
            if !done[i] {
                c.append_null(at)?;
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<ArrayRef> {
        self.columns
            .into_iter()
            .map(|c| c.values.finish(c.valid.map(NullBuffer::from)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        BooleanArray, Float32Builder, Float64Array, Int32Array, Int64Array, ListBuilder,
        StringArray, TimestampNanosecondArray,
    };

    use super::*;

    #[test]
    fn keys_are_respelled_as_the_other_kind_only_where_the_value_allows() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("1465"),
            Some("01465"),
            Some("-3"),
            Some("+3"),
            None,
        ]));
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![7, -2, 0, 1, 2]));
        let others = other_key_kinds(&[text.clone(), ints.clone()]).unwrap();
        // Text respelled, integers respelled, both: three other spellings.
        assert_eq!(others.len(), 3);
        let as_ints = others
            .iter()
            .find(|c| c[0].data_type() == &DataType::Int64 && Arc::ptr_eq(&c[1], &ints))
            .unwrap();
        let respelled: Vec<Option<i64>> = as_ints[0].as_primitive::<Int64Type>().iter().collect();
        assert_eq!(respelled, [Some(1465), None, Some(-3), None, None]);
        let as_text = others
            .iter()
            .find(|c| Arc::ptr_eq(&c[0], &text) && c[1].data_type() == &DataType::Utf8)
            .unwrap();
        let digits: Vec<Option<&str>> = as_text[1].as_string::<i32>().iter().collect();
        assert_eq!(digits, ["7", "-2", "0", "1", "2"].map(Some));
        // Text with no integer among it has no other spelling.
        let names: ArrayRef = Arc::new(StringArray::from(vec!["A", "007"]));
        assert!(other_key_kinds(&[names]).unwrap().is_empty());
        // Many key columns try a bounded number of spellings.
        let many = vec![ints; 40];
        assert_eq!(other_key_kinds(&many).unwrap().len(), MAX_OTHER_KEY_KINDS);
    }

    fn field(name: &str, dtype: ValueType) -> Field {
        Field {
            name: name.into(),
            dtype,
        }
    }

    /// Every value type, with nulls first valid then not (and the reverse), and list items
    /// that are null only in a later row: the decoder's lazily started validity must line up.
    fn columns() -> (Vec<Field>, Vec<ArrayRef>) {
        let mut lists = ListBuilder::new(Float32Builder::new());
        lists.append_value([Some(1.5), Some(2.0)]);
        lists.append_null();
        lists.append_value([]);
        lists.append_value([Some(3.0), None, Some(4.0)]);
        let fields = vec![
            field("f64", ValueType::Float64),
            field("f32", ValueType::Float32),
            field("i64", ValueType::Int64),
            field("i32", ValueType::Int32),
            field("flag", ValueType::Bool),
            field("text", ValueType::String),
            field("at", ValueType::Timestamp),
            field("list", ValueType::List(Box::new(ValueType::Float32))),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                None,
                Some(3.0),
                Some(-0.5),
            ])),
            Arc::new(Float32Array::from(vec![None, Some(2.5), None, Some(7.0)])),
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(0),
                None,
                Some(5),
            ])),
            Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(3), None])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
            ])),
            Arc::new(StringArray::from(vec![
                Some("é"),
                Some(""),
                None,
                Some("x"),
            ])),
            Arc::new(
                TimestampNanosecondArray::from(vec![Some(1), None, Some(3), Some(-4)])
                    .with_timezone("UTC"),
            ),
            Arc::new(lists.finish()),
        ];
        (fields, columns)
    }

    #[test]
    fn recent_rows_read_back_in_order_and_damaged_ones_are_corrupt_not_a_panic() {
        let (fields, columns) = columns();
        let encoder = RowEncoder::new(&fields, &columns).expect("an encoder");
        let rows: Vec<Vec<u8>> = (0..3).map(|r| encoder.encode(r, r as i64, 0)).collect();
        let value = encode_recent(&rows);
        assert_eq!(
            version(&value).expect("a version"),
            version(&rows[2]).expect("a version")
        );
        let back = recent_rows(&value).expect("rows");
        assert_eq!(back, rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(recent_rows(&encode_recent(&[])).expect("none").is_empty());
        for cut in [3, HEADER + 2, value.len() - 1] {
            let text = recent_rows(&value[..cut]).expect_err("damaged").to_string();
            assert!(text.contains("ends early"), "{text}");
        }
        // A length that points past the end.
        let mut lying = value.clone();
        lying[HEADER..HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(recent_rows(&lying).is_err());
    }

    #[test]
    fn rows_decode_to_the_columns_they_were_encoded_from() {
        let (fields, columns) = columns();
        let encoder = RowEncoder::new(&fields, &columns).unwrap();
        let rows: Vec<Vec<u8>> = (0..4).map(|r| encoder.encode(r, r as i64, 0)).collect();
        let mut decoder = RowDecoder::new(&fields, rows.len());
        for row in &rows {
            decoder.append(Some(row)).unwrap();
        }
        for (i, got) in decoder.finish().iter().enumerate() {
            assert_eq!(
                got.to_data(),
                columns[i].to_data(),
                "column {}",
                fields[i].name
            );
        }
        // Asked for in another order than stored.
        let reversed: Vec<Field> = fields.iter().rev().cloned().collect();
        let mut decoder = RowDecoder::new(&reversed, rows.len());
        for row in &rows {
            decoder.append(Some(row)).unwrap();
        }
        for (got, want) in decoder.finish().iter().zip(columns.iter().rev()) {
            assert_eq!(got.to_data(), want.to_data());
        }
    }

    #[test]
    fn absent_rows_and_fields_decode_as_nulls() {
        let (fields, columns) = columns();
        // Rows written before the view had its last four fields.
        let encoder = RowEncoder::new(&fields[..4], &columns[..4]).unwrap();
        let row = encoder.encode(0, 0, 0);
        let mut decoder = RowDecoder::new(&fields, 3);
        decoder.append(Some(&row)).unwrap();
        decoder.append(None).unwrap();
        decoder.append(Some(&row)).unwrap();
        let got = decoder.finish();
        assert_eq!(
            got[0]
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(1.0), None, Some(1.0)]
        );
        for (column, f) in got.iter().zip(&fields).skip(4) {
            assert_eq!(
                column.null_count(),
                3,
                "{} is absent from every row",
                f.name
            );
            assert_eq!(column.data_type(), &canonical_type(&f.dtype));
        }
    }

    #[test]
    fn a_field_stored_with_another_type_is_reported() {
        let (fields, columns) = columns();
        let row = RowEncoder::new(&fields[..1], &columns[..1])
            .unwrap()
            .encode(0, 0, 0);
        let retyped = [field("f64", ValueType::Int64)];
        let err = RowDecoder::new(&retyped, 1).append(Some(&row)).unwrap_err();
        assert!(
            err.to_string().contains("materialize the view again"),
            "{err}"
        );
    }

    #[test]
    fn stored_rows_too_short_for_their_times_are_corrupt_not_a_panic() {
        for short in [&b""[..], b"\x80", &[0x80; HEADER - 1]] {
            assert!(matches!(event_time(short), Err(Error::Corrupt { .. })));
            assert!(matches!(version(short), Err(Error::Corrupt { .. })));
            let fields = [field("f64", ValueType::Float64)];
            let err = RowDecoder::new(&fields, 1).append(Some(short)).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        }
    }

    #[test]
    fn a_field_stored_twice_in_one_row_is_corrupt() {
        let (fields, columns) = columns();
        let once = RowEncoder::new(&fields[..1], &columns[..1])
            .unwrap()
            .encode(0, 0, 0);
        // The same field again after the first: a count of 2, then its bytes twice.
        let mut twice = once[..HEADER].to_vec();
        twice.extend_from_slice(&2u16.to_le_bytes());
        twice.extend_from_slice(&once[HEADER + 2..]);
        twice.extend_from_slice(&once[HEADER + 2..]);
        let mut decoder = RowDecoder::new(&fields[..1], 1);
        let err = decoder.append(Some(&twice)).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if reason.contains("f64")),
            "{err}"
        );
    }

    #[test]
    fn a_feature_name_longer_than_a_stored_row_can_say_is_refused() {
        let (_, columns) = columns();
        let long = [field(&"x".repeat(256), ValueType::Float64)];
        let err = RowEncoder::new(&long, &columns[..1]).err().unwrap();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        let longest = [field(&"x".repeat(255), ValueType::Float64)];
        let row = RowEncoder::new(&longest, &columns[..1])
            .unwrap()
            .encode(0, 0, 0);
        let mut decoder = RowDecoder::new(&longest, 1);
        decoder.append(Some(&row)).unwrap();
        assert_eq!(decoder.finish()[0].null_count(), 0);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bytes of stored keys and rows (docs/formats.md, "The online store"), pinned in
    /// `tests/golden/online.txt`: a change must be deliberate, and rows an earlier trainstore
    /// stored must still decode. Rewrite with `TRAINSTORE_BLESS=1` after a deliberate change.
    #[test]
    fn stored_keys_and_rows_are_pinned_and_pinned_rows_decode() {
        let (fields, columns) = columns();
        let encoder = RowEncoder::new(&fields, &columns).unwrap();
        let rows: Vec<Vec<u8>> = (0..4)
            .map(|r| encoder.encode(r, 1_700_000_000_000_000_000 + r as i64, i64::MIN))
            .collect();
        let names = ["uuid".to_owned(), "nodeId".to_owned()];
        let keys = encode_keys(
            &names,
            &[
                Arc::new(StringArray::from(vec![
                    Some("704A0ED440F4"),
                    Some(""),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![Some(1465), Some(-1), Some(2)])),
            ],
        )
        .unwrap();
        let mut written =
            String::from("# keys (uuid text, nodeId integer); a null key is not stored\n");
        for key in &keys {
            written.push_str(&key.as_deref().map_or("-".into(), hex));
            written.push('\n');
        }
        written
            .push_str("# rows of every value type, event times from 1.7e18 ns, no created time\n");
        for row in &rows {
            written.push_str(&hex(row));
            written.push('\n');
        }
        written.push_str("# an entity's recent rows (online_rows > 1): the first two rows above\n");
        written.push_str(&hex(&encode_recent(&rows[..2])));
        written.push('\n');
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/online.txt");
        if std::env::var_os("TRAINSTORE_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &written).unwrap();
        }
        let pinned = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            pinned,
            "the online store's bytes changed: if on purpose, keep reading the old ones and \
             rewrite {} with TRAINSTORE_BLESS=1",
            path.display()
        );

        let bytes = |l: &str| -> Vec<u8> {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        };
        let section = |title: &str| -> Vec<Vec<u8>> {
            pinned
                .lines()
                .skip_while(|l| !l.starts_with(title))
                .skip(1)
                .take_while(|l| !l.starts_with('#'))
                .map(bytes)
                .collect()
        };
        let pinned_rows = section("# rows");
        let pinned_recent = section("# an entity's recent rows");
        assert_eq!(
            recent_rows(&pinned_recent[0]).unwrap(),
            [&pinned_rows[0][..], &pinned_rows[1][..]]
        );
        let mut decoder = RowDecoder::new(&fields, pinned_rows.len());
        for row in &pinned_rows {
            decoder.append(Some(row)).unwrap();
        }
        for (got, want) in decoder.finish().iter().zip(&columns) {
            assert_eq!(got.to_data(), want.to_data());
        }
        assert_eq!(
            event_time(&pinned_rows[3]).unwrap(),
            1_700_000_000_000_000_003
        );
    }

    /// Distinct key tuples never share bytes: each value carries its type and text its
    /// length, so neither a shifted boundary nor a number spelled as text can collide.
    #[test]
    fn distinct_keys_never_encode_alike() {
        let text = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let ints = |v: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
        let two_texts = encode_keys(
            &["a".into(), "b".into()],
            &[
                text(vec!["ab", "a", "", "a\u{0}", "1"]),
                text(vec!["c", "bc", "abc", "bc", ""]),
            ],
        )
        .unwrap();
        let text_then_int = encode_keys(
            &["a".into(), "b".into()],
            &[text(vec!["1", "", "ab"]), ints(vec![1, 0, 99])],
        )
        .unwrap();
        let int_then_text = encode_keys(
            &["a".into(), "b".into()],
            &[ints(vec![1, 0, 1]), text(vec!["1", "", "ab"])],
        )
        .unwrap();
        let all: Vec<Vec<u8>> = two_texts
            .into_iter()
            .chain(text_then_int)
            .chain(int_then_text)
            .map(Option::unwrap)
            .collect();
        let distinct: std::collections::HashSet<&Vec<u8>> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        // The same value as text and as an integer are different keys.
        let one_text = encode_keys(&["k".into()], &[text(vec!["1465"])]).unwrap();
        let one_int = encode_keys(&["k".into()], &[ints(vec![1465])]).unwrap();
        assert_ne!(one_text, one_int);
    }
}
