//! A training set's rows as model windows.
//!
//! Rows are grouped by entity (the key columns) and put in time order. Each feature becomes
//! one or more channels: a scalar feature one, a list feature `len` of them (its values
//! truncated and padded, or mean-pooled into `len` bins). A window is `length` consecutive rows
//! of one entity; its target is the `horizon` rows after it, their scalar channels
//! (forecasting needs no label). No two consecutive rows of a window and its target lie
//! further apart than `max_gap_ms`. Windows start every `stride` rows.
//!
//! The split is by time, never by row. The time range of all rows is cut at two instants, so
//! that the last `test` fraction of it tests and the `validation` fraction before that
//! validates. A window whose rows (target included) all lie before the first cut trains; all
//! between the cuts, validates; all after the second, tests; a window across a cut is dropped,
//! so no later row is ever seen in training.
//!
//! The [`Normaliser`] holds each channel's mean and standard deviation over the rows before
//! the first cut only. A missing value (a null, a NaN, a padded list position) reads as its
//! channel's mean: 0 once normalised.
//!
//! The series is held once, normalised; a window is the row where it starts, and
//! [`Dataset::fill`] copies a batch of windows into the model's layout (`[window, step,
//! channel]`).

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortColumn, cast, lexsort_to_indices, take};
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, TimeUnit};
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use trainstore_core::{Error, RecordBatchStream, Result};

/// How a series is cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Rows per window, at least 1.
    pub length: usize,
    /// Rows from one window's start to the next one's, at least 1.
    pub stride: usize,
    /// Rows after a window that are its forecast target (0: no forecast target).
    pub horizon: usize,
    /// The longest time between consecutive rows of a window and its target, milliseconds.
    pub max_gap_ms: i64,
}

/// The fractions of the time range that validate and test: the last `test` of it, and the
/// `validation` before that.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    pub validation: f64,
    pub test: f64,
}

/// How a list feature's values become a fixed number of channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListFit {
    /// The first `len` values; a shorter list is padded with missing values.
    TruncateOrPad,
    /// `len` bins of consecutive values, each its values' mean (adaptive average pooling).
    MeanPool,
}

/// The channels a feature becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureShape {
    /// A number: one channel, and a forecast target.
    Scalar,
    /// A list of numbers: `len` channels.
    List { len: usize, fit: ListFit },
}

impl FeatureShape {
    fn channels(self) -> usize {
        match self {
            FeatureShape::Scalar => 1,
            FeatureShape::List { len, .. } => len,
        }
    }
}

/// A feature column and the channels it becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowFeature {
    pub name: String,
    pub shape: FeatureShape,
}

/// Each channel's mean and standard deviation over the training rows, applied as
/// `(x - mean) / std`; stored with a model, so that what it sees later is scaled alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// How the label becomes a target (a classifier or regressor's; none for forecasts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelEncoding>,
}

impl Normaliser {
    /// Fits over `rows` of `values` (rows × channels), ignoring missing values. A channel
    /// with no value, or one value throughout, gets mean 0 or std 1 rather than a division
    /// by zero.
    fn fit(values: &[f32], channels: usize, rows: impl Iterator<Item = usize>) -> Self {
        let mut count = vec![0u64; channels];
        let mut sum = vec![0f64; channels];
        let mut squares = vec![0f64; channels];
        for row in rows {
            for (c, &v) in values[row * channels..(row + 1) * channels]
                .iter()
                .enumerate()
            {
                if !v.is_nan() {
                    count[c] += 1;
                    sum[c] += f64::from(v);
                    squares[c] += f64::from(v) * f64::from(v);
                }
            }
        }
        let (mut mean, mut std) = (Vec::with_capacity(channels), Vec::with_capacity(channels));
        for c in 0..channels {
            let n = count[c].max(1) as f64;
            let m = sum[c] / n;
            let variance = (squares[c] / n - m * m).max(0.0);
            mean.push(m as f32);
            std.push(if variance > 0.0 {
                variance.sqrt() as f32
            } else {
                1.0
            });
        }
        Normaliser {
            mean,
            std,
            label: None,
        }
    }

    /// Scales `values` (rows × channels) in place; a missing value becomes 0, the mean.
    pub fn apply(&self, values: &mut [f32]) {
        for row in values.chunks_exact_mut(self.mean.len()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = if v.is_nan() { 0.0 } else { (*v - m) / s };
            }
        }
    }
}

