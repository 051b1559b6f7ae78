//! Arrow builders fed straight from text-protocol rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use trainstore_core::Result;

use super::RawType;
use super::wire::{ResultSet, Row, WireResult};
use crate::sql::Ident;
use arrow::datatypes::SchemaRef;

/// Builders fed straight from text-protocol rows.
pub(super) struct RawRows {
    pub(super) columns: Vec<RawColumn>,
    pub(super) len: usize,
    /// The rows a full batch holds.
    pub(super) batch_rows: usize,
}

pub(super) enum RawColumn {
    Int(Int64Builder),
    Text(StringBuilder),
}

impl RawRows {
    pub(super) fn new(raw: &[(Ident, RawType)], rows: usize) -> Self {
        let columns = raw
            .iter()
            .map(|(_, ty)| match ty {
                RawType::Int => RawColumn::Int(Int64Builder::with_capacity(rows)),
                RawType::Text => RawColumn::Text(StringBuilder::with_capacity(rows, rows * 64)),
            })
            .collect();
        RawRows {
            columns,
            len: 0,
            batch_rows: rows,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Reads rows into the builders, those `keep` accepts, until a batch is full or the result
    /// has ended; `false` once it has. The caller puts one deadline on a whole batch: a timer
    /// per row cost more than decoding the row.
    pub(super) async fn fill(
        &mut self,
        result: &mut ResultSet<'_>,
        mut keep: impl FnMut(&Row<'_>) -> bool,
    ) -> WireResult<bool> {
        while self.len < self.batch_rows {
            match result.next_row().await? {
                Some(row) if keep(&row) => self.push(&row),
                Some(_) => {}
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    pub(super) fn push(&mut self, row: &Row<'_>) {
        for (i, col) in self.columns.iter_mut().enumerate() {
            let cell = row.get(i);
            match col {
                RawColumn::Int(b) => b.append_option(int_of(cell)),
                RawColumn::Text(b) => match cell {
                    Some(bytes) => match std::str::from_utf8(bytes) {
                        Ok(text) => b.append_value(text),
                        Err(_) => b.append_value(String::from_utf8_lossy(bytes)),
                    },
                    None => b.append_null(),
                },
            }
        }
        self.len += 1;
    }

    /// The rows so far as a batch; the builders start over, text sized by this batch (a text
    /// builder grown by doubling copies its bytes and touches twice the memory).
    pub(super) fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = self.batch_rows;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| match c {
                RawColumn::Int(b) => Arc::new(b.finish()) as ArrayRef,
                RawColumn::Text(b) => {
                    let text = b.finish();
                    let bytes =
                        text.value_data().len() * rows / arrow::array::Array::len(&text).max(1);
                    *b = StringBuilder::with_capacity(rows, bytes + bytes / 8);
                    Arc::new(text) as ArrayRef
                }
            })
            .collect();
        self.len = 0;
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
    }
}

/// An integer cell as sent in text; a value that is not one becomes null.
pub(super) fn int_of(cell: Option<&[u8]>) -> Option<i64> {
    std::str::from_utf8(cell?).ok()?.parse().ok()
}
