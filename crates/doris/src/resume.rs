//! Reading again after a failure without repeating or losing rows. A read keeps a fingerprint
//! of every row it has handed out; a retry runs the query again and skips rows with those
//! fingerprints, each as many times as it was sent, in whatever order the server returns them.
//!
//! The fingerprints of a long read go to an anonymous temporary file past [`SPILL_AFTER`], so
//! the read's memory stays flat; only a retry reads them back.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use arrow::array::RecordBatch;
use arrow::row::{RowConverter, SortField};
use trainstore_core::{Error, Result};
use xxhash_rust::xxh3::xxh3_128;

/// Fingerprints kept in memory before they move to the spill file (16 MiB of them).
const SPILL_AFTER: usize = 1 << 20;

/// What a read has handed out: the fingerprint of every row sent, the newest in memory and
/// the rest in a spill file.
#[derive(Debug)]
pub(crate) struct HandedOut {
    sent: Vec<u128>,
    spill_after: usize,
    spilled: Option<BufWriter<File>>,
    /// The spill file could not be written: everything stays in memory from then on.
    in_memory_only: bool,
}

impl Default for HandedOut {
    fn default() -> Self {
        HandedOut::spilling_after(SPILL_AFTER)
    }
}

impl HandedOut {
    fn spilling_after(spill_after: usize) -> Self {
        HandedOut {
            sent: Vec::new(),
            spill_after,
            spilled: None,
            in_memory_only: false,
        }
    }

    /// Records rows as handed out, once their batch has been sent.
    pub fn hand_out(&mut self, keys: &mut Vec<u128>) {
        self.sent.append(keys);
        if self.sent.len() >= self.spill_after
            && !self.in_memory_only
            && let Err(e) = self.spill()
        {
            // Correctness does not depend on the file, only memory does.
            tracing::warn!(error = %e, "cannot spill the retry ledger; keeping it in memory");
            self.in_memory_only = true;
        }
    }

    fn spill(&mut self) -> std::io::Result<()> {
        let file = match &mut self.spilled {
            Some(file) => file,
            None => self.spilled.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        for k in &self.sent {
            file.write_all(&k.to_le_bytes())?;
        }
        self.sent.clear();
        Ok(())
    }

    /// The rows the next attempt must skip (counted only when a retry needs them).
    pub fn already_sent(&mut self) -> Result<Skip> {
        let mut counts: HashMap<u128, u32> = HashMap::with_capacity(self.sent.len());
        let mut count = |k: u128| *counts.entry(k).or_insert(0) += 1;
        if let Some(file) = &mut self.spilled {
            read_back(file, &mut count).map_err(|e| Error::Remote {
                service: "the retry ledger's temporary file".into(),
                operation: "read back",
                reason: e.to_string(),
                transient: false,
            })?;
        }
        self.sent.iter().for_each(|&k| count(k));
        Ok(Skip(counts))
    }
}

/// Passes every fingerprint spilled so far to `count`. Reading to the end leaves the file
/// where the next spill appends.
fn read_back(file: &mut BufWriter<File>, count: &mut impl FnMut(u128)) -> std::io::Result<()> {
    file.flush()?;
    let mut reader = BufReader::new(file.get_ref());
    reader.seek(SeekFrom::Start(0))?;
    let mut key = [0u8; 16];
    loop {
        match reader.read_exact(&mut key) {
            Ok(()) => count(u128::from_le_bytes(key)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

        let mut progress = HandedOut::default();
        progress.hand_out(&mut keys[..3].to_vec());
        let mut skip = progress.already_sent().unwrap();
        let skipped: Vec<bool> = keys.iter().chain(&keys).map(|k| skip.take(*k)).collect();
        // Rows 0 and 1 (identical) and row 2 were sent: each skipped once, later copies kept.
        assert_eq!(
            skipped,
            [true, true, true, false, false, false, false, false]
        );
    }

    #[test]
    fn spilled_fingerprints_are_skipped_like_kept_ones() {
        let mut progress = HandedOut::spilling_after(4);
        let keys: Vec<u128> = (0..10).map(|i| i % 7).collect(); // 0..6, then 0, 1, 2 again
        for chunk in keys.chunks(3) {
            progress.hand_out(&mut chunk.to_vec());
        }
        assert!(progress.spilled.is_some());
        assert!(progress.sent.len() < 4, "memory holds only the newest");
        // A retry in the middle, then more rows, then another retry: nothing is lost.
        let mut skip = progress.already_sent().unwrap();
        let first: Vec<bool> = (0..8).map(|k| skip.take(k)).collect();
        assert_eq!(first, [true, true, true, true, true, true, true, false]);
        progress.hand_out(&mut vec![7, 7, 7, 7, 7]);
        let mut skip = progress.already_sent().unwrap();
        let twice: Vec<bool> = [0, 0, 0, 6, 6, 7, 7, 7, 7, 7, 7]
            .iter()
            .map(|&k| skip.take(k))
            .collect();
        assert_eq!(
            twice,
            [
                true, true, false, true, false, true, true, true, true, true, false
            ]
        );
    }
}