/// Which columns a dataset's windows are made of: what a model needs to cut new rows alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The columns that tell entities apart.
    pub keys: Vec<String>,
    /// The timestamp column rows are ordered by.
    pub time: String,
    /// The features, in channel order.
    pub features: Vec<WindowFeature>,
    /// What a model learns from a window.
    #[serde(default, skip_serializing_if = "Task::is_forecast")]
    pub task: Task,
}

/// What a model learns to tell from a window.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    /// The scalar features of the `horizon` rows after the window (needs no label).
    #[default]
    Forecast,
    /// The class of the `label` column (booleans, integers or text) at the window's last row.
    Classify { label: String },
    /// The value of the numeric `label` column at the window's last row.
    Regress { label: String },
}

impl Task {
    fn is_forecast(&self) -> bool {
        *self == Task::Forecast
    }

    /// The label column, unless forecasting.
    pub fn label(&self) -> Option<&str> {
        match self {
            Task::Forecast => None,
            Task::Classify { label } | Task::Regress { label } => Some(label),
        }
    }
}

/// The most classes a classifier tells apart.
pub const MAX_CLASSES: usize = 1000;

/// How a label becomes a target, fitted once (on a model's first training rows) and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LabelEncoding {
    /// A class label: its values, as text, sorted; a target is the index of its value.
    Classes { names: Vec<String> },
    /// A numeric label, scaled as `(x - mean) / std` over the training rows.
    Scaled { mean: f32, std: f32 },
}

impl Layout {
    /// The columns windows are made of: the keys, the time, the features and the task's
    /// label.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = self.keys.clone();
        columns.push(self.time.clone());
        columns.extend(self.features.iter().map(|f| f.name.clone()));
        columns.extend(self.task.label().map(str::to_owned));
        columns
    }

    /// The features a model forecasts (the scalar ones), each with its channel.
    pub fn forecast_channels(&self) -> Vec<(String, usize)> {
        let mut first = 0;
        let mut scalars = Vec::new();
        for feature in &self.features {
            if feature.shape == FeatureShape::Scalar {
                scalars.push((feature.name.clone(), first));
            }
            first += feature.shape.channels();
        }
        scalars
    }
}

/// A training set's rows gathered batch by batch, reduced to what windows are made of: the
/// key columns, each row's time, its features as channels (not yet scaled) and its label.
/// A batch's other columns, and a list feature's values beyond its channels, are dropped as
/// it arrives, so rows read from a stream take about `4 × channels + 8` bytes each, plus
/// their keys, whatever the batches held: how a version larger than memory trains.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
/// use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
/// use trainstore_train::{FeatureShape, Layout, Task, WindowFeature, WindowRows};
///
/// let layout = Layout {
///     keys: vec!["device".into()],
///     time: "time".into(),
///     features: vec![WindowFeature { name: "x".into(), shape: FeatureShape::Scalar }],
///     task: Task::Forecast,
/// };
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("device", DataType::Int64, false),
///     Field::new("time", DataType::Timestamp(TimeUnit::Millisecond, None), false),
///     Field::new("x", DataType::Float64, true),
/// ]));
/// let mut rows = WindowRows::new(&layout)?;
/// for part in 0..3i64 {
///     let batch = RecordBatch::try_new(schema.clone(), vec![
///         Arc::new(Int64Array::from(vec![1, 2])),
///         Arc::new(TimestampMillisecondArray::from(vec![part * 1000, part * 1000])),
///         Arc::new(Float64Array::from(vec![part as f64, -(part as f64)])),
///     ])?;
///     rows.push(&batch)?;
/// }
/// assert_eq!(rows.len(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct WindowRows {
    layout: Layout,
    /// Whether the task's label is read (a forecast of new rows needs none).
    with_label: bool,
    channels: usize,
    /// Each batch's key columns.
    keys: Vec<Vec<ArrayRef>>,
    /// Each row's time, epoch milliseconds.
    times: Vec<i64>,
    /// Rows × channels, in arrival order.
    values: Vec<f32>,
    /// Each batch's label column.
    labels: Vec<ArrayRef>,
}

impl WindowRows {
    /// No rows yet, to be cut as `layout` says (its keys, time, features and the task's
    /// label are the columns each batch must have).
    pub fn new(layout: &Layout) -> Result<Self> {
        validate_layout(layout)?;
        Ok(WindowRows {
            layout: layout.clone(),
            with_label: layout.task.label().is_some(),
            channels: layout.features.iter().map(|f| f.shape.channels()).sum(),
            keys: Vec::new(),
            times: Vec::new(),
            values: Vec::new(),
            labels: Vec::new(),
        })
    }

