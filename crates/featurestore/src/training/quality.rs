//! The quality of a training set, measured in one pass over its batches as they are written.
//!
//! The writer hands every batch to [`QualityAccumulator::observe`] (on its own thread, beside
//! the Parquet encoder) and calls [`QualityAccumulator::finish`] once the set is complete; the
//! resulting [`Quality`] goes into the set's manifest, its score and size into the version
//! index.
//!
//! # Reproducibility
//!
//! The same rows in the same order give the same [`Quality`], bit for bit, however they are
//! split into batches: every statistic is folded over fixed blocks of the value stream (not
//! over batches), and the quantile sample is chosen by positions in that stream with a
//! fixed-seed integer hash (no platform `ln`/`exp`, no clock, no OS randomness). The same rows
//! in another order give the same counts, min/max, duplicates, label classes and time
//! coverage; means and deviations may differ in the last bits and quantiles within their
//! sampling error.
//!
//! # Numbers
//!
//! Integers, floats, decimals (not 256-bit) and booleans (0/1) are numeric; so are times:
//! timestamps, dates and durations as seconds (since the epoch for timestamps and dates),
//! times of day as seconds since midnight. All are summarized as `f64`, so integers beyond
//! 2^53 lose their last digits in the statistics (never in the duplicate check). NaN and ±∞
//! are left out of min, max, mean, deviation and quantiles and counted instead
//! ([`ColumnStats::nan_count`], [`ColumnStats::infinite_count`]): one NaN would otherwise
//! erase every statistic, and JSON cannot carry it. The deviation is the sample standard
//! deviation (divisor n − 1), as pandas reports it.
//!
//! # Quantiles
//!
//! Each numeric column keeps a stratified sample of at most [`SAMPLE_CAPACITY`] values: its
//! value stream is cut into windows of equal size (the stride, a power of two) and one value,
//! at a hashed position, is kept per window; when the sample is full, neighbouring windows are
//! merged by keeping one of their two values at random, and the stride doubles. Quantiles are
//! read from the sorted sample by linear interpolation (pandas' default). Up to
//! `SAMPLE_CAPACITY` values the stride stays 1 and the quantiles are exact. Beyond, the sample
//! holds at least `SAMPLE_CAPACITY / 2` = m windows, and the rank of a reported quantile q is
//! off by a standard deviation of at most √(q(1−q)/m): 0.39 % at the median, 0.08 % at the
//! 1st and 99th percentiles (stratification only lowers this, much so for data that trend with
//! row order). Memory: 8 KiB of block buffer plus up to 256 KiB of sample per numeric column,
//! and per list column twice that (values and lengths), whatever the number of rows.
//!
//! # Duplicates
//!
//! Every row gets one 128-bit hash, built column by column from the columns' buffers: each
//! value is hashed with xxh3-128 (fixed-width values by their bytes, strings and binaries by
//! their bytes, list rows by their slice of values, which includes their length, nested
//! values through their children's hashes; nulls by a constant no value hashes to), and the
//! row hash is Σ value_hash · multiplier(column) modulo 2¹²⁸, with one odd multiplier per
//! column position. Rows are equal when their hashes are: two different rows collide with
//! probability about 2⁻¹²⁸, so even among 10⁹ rows the odds of one false duplicate are
//! about 10⁻²¹.
//! Floats compare by their bits: 0.0 and −0.0 differ, a NaN equals the same NaN. The hashes
//! of distinct rows are kept in a hash set for the whole set: 16 bytes each plus table
//! overhead, about 20–40 bytes per distinct row (1 GiB holds 27–54 million rows), and half as
//! much again for a moment whenever the table grows. This is the one part of the measurement
//! whose memory grows with the set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use arrow::array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow::array::{
    Array, ArrowPrimitiveType, AsArray, GenericByteArray, GenericByteViewArray, OffsetSizeTrait,
    new_empty_array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    ArrowNativeType, BinaryViewType, ByteArrayType, ByteViewType, DataType, GenericBinaryType,
    GenericStringType, SchemaRef, StringViewType, TimeUnit,
};
use arrow::record_batch::RecordBatch;
use arrow::util::bit_iterator::BitSliceIterator;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};
use trainstore_core::{Error, Result, Timestamp};
use xxhash_rust::xxh3::xxh3_128_with_seed;

use crate::join::epoch_nanos;

/// The quantile levels reported for every numeric column and list length.
pub const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

/// The most label classes counted; a label with more is not a class label (an id, a
/// regression target), and counting it would make memory grow with the set.
pub const MAX_CLASSES: usize = 1000;

/// The most values a column's quantile sample holds (see the module documentation for the
/// accuracy this buys).
pub const SAMPLE_CAPACITY: usize = 32_768;

/// What the accumulator needs to know beyond the schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QualityOptions {
    /// The label column, when the set has one: its class balance is measured.
    pub label: Option<String>,
    /// The column whose times the set covers (time coverage, freshness); None = no time measures.
    pub time_column: Option<String>,
    /// Parse-report rates carried through lineage: malformed values as a fraction of the
    /// values the snapshot parser read, in [0, 1]; None when unknown.
    pub malformed_rate: Option<f64>,
    /// Like `malformed_rate`, for values the parse report found absent or null in the input.
    pub missing_rate: Option<f64>,
}

/// The quality of one training set, as stored in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Rows in the set.
    pub data_size: u64,
    /// Mean over columns of each column's completeness; 1.0 for a set without rows, where
    /// nothing is missing.
    pub completeness: f64,
    /// Rows equal in every column to an earlier row (so a row present three times counts 2).
    pub duplicate_rows: u64,
    /// `duplicate_rows / data_size`; 0 for a set without rows.
    pub duplicate_rate: f64,
    /// From [`QualityOptions::malformed_rate`], carried so the score can be recomputed.
    pub malformed_rate: Option<f64>,
    /// From [`QualityOptions::missing_rate`], carried so the score can be recomputed.
    pub missing_rate: Option<f64>,
    /// The label's classes; None without a label, or when it has more than [`MAX_CLASSES`]
    /// (then `notes` says so).
    pub label_balance: Option<LabelBalance>,
    /// The span of the time column; None without one, or when every time is null.
    pub time_coverage: Option<TimeCoverage>,
    /// Seconds from the latest time in the set to the `now` given to `finish`; negative when
    /// the set holds times after `now`.
    pub freshness_seconds: Option<f64>,
    /// One entry per column, in schema order.
    pub columns: Vec<ColumnStats>,
    /// See [`Quality::overall_score`]; stored so that listings need not recompute it.
    pub overall_score: f64,
    /// Why a measure is absent or partial, for people reading the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// How evenly the label's values are spread over its classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelBalance {
    /// The label column.
    pub column: String,
    /// Rows per class, keyed by the value as text (`true`, `3`, `cat`); null labels are not a
    /// class.
    pub classes: BTreeMap<String, u64>,
    /// Rows whose label is null.
    pub nulls: u64,
    /// Normalized Shannon entropy of the class frequencies, H / ln(k) for k classes, in [0, 1]:
    /// 1 when every class has as many rows, 0 with a single class (or none).
    pub balance: f64,
}

/// The span of time a set covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeCoverage {
    /// The time column.
    pub column: String,
    /// The earliest time in the set.
    pub start: Timestamp,
    /// The latest time in the set, included (not an exclusive range end).
    pub end: Timestamp,
    /// Rows whose time is null, which the span says nothing about.
    pub null_rows: u64,
}

/// One column's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// The column's name.
    pub name: String,
    /// The Arrow type, as Arrow prints it (`Float64`, `List(Float32)`).
    pub data_type: String,
    /// Rows where the column is not null.
    pub count: u64,
    /// Rows where the column is null.
    pub nulls: u64,
    /// `count / rows`; 1.0 for a set without rows.
    pub completeness: f64,
    /// NaN values (of all list elements, for list columns), left out of `numeric`.
    pub nan_count: u64,
    /// ±∞ values (of all list elements, for list columns), left out of `numeric`.
    pub infinite_count: u64,
    /// Statistics of the values (all elements of all lists, for list columns); None for
    /// columns that are not numeric and for numeric columns without a single finite value.
    pub numeric: Option<NumericStats>,
    /// Statistics of the lengths of the non-null lists; None for columns that are not lists
    /// and for list columns whose every row is null.
    pub list_length: Option<NumericStats>,
}

/// Summary statistics of a stream of finite numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    /// The numbers summarized (non-null, finite).
    pub count: u64,
    /// The smallest number.
    pub min: f64,
    /// The largest number.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// The sample standard deviation (divisor n − 1, as pandas); None for a single number, or
    /// when the numbers are so large (beyond about 1e154) that their variance overflows.
    pub std: Option<f64>,
    /// `(q, value)` for each q of [`QUANTILES`]; exact up to [`SAMPLE_CAPACITY`] numbers,
    /// estimated beyond (see the module documentation).
    pub quantiles: Vec<(f64, f64)>,
}

