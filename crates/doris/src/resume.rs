//! Reading again after a failure without repeating or losing rows. A read keeps a fingerprint
//! of every row it has handed out; a retry runs the query again and skips rows with those
//! fingerprints, each as many times as it was sent, in whatever order the server returns them.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::row::{RowConverter, SortField};
use trainstore_core::Result;
use xxhash_rust::xxh3::xxh3_128;

/// What a read has handed out: the fingerprint of every row sent.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    sent: Vec<u128>,
}

impl Progress {
    /// Records rows as handed out, once their batch has been sent.
    pub fn hand_out(&mut self, keys: &mut Vec<u128>) {
        self.sent.append(keys);
    }

    /// The rows the next attempt must skip (counted only when a retry needs them).
    pub fn to_skip(&self) -> Skip {
        let mut counts = HashMap::with_capacity(self.sent.len());
        for k in &self.sent {
            *counts.entry(*k).or_insert(0) += 1;
        }
        Skip(counts)
    }
}

/// Rows handed out by earlier attempts, to be skipped once each.
pub(crate) struct Skip(HashMap<u128, u32>);

impl Skip {
    /// Whether a row with this fingerprint was handed out before; it is then accounted for.
    pub fn take(&mut self, key: u128) -> bool {
        match self.0.get_mut(&key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

/// A 128-bit fingerprint of each row of `batch` (of its values in Arrow's row format).
pub(crate) fn batch_keys(batch: &RecordBatch) -> Result<Vec<u128>> {
    let fields = batch
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let rows = RowConverter::new(fields)?.convert_columns(batch.columns())?;
    Ok(rows.iter().map(|row| xxh3_128(row.as_ref())).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_retry_skips_each_row_as_often_as_it_was_sent() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("time", DataType::Int64, false),
                Field::new("doc", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 1, 2])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a"),
                    None,
                    Some("a"),
                ])),
            ],
        )
        .unwrap();
        let keys = batch_keys(&batch).unwrap();
        assert_eq!(keys[0], keys[1], "identical rows share a fingerprint");
        assert_ne!(keys[0], keys[2], "null is not a value");
        assert_ne!(keys[0], keys[3]);

        let mut progress = Progress::default();
        progress.hand_out(&mut keys[..3].to_vec());
        let mut skip = progress.to_skip();
        let skipped: Vec<bool> = keys.iter().chain(&keys).map(|k| skip.take(*k)).collect();
        // Rows 0 and 1 (identical) and row 2 were sent: each skipped once, later copies kept.
        assert_eq!(
            skipped,
            [true, true, true, false, false, false, false, false]
        );
    }
}