    /// `batches`' rows, to be cut as `layout` says.
    fn of(layout: &Layout, batches: &[RecordBatch]) -> Result<Self> {
        let mut rows = Self::new(layout)?;
        for batch in batches {
            rows.push(batch)?;
        }
        Ok(rows)
    }

    /// `rows` gathered as they stream in. Blocks the thread until the stream ends: call it
    /// off the async workers. A stream that ends in an error fails the whole gathering.
    pub fn gather(layout: &Layout, mut rows: RecordBatchStream) -> Result<Self> {
        let mut gathered = Self::new(layout)?;
        while let Some(batch) = futures::executor::block_on(rows.next()) {
            gathered.push(&batch?)?;
        }
        Ok(gathered)
    }

    /// [`Self::new`], reading no label: rows to forecast from.
    fn inputs_only(layout: &Layout) -> Result<Self> {
        let mut rows = Self::new(layout)?;
        rows.with_label = false;
        Ok(rows)
    }

    /// Adds `batch`'s rows (in any order, of any entities); of its columns only the layout's
    /// are read.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = |name: &str, what: &'static str| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                Error::invalid(
                    what,
                    name,
                    format!(
                        "not a column of the rows (they have {})",
                        column_names(batch)
                    ),
                )
            })
        };
        let layout = &self.layout;
        let keys = (layout.keys.iter())
            .map(|k| column(k, "window column"))
            .collect::<Result<Vec<_>>>()?;
        let times = milliseconds(&layout.time, &column(&layout.time, "window column")?)?;
        let label = match layout.task.label() {
            Some(label) if self.with_label => Some(column(label, "label column")?),
            _ => None,
        };
        let features = (layout.features.iter())
            .map(|f| column(&f.name, "window column"))
            .collect::<Result<Vec<_>>>()?;
        let first_row = self.values.len();
        self.values
            .resize(first_row + batch.num_rows() * self.channels, f32::NAN);
        let values = &mut self.values[first_row..];
        let mut first = 0;
        for (feature, feature_column) in layout.features.iter().zip(&features) {
            let filled = fill_channels(feature, feature_column, values, self.channels, first);
            if let Err(e) = filled {
                // A refused batch leaves no row behind.
                self.values.truncate(first_row);
                return Err(e);
            }
            first += feature.shape.channels();
        }
        self.times
            .extend_from_slice(times.as_primitive::<Int64Type>().values());
        self.keys.push(keys);
        self.labels.extend(label);
        Ok(())
    }

    /// How many rows have been added.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no row has been added.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The rows grouped by entity, in time order within each.
    fn sort(self) -> Result<SortedRows> {
        if self.times.is_empty() {
            return Err(Error::invalid(
                "rows",
                "0 rows",
                "there is nothing to cut into windows",
            ));
        }
        let concatenated = |parts: Vec<&dyn Array>| arrow::compute::concat(&parts);
        let key_columns = (0..self.layout.keys.len())
            .map(|k| concatenated(self.keys.iter().map(|batch| batch[k].as_ref()).collect()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let time_column: ArrayRef = Arc::new(arrow::array::Int64Array::from(self.times));
        // Entity, then time: each entity's rows together, in time order.
        let mut sort: Vec<SortColumn> = key_columns
            .iter()
            .map(|c| SortColumn {
                values: c.clone(),
                options: None,
            })
            .collect();
        sort.push(SortColumn {
            values: time_column.clone(),
            options: None,
        });
        let order = lexsort_to_indices(&sort, None)?;
        let sorted = |column: &ArrayRef| take(column, &order, None);
        let times = sorted(&time_column)?
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let key_columns = key_columns
            .iter()
            .map(sorted)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let label = match self.labels.is_empty() {
            true => None,
            false => Some(sorted(&concatenated(
                self.labels.iter().map(AsRef::as_ref).collect(),
            )?)?),
        };
        let channels = self.channels;
        let mut values = Vec::with_capacity(self.values.len());
        for &row in order.values() {
            let row = row as usize;
            values.extend_from_slice(&self.values[row * channels..(row + 1) * channels]);
        }
        drop(self.values);
        let entity_starts = entity_starts(&key_columns)?;
        Ok(SortedRows {
            target_channels: self
                .layout
                .forecast_channels()
                .into_iter()
                .map(|(_, c)| c)
                .collect(),
            key_columns,
            times,
            values,
            channels,
            label,
            entity_starts,
        })
    }
}

/// Rows grouped by entity and in time order within each, as channels (not yet scaled).
struct SortedRows {
    /// The key columns, in the rows' sorted order.
    key_columns: Vec<ArrayRef>,
    /// The rows' times, epoch milliseconds.
    times: Vec<i64>,
    /// Rows × channels.
    values: Vec<f32>,
    channels: usize,
    /// The scalar features' channels.
    target_channels: Vec<usize>,
    /// The label column, in the rows' sorted order, when read.
    label: Option<ArrayRef>,
    /// The first row of each entity.
    entity_starts: Vec<usize>,
}

impl SortedRows {
    /// Where each entity's rows end (exclusive), beside where they start.
    fn entities(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let ends = self
            .entity_starts
            .iter()
            .skip(1)
            .copied()
            .chain([self.times.len()]);
        self.entity_starts.iter().copied().zip(ends)
    }
}

/// Each entity's most recent window: its last `length` rows, scaled by a model's normaliser,
/// for a forecast of what follows them.
#[derive(Debug, Clone)]
pub struct LatestWindows {
    /// The key columns: one row per entity with a window.
    pub keys: Vec<ArrayRef>,
    /// The time of each window's last row, epoch milliseconds.
    pub ends: Vec<i64>,
    /// `[entity, length, channels]`.
    inputs: Vec<f32>,
    channels: usize,
    /// Entities whose latest rows make no window: fewer than `length` of them, or a gap
    /// longer than allowed among them.
    pub skipped: usize,
}

impl LatestWindows {
    /// The latest window of each entity in `batches` (rows in any order), cut as `layout`
    /// and `spec` say and scaled by `normaliser` (a model's).
    pub fn build(
        batches: &[RecordBatch],
        layout: &Layout,
        spec: WindowSpec,
        normaliser: &Normaliser,
    ) -> Result<Self> {
        validate_cut(spec, None)?;
        let mut rows = WindowRows::inputs_only(layout)?;
        for batch in batches {
            rows.push(batch)?;
        }
        let mut rows = rows.sort()?;
        check_normaliser(normaliser, rows.channels)?;
        normaliser.apply(&mut rows.values);
        let (length, channels) = (spec.length, rows.channels);
        let (mut picked, mut ends, mut inputs) = (Vec::new(), Vec::new(), Vec::new());
        let mut skipped = 0;
        for (begin, end) in rows.entities() {
            let Some(start) = end.checked_sub(length).filter(|&s| s >= begin) else {
                skipped += 1;
                continue;
            };
            let times = &rows.times[start..end];
            if times.windows(2).any(|t| t[1] - t[0] > spec.max_gap_ms) {
                skipped += 1;
                continue;
            }
            picked.push(start as u32);
            ends.push(rows.times[end - 1]);
            inputs.extend_from_slice(&rows.values[start * channels..end * channels]);
        }
        let picked = arrow::array::UInt32Array::from(picked);
        let keys = rows
            .key_columns
            .iter()
            .map(|k| take(k, &picked, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(LatestWindows {
            keys,
            ends,
            inputs,
            channels,
            skipped,
        })
    }

    /// How many entities have a window.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no entity has a window.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The windows of entities `range`, in the model's layout (`[window, step, channel]`).
    pub fn inputs(&self, range: std::ops::Range<usize>) -> &[f32] {
        let per_window = self.inputs.len() / self.len().max(1);
        &self.inputs[range.start * per_window..range.end * per_window]
    }

    /// Channels per step.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Refuses a normaliser made for another number of channels.
fn check_normaliser(normaliser: &Normaliser, channels: usize) -> Result<()> {
    if normaliser.mean.len() != channels || normaliser.std.len() != channels {
        return Err(Error::invalid(
            "normaliser",
            format!("{} channels", normaliser.mean.len()),
            format!("the features make {channels} channels"),
        ));
    }
    Ok(())
}

/// A training set's rows, normalised, and the windows cut from them, split by time.
#[derive(Debug, Clone)]
pub struct Dataset {
    layout: Layout,
    spec: WindowSpec,
    channels: usize,
    /// The scalar features' channels: what a window's target holds.
    target_channels: Vec<usize>,
    /// Rows × channels, grouped by entity, in time order within each.
    values: Vec<f32>,
    /// Each row's label as a target (a class index, or the scaled value; NaN when missing),
    /// when the task has a label.
    labels: Vec<f32>,
    /// Each row's key columns.
    key_columns: Vec<ArrayRef>,
    /// The rows' times, epoch milliseconds.
    times: Vec<i64>,
    /// The first row of each training window.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    pub normaliser: Normaliser,
}

impl Dataset {
    /// Cuts `batches` (a training set's rows, in any order) into windows as `layout` says:
    /// entities are told apart by its key columns, ordered by its time column (a
    /// timestamp), its features become the channels, in their order, and its task says what
    /// a window's target is. The scaling (and a label's encoding) is fitted on the rows
    /// before the validation cut.
    pub fn build(
        batches: &[RecordBatch],
        layout: &Layout,
        spec: WindowSpec,
        split: SplitSpec,
    ) -> Result<Self> {
        Self::from_rows(WindowRows::of(layout, batches)?, spec, split, None)
    }

    /// [`Self::build`], scaled by `normaliser` (a model's, when it trains further on new
    /// rows or is evaluated) instead of the statistics of these rows.
    pub fn build_scaled(
        batches: &[RecordBatch],
        layout: &Layout,
        spec: WindowSpec,
        split: SplitSpec,
        normaliser: &Normaliser,
    ) -> Result<Self> {
        Self::from_rows(
            WindowRows::of(layout, batches)?,
            spec,
            split,
            Some(normaliser),
        )
    }

    /// [`Self::build`] on rows gathered batch by batch (a stream of a version larger than
    /// memory), scaled by `fixed` if given (a model's normaliser), else fitted on the
    /// training rows.
    pub fn from_rows(
        rows: WindowRows,
        spec: WindowSpec,
        split: SplitSpec,
        fixed: Option<&Normaliser>,
    ) -> Result<Self> {
        validate_cut(spec, Some(split))?;
        let layout = rows.layout.clone();
        let rows = rows.sort()?;
        let entities: Vec<(usize, usize)> = rows.entities().collect();
        let SortedRows {
            times,
            mut values,
            channels,
            target_channels,
            key_columns,
            label: label_column,
            ..
        } = rows;
        let (first_cut, second_cut) = cuts(&times, split);
        let mut normaliser = match fixed {
            Some(given) => {
                check_normaliser(given, channels)?;
                given.clone()
            }
            None => Normaliser::fit(
                &values,
                channels,
                (0..times.len()).filter(|&r| times[r] < first_cut),
            ),
        };
        if !times.iter().any(|&t| t < first_cut) {
            return Err(Error::invalid(
                "split",
                format!("validation {}, test {}", split.validation, split.test),
                "no row lies before the validation cut: nothing would train",
            ));
        }
        normaliser.apply(&mut values);
        let labels = match (&layout.task, label_column) {
            (Task::Forecast, _) | (_, None) => Vec::new(),
            (task, Some(column)) => {
                let training = |r: &usize| times[*r] < first_cut;
                let (labels, encoding) = encode_labels(
                    task,
                    &column,
                    fixed.and_then(|n| n.label.as_ref()),
                    training,
                )?;
                normaliser.label = Some(encoding);
                labels
            }
        };

        let mut dataset = Dataset {
            layout,
            spec,
            channels,
            target_channels,
            values,
            labels,
            key_columns,
            times,
            train: Vec::new(),
            validation: Vec::new(),
            test: Vec::new(),
            normaliser,
        };
        dataset.cut_windows(&entities, first_cut, second_cut);
        Ok(dataset)
    }

    /// Adds `count` of `earlier`'s training windows, drawn at random by `seed`, to this
    /// dataset's training windows: a replay of what a model learnt before, so that training
    /// on new rows does not make it forget the old ones. `earlier` must have the same
    /// channels and window spec (built with this dataset's normaliser).
    pub fn with_replay(mut self, earlier: &Dataset, count: usize, seed: u64) -> Result<Self> {
        if earlier.channels != self.channels
            || earlier.spec != self.spec
            || earlier.target_channels != self.target_channels
            || earlier.layout.task != self.layout.task
            || earlier.normaliser.label != self.normaliser.label
        {
            return Err(Error::invalid(
                "replay",
                format!("{} channels", earlier.channels),
                "the earlier rows are not windowed like the new ones",
            ));
        }
        let mut picked = earlier.train.clone();
        rand::seq::SliceRandom::shuffle(
            picked.as_mut_slice(),
            &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed),
        );
        picked.truncate(count);
        let offset = self.times.len();
        self.values.extend_from_slice(&earlier.values);
        self.labels.extend_from_slice(&earlier.labels);
        self.key_columns = self
            .key_columns
            .iter()
            .zip(&earlier.key_columns)
            .map(|(new, old)| arrow::compute::concat(&[new.as_ref(), old.as_ref()]))
            .collect::<std::result::Result<_, _>>()?;
        self.times.extend_from_slice(&earlier.times);
        self.train
            .extend(picked.into_iter().map(|start| start + offset));
        Ok(self)
    }

    /// Channels per step of an input window.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The shape of a window's target: steps, and values per step (the scalar features of
    /// each forecast step; one label).
    pub fn target_shape(&self) -> (usize, usize) {
        match self.layout.task {
            Task::Forecast => (self.spec.horizon, self.target_channels.len()),
            Task::Classify { .. } | Task::Regress { .. } => (1, 1),
        }
    }

    /// The shape of a model's output for a window: steps, and values per step (a forecast's
    /// scalar features; a classifier's score per class; a regressor's one value).
    pub fn output_shape(&self) -> (usize, usize) {
        match &self.normaliser.label {
            Some(LabelEncoding::Classes { names }) => (1, names.len()),
            _ => self.target_shape(),
        }
    }

    /// The columns the windows were made of.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The window spec the windows were cut by.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Appends the windows starting at `starts` to `inputs` (`[window, length, channels]`)
    /// and their targets to `targets` (`[window, steps, values]`, [`Self::target_shape`]).
    pub fn fill(&self, starts: &[usize], inputs: &mut Vec<f32>, targets: &mut Vec<f32>) {
        let (length, horizon, channels) = (self.spec.length, self.spec.horizon, self.channels);
        for &start in starts {
            inputs.extend_from_slice(&self.values[start * channels..(start + length) * channels]);
            if !self.labels.is_empty() {
                targets.push(self.labels[start + length - 1]);
                continue;
            }
            for step in start + length..start + length + horizon {
                let row = &self.values[step * channels..(step + 1) * channels];
                targets.extend(self.target_channels.iter().map(|&c| row[c]));
            }
        }
    }

    /// The time of a window's last input row, epoch milliseconds.
    pub fn window_end(&self, start: usize) -> i64 {
        self.times[start + self.spec.length - 1]
    }

    /// The key columns of the windows at `starts`: whose series each window is.
    pub fn window_keys(&self, starts: &[usize]) -> Result<Vec<ArrayRef>> {
        let rows = arrow::array::UInt32Array::from_iter_values(starts.iter().map(|&s| s as u32));
        Ok(self
            .key_columns
            .iter()
            .map(|k| take(k, &rows, None))
            .collect::<std::result::Result<_, _>>()?)
    }

    fn cut_windows(&mut self, entities: &[(usize, usize)], first_cut: i64, second_cut: i64) {
        // A label is the last row's: a window's span is its own rows.
        let span = match self.layout.task {
            Task::Forecast => self.spec.length + self.spec.horizon,
            Task::Classify { .. } | Task::Regress { .. } => self.spec.length,
        };
        // breaks[i]: how many gaps longer than allowed lie between rows 0..=i.
        let mut breaks = Vec::with_capacity(self.times.len());
        let mut seen = 0usize;
        for (i, t) in self.times.iter().enumerate() {
            if i > 0 && t - self.times[i - 1] > self.spec.max_gap_ms {
                seen += 1;
            }
            breaks.push(seen);
        }
        for &(begin, end) in entities {
            let mut start = begin;
            while start + span <= end {
                let last = start + span - 1;
                let labelled = self.labels.get(last).is_none_or(|l| !l.is_nan());
                if breaks[last] == breaks[start] && labelled {
                    let (from, to) = (self.times[start], self.times[last]);
                    if to < first_cut {
                        self.train.push(start);
                    } else if from >= first_cut && to < second_cut {
                        self.validation.push(start);
                    } else if from >= second_cut {
                        self.test.push(start);
                    }
                }
                start += self.spec.stride;
            }
        }
    }
}

/// Refuses a layout no rows can be cut by, naming what is wrong.
fn validate_layout(layout: &Layout) -> Result<()> {
    let features = &layout.features;
    if layout.keys.is_empty() {
        return Err(Error::invalid(
            "entity keys",
            "none",
            "name the columns that tell entities apart",
        ));
    }
    if features.is_empty() {
        return Err(Error::invalid(
            "window features",
            "none",
            "name at least one feature",
        ));
    }
    for (i, f) in features.iter().enumerate() {
        if features[..i].iter().any(|g| g.name == f.name) {
            return Err(Error::invalid(
                "window features",
                &f.name,
                "named more than once",
            ));
        }
        if let FeatureShape::List { len: 0, .. } = f.shape {
            return Err(Error::invalid(
                "list feature length",
                &f.name,
                "must be at least 1",
            ));
        }
    }
    if let Some(label) = layout.task.label()
        && (features.iter().any(|f| f.name == label) || layout.keys.iter().any(|k| k == label))
    {
        return Err(Error::invalid(
            "label column",
            label,
            "is also a feature or a key: a model would read the answer it is to give",
        ));
    }
    Ok(())
}

/// Refuses a window spec (and a split, when the rows are split) no rows can be cut by.
fn validate_cut(spec: WindowSpec, split: Option<SplitSpec>) -> Result<()> {
    let positive = |what: &'static str, value: usize| {
        if value == 0 {
            Err(Error::invalid(what, "0", "must be at least 1"))
        } else {
            Ok(())
        }
    };
    positive("window length", spec.length)?;
    positive("window stride", spec.stride)?;
    if spec.max_gap_ms <= 0 {
        return Err(Error::invalid(
            "window max gap",
            format!("{} ms", spec.max_gap_ms),
            "must be positive",
        ));
    }
    let fraction = |f: f64| (0.0..1.0).contains(&f);
    if let Some(split) = split
        && (!fraction(split.validation)
            || !fraction(split.test)
            || split.validation + split.test >= 1.0)
    {
        return Err(Error::invalid(
            "split",
            format!("validation {}, test {}", split.validation, split.test),
            "each fraction lies in [0, 1) and together they leave some time to train on",
        ));
    }
    Ok(())
}

fn column_names(batch: &RecordBatch) -> String {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    names.join(", ")
}

/// A timestamp or date column as epoch milliseconds; a null time is refused, naming its row.
fn milliseconds(name: &str, column: &ArrayRef) -> Result<ArrayRef> {
    let wanted = DataType::Timestamp(TimeUnit::Millisecond, None);
    let millis = match column.data_type() {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            let unzoned = match column.data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    cast(column, &DataType::Timestamp(*unit, None))?
                }
                _ => column.clone(),
            };
            cast(&cast(&unzoned, &wanted)?, &DataType::Int64)?
        }
        other => {
            return Err(Error::invalid(
                "window time column",
                name,
                format!("holds {other}, not timestamps"),
            ));
        }
    };
    if let Some(row) = (0..millis.len()).find(|&i| millis.is_null(i)) {
        return Err(Error::invalid(
            "window time column",
            name,
            format!("row {row} has no time"),
        ));
    }
    Ok(millis)
}

