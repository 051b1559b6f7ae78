//! What a parse could not read: counts per column and the first examples, with the row each
//! came from.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many example problems a report keeps.
pub(super) const MAX_EXAMPLES: usize = 20;

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