impl Quality {
    /// One number in [0, 1] to rank versions by, 1 being best:
    ///
    /// overall = 0.4·completeness + 0.2·(1 − duplicate_rate) + 0.2·(1 − parse_error_rate)
    /// + 0.2·balance
    ///
    /// where parse_error_rate = min(1, malformed_rate + missing_rate), an unknown rate
    /// counting 0, and balance = [`LabelBalance::balance`], or 1 when the set declares no
    /// label or its label has too many classes to measure. A set without rows scores 0.
    pub fn overall_score(&self) -> f64 {
        if self.data_size == 0 {
            return 0.0;
        }
        let parse_error_rate =
            (self.malformed_rate.unwrap_or(0.0) + self.missing_rate.unwrap_or(0.0)).min(1.0);
        let balance = self.label_balance.as_ref().map_or(1.0, |l| l.balance);
        let score = 0.4 * self.completeness
            + 0.2 * (1.0 - self.duplicate_rate)
            + 0.2 * (1.0 - parse_error_rate)
            + 0.2 * balance;
        score.clamp(0.0, 1.0)
    }
}

/// Measures a set's quality batch by batch; see the module documentation.
pub struct QualityAccumulator {
    schema: SchemaRef,
    options: QualityOptions,
    columns: Vec<ColumnAcc>,
    rows: u64,
    /// Hashes of the distinct rows seen; their hash is already uniform, so the set's hasher
    /// passes it through instead of hashing it again.
    distinct: HashSet<u128, BuildHasherDefault<PassThrough>>,
    duplicates: u64,
    label: Option<LabelAcc>,
    time: Option<TimeAcc>,
    /// One odd multiplier per column position, for the row hash.
    hasher: RowHasher,
    /// Per-batch scratch, kept to avoid reallocating for every batch.
    row_hashes: Vec<u128>,
    label_hashes: Vec<u128>,
}

impl std::fmt::Debug for QualityAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The samples and the row-hash set are large and say nothing to a reader.
        f.debug_struct("QualityAccumulator")
            .field("columns", &self.columns.len())
            .field("rows", &self.rows)
            .field("distinct_rows", &self.distinct.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl QualityAccumulator {
    /// An accumulator for batches of `schema`.
    ///
    /// Fails, naming the column, when the label or time column is absent or of a type that
    /// cannot serve (a label must be a boolean, integer, float or string, or a dictionary of
    /// those; a time a timestamp, a date or Int64 epoch milliseconds), when a column's type
    /// cannot be hashed for the duplicate check, or when a rate lies outside [0, 1].
    pub fn new(schema: &SchemaRef, options: QualityOptions) -> Result<Self> {
        let position = |what: &'static str, name: &str| {
            schema.index_of(name).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::invalid(
                    what,
                    name,
                    format!("is not a column of the set (columns: {})", names.join(", ")),
                )
            })
        };
        for (what, rate) in [
            ("malformed rate", options.malformed_rate),
            ("missing rate", options.missing_rate),
        ] {
            if let Some(rate) = rate
                && !(0.0..=1.0).contains(&rate)
            {
                return Err(Error::invalid(
                    what,
                    rate.to_string(),
                    "must be a fraction of rows in [0, 1]",
                ));
            }
        }
        let label = match &options.label {
            None => None,
            Some(name) => {
                let index = position("label column", name)?;
                let data_type = schema.field(index).data_type();
                if !usable_label(data_type) {
                    return Err(Error::invalid(
                        "label column",
                        name.as_str(),
                        format!(
                            "is {data_type}; a label must be a boolean, integer, float or string, \
                             or a dictionary of those"
                        ),
                    ));
                }
                Some(LabelAcc {
                    index,
                    column: name.clone(),
                    classes: HashMap::default(),
                    nulls: 0,
                    overflowed: false,
                })
            }
        };
        let time = match &options.time_column {
            None => None,
            Some(name) => {
                let index = position("time column", name)?;
                epoch_nanos(&new_empty_array(schema.field(index).data_type()), name)?;
                Some(TimeAcc {
                    index,
                    column: name.clone(),
                    min: None,
                    max: None,
                    nulls: 0,
                })
            }
        };
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let data_type = field.data_type();
            if needs_formatter(data_type) {
                ArrayFormatter::try_new(&new_empty_array(data_type), &FormatOptions::default())
                    .map_err(|e| {
                        Error::invalid(
                            "column",
                            field.name().as_str(),
                            format!("is {data_type}, which the duplicate check cannot hash: {e}"),
                        )
                    })?;
            }
            let (values, lengths) = match data_type {
                DataType::List(child)
                | DataType::LargeList(child)
                | DataType::FixedSizeList(child, _) => (
                    numeric_type(child.data_type()).then(NumAcc::new),
                    Some(NumAcc::new()),
                ),
                other => (numeric_type(other).then(NumAcc::new), None),
            };
            columns.push(ColumnAcc {
                name: field.name().clone(),
                data_type: data_type.to_string(),
                count: 0,
                nulls: 0,
                values,
                lengths,
            });
        }
        Ok(QualityAccumulator {
            schema: schema.clone(),
            options,
            columns,
            rows: 0,
            distinct: HashSet::default(),
            duplicates: 0,
            label,
            time,
            hasher: RowHasher::new(schema.fields().len()),
            row_hashes: Vec::new(),
            label_hashes: Vec::new(),
        })
    }

    /// Adds a batch's rows. The batch's fields must equal the schema's (schema-level metadata
    /// is not compared). On error nothing of the batch has been counted.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let (got, expected) = (batch.schema_ref().fields(), self.schema.fields());
        if got != expected {
            let describe = |f: Option<&arrow::datatypes::FieldRef>| {
                f.map_or("nothing".to_string(), |f| {
                    format!(
                        "{}: {}{}",
                        f.name(),
                        f.data_type(),
                        if f.is_nullable() { "" } else { " not null" }
                    )
                })
            };
            let at = (0..got.len().max(expected.len()))
                .find(|&i| got.get(i) != expected.get(i))
                .unwrap_or(0);
            return Err(Error::invalid(
                "batch schema",
                format!("column {at} {}", describe(got.get(at))),
                format!(
                    "differs from the set's schema, which has {} there",
                    describe(expected.get(at))
                ),
            ));
        }
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }

        // Everything that can fail comes first, so a failed batch leaves no trace.
        let times = match &self.time {
            None => None,
            Some(t) => {
                let nanos = epoch_nanos(batch.column(t.index).as_ref(), &t.column)?;
                let (mut lo, mut hi, mut any) = (i64::MAX, i64::MIN, false);
                for (a, b) in valid_slices(nanos.nulls(), 0..rows) {
                    any = true;
                    for &v in &nanos.values()[a..b] {
                        lo = lo.min(v);
                        hi = hi.max(v);
                    }
                }
                Some((any.then_some((lo, hi)), nanos.null_count() as u64))
            }
        };
        self.hasher.hash(batch, &mut self.row_hashes)?;
        self.label_hashes.clear();
        if let Some(l) = &self.label {
            value_hashes(batch.column(l.index).as_ref(), &mut self.label_hashes)?;
        }
        let label_formatter = match &self.label {
            Some(l) if !l.overflowed => Some(ArrayFormatter::try_new(
                batch.column(l.index).as_ref(),
                &FormatOptions::default(),
            )?),
            _ => None,
        };

        // From here on nothing fails.
        self.rows += rows as u64;
        for &h in &self.row_hashes {
            if !self.distinct.insert(h) {
                self.duplicates += 1;
            }
        }
        if let (Some(label), Some(formatter)) = (&mut self.label, &label_formatter) {
            label.observe(&self.label_hashes, formatter);
        }
        if let (Some(t), Some((range, nulls))) = (&mut self.time, times) {
            t.nulls += nulls;
            if let Some((lo, hi)) = range {
                t.min = Some(t.min.map_or(lo, |m| m.min(lo)));
                t.max = Some(t.max.map_or(hi, |m| m.max(hi)));
            }
        }
        for (acc, column) in self.columns.iter_mut().zip(batch.columns()) {
            acc.observe(column.as_ref());
        }
        Ok(())
    }

    /// The quality of everything observed; `now` is the instant freshness is measured from.
    pub fn finish(self, now: Timestamp) -> Quality {
        let rows = self.rows;
        let mut notes = Vec::new();
        let columns: Vec<ColumnStats> = self.columns.into_iter().map(|c| c.finish(rows)).collect();
        let completeness = if rows == 0 || columns.is_empty() {
            1.0
        } else {
            columns.iter().map(|c| c.completeness).sum::<f64>() / columns.len() as f64
        };
        let label_balance = self.label.and_then(|l| {
            if l.overflowed {
                notes.push(format!(
                    "label {:?} has more than {MAX_CLASSES} distinct values; its balance is \
                     not measured and the score counts it as balanced",
                    l.column
                ));
                None
            } else {
                Some(l.finish())
            }
        });
        let time_coverage = self.time.and_then(|t| match (t.min, t.max) {
            (Some(lo), Some(hi)) => Some(TimeCoverage {
                column: t.column,
                start: Timestamp::from_millis(lo.div_euclid(1_000_000)),
                end: Timestamp::from_millis(hi.div_euclid(1_000_000)),
                null_rows: t.nulls,
            }),
            _ => {
                notes.push(format!(
                    "time column {:?} holds no time; the set has no time coverage",
                    t.column
                ));
                None
            }
        });
        let freshness_seconds = time_coverage
            .as_ref()
            .map(|t| (i128::from(now.as_millis()) - i128::from(t.end.as_millis())) as f64 / 1000.0);
        let mut quality = Quality {
            data_size: rows,
            completeness,
            duplicate_rows: self.duplicates,
            duplicate_rate: if rows == 0 {
                0.0
            } else {
                self.duplicates as f64 / rows as f64
            },
            malformed_rate: self.options.malformed_rate,
            missing_rate: self.options.missing_rate,
            label_balance,
            time_coverage,
            freshness_seconds,
            columns,
            overall_score: 0.0,
            notes,
        };
        quality.overall_score = quality.overall_score();
        quality
    }
}