/// Each row's label as a target, and the encoding: `given` (a model's), else fitted on the
/// rows `training` accepts (classes: every value the rows hold).
fn encode_labels(
    task: &Task,
    column: &ArrayRef,
    given: Option<&LabelEncoding>,
    training: impl Fn(&usize) -> bool,
) -> Result<(Vec<f32>, LabelEncoding)> {
    let name = task.label().unwrap_or_default();
    let wrong = |reason: String| Error::invalid("label column", name, reason);
    match task {
        Task::Forecast => Err(wrong("a forecast has no label".into())),
        Task::Classify { .. } => {
            let t = column.data_type();
            let classable = t.is_integer()
                || matches!(
                    t,
                    DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                );
            if !classable {
                return Err(wrong(format!(
                    "holds {t}: a class label is a boolean, an integer or text"
                )));
            }
            let text = cast(column, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let names = match given {
                Some(LabelEncoding::Classes { names }) => names.clone(),
                Some(LabelEncoding::Scaled { .. }) => {
                    return Err(wrong("the model regresses it; it does not classify".into()));
                }
                None => {
                    let mut names: Vec<String> = text.iter().flatten().map(str::to_owned).collect();
                    names.sort();
                    names.dedup();
                    if names.len() < 2 || names.len() > MAX_CLASSES {
                        return Err(wrong(format!(
                            "holds {} distinct values: a classifier tells 2 to {MAX_CLASSES} \
                             classes apart",
                            names.len()
                        )));
                    }
                    names
                }
            };
            // A value the classes lack (new since the model was trained) has no target.
            let labels = text
                .iter()
                .map(|v| {
                    v.and_then(|v| names.binary_search_by(|n| n.as_str().cmp(v)).ok())
                        .map_or(f32::NAN, |i| i as f32)
                })
                .collect();
            Ok((labels, LabelEncoding::Classes { names }))
        }
        Task::Regress { .. } => {
            if !column.data_type().is_numeric() {
                return Err(wrong(format!(
                    "holds {}: a regression label is a number",
                    column.data_type()
                )));
            }
            let floats = cast(column, &DataType::Float32)?;
            let raw: Vec<f32> = floats
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.unwrap_or(f32::NAN))
                .collect();
            let (mean, std) = match given {
                Some(LabelEncoding::Scaled { mean, std }) => (*mean, *std),
                Some(LabelEncoding::Classes { .. }) => {
                    return Err(wrong("the model classifies it; it does not regress".into()));
                }
                None => {
                    let fitted = Normaliser::fit(&raw, 1, (0..raw.len()).filter(training));
                    (fitted.mean[0], fitted.std[0])
                }
            };
            let labels = raw.iter().map(|v| (v - mean) / std).collect();
            Ok((labels, LabelEncoding::Scaled { mean, std }))
        }
    }
}

