//! Choosing a training-set version by criteria (the design document's): enough rows,
//! a high enough quality score, data from within a time range, given tags. Among the
//! versions that qualify the best score wins, the newer on a tie.
//!
//! When none qualifies, the error names the criterion that excluded the most versions: the
//! one to relax first.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use trainstore_core::{Error, Result, TagName, Timestamp, Version};

use super::Listed;

/// What a version must meet to be selected; unset criteria accept everything.
///
/// ```
/// use trainstore_featurestore::training::Criteria;
/// let c = Criteria::default().min_data_size(10_000).min_quality_score(0.8).unwrap();
/// assert_eq!(c.min_data_size, Some(10_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// At least this many rows.
    pub min_data_size: Option<u64>,
    /// An overall quality score at least this high, in [0, 1].
    pub min_quality_score: Option<f64>,
    /// The data's time coverage lies within `[start, end]` (both included): every row's time
    /// is in the range. A set without a time column never qualifies.
    pub time_range: Option<(Timestamp, Timestamp)>,
    /// The version carries every one of these tags or aliases.
    pub tags: Vec<TagName>,
}

impl Criteria {
    pub fn min_data_size(mut self, rows: u64) -> Self {
        self.min_data_size = Some(rows);
        self
    }

    /// Refuses a score outside [0, 1] or not a number.
    pub fn min_quality_score(mut self, score: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&score) {
            return Err(Error::invalid(
                "min_quality_score",
                score.to_string(),
                "must be between 0 and 1",
            ));
        }
        self.min_quality_score = Some(score);
        Ok(self)
    }

    /// Refuses an end before the start.
    pub fn time_range(mut self, start: Timestamp, end: Timestamp) -> Result<Self> {
        if end < start {
            return Err(Error::invalid(
                "time_range",
                format!("{start} .. {end}"),
                "ends before it starts",
            ));
        }
        self.time_range = Some((start, end));
        Ok(self)
    }

    pub fn tag(mut self, tag: TagName) -> Self {
        self.tags.push(tag);
        self
    }

    /// The criteria `listed` fails, by name.
    fn failed(&self, listed: &Listed, names: &HashSet<&TagName>) -> Vec<&'static str> {
        let summary = &listed.summary;
        let mut failed = Vec::new();
        if self.min_data_size.is_some_and(|min| summary.rows < min) {
            failed.push("min_data_size");
        }
        if self
            .min_quality_score
            .is_some_and(|min| summary.overall_score < min)
        {
            failed.push("min_quality_score");
        }
        if let Some((start, end)) = self.time_range {
            let within = summary
                .time_coverage
                .is_some_and(|(first, last)| start <= first && last <= end);
            if !within {
                failed.push("time_range");
            }
        }
        if !self.tags.iter().all(|t| names.contains(t)) {
            failed.push("tags");
        }
        failed
    }
}

/// The best of `listed` (sorted best first) meeting `criteria`; `names` gives each version's
/// tags and aliases.
pub(crate) fn select_best<'a>(
    item: &str,
    listed: &'a [Listed],
    names: &BTreeMap<Version, Vec<TagName>>,
    criteria: &Criteria,
) -> Result<&'a Listed> {
    let mut excluded: BTreeMap<&'static str, usize> = BTreeMap::new();
    for candidate in listed {
        let tags: HashSet<&TagName> = names
            .get(&candidate.version)
            .into_iter()
            .flatten()
            .collect();
        let failed = criteria.failed(candidate, &tags);
        if failed.is_empty() {
            return Ok(candidate);
        }
        for f in failed {
            *excluded.entry(f).or_default() += 1;
        }
    }
    let reason = match excluded.iter().max_by_key(|(_, n)| **n) {
        Some((criterion, n)) => format!(
            "{item} meeting the criteria: {criterion} excluded {n} of {} versions, the most",
            listed.len()
        ),
        None => format!("{item}: it has no versions"),
    };
    Err(Error::NotFound {
        what: "training-set version",
        name: reason,
    })
}