/// Whether a label of this type has classes that print as themselves.
fn usable_label(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, values) => usable_label(values),
        DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        other => other.is_integer() || other.is_floating(),
    }
}

/// Whether values of this type are summarized as numbers (see the module documentation).
fn numeric_type(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float16
            | Float32
            | Float64
            | Decimal32(..)
            | Decimal64(..)
            | Decimal128(..)
            | Timestamp(..)
            | Date32
            | Date64
            | Time32(..)
            | Time64(..)
            | Duration(..)
    )
}

// ---------------------------------------------------------------------------------------------
// Columns

struct ColumnAcc {
    name: String,
    data_type: String,
    count: u64,
    nulls: u64,
    /// The values (list elements, for lists), for numeric columns.
    values: Option<NumAcc>,
    /// The lengths of non-null lists, for list columns.
    lengths: Option<NumAcc>,
}

impl ColumnAcc {
    fn observe(&mut self, array: &dyn Array) {
        let nulls = array.logical_null_count();
        self.nulls += nulls as u64;
        self.count += (array.len() - nulls) as u64;
        match array.data_type() {
            DataType::List(_) => self.observe_list(array.as_list::<i32>()),
            DataType::LargeList(_) => self.observe_list(array.as_list::<i64>()),
            DataType::FixedSizeList(..) => {
                let list = array.as_fixed_size_list();
                let size = list.value_length() as usize;
                let valid = |i: &usize| list.is_valid(*i);
                if let Some(lengths) = &mut self.lengths {
                    for _ in (0..list.len()).filter(valid) {
                        lengths.push(size as f64);
                    }
                }
                if let Some(values) = &mut self.values {
                    let child = list.values().as_ref();
                    if list.null_count() == 0 {
                        feed_values(values, child, &mut std::iter::once(0..list.len() * size));
                    } else {
                        // Null lists still own their slots in the child; those are not values.
                        let ranges = (0..list.len()).filter(valid);
                        feed_values(values, child, &mut ranges.map(|i| i * size..(i + 1) * size));
                    }
                }
            }
            _ => {
                if let Some(values) = &mut self.values {
                    feed_values(values, array, &mut std::iter::once(0..array.len()));
                }
            }
        }
    }

    fn observe_list<O: OffsetSizeTrait>(&mut self, list: &arrow::array::GenericListArray<O>) {
        let offsets = list.value_offsets();
        let slot = |i: usize| offsets[i].as_usize()..offsets[i + 1].as_usize();
        if let Some(lengths) = &mut self.lengths {
            for i in 0..list.len() {
                if list.is_valid(i) {
                    lengths.push(slot(i).len() as f64);
                }
            }
        }
        if let Some(values) = &mut self.values {
            let child = list.values().as_ref();
            if list.null_count() == 0 {
                let all = offsets[0].as_usize()..offsets[list.len()].as_usize();
                feed_values(values, child, &mut std::iter::once(all));
            } else {
                // A null list may still point at child values; those are not the set's values.
                let ranges = (0..list.len()).filter(|&i| list.is_valid(i)).map(slot);
                feed_values(values, child, &mut ranges.filter(|r| !r.is_empty()));
            }
        }
    }

    fn finish(self, rows: u64) -> ColumnStats {
        let (nan_count, infinite_count) = self.values.as_ref().map_or((0, 0), |v| (v.nan, v.inf));
        ColumnStats {
            name: self.name,
            data_type: self.data_type,
            count: self.count,
            nulls: self.nulls,
            completeness: if rows == 0 {
                1.0
            } else {
                self.count as f64 / rows as f64
            },
            nan_count,
            infinite_count,
            numeric: self.values.and_then(NumAcc::finish),
            list_length: self.lengths.and_then(NumAcc::finish),
        }
    }
}

/// Feeds the non-null values of `array` at `ranges` (array indices) into `acc`.
fn feed_values(
    acc: &mut NumAcc,
    array: &dyn Array,
    ranges: &mut dyn Iterator<Item = Range<usize>>,
) {
    fn prim<T: ArrowPrimitiveType>(
        acc: &mut NumAcc,
        array: &dyn Array,
        ranges: &mut dyn Iterator<Item = Range<usize>>,
        conv: impl Fn(T::Native) -> f64 + Copy,
    ) {
        let array = array.as_primitive::<T>();
        let values = array.values();
        for r in ranges {
            for (a, b) in valid_slices(array.nulls(), r.clone()) {
                acc.feed(&values[r.start + a..r.start + b], conv);
            }
        }
    }
    /// Seconds per unit.
    fn per_second(unit: &TimeUnit) -> f64 {
        match unit {
            TimeUnit::Second => 1.0,
            TimeUnit::Millisecond => 1e3,
            TimeUnit::Microsecond => 1e6,
            TimeUnit::Nanosecond => 1e9,
        }
    }
    /// 10^scale by repeated exact steps, so every platform gets the same divisor.
    fn ten_pow(scale: i8) -> f64 {
        let mut d = 1.0;
        for _ in 0..scale.unsigned_abs() {
            d *= 10.0;
        }
        if scale < 0 { 1.0 / d } else { d }
    }
    use DataType::*;
    match array.data_type() {
        Boolean => {
            let array = array.as_boolean();
            for r in ranges {
                for (a, b) in valid_slices(array.nulls(), r.clone()) {
                    for i in r.start + a..r.start + b {
                        acc.push(if array.value(i) { 1.0 } else { 0.0 });
                    }
                }
            }
        }
        Int8 => prim::<Int8Type>(acc, array, ranges, |v| v as f64),
        Int16 => prim::<Int16Type>(acc, array, ranges, |v| v as f64),
        Int32 => prim::<Int32Type>(acc, array, ranges, |v| v as f64),
        Int64 => prim::<Int64Type>(acc, array, ranges, |v| v as f64),
        UInt8 => prim::<UInt8Type>(acc, array, ranges, |v| v as f64),
        UInt16 => prim::<UInt16Type>(acc, array, ranges, |v| v as f64),
        UInt32 => prim::<UInt32Type>(acc, array, ranges, |v| v as f64),
        UInt64 => prim::<UInt64Type>(acc, array, ranges, |v| v as f64),
        Float16 => prim::<Float16Type>(acc, array, ranges, |v| v.to_f64()),
        Float32 => prim::<Float32Type>(acc, array, ranges, |v| v as f64),
        Float64 => prim::<Float64Type>(acc, array, ranges, |v| v),
        Decimal32(_, s) => {
            let d = ten_pow(*s);
            prim::<Decimal32Type>(acc, array, ranges, move |v| v as f64 / d)
        }
        Decimal64(_, s) => {
            let d = ten_pow(*s);
            prim::<Decimal64Type>(acc, array, ranges, move |v| v as f64 / d)
        }
        Decimal128(_, s) => {
            let d = ten_pow(*s);
            prim::<Decimal128Type>(acc, array, ranges, move |v| v as f64 / d)
        }
        Timestamp(unit, _) | Duration(unit) => {
            let d = per_second(unit);
            let timestamp = matches!(array.data_type(), Timestamp(..));
            match (unit, timestamp) {
                (TimeUnit::Second, true) => {
                    prim::<TimestampSecondType>(acc, array, ranges, |v| v as f64)
                }
                (TimeUnit::Millisecond, true) => {
                    prim::<TimestampMillisecondType>(acc, array, ranges, move |v| v as f64 / d)
                }
                (TimeUnit::Microsecond, true) => {
                    prim::<TimestampMicrosecondType>(acc, array, ranges, move |v| v as f64 / d)
                }
                (TimeUnit::Nanosecond, true) => {
                    prim::<TimestampNanosecondType>(acc, array, ranges, move |v| v as f64 / d)
                }
                (TimeUnit::Second, false) => {
                    prim::<DurationSecondType>(acc, array, ranges, |v| v as f64)
                }
                (TimeUnit::Millisecond, false) => {
                    prim::<DurationMillisecondType>(acc, array, ranges, move |v| v as f64 / d)
                }
                (TimeUnit::Microsecond, false) => {
                    prim::<DurationMicrosecondType>(acc, array, ranges, move |v| v as f64 / d)
                }
                (TimeUnit::Nanosecond, false) => {
                    prim::<DurationNanosecondType>(acc, array, ranges, move |v| v as f64 / d)
                }
            }
        }
        Date32 => prim::<Date32Type>(acc, array, ranges, |v| v as f64 * 86_400.0),
        Date64 => prim::<Date64Type>(acc, array, ranges, |v| v as f64 / 1e3),
        Time32(TimeUnit::Millisecond) => {
            prim::<Time32MillisecondType>(acc, array, ranges, |v| v as f64 / 1e3)
        }
        Time32(_) => prim::<Time32SecondType>(acc, array, ranges, |v| v as f64),
        Time64(TimeUnit::Nanosecond) => {
            prim::<Time64NanosecondType>(acc, array, ranges, |v| v as f64 / 1e9)
        }
        Time64(_) => prim::<Time64MicrosecondType>(acc, array, ranges, |v| v as f64 / 1e6),
        _ => {}
    }
}

