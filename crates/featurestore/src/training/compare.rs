//! Comparing training-set versions: what changed between two (schema, rows, statistics), how
//! far each feature drifted, and whether a set rebuilt from its lineage is the set recorded.
//!
//! Rows are compared as multisets by the 128-bit row hash the duplicate check uses, over the
//! columns both sets have with the same type: no sort, one pass over each set, memory of one
//! count per distinct row. Statistics come from the manifests, without reading data.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use serde::Serialize;
use trainstore_core::{Error, Result};

use super::quality::{ColumnStats, RowHasher};
use super::{ColumnInfo, TrainingSetVersion, TrainingSets};

/// A column whose type differs between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retyped {
    pub column: String,
    pub before: String,
    pub after: String,
}

/// One statistic of a column in two versions, `before` and `after`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change<T> {
    pub before: T,
    pub after: T,
}

/// How one column's statistics moved between two versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnChange {
    pub column: String,
    pub completeness: Change<f64>,
    pub mean: Change<Option<f64>>,
    pub std: Change<Option<f64>>,
    pub min: Change<Option<f64>>,
    pub max: Change<Option<f64>>,
}

/// What differs between version `before` and version `after`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetDiff {
    pub before: String,
    pub after: String,
    /// Equal content hashes: the same rows in the same order, byte for byte.
    pub same_content: bool,
    pub columns_added: Vec<ColumnInfo>,
    pub columns_removed: Vec<ColumnInfo>,
    pub columns_retyped: Vec<Retyped>,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Rows (over the columns both have with one type) only in `before`, counted with
    /// multiplicity; likewise only in `after`.
    pub rows_removed: u64,
    pub rows_added: u64,
    /// Columns both have, with their statistics before and after.
    pub columns_changed: Vec<ColumnChange>,
}

impl SetDiff {
    /// Whether nothing differs but, perhaps, the order of rows.
    pub fn is_empty(&self) -> bool {
        self.columns_added.is_empty()
            && self.columns_removed.is_empty()
            && self.columns_retyped.is_empty()
            && self.rows_added == 0
            && self.rows_removed == 0
    }
}

/// Compares `before` (a version of `before_sets`) with `after` (of `after_sets`), reading
/// both sets' rows once.
pub(crate) async fn diff(
    before_sets: &TrainingSets,
    before: &TrainingSetVersion,
    after_sets: &TrainingSets,
    after: &TrainingSetVersion,
) -> Result<SetDiff> {
    let find =
        |columns: &[ColumnInfo], name: &str| columns.iter().find(|c| c.name == name).cloned();
    let (old, new) = (&before.info.schema, &after.info.schema);
    let columns_added = new
        .iter()
        .filter(|c| find(old, &c.name).is_none())
        .cloned()
        .collect();
    let columns_removed = old
        .iter()
        .filter(|c| find(new, &c.name).is_none())
        .cloned()
        .collect();
    let mut columns_retyped = Vec::new();
    let mut common = Vec::new();
    for c in old {
        if let Some(n) = find(new, &c.name) {
            if n.data_type == c.data_type {
                common.push(c.name.clone());
            } else {
                columns_retyped.push(Retyped {
                    column: c.name.clone(),
                    before: c.data_type.clone(),
                    after: n.data_type,
                });
            }
        }
    }
    let mut counts: HashMap<u128, i64> = HashMap::new();
    if !common.is_empty() {
        let (_, rows) = before_sets.read(before).await?;
        count_rows(&rows, &common, 1, &mut counts)?;
        drop(rows);
        let (_, rows) = after_sets.read(after).await?;
        count_rows(&rows, &common, -1, &mut counts)?;
    }
    let rows_removed = counts.values().filter(|&&n| n > 0).map(|&n| n as u64).sum();
    let rows_added = counts
        .values()
        .filter(|&&n| n < 0)
        .map(|&n| n.unsigned_abs())
        .sum();
    let stats = |v: &TrainingSetVersion, name: &str| -> Option<ColumnStats> {
        v.info
            .quality
            .columns
            .iter()
            .find(|c| c.name == name)
            .cloned()
    };
    let columns_changed = common
        .iter()
        .filter_map(|name| {
            Some(column_change(
                name,
                stats(before, name)?,
                stats(after, name)?,
            ))
        })
        .collect();
    Ok(SetDiff {
        before: before.id(),
        after: after.id(),
        same_content: before.info.content_hash == after.info.content_hash,
        columns_added,
        columns_removed,
        columns_retyped,
        rows_before: before.info.rows,
        rows_after: after.info.rows,
        rows_removed,
        rows_added,
        columns_changed,
    })
}

fn column_change(name: &str, a: ColumnStats, b: ColumnStats) -> ColumnChange {
    let pick = |s: &ColumnStats, f: fn(&super::quality::NumericStats) -> Option<f64>| {
        s.numeric.as_ref().and_then(f)
    };
    let change = |f: fn(&super::quality::NumericStats) -> Option<f64>| Change {
        before: pick(&a, f),
        after: pick(&b, f),
    };
    ColumnChange {
        column: name.to_owned(),
        completeness: Change {
            before: a.completeness,
            after: b.completeness,
        },
        mean: change(|n| Some(n.mean)),
        std: change(|n| n.std),
        min: change(|n| Some(n.min)),
        max: change(|n| Some(n.max)),
    }
}

/// Adds `sign` to the count of each row of `batches`, projected onto `columns`.
fn count_rows(
    batches: &[RecordBatch],
    columns: &[String],
    sign: i64,
    counts: &mut HashMap<u128, i64>,
) -> Result<()> {
    let mut hasher = RowHasher::new(columns.len());
    let mut hashes = Vec::new();
    for batch in batches {
        let indices = columns
            .iter()
            .map(|c| {
                batch.schema().index_of(c).map_err(|_| Error::Corrupt {
                    path: c.clone(),
                    reason: "a column the manifest lists is missing from the data".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        hasher.hash(&batch.project(&indices)?, &mut hashes)?;
        for &h in &hashes {
            *counts.entry(h).or_default() += sign;
        }
    }
    counts.retain(|_, n| *n != 0);
    Ok(())
}

/// Whether a set rebuilt from its lineage is the set recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reproduction {
    pub version: String,
    /// The rebuilt set has the recorded content hash.
    pub matches: bool,
    pub recorded_hash: String,
    pub rebuilt_hash: String,
    /// What differs, when the hashes do not match.
    pub differences: Option<SetDiff>,
}