/// The first row of each entity, the key columns in sorted order.
fn entity_starts(sorted: &[ArrayRef]) -> Result<Vec<usize>> {
    let fields = sorted
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let rows = RowConverter::new(fields)?.convert_columns(sorted)?;
    let mut starts = vec![0];
    starts.extend((1..rows.num_rows()).filter(|&i| rows.row(i) != rows.row(i - 1)));
    Ok(starts)
}

/// Writes `feature`'s channels (from channel `first` on) of every row into `values`.
fn fill_channels(
    feature: &WindowFeature,
    column: &ArrayRef,
    values: &mut [f32],
    channels: usize,
    first: usize,
) -> Result<()> {
    let wrong = |reason: String| Error::invalid("window feature", &feature.name, reason);
    let numeric = |t: &DataType| t.is_numeric() || *t == DataType::Boolean;
    match feature.shape {
        FeatureShape::Scalar => {
            if !numeric(column.data_type()) {
                return Err(wrong(format!(
                    "holds {}, not numbers (a list feature needs a list shape)",
                    column.data_type()
                )));
            }
            let floats = cast(column, &DataType::Float32)?;
            let floats = floats.as_primitive::<Float32Type>();
            for (row, v) in floats.iter().enumerate() {
                values[row * channels + first] = v.unwrap_or(f32::NAN);
            }
        }
        FeatureShape::List { len, fit } => {
            let item = match column.data_type() {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    f.data_type().clone()
                }
                other => return Err(wrong(format!("holds {other}, not lists"))),
            };
            if !numeric(&item) {
                return Err(wrong(format!("holds lists of {item}, not of numbers")));
            }
            let lists = cast(
                column,
                &DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            )?;
            let lists = lists.as_list::<i32>();
            for row in 0..lists.len() {
                if lists.is_null(row) {
                    continue;
                }
                let list = lists.value(row);
                let items: Vec<f32> = list
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| v.unwrap_or(f32::NAN))
                    .collect();
                let out = &mut values[row * channels + first..row * channels + first + len];
                fit_list(&items, fit, out);
            }
        }
    }
    Ok(())
}