/// The `(start, end)` runs of valid positions within `range`, relative to `range.start`.
fn valid_slices(
    nulls: Option<&NullBuffer>,
    range: Range<usize>,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    let len = range.len();
    let (all, some) = match nulls.filter(|n| n.null_count() > 0) {
        None => (Some((0, len)).filter(|_| len > 0), None),
        Some(n) => {
            let bits = n.inner();
            let slices = BitSliceIterator::new(bits.values(), bits.offset() + range.start, len);
            (None, Some(slices))
        }
    };
    all.into_iter().chain(some.into_iter().flatten())
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// Values are folded in blocks of this many, aligned on the column's value stream, so that
/// batch boundaries change nothing; a power of two, so that scaling by 1/BLOCK is exact.
const BLOCK: usize = 1024;

/// Rows hashed together, column after column (128 KiB of row and value hashes).
const HASH_CHUNK: usize = 4096;

/// Independent accumulators per block, so the block loops vectorize and the folding order is
/// fixed.
const LANES: usize = 8;

/// A stream of numbers being summarized: moments, extremes, a quantile sample.
struct NumAcc {
    /// Finite values not yet folded; `len` of them.
    block: Box<[f64; BLOCK]>,
    len: usize,
    /// Values folded so far: the stream position of `block[0]`.
    folded: u64,
    moments: Moments,
    sampler: Sampler,
    nan: u64,
    inf: u64,
}

impl NumAcc {
    fn new() -> Self {
        NumAcc {
            block: Box::new([0.0; BLOCK]),
            len: 0,
            folded: 0,
            moments: Moments::default(),
            sampler: Sampler::new(),
            nan: 0,
            inf: 0,
        }
    }

    /// Adds one value.
    #[inline]
    fn push(&mut self, v: f64) {
        if !v.is_finite() {
            self.feed(&[v], |v| v);
            return;
        }
        self.block[self.len] = v;
        self.len += 1;
        if self.len == BLOCK {
            self.fold();
        }
    }

    /// Adds values, converted by `conv`; the non-finite ones are only counted.
    #[inline]
    fn feed<T: Copy>(&mut self, mut values: &[T], conv: impl Fn(T) -> f64) {
        while !values.is_empty() {
            let take = (BLOCK - self.len).min(values.len());
            let (head, rest) = values.split_at(take);
            let start = self.len;
            let converted = &mut self.block[start..start + take];
            // Convert first and check after, both branch-free so they vectorize; non-finite
            // values are rare, and only then is the block compacted.
            for (x, &v) in converted.iter_mut().zip(head) {
                *x = conv(v);
            }
            let finite = converted
                .iter()
                .fold(0usize, |n, x| n + usize::from(x.is_finite()));
            if finite < take {
                let mut kept = start;
                for i in start..start + take {
                    let x = self.block[i];
                    if x.is_finite() {
                        self.block[kept] = x;
                        kept += 1;
                    } else if x.is_nan() {
                        self.nan += 1;
                    } else {
                        self.inf += 1;
                    }
                }
            }
            self.len = start + finite;
            if self.len == BLOCK {
                self.fold();
            }
            values = rest;
        }
    }

    /// Folds the pending block into the moments and the sample.
    fn fold(&mut self) {
        if self.len == 0 {
            return;
        }
        let values = &self.block[..self.len];
        self.moments.merge(&Moments::of(values));
        self.sampler.observe(values, self.folded);
        self.folded += self.len as u64;
        self.len = 0;
    }

    fn finish(mut self) -> Option<NumericStats> {
        self.fold();
        let m = self.moments;
        if m.n == 0 {
            return None;
        }
        let std = (m.n >= 2)
            .then(|| (m.m2 / (m.n - 1) as f64).sqrt())
            .filter(|s| s.is_finite());
        let mut sample = self.sampler.samples;
        Some(NumericStats {
            count: m.n,
            min: m.min,
            max: m.max,
            mean: m.mean,
            std,
            quantiles: quantiles(&mut sample),
        })
    }
}

/// Count, mean, sum of squared deviations from the mean, extremes.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Moments {
    /// The moments of one block of finite values, two-pass (mean, then deviations), which is
    /// as stable as Welford and vectorizes.
    fn of(x: &[f64]) -> Moments {
        // Summing x / BLOCK (exact: a power of two) keeps the sum within the values' range,
        // so values near f64::MAX cannot overflow it.
        const SCALE: f64 = 1.0 / BLOCK as f64;
        let mut sum = [0.0; LANES];
        let mut lo = [f64::INFINITY; LANES];
        let mut hi = [f64::NEG_INFINITY; LANES];
        let chunks = x.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for j in 0..LANES {
                sum[j] += c[j] * SCALE;
                lo[j] = if c[j] < lo[j] { c[j] } else { lo[j] };
                hi[j] = if c[j] > hi[j] { c[j] } else { hi[j] };
            }
        }
        for (j, &v) in tail.iter().enumerate() {
            sum[j] += v * SCALE;
            lo[j] = if v < lo[j] { v } else { lo[j] };
            hi[j] = if v > hi[j] { v } else { hi[j] };
        }
        let n = x.len();
        let mean = reduce(sum) * (BLOCK as f64 / n as f64);
        let mut sq = [0.0; LANES];
        let chunks = x.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for j in 0..LANES {
                let d = c[j] - mean;
                sq[j] += d * d;
            }
        }
        for (j, &v) in tail.iter().enumerate() {
            let d = v - mean;
            sq[j] += d * d;
        }
        Moments {
            n: n as u64,
            mean,
            m2: reduce(sq),
            min: lo
                .into_iter()
                .fold(f64::INFINITY, |a, b| if b < a { b } else { a }),
            max: hi
                .into_iter()
                .fold(f64::NEG_INFINITY, |a, b| if b > a { b } else { a }),
        }
    }

    /// Chan et al.'s merge of two summaries (the parallel form of Welford's method).
    fn merge(&mut self, b: &Moments) {
        if b.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *b;
            return;
        }
        let (na, nb) = (self.n as f64, b.n as f64);
        let n = na + nb;
        let delta = b.mean - self.mean;
        let mut mean = self.mean + delta * (nb / n);
        if !mean.is_finite() {
            // Means of opposite sign near f64::MAX: their difference overflows, a weighted
            // sum does not.
            mean = self.mean * (na / n) + b.mean * (nb / n);
        }
        self.m2 = self.m2 + b.m2 + delta * delta * (na / n) * nb;
        self.mean = mean;
        self.n += b.n;
        self.min = if b.min < self.min { b.min } else { self.min };
        self.max = if b.max > self.max { b.max } else { self.max };
    }
}

