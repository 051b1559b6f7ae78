//! Bytes of the online stores: entity keys, and one entity's feature row.
//!
//! A key is its join-key values in order, each tagged (strings length-prefixed, integers as
//! 8 bytes), so `("A", 1)` and `("A1",)` can never collide. A row is its event time and
//! created time (big-endian, sign bit flipped, so byte order is time order) followed by
//! self-describing fields (name, type tag, value): a row written before a view gained a field
//! still reads, and a field whose type changed is reported instead of misread.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int32Array, Int32Builder, Int64Array, Int64Builder, ListArray, ListBuilder,
    StringArray, StringBuilder, TimestampNanosecondArray, TimestampNanosecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use trainstore_core::{Error, Result};

use crate::definitions::ValueType;

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
pub(crate) fn version(row: &[u8]) -> &[u8] {
    &row[..HEADER]
}

/// The event time of a stored row, epoch nanoseconds.
pub(crate) fn event_time(row: &[u8]) -> i64 {
    time_from(&row[..8])
}

/// Encodes key columns row by row; `None` where a key is null (such rows never match).
pub(crate) fn encode_keys(names: &[String], columns: &[ArrayRef]) -> Result<Vec<Option<Vec<u8>>>> {
    let len = columns.first().map_or(0, |c| c.len());
    let mut out: Vec<Option<Vec<u8>>> = vec![Some(Vec::new()); len];
    for (name, column) in names.iter().zip(columns) {
        match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let strings = cast(column, &DataType::Utf8)?;
                let strings = strings
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8");
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
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
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
    pub(crate) fn new(fields: &[(String, ValueType)], columns: &[ArrayRef]) -> Result<Self> {
        let fields = fields
            .iter()
            .zip(columns)
            .map(|((name, t), c)| Ok((name.clone(), type_tag(t), cast(c, &canonical_type(t))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(RowEncoder { fields })
    }

    /// Row `row` with its times, as stored.
    pub(crate) fn encode(&self, row: usize, event: i64, created: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 16 * self.fields.len());
        out.extend_from_slice(&time_bytes(event));
        out.extend_from_slice(&time_bytes(created));
        out.extend_from_slice(&(self.fields.len() as u16).to_le_bytes());
        for (name, t, column) in &self.fields {
            out.push(name.len().min(255) as u8);
            out.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
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
        let end = end.ok_or_else(|| Error::Corrupt {
            path: "online store".into(),
            reason: "a stored row ends early".into(),
        })?;
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

/// Builds the requested feature columns from stored rows.
pub(crate) struct RowDecoder {
    fields: Vec<(String, ValueType, Builder)>,
    /// Which fields the current row has filled (kept to spare an allocation per row).
    done: Vec<bool>,
}

enum Builder {
    F64(Float64Builder),
    F32(Float32Builder),
    I64(Int64Builder),
    I32(Int32Builder),
    Bool(BooleanBuilder),
    String(StringBuilder),
    Timestamp(TimestampNanosecondBuilder),
    ListF32(ListBuilder<Float32Builder>),
    ListF64(ListBuilder<Float64Builder>),
    ListI64(ListBuilder<Int64Builder>),
    ListI32(ListBuilder<Int32Builder>),
}

impl Builder {
    /// A builder for `rows` values (sized to them: a lookup is often one row).
    fn new(t: &ValueType, rows: usize) -> Self {
        match type_tag(t) {
            tag::F64 => Builder::F64(Float64Builder::with_capacity(rows)),
            tag::F32 => Builder::F32(Float32Builder::with_capacity(rows)),
            tag::I64 => Builder::I64(Int64Builder::with_capacity(rows)),
            tag::I32 => Builder::I32(Int32Builder::with_capacity(rows)),
            tag::BOOL => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            tag::STRING => Builder::String(StringBuilder::with_capacity(rows, rows * 16)),
            tag::TIMESTAMP => Builder::Timestamp(TimestampNanosecondBuilder::with_capacity(rows)),
            tag::LIST_F32 => Builder::ListF32(ListBuilder::with_capacity(
                Float32Builder::with_capacity(rows * 32),
                rows,
            )),
            tag::LIST_F64 => Builder::ListF64(ListBuilder::with_capacity(
                Float64Builder::with_capacity(rows * 32),
                rows,
            )),
            tag::LIST_I64 => Builder::ListI64(ListBuilder::with_capacity(
                Int64Builder::with_capacity(rows * 32),
                rows,
            )),
            _ => Builder::ListI32(ListBuilder::with_capacity(
                Int32Builder::with_capacity(rows * 32),
                rows,
            )),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::F64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::String(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::ListF32(b) => b.append_null(),
            Builder::ListF64(b) => b.append_null(),
            Builder::ListI64(b) => b.append_null(),
            Builder::ListI32(b) => b.append_null(),
        }
    }

    /// Appends the value at the reader, which holds a value of this builder's type.
    fn append(&mut self, r: &mut Reader<'_>) -> Result<()> {
        fn list<B, T>(
            b: &mut ListBuilder<B>,
            r: &mut Reader<'_>,
            width: usize,
            read: impl Fn(&[u8]) -> T,
        ) -> Result<()>
        where
            B: arrow::array::ArrayBuilder + Extend<Option<T>>,
        {
            let n = r.u32()?;
            let valid: Option<Vec<bool>> = if r.u8()? == 1 {
                Some(r.take(n)?.iter().map(|&v| v == 1).collect())
            } else {
                None
            };
            let raw = r.take(n * width)?;
            b.values().extend(
                raw.chunks_exact(width)
                    .enumerate()
                    .map(|(i, c)| valid.as_ref().is_none_or(|v| v[i]).then(|| read(c))),
            );
            b.append(true);
            Ok(())
        }
        let le8 = |b: &[u8]| -> [u8; 8] { b.try_into().expect("8") };
        let le4 = |b: &[u8]| -> [u8; 4] { b.try_into().expect("4") };
        match self {
            Builder::F64(b) => b.append_value(f64::from_le_bytes(le8(r.take(8)?))),
            Builder::F32(b) => b.append_value(f32::from_le_bytes(le4(r.take(4)?))),
            Builder::I64(b) => b.append_value(i64::from_le_bytes(le8(r.take(8)?))),
            Builder::I32(b) => b.append_value(i32::from_le_bytes(le4(r.take(4)?))),
            Builder::Timestamp(b) => b.append_value(i64::from_le_bytes(le8(r.take(8)?))),
            Builder::Bool(b) => b.append_value(r.u8()? == 1),
            Builder::String(b) => {
                let n = r.u32()?;
                let text = std::str::from_utf8(r.take(n)?).map_err(|_| Error::Corrupt {
                    path: "online store".into(),
                    reason: "a stored string is not UTF-8".into(),
                })?;
                b.append_value(text);
            }
            Builder::ListF32(b) => list(b, r, 4, |c| f32::from_le_bytes(le4(c)))?,
            Builder::ListF64(b) => list(b, r, 8, |c| f64::from_le_bytes(le8(c)))?,
            Builder::ListI64(b) => list(b, r, 8, |c| i64::from_le_bytes(le8(c)))?,
            Builder::ListI32(b) => list(b, r, 4, |c| i32::from_le_bytes(le4(c)))?,
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::F32(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::I32(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::String(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish().with_timezone("UTC")),
            Builder::ListF32(mut b) => Arc::new(b.finish()),
            Builder::ListF64(mut b) => Arc::new(b.finish()),
            Builder::ListI64(mut b) => Arc::new(b.finish()),
            Builder::ListI32(mut b) => Arc::new(b.finish()),
        }
    }
}

impl RowDecoder {
    /// A decoder of `rows` stored rows into `fields`.
    pub(crate) fn new(fields: &[(String, ValueType)], rows: usize) -> Self {
        RowDecoder {
            fields: fields
                .iter()
                .map(|(n, t)| (n.clone(), t.clone(), Builder::new(t, rows)))
                .collect(),
            done: vec![false; fields.len()],
        }
    }

    /// Appends one entity's values: nulls for `None`, else the stored row's fields.
    pub(crate) fn append(&mut self, row: Option<&[u8]>) -> Result<()> {
        let Some(bytes) = row else {
            for (_, _, b) in &mut self.fields {
                b.append_null();
            }
            return Ok(());
        };
        let done = &mut self.done;
        done.fill(false);
        let mut r = Reader { bytes, at: HEADER };
        let count = u16::from_le_bytes(r.take(2)?.try_into().expect("2"));
        for _ in 0..count {
            let len = r.u8()? as usize;
            let name = r.take(len)?;
            let t = r.u8()?;
            let wanted = self
                .fields
                .iter()
                .position(|(n, _, _)| n.as_bytes() == name);
            match wanted {
                Some(i) if t == tag::NULL => {
                    self.fields[i].2.append_null();
                    done[i] = true;
                }
                Some(i) if t == type_tag(&self.fields[i].1) => {
                    self.fields[i].2.append(&mut r)?;
                    done[i] = true;
                }
                Some(i) => {
                    return Err(Error::Corrupt {
                        path: "online store".into(),
                        reason: format!(
                            "feature {} was materialized with another type than its current {}; \
                             materialize the view again",
                            self.fields[i].0, self.fields[i].1
                        ),
                    });
                }
                None => value_len(t, &mut r)?,
            }
        }
        for (i, (_, _, b)) in self.fields.iter_mut().enumerate() {
            if !done[i] {
                b.append_null();
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<ArrayRef> {
        self.fields
            .into_iter()
            .map(|(_, _, b)| b.finish())
            .collect()
    }
}