/// `items` fitted into `out` (its length is the channel count); missing stays NaN.
fn fit_list(items: &[f32], fit: ListFit, out: &mut [f32]) {
    let (n, len) = (items.len(), out.len());
    match fit {
        ListFit::TruncateOrPad => {
            for (o, v) in out.iter_mut().zip(items) {
                *o = *v;
            }
        }
        ListFit::MeanPool => {
            if n == 0 {
                return;
            }
            for (i, o) in out.iter_mut().enumerate() {
                let bin = &items[i * n / len..((i + 1) * n).div_ceil(len)];
                let present: Vec<f32> = bin.iter().copied().filter(|v| !v.is_nan()).collect();
                if !present.is_empty() {
                    *o = present.iter().sum::<f32>() / present.len() as f32;
                }
            }
        }
    }
}

/// The two instants that cut the time range: before the first trains, from the second on
/// tests. With no validation or test fraction, every row lies before its cut.
fn cuts(times: &[i64], split: SplitSpec) -> (i64, i64) {
    let (min, max) = times
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    let span = (max - min) as f64;
    let at = |fraction: f64| {
        if fraction >= 1.0 {
            max.saturating_add(1)
        } else {
            min + (span * fraction) as i64
        }
    };
    (
        at(1.0 - split.validation - split.test),
        at(1.0 - split.test),
    )
}

#[cfg(test)]
mod tests;
