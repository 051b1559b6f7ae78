//! What a read of snapshots gave: rows, devices, time span, and the parse report. Shown by
//! `trainstore snapshots query` and the demo.

use std::collections::HashSet;
use std::fmt;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMillisecondType;
use trainstore_core::Timestamp;
use trainstore_doris::{ParseReport, SnapshotSchema};

/// A summary of parsed snapshot batches.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSummary {
    pub rows: usize,
    /// Distinct entity keys (e.g. uuid + nodeId).
    pub devices: usize,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub report: ParseReport,
}

impl SnapshotSummary {
    /// Summarises `batches` (typed by `schema`) and the report of the read that produced them.
    pub fn of(schema: &SnapshotSchema, batches: &[RecordBatch], report: ParseReport) -> Self {
        let mut devices = HashSet::new();
        let (mut first, mut last) = (None::<i64>, None::<i64>);
        let mut rows = 0;
        for b in batches {
            rows += b.num_rows();
            let keys: Vec<_> = schema
                .keys()
                .iter()
                .filter_map(|k| b.column_by_name(k))
                .map(|c| c.as_string::<i32>())
                .collect();
            if keys.len() == schema.keys().len() {
                for r in 0..b.num_rows() {
                    // Rows whose keys could not be read belong to no known device.
                    if !keys.iter().all(|k| k.is_valid(r)) {
                        continue;
                    }
                    devices.insert(
                        keys.iter()
                            .map(|k| k.value(r).to_owned())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            if let Some(times) = b.column_by_name(schema.time()) {
                let times = times.as_primitive::<TimestampMillisecondType>();
                for t in times.iter().flatten() {
                    first = Some(first.map_or(t, |f| f.min(t)));
                    last = Some(last.map_or(t, |l| l.max(t)));
                }
            }
        }
        SnapshotSummary {
            rows,
            devices: devices.len(),
            first: first.map(Timestamp::from_millis),
            last: last.map(Timestamp::from_millis),
            report,
        }
    }
}

impl SnapshotSummary {
    /// Rows, devices and time span on one line.
    pub fn headline(&self) -> String {
        let mut line = format!("{} rows from {} devices", self.rows, self.devices);
        if let (Some(a), Some(b)) = (self.first, self.last) {
            line.push_str(&format!(", {a} .. {b}"));
        }
        line
    }
}

impl fmt::Display for SnapshotSummary {
    /// The headline, then the parse report by column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        let malformed = self.report.malformed();
        write!(
            f,
            "\n  parse report: {} rows parsed, {malformed} malformed values",
            self.report.rows
        )?;
        for (column, c) in &self.report.columns {
            if c.malformed > 0 {
                write!(
                    f,
                    "\n    {column:<14} {} malformed, {} missing",
                    c.malformed, c.missing
                )?;
            }
        }
        if let Some(example) = self.report.examples.first() {
            write!(
                f,
                "\n  e.g. {} in {}: {} ({:?})",
                example.field, example.row, example.reason, example.value
            )?;
        }
        Ok(())
    }
}