/// Sums lanes in a fixed order.
fn reduce(lanes: [f64; LANES]) -> f64 {
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

/// A stratified sample of a value stream, one value per window of `stride` positions (see
/// the module documentation). Which value a window keeps depends only on the window's
/// position, so the sample does not depend on how the stream arrives.
struct Sampler {
    /// Sample of window i at index i.
    samples: Vec<f64>,
    /// Positions per window, a power of two.
    stride: u64,
    /// How many times the windows were merged: salts the choices, so each level chooses
    /// afresh.
    level: u64,
    /// The stream position the current window (`samples.len()`) keeps.
    pick: u64,
}

impl Sampler {
    fn new() -> Self {
        let mut s = Sampler {
            samples: Vec::new(),
            stride: 1,
            level: 0,
            pick: 0,
        };
        s.pick = s.pick_of(0);
        s
    }

    fn pick_of(&self, window: u64) -> u64 {
        let salt = (self.level << 40) ^ window ^ 0x5A3D_71C2_0000_0000_u64.rotate_left(7);
        window * self.stride + (mix(salt) & (self.stride - 1))
    }

    /// Takes what the sample needs from `values`, the stream positions from `start` on.
    fn observe(&mut self, values: &[f64], start: u64) {
        let end = start + values.len() as u64;
        while self.pick < end {
            self.samples.push(values[(self.pick - start) as usize]);
            if self.samples.len() == SAMPLE_CAPACITY {
                self.halve();
            }
            self.pick = self.pick_of(self.samples.len() as u64);
        }
    }

    /// Merges neighbouring windows, keeping one of their two values: each is uniform within
    /// its window, so the one kept is uniform within the merged window.
    fn halve(&mut self) {
        self.level += 1;
        self.stride *= 2;
        let half = self.samples.len() / 2;
        for i in 0..half {
            let side = (mix((self.level << 40) ^ (i as u64) ^ 0xC3A5_C85C_97CB_3127) & 1) as usize;
            self.samples[i] = self.samples[2 * i + side];
        }
        self.samples.truncate(half);
    }
}

/// SplitMix64's finalizer: a fixed, portable scrambling of 64 bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// [`QUANTILES`] of `sample`, by linear interpolation between closest ranks (pandas' and
/// numpy's default); sorts `sample`.
fn quantiles(sample: &mut [f64]) -> Vec<(f64, f64)> {
    sample.sort_unstable_by(f64::total_cmp);
    let n = sample.len();
    if n == 0 {
        return Vec::new();
    }
    QUANTILES
        .iter()
        .map(|&q| {
            let position = q * (n - 1) as f64;
            let i = position.floor() as usize;
            let frac = position - i as f64;
            let a = sample[i];
            let value = match sample.get(i + 1) {
                Some(&b) if frac > 0.0 => {
                    let d = b - a;
                    if d.is_finite() {
                        a + d * frac
                    } else {
                        a * (1.0 - frac) + b * frac
                    }
                }
                _ => a,
            };
            (q, value)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Labels and time

struct LabelAcc {
    index: usize,
    column: String,
    /// Value hash → (value as text, rows).
    classes: HashMap<u128, (String, u64), BuildHasherDefault<PassThrough>>,
    nulls: u64,
    /// More than MAX_CLASSES distinct values were seen; counting stopped.
    overflowed: bool,
}

impl LabelAcc {
    fn observe(&mut self, hashes: &[u128], formatter: &ArrayFormatter<'_>) {
        for (row, &h) in hashes.iter().enumerate() {
            if h == NULL_HASH {
                self.nulls += 1;
                continue;
            }
            if let Some(class) = self.classes.get_mut(&h) {
                class.1 += 1;
                continue;
            }
            if self.classes.len() == MAX_CLASSES {
                self.overflowed = true;
                self.classes = HashMap::default();
                return;
            }
            let mut name = String::new();
            if write!(name, "{}", formatter.value(row)).is_err() {
                name = format!("<value hash {h:032x}>");
            }
            self.classes.insert(h, (name, 1));
        }
    }

    fn finish(self) -> LabelBalance {
        let mut classes = BTreeMap::new();
        for (name, count) in self.classes.into_values() {
            *classes.entry(name).or_insert(0) += count;
        }
        LabelBalance {
            balance: balance(classes.values().copied()),
            column: self.column,
            classes,
            nulls: self.nulls,
        }
    }
}

/// Normalized Shannon entropy of class counts, H / ln(k); 0 for fewer than two classes.
fn balance(counts: impl Iterator<Item = u64> + Clone) -> f64 {
    let k = counts.clone().filter(|&c| c > 0).count();
    if k < 2 {
        return 0.0;
    }
    let total = counts.clone().sum::<u64>() as f64;
    let entropy: f64 = counts
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / total;
            -p * p.ln()
        })
        .sum();
    (entropy / (k as f64).ln()).clamp(0.0, 1.0)
}

struct TimeAcc {
    index: usize,
    column: String,
    /// Earliest and latest time, epoch nanoseconds.
    min: Option<i64>,
    max: Option<i64>,
    nulls: u64,
}

// ---------------------------------------------------------------------------------------------
// Row hashes

/// The hash of a null, wherever it occurs; no value hashes to it (but with probability 2⁻¹²⁸).
const NULL_HASH: u128 = 0x6E75_6C6C_2D76_616C_7565_2D68_6173_6821;
/// Seeds per kind of value, so that e.g. the string "ab" and the bytes of an Int16 differ.
const SEED_FIXED: u64 = 0x01;
const SEED_BOOL: u64 = 0x02;
const SEED_BYTES: u64 = 0x03;
const SEED_LIST: u64 = 0x04;
const SEED_LIST_WITH_NULLS: u64 = 0x05;
const SEED_NESTED: u64 = 0x06;
const SEED_STRUCT: u64 = 0x07;
const SEED_FORMATTED: u64 = 0x08;
const SEED_COLUMN: u64 = 0x09;

/// One 128-bit hash per row, built column by column (see the module documentation): equal
/// rows, and only those, hash alike. Shared by the duplicate check and the comparison of
/// two sets' rows.
#[derive(Debug)]
pub(crate) struct RowHasher {
    multipliers: Vec<u128>,
    /// Scratch: one column's value hashes for a chunk of rows.
    values: Vec<u128>,
}

impl RowHasher {
    pub(crate) fn new(columns: usize) -> Self {
        RowHasher {
            multipliers: (0..columns as u64).map(column_multiplier).collect(),
            values: Vec::new(),
        }
    }

    /// The hash of each row of `batch`, into `out` (replacing what it held).
    pub(crate) fn hash(&mut self, batch: &RecordBatch, out: &mut Vec<u128>) -> Result<()> {
        let rows = batch.num_rows();
        out.clear();
        out.resize(rows, 0);
        // In chunks of rows, so that the per-column scratch stays small (and in cache)
        // however large the batch.
        for start in (0..rows).step_by(HASH_CHUNK) {
            let len = HASH_CHUNK.min(rows - start);
            let chunk = &mut out[start..start + len];
            for (column, &m) in batch.columns().iter().zip(&self.multipliers) {
                value_hashes(column.slice(start, len).as_ref(), &mut self.values)?;
                for (row, value) in chunk.iter_mut().zip(&self.values) {
                    *row = row.wrapping_add(value.wrapping_mul(m));
                }
            }
        }
        Ok(())
    }
}

/// The odd multiplier of column (or struct field) `position` in a row hash.
fn column_multiplier(position: u64) -> u128 {
    xxh3_128_with_seed(&position.to_le_bytes(), SEED_COLUMN) | 1
}

/// Whether values of this type are hashed through their printed form (rare types only).
fn needs_formatter(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Null | Boolean | Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView
        | FixedSizeBinary(_) => false,
        List(f) | LargeList(f) | FixedSizeList(f, _) => needs_formatter(f.data_type()),
        Map(f, _) => needs_formatter(f.data_type()),
        Struct(fields) => fields.iter().any(|f| needs_formatter(f.data_type())),
        Dictionary(_, values) => needs_formatter(values),
        other => other.primitive_width().is_none(),
    }
}

/// Writes one hash per value of `array` into `out` (cleared first); see the module
/// documentation for how values are hashed.
fn value_hashes(array: &dyn Array, out: &mut Vec<u128>) -> Result<()> {
    out.clear();
    let n = array.len();
    out.reserve(n);
    match array.data_type() {
        DataType::Null => out.resize(n, NULL_HASH),
        DataType::Boolean => {
            let hashes = [
                xxh3_128_with_seed(&[0], SEED_BOOL),
                xxh3_128_with_seed(&[1], SEED_BOOL),
            ];
            out.extend(
                array
                    .as_boolean()
                    .values()
                    .iter()
                    .map(|b| hashes[usize::from(b)]),
            );
        }
        DataType::Utf8 => byte_hashes(array.as_bytes::<GenericStringType<i32>>(), out),
        DataType::LargeUtf8 => byte_hashes(array.as_bytes::<GenericStringType<i64>>(), out),
        DataType::Binary => byte_hashes(array.as_bytes::<GenericBinaryType<i32>>(), out),
        DataType::LargeBinary => byte_hashes(array.as_bytes::<GenericBinaryType<i64>>(), out),
        DataType::Utf8View => view_hashes(array.as_byte_view::<StringViewType>(), out),
        DataType::BinaryView => view_hashes(array.as_byte_view::<BinaryViewType>(), out),
        DataType::FixedSizeBinary(_) => {
            let a = array.as_fixed_size_binary();
            out.extend((0..n).map(|i| xxh3_128_with_seed(a.value(i), SEED_BYTES)));
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let o = list.value_offsets();
            slice_hashes(
                n,
                |i| o[i].as_usize()..o[i + 1].as_usize(),
                list.values().as_ref(),
                out,
            )?;
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let o = list.value_offsets();
            slice_hashes(
                n,
                |i| o[i].as_usize()..o[i + 1].as_usize(),
                list.values().as_ref(),
                out,
            )?;
        }
        DataType::FixedSizeList(_, size) => {
            let size = *size as usize;
            let list = array.as_fixed_size_list();
            slice_hashes(n, |i| i * size..(i + 1) * size, list.values().as_ref(), out)?;
        }
        DataType::Map(..) => {
            let map = array.as_map();
            let o = map.value_offsets();
            slice_hashes(
                n,
                |i| o[i].as_usize()..o[i + 1].as_usize(),
                map.entries(),
                out,
            )?;
        }
        DataType::Struct(_) => {
            let fields = array.as_struct();
            let mut combined = vec![0u128; n];
            let mut child = Vec::new();
            for (k, column) in fields.columns().iter().enumerate() {
                value_hashes(column.as_ref(), &mut child)?;
                let m = column_multiplier(k as u64);
                for (c, v) in combined.iter_mut().zip(&child) {
                    *c = c.wrapping_add(v.wrapping_mul(m));
                }
            }
            out.extend(
                combined
                    .iter()
                    .map(|c| xxh3_128_with_seed(&c.to_le_bytes(), SEED_STRUCT)),
            );
        }
        DataType::Dictionary(..) => {
            let dictionary = array.as_any_dictionary();
            if dictionary.values().is_empty() {
                out.resize(n, NULL_HASH);
            } else {
                let mut values = Vec::new();
                value_hashes(dictionary.values().as_ref(), &mut values)?;
                out.extend(dictionary.normalized_keys().into_iter().map(|k| values[k]));
            }
        }
        data_type => match data_type.primitive_width() {
            Some(width) => {
                let data = array.to_data();
                let bytes = &data.buffers()[0].as_slice()[data.offset() * width..][..n * width];
                out.extend(
                    bytes
                        .chunks_exact(width)
                        .map(|v| xxh3_128_with_seed(v, SEED_FIXED)),
                );
            }
            None => {
                let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
                let nulls = array.logical_nulls();
                let mut text = String::new();
                for i in 0..n {
                    if nulls.as_ref().is_some_and(|b| b.is_null(i)) {
                        out.push(NULL_HASH);
                        continue;
                    }
                    text.clear();
                    write!(text, "{}", formatter.value(i)).map_err(|_| {
                        Error::invalid(
                            "value",
                            data_type.to_string(),
                            "could not be printed to be hashed for the duplicate check",
                        )
                    })?;
                    out.push(xxh3_128_with_seed(text.as_bytes(), SEED_FORMATTED));
                }
            }
        },
    }
    if let Some(nulls) = array.nulls().filter(|b| b.null_count() > 0) {
        for (i, h) in out.iter_mut().enumerate() {
            if nulls.is_null(i) {
                *h = NULL_HASH;
            }
        }
    }
    Ok(())
}

fn byte_hashes<T: ByteArrayType>(array: &GenericByteArray<T>, out: &mut Vec<u128>) {
    let offsets = array.value_offsets();
    let bytes = array.values().as_slice();
    out.extend(
        offsets
            .windows(2)
            .map(|w| xxh3_128_with_seed(&bytes[w[0].as_usize()..w[1].as_usize()], SEED_BYTES)),
    );
}

fn view_hashes<T: ByteViewType + ?Sized>(array: &GenericByteViewArray<T>, out: &mut Vec<u128>) {
    out.extend((0..array.len()).map(|i| {
        let value: &[u8] = array.value(i).as_ref();
        xxh3_128_with_seed(value, SEED_BYTES)
    }));
}

/// Hashes of `n` lists whose elements are `slot(i)` of `child`.
///
/// The hash of a list depends only on its elements, never on the batch it arrives in: a
/// list of fixed-width values without nulls hashes its bytes (which carry its length); one
/// with nulls hashes its bytes with the nulls zeroed plus one validity byte per element; a
/// list of other values hashes its elements' hashes.
fn slice_hashes(
    n: usize,
    slot: impl Fn(usize) -> Range<usize>,
    child: &dyn Array,
    out: &mut Vec<u128>,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let mut scratch: Vec<u8> = Vec::new();
    if let Some(width) = child.data_type().primitive_width() {
        let data = child.to_data();
        let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
        let nulls = child.nulls().filter(|b| b.null_count() > 0);
        for i in 0..n {
            let r = slot(i);
            let raw = &bytes[r.start * width..r.end * width];
            let nulls = nulls.filter(|b| {
                let mut runs = valid_slices(Some(b), r.clone());
                !r.is_empty() && runs.next() != Some((0, r.len()))
            });
            match nulls {
                None => out.push(xxh3_128_with_seed(raw, SEED_LIST)),
                Some(b) => {
                    scratch.clear();
                    for (k, value) in raw.chunks_exact(width).enumerate() {
                        if b.is_valid(r.start + k) {
                            scratch.extend_from_slice(value);
                        } else {
                            scratch.resize(scratch.len() + width, 0);
                        }
                    }
                    scratch.extend(r.clone().map(|k| u8::from(b.is_valid(k))));
                    out.push(xxh3_128_with_seed(&scratch, SEED_LIST_WITH_NULLS));
                }
            }
        }
    } else {
        let first = slot(0).start;
        let last = slot(n - 1).end;
        let mut elements = Vec::new();
        value_hashes(child.slice(first, last - first).as_ref(), &mut elements)?;
        for i in 0..n {
            let r = slot(i);
            scratch.clear();
            for h in &elements[r.start - first..r.end - first] {
                scratch.extend_from_slice(&h.to_le_bytes());
            }
            out.push(xxh3_128_with_seed(&scratch, SEED_NESTED));
        }
    }
    Ok(())
}

/// A hasher for keys that are hashes already: it folds the key's halves instead of hashing
/// it again.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here, through write_u128; this keeps any other key sound.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix(self.0 ^ u64::from_le_bytes(word));
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, DictionaryArray, FixedSizeListArray, Float32Array, Float64Array,
        Int32Array, Int64Array, ListArray, StringArray, StructArray, TimestampMillisecondArray,
        UInt64Array,
    };
    use arrow::datatypes::{Field, Fields, Float32Type, Int32Type, Schema};

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect();
        let arrays = columns.into_iter().map(|(_, a)| a).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    fn measure(batches: &[RecordBatch], options: QualityOptions) -> Quality {
        let mut acc = QualityAccumulator::new(&batches[0].schema(), options).unwrap();
        for b in batches {
            acc.observe(b).unwrap();
        }
        acc.finish(Timestamp::from_millis(0))
    }

    fn column<'a>(q: &'a Quality, name: &str) -> &'a ColumnStats {
        q.columns.iter().find(|c| c.name == name).unwrap()
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    fn quantile(stats: &NumericStats, q: f64) -> f64 {
        stats
            .quantiles
            .iter()
            .find(|(level, _)| *level == q)
            .unwrap()
            .1
    }

    fn lists(rows: Vec<Option<Vec<Option<i32>>>>) -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(rows))
    }

    /// A set with every kind of column the tests split and compare: floats with NaN and
    /// nulls, a list column, a label, a time column, strings; more values than a sample
    /// holds, so the sample is merged several times.
    fn big_batch(rows: usize) -> RecordBatch {
        // The last tenth of the rows repeats the first.
        let repeat = |i: usize| i % (rows - rows / 10).max(1);
        let x = Float64Array::from_iter((0..rows).map(repeat).map(|i| match i % 97 {
            0 => None,
            1 => Some(f64::NAN),
            _ => Some(((i * 7919) % 10_007) as f64 * 0.37 - 900.0),
        }));
        let emb =
            ListArray::from_iter_primitive::<Float32Type, _, _>((0..rows).map(repeat).map(|i| {
                (i % 53 != 0).then(|| {
                    (0..i % 5)
                        .map(|k| (k % 4 != 3).then_some(((i * 31 + k * 17) % 1000) as f32 / 10.0))
                        .collect::<Vec<_>>()
                })
            }));
        let label = StringArray::from_iter((0..rows).map(repeat).map(|i| match i % 11 {
            0 => None,
            k => Some(["cat", "dog", "eel"][k % 3]),
        }));
        let time = TimestampMillisecondArray::from_iter(
            (0..rows)
                .map(repeat)
                .map(|i| (i % 13 != 0).then_some(1_670_000_000_000 + (i as i64 % 5000) * 1000)),
        );
        let id = Int64Array::from_iter_values((0..rows).map(repeat).map(|i| (i % 1000) as i64));
        batch(vec![
            ("x", Arc::new(x)),
            ("emb", Arc::new(emb)),
            ("label", Arc::new(label)),
            ("time", Arc::new(time)),
            ("id", Arc::new(id)),
        ])
    }

    fn big_options() -> QualityOptions {
        QualityOptions {
            label: Some("label".into()),
            time_column: Some("time".into()),
            malformed_rate: Some(0.01),
            missing_rate: None,
        }
    }

    #[test]
    fn stats_of_a_small_batch_equal_hand_computed_values() {
        let b = batch(vec![
            (
                "f",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(2.0),
                    Some(3.0),
                    Some(4.0),
                    None,
                ])),
            ),
            ("i", Arc::new(Int64Array::from(vec![10, -10, 0, 5, 5]))),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    Some(true),
                    Some(true),
                    None,
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    None,
                    Some("b"),
                    Some("c"),
                ])),
            ),
            (
                "l",
                lists(vec![
                    Some(vec![Some(1), Some(2)]),
                    Some(vec![Some(3)]),
                    None,
                    Some(vec![]),
                    Some(vec![Some(4), Some(5), Some(6)]),
                ]),
            ),
            (
                "t",
                Arc::new(TimestampMillisecondArray::from(vec![
                    1_500, 2_500, 3_500, 4_500, 5_500,
                ])),
            ),
        ]);
        let q = measure(&[b], QualityOptions::default());
        assert_eq!(q.data_size, 5);

        let f = column(&q, "f");
        assert_eq!((f.count, f.nulls, f.completeness), (4, 1, 0.8));
        assert_eq!(f.data_type, "Float64");
        let n = f.numeric.as_ref().unwrap();
        assert_eq!((n.count, n.min, n.max, n.mean), (4, 1.0, 4.0, 2.5));
        // Sample deviation: squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5 over n − 1 = 3.
        assert_close(n.std.unwrap(), (5.0f64 / 3.0).sqrt());
        assert_eq!(quantile(n, 0.5), 2.5);
        assert_close(quantile(n, 0.25), 1.75);
        assert_close(quantile(n, 0.01), 1.03);
        assert!(f.list_length.is_none());

        let i = column(&q, "i").numeric.clone().unwrap();
        assert_eq!((i.min, i.max, i.mean), (-10.0, 10.0, 2.0));
        // Deviations 8, −12, −2, 3, 3: squares sum to 64 + 144 + 4 + 9 + 9 = 230.
        assert_close(i.std.unwrap(), (230.0f64 / 4.0).sqrt());

        let flag = column(&q, "flag").numeric.clone().unwrap();
        assert_eq!(
            (flag.count, flag.min, flag.max, flag.mean),
            (4, 0.0, 1.0, 0.75)
        );

        let s = column(&q, "s");
        assert_eq!((s.count, s.nulls), (3, 2));
        assert!(s.numeric.is_none() && s.list_length.is_none());

        let l = column(&q, "l");
        assert_eq!((l.count, l.nulls), (4, 1));
        let lengths = l.list_length.as_ref().unwrap();
        // Lengths of the non-null lists: 2, 1, 0, 3.
        assert_eq!(
            (lengths.count, lengths.min, lengths.max, lengths.mean),
            (4, 0.0, 3.0, 1.5)
        );
        assert_close(lengths.std.unwrap(), (5.0f64 / 3.0).sqrt());
        let values = l.numeric.as_ref().unwrap();
        // All elements: 1..=6.
        assert_eq!(
            (values.count, values.min, values.max, values.mean),
            (6, 1.0, 6.0, 3.5)
        );
        assert_close(values.std.unwrap(), 3.5f64.sqrt());

        let t = column(&q, "t").numeric.clone().unwrap();
        assert_eq!(
            (t.min, t.max, t.mean),
            (1.5, 5.5, 3.5),
            "timestamps as epoch seconds"
        );

        // Completeness: mean of 0.8, 1, 0.8, 0.6, 0.8, 1.
        assert_close(q.completeness, 5.0 / 6.0);
        assert_eq!(q.duplicate_rows, 0);
    }

    #[test]
    fn fixed_size_lists_count_values_of_non_null_lists_only() {
        let child = Arc::new(Float32Array::from(vec![
            1.0,
            2.0,
            99.0,
            99.0,
            3.0,
            f32::NAN,
        ]));
        let nulls = NullBuffer::from(vec![true, false, true]);
        let field = Arc::new(Field::new("item", DataType::Float32, true));
        let list = FixedSizeListArray::new(field, 2, child, Some(nulls));
        let q = measure(
            &[batch(vec![("v", Arc::new(list))])],
            QualityOptions::default(),
        );
        let v = column(&q, "v");
        assert_eq!((v.count, v.nulls, v.nan_count), (2, 1, 1));
        let values = v.numeric.as_ref().unwrap();
        assert_eq!((values.count, values.min, values.max), (3, 1.0, 3.0));
        let lengths = v.list_length.as_ref().unwrap();
        assert_eq!((lengths.count, lengths.min, lengths.max), (2, 2.0, 2.0));
        assert_eq!(lengths.std, Some(0.0));
    }

    #[test]
    fn batches_give_exactly_the_quality_of_one_batch() {
        let whole = big_batch(100_000);
        let one = measure(std::slice::from_ref(&whole), big_options());
        let mut parts = Vec::new();
        let mut start = 0;
        for size in [1, 7, 1000, 1024, 33_333, 5, 17_000].into_iter().cycle() {
            let size = size.min(whole.num_rows() - start);
            if size == 0 {
                break;
            }
            parts.push(whole.slice(start, size));
            start += size;
        }
        let many = measure(&parts, big_options());
        assert_eq!(one, many);
        // The sample was merged, so the equality covers the estimated quantiles too.
        assert!(column(&one, "emb").numeric.as_ref().unwrap().count > SAMPLE_CAPACITY as u64);
        assert_eq!(one.duplicate_rows, 10_000);
        assert!(one.label_balance.is_some() && one.time_coverage.is_some());
    }

    #[test]
    fn quantiles_are_exact_up_to_the_sample_capacity() {
        let values: Vec<f64> = (0..SAMPLE_CAPACITY as u64 - 1)
            .map(|i| ((i * 7919) % 30_011) as f64 - 0.5)
            .collect();
        let b = batch(vec![("x", Arc::new(Float64Array::from(values.clone())))]);
        let q = measure(&[b], QualityOptions::default());
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        let stats = column(&q, "x").numeric.clone().unwrap();
        for &(level, value) in &stats.quantiles {
            let position = level * (sorted.len() - 1) as f64;
            let (i, frac) = (position.floor() as usize, position.fract());
            let expected = sorted[i] + (sorted[i + 1] - sorted[i]) * frac;
            assert_close(value, expected);
        }
    }

    #[test]
    fn estimated_quantiles_stay_within_their_documented_rank_error() {
        // A permutation of 0..n: the q-quantile is q·(n − 1).
        let n: u64 = 1_000_003;
        let values = Float64Array::from_iter_values((0..n).map(|i| ((i * 7_919) % n) as f64));
        let q = measure(
            &[batch(vec![("x", Arc::new(values))])],
            QualityOptions::default(),
        );
        let stats = column(&q, "x").numeric.clone().unwrap();
        for &(level, value) in &stats.quantiles {
            let rank_error = (value / (n - 1) as f64 - level).abs();
            // Four standard deviations of the documented bound.
            let bound = 4.0 * (level * (1.0 - level) / (SAMPLE_CAPACITY / 2) as f64).sqrt();
            assert!(
                rank_error <= bound,
                "q={level}: {value} off by {rank_error} > {bound}"
            );
        }
        assert_eq!((stats.min, stats.max), (0.0, (n - 1) as f64));
    }

    #[test]
    fn duplicates_are_counted_across_batches() {
        let part = |ids: Vec<i64>, names: Vec<&str>| {
            batch(vec![
                ("id", Arc::new(Int64Array::from(ids))),
                ("name", Arc::new(StringArray::from(names))),
            ])
        };
        let q = measure(
            &[
                part(vec![1, 2, 3], vec!["a", "b", "c"]),
                part(vec![2, 3, 3], vec!["b", "x", "c"]),
                part(vec![1, 1], vec!["a", "a"]),
            ],
            QualityOptions::default(),
        );
        // Repeats: (2,b), (3,c) in the second batch; (1,a) twice in the third.
        assert_eq!(q.duplicate_rows, 4);
        assert_close(q.duplicate_rate, 4.0 / 8.0);
    }

    #[test]
    fn nulls_differ_from_every_value_but_equal_each_other() {
        let b = batch(vec![
            (
                "i",
                Arc::new(Int64Array::from(vec![None, Some(0), None, Some(0)])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some(""), None, Some(""), None])),
            ),
        ]);
        let q = measure(&[b], QualityOptions::default());
        // Rows 0 and 2 are (null, ""), rows 1 and 3 are (0, null): one repeat each.
        assert_eq!(q.duplicate_rows, 2);
        let b = batch(vec![
            ("i", Arc::new(Int64Array::from(vec![None, Some(0)]))),
            ("s", Arc::new(StringArray::from(vec![Some(""), Some("")]))),
        ]);
        assert_eq!(measure(&[b], QualityOptions::default()).duplicate_rows, 0);
    }

    #[test]
    fn list_rows_are_compared_by_their_own_elements() {
        let b = batch(vec![
            (
                "a",
                lists(vec![Some(vec![Some(1), Some(2)]), Some(vec![Some(1)])]),
            ),
            (
                "b",
                lists(vec![Some(vec![Some(3)]), Some(vec![Some(2), Some(3)])]),
            ),
        ]);
        assert_eq!(measure(&[b], QualityOptions::default()).duplicate_rows, 0);

        let rows = |r: Vec<Option<Vec<Option<i32>>>>| batch(vec![("a", lists(r))]);
        let q = measure(
            &[
                // No child nulls in this batch...
                rows(vec![Some(vec![Some(1), Some(2)]), Some(vec![]), None]),
                // ...child nulls elsewhere in this one: [1, 2] must hash the same.
                rows(vec![
                    Some(vec![Some(1), None]),
                    Some(vec![Some(1), Some(2)]),
                    Some(vec![Some(1), Some(0)]),
                    Some(vec![]),
                    None,
                    Some(vec![Some(1), None]),
                ]),
            ],
            QualityOptions::default(),
        );
        // Repeats: [1,2], [], null, and the second [1, null]; [1, 0] is not [1, null].
        assert_eq!(q.duplicate_rows, 4);
    }

    #[test]
    fn dictionary_and_struct_values_compare_by_value() {
        let dict = |keys: Vec<i32>, values: Vec<&str>| -> ArrayRef {
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from(keys),
                    Arc::new(StringArray::from(values)),
                )
                .unwrap(),
            )
        };
        let q = measure(
            &[
                batch(vec![("d", dict(vec![0, 1], vec!["x", "y"]))]),
                batch(vec![("d", dict(vec![1, 0, 0], vec!["y", "x"]))]),
            ],
            QualityOptions::default(),
        );
        // The second batch's dictionary is ordered differently: "x", "y" both repeat, and
        // "y" once more.
        assert_eq!(q.duplicate_rows, 3);

        let fields = Fields::from(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        let s = StructArray::new(
            fields,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 1])),
                Arc::new(Int64Array::from(vec![2, 1, 2])),
            ],
            None,
        );
        let q = measure(
            &[batch(vec![("s", Arc::new(s))])],
            QualityOptions::default(),
        );
        assert_eq!(
            q.duplicate_rows, 1,
            "{{1,2}} repeats; {{2,1}} is another value"
        );
    }

    #[test]
    fn label_balance_is_one_for_even_classes_and_zero_for_one_class() {
        let labelled = |labels: Vec<Option<&str>>| {
            let n = labels.len() as i64;
            batch(vec![
                ("label", Arc::new(StringArray::from(labels))),
                ("x", Arc::new(Int64Array::from_iter_values(0..n))),
            ])
        };
        let options = || QualityOptions {
            label: Some("label".into()),
            ..QualityOptions::default()
        };
        let q = measure(
            &[labelled(vec![
                Some("a"),
                Some("b"),
                Some("a"),
                None,
                Some("b"),
            ])],
            options(),
        );
        let balance = q.label_balance.clone().unwrap();
        assert_close(balance.balance, 1.0);
        assert_eq!(balance.nulls, 1);
        assert_eq!(
            balance.classes,
            BTreeMap::from([("a".into(), 2), ("b".into(), 2)])
        );

        let q = measure(
            &[labelled(vec![Some("a"), Some("a"), Some("a")])],
            options(),
        );
        assert_eq!(q.label_balance.unwrap().balance, 0.0);

        // 3:1 between two classes: −(¾ ln ¾ + ¼ ln ¼) / ln 2.
        let q = measure(
            &[labelled(vec![Some("a"), Some("a"), Some("a"), Some("b")])],
            options(),
        );
        let expected = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln()) / 2f64.ln();
        assert_close(q.label_balance.unwrap().balance, expected);
    }

    #[test]
    fn a_label_with_too_many_classes_is_not_measured_and_counts_as_balanced() {
        let n = MAX_CLASSES as u64 + 1;
        let b = batch(vec![("y", Arc::new(UInt64Array::from_iter_values(0..n)))]);
        let options = QualityOptions {
            label: Some("y".into()),
            ..QualityOptions::default()
        };
        let q = measure(&[b], options);
        assert!(q.label_balance.is_none());
        assert!(q.notes.iter().any(|n| n.contains("\"y\"")), "{:?}", q.notes);
        assert_close(q.overall_score, 1.0);
    }

    #[test]
    fn overall_score_follows_its_formula() {
        let mut q = Quality {
            data_size: 10,
            completeness: 0.9,
            duplicate_rows: 1,
            duplicate_rate: 0.1,
            malformed_rate: Some(0.05),
            missing_rate: Some(0.15),
            label_balance: Some(LabelBalance {
                column: "y".into(),
                classes: BTreeMap::new(),
                nulls: 0,
                balance: 0.5,
            }),
            time_coverage: None,
            freshness_seconds: None,
            columns: Vec::new(),
            overall_score: 0.0,
            notes: Vec::new(),
        };
        assert_close(
            q.overall_score(),
            0.4 * 0.9 + 0.2 * 0.9 + 0.2 * 0.8 + 0.2 * 0.5,
        );
        // Rates summing past 1 are capped; unknown rates and an absent label cost nothing.
        q.malformed_rate = Some(0.9);
        q.missing_rate = Some(0.9);
        assert_close(q.overall_score(), 0.4 * 0.9 + 0.2 * 0.9 + 0.0 + 0.2 * 0.5);
        q.malformed_rate = None;
        q.missing_rate = None;
        q.label_balance = None;
        assert_close(q.overall_score(), 0.4 * 0.9 + 0.2 * 0.9 + 0.2 + 0.2);

        // Measured end to end: completeness 0.75, one duplicate of four, parse errors 0.1,
        // no label.
        let b = batch(vec![
            (
                "a",
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(2), Some(3)])),
            ),
            (
                "b",
                Arc::new(Int64Array::from(vec![Some(1), Some(1), None, None])),
            ),
        ]);
        let options = QualityOptions {
            malformed_rate: Some(0.1),
            ..QualityOptions::default()
        };
        let q = measure(&[b], options);
        assert_close(q.overall_score, 0.4 * 0.75 + 0.2 * 0.75 + 0.2 * 0.9 + 0.2);
        assert_eq!(q.overall_score, q.overall_score());
    }

    #[test]
    fn a_set_without_rows_is_complete_and_scores_zero() {
        let b = big_batch(10).slice(0, 0);
        let q = measure(&[b], big_options());
        assert_eq!(
            (q.data_size, q.duplicate_rows, q.duplicate_rate),
            (0, 0, 0.0)
        );
        assert_eq!((q.completeness, q.overall_score), (1.0, 0.0));
        assert_eq!(q.columns.len(), 5);
        assert!(
            q.columns
                .iter()
                .all(|c| c.completeness == 1.0 && c.numeric.is_none())
        );
        assert_eq!(q.label_balance.as_ref().unwrap().balance, 0.0);
        assert!(q.time_coverage.is_none() && q.freshness_seconds.is_none());
    }

    #[test]
    fn a_missing_or_unusable_label_or_time_column_is_an_error_naming_it() {
        let schema = big_batch(1).schema();
        let error = |options: QualityOptions| {
            QualityAccumulator::new(&schema, options)
                .unwrap_err()
                .to_string()
        };
        let message = error(QualityOptions {
            label: Some("target".into()),
            ..QualityOptions::default()
        });
        assert!(
            message.contains("label column") && message.contains("target"),
            "{message}"
        );
        let message = error(QualityOptions {
            label: Some("emb".into()),
            ..QualityOptions::default()
        });
        assert!(
            message.contains("emb") && message.contains("List"),
            "{message}"
        );
        let message = error(QualityOptions {
            time_column: Some("when".into()),
            ..QualityOptions::default()
        });
        assert!(
            message.contains("time column") && message.contains("when"),
            "{message}"
        );
        let message = error(QualityOptions {
            time_column: Some("label".into()),
            ..QualityOptions::default()
        });
        assert!(
            message.contains("label") && message.contains("Utf8"),
            "{message}"
        );
        let message = error(QualityOptions {
            missing_rate: Some(1.5),
            ..QualityOptions::default()
        });
        assert!(message.contains("missing rate"), "{message}");
    }

    #[test]
    fn a_batch_of_another_schema_is_refused_and_not_counted() {
        let b = big_batch(10);
        let mut acc = QualityAccumulator::new(&b.schema(), big_options()).unwrap();
        acc.observe(&b).unwrap();
        let other = batch(vec![("x", Arc::new(Int64Array::from(vec![1])))]);
        let message = acc.observe(&other).unwrap_err().to_string();
        assert!(
            message.contains("x: Int64") && message.contains("x: Float64"),
            "{message}"
        );
        assert_eq!(acc.finish(Timestamp::from_millis(0)).data_size, 10);
    }

    #[test]
    fn extreme_values_neither_overflow_nor_poison_the_statistics() {
        let b = batch(vec![
            (
                "i",
                Arc::new(Int64Array::from(vec![i64::MAX, i64::MIN, i64::MAX, 0])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::MAX,
                ])),
            ),
            ("nan", Arc::new(Float64Array::from(vec![f64::NAN; 4]))),
            ("u", Arc::new(UInt64Array::from(vec![u64::MAX; 4]))),
        ]);
        let q = measure(&[b], QualityOptions::default());

        let i = column(&q, "i").numeric.clone().unwrap();
        assert_eq!((i.min, i.max), (i64::MIN as f64, i64::MAX as f64));
        assert!(i.mean.is_finite() && i.std.unwrap().is_finite());
        assert_close(i.mean, i64::MAX as f64 / 4.0);

        // NaN and ±∞ are counted and left out of the statistics.
        let f = column(&q, "f");
        assert_eq!((f.nan_count, f.infinite_count), (1, 2));
        let fs = f.numeric.clone().unwrap();
        assert_eq!(
            (fs.count, fs.min, fs.max, fs.mean),
            (1, f64::MAX, f64::MAX, f64::MAX)
        );
        assert_eq!(fs.std, None);

        let nan = column(&q, "nan");
        assert_eq!((nan.count, nan.nan_count), (4, 4));
        assert!(nan.numeric.is_none());

        let u = column(&q, "u").numeric.clone().unwrap();
        assert_eq!(
            (u.min, u.mean, u.std),
            (u64::MAX as f64, u64::MAX as f64, Some(0.0))
        );

        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Quality>(&json).unwrap(), q);
    }

    #[test]
    fn opposite_extremes_average_without_overflow() {
        let b = batch(vec![(
            "f",
            Arc::new(Float64Array::from_iter_values(
                (0..3000).map(|i| if i % 2 == 0 { f64::MAX } else { -f64::MAX }),
            )) as ArrayRef,
        )]);
        let q = measure(&[b], QualityOptions::default());
        let f = column(&q, "f").numeric.clone().unwrap();
        assert!(f.mean.is_finite() && f.mean.abs() < 1e300, "{}", f.mean);
        assert_eq!(f.std, None);
        assert!(f.quantiles.iter().all(|(_, v)| v.is_finite()));
    }

    #[test]
    fn time_coverage_and_freshness_come_from_the_time_column() {
        let time =
            TimestampMillisecondArray::from(vec![Some(5_000), None, Some(2_000), Some(9_500)]);
        let b = batch(vec![("t", Arc::new(time))]);
        let options = QualityOptions {
            time_column: Some("t".into()),
            ..QualityOptions::default()
        };
        let mut acc = QualityAccumulator::new(&b.schema(), options).unwrap();
        acc.observe(&b).unwrap();
        let q = acc.finish(Timestamp::from_millis(70_000));
        let coverage = q.time_coverage.clone().unwrap();
        assert_eq!(
            (coverage.start, coverage.end, coverage.null_rows),
            (
                Timestamp::from_millis(2_000),
                Timestamp::from_millis(9_500),
                1
            )
        );
        assert_eq!(q.freshness_seconds, Some(60.5));
        assert_eq!((q.data_size, q.completeness), (4, 0.75));
    }
}
