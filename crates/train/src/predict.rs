//! Forecasts for new rows: a registered model reads each entity's latest window and forecasts
//! the rows that follow, in the features' own units (a classifier: the most likely class of
//! its label and that class's probability; a regressor: its label's value).
//!
//! ```
//! # use trainstore_train::{ModelCard, Predictor};
//! # fn demo(predictor: &Predictor, rows: &[arrow::array::RecordBatch]) -> trainstore_core::Result<()> {
//! let forecast = predictor.predict(rows)?;
//! println!("{} forecast rows; {} entities had too few rows", forecast.rows.num_rows(), forecast.skipped);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use burn::tensor::{Tensor, TensorData};
use trainstore_core::{Error, Result};

use crate::evaluate::most_likely;
use crate::model::SeriesTransformer;
use crate::registry::ModelCard;
use crate::trainer::{Cpu, forecasts};
use crate::windows::{LabelEncoding, LatestWindows};

/// Windows forecast in one forward pass.
const BATCH: usize = 256;

/// A loaded model with its card: what forecasting new rows needs, ready to be kept and
/// shared by a serving process.
#[derive(Debug)]
pub struct Predictor {
    model: SeriesTransformer<Cpu>,
    card: ModelCard,
}

/// What [`Predictor::predict`] forecast.
#[derive(Debug, Clone)]
pub struct Forecast {
    /// One row per entity and forecast step: the key columns, `as_of` (the time of the
    /// entity's last row), `step` (1 for the next row) and each forecast feature.
    pub rows: RecordBatch,
    /// Entities whose latest rows make no window (too few, or a gap longer than the model's
    /// windows allow): they have no forecast.
    pub skipped: usize,
}

impl Predictor {
    /// `model`, described by `card` (its registered version's).
    pub fn new(model: SeriesTransformer<Cpu>, card: ModelCard) -> Self {
        Predictor { model, card }
    }

    /// The model's card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Forecasts what follows each entity's latest window in `batches` (rows in any order,
    /// with the model's key, time and feature columns).
    pub fn predict(&self, batches: &[RecordBatch]) -> Result<Forecast> {
        let card = &self.card;
        let windows = LatestWindows::build(batches, &card.layout, card.windows, &card.normaliser)?;
        let length = card.windows.length;
        let mut predicted = Vec::new();
        let device = Default::default();
        for first in (0..windows.len()).step_by(BATCH) {
            let n = BATCH.min(windows.len() - first);
            let inputs = TensorData::new(
                windows.inputs(first..first + n).to_vec(),
                [n, length, windows.channels()],
            );
            predicted.extend(forecasts(&self.model, Tensor::from_data(inputs, &device)));
        }
        self.rows(&windows, &predicted).map(|rows| Forecast {
            rows,
            skipped: windows.skipped,
        })
    }

    /// The forecast table: `predicted` is the model's output per entity (`[entity, step,
    /// target]`, normalised; a classifier's `[entity, class]` scores).
    fn rows(&self, windows: &LatestWindows, predicted: &[f32]) -> Result<RecordBatch> {
        let card = &self.card;
        let label = card.layout.task.label().unwrap_or_default();
        let (horizon, targets) = match &card.normaliser.label {
            None => (card.windows.horizon, card.layout.forecast_channels()),
            Some(_) => (1, vec![(label.to_owned(), 0)]),
        };
        let (mut fields, mut columns, _) =
            leading_columns(&card.layout.keys, &windows.keys, &windows.ends, horizon)?;
        let taken = |name: &str, fields: &[Field]| {
            if fields.iter().any(|f| f.name() == name) {
                return Err(Error::invalid(
                    "forecast column",
                    name,
                    "has the name of a key or of as_of / step",
                ));
            }
            Ok(())
        };
        if let Some(LabelEncoding::Classes { names }) = &card.normaliser.label {
            // The most likely class, and its probability.
            let (mut classes, mut probabilities) = (Vec::new(), Vec::new());
            for scores in predicted.chunks(names.len()) {
                let (best, probability) = most_likely(scores);
                classes.push(names[best].as_str());
                probabilities.push(probability);
            }
            let probability = format!("{label}_probability");
            for name in [label, probability.as_str()] {
                taken(name, &fields)?;
            }
            fields.push(Field::new(label, DataType::Utf8, false));
            columns.push(Arc::new(StringArray::from(classes)));
            fields.push(Field::new(probability, DataType::Float64, false));
            columns.push(Arc::new(Float64Array::from(probabilities)));
            return Ok(RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?);
        }
        for (t, (name, channel)) in targets.iter().enumerate() {
            taken(name, &fields)?;
            let (mean, std) = match &card.normaliser.label {
                Some(LabelEncoding::Scaled { mean, std }) => (*mean, *std),
                _ => (
                    card.normaliser.mean[*channel],
                    card.normaliser.std[*channel],
                ),
            };
            let values = predicted
                .iter()
                .skip(t)
                .step_by(targets.len())
                .map(|&v| f64::from(v * std + mean));
            fields.push(Field::new(name, DataType::Float64, false));
            columns.push(Arc::new(Float64Array::from_iter_values(values)));
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// The columns a forecast table starts with, one row per window and step: the key columns
/// (`keys`, one row per window, named `names`), `as_of` (the window's last row's time, from
/// `ends`) and `step` (1 to `steps`); and each row's window.
pub(crate) fn leading_columns(
    names: &[String],
    keys: &[ArrayRef],
    ends: &[i64],
    steps: usize,
) -> Result<(Vec<Field>, Vec<ArrayRef>, UInt32Array)> {
    let window_of = UInt32Array::from_iter_values(
        (0..ends.len() as u32).flat_map(|w| std::iter::repeat_n(w, steps)),
    );
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (name, keys) in names.iter().zip(keys) {
        fields.push(Field::new(name, keys.data_type().clone(), true));
        columns.push(take(keys, &window_of, None)?);
    }
    let as_of = window_of.values().iter().map(|&w| ends[w as usize]);
    fields.push(Field::new(
        "as_of",
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    ));
    columns.push(Arc::new(
        TimestampMillisecondArray::from_iter_values(as_of).with_timezone("UTC"),
    ));
    fields.push(Field::new("step", DataType::UInt32, false));
    columns.push(Arc::new(UInt32Array::from_iter_values(
        (0..ends.len()).flat_map(|_| 1..=steps as u32),
    )));
    Ok((fields, columns, window_of))
}

#[cfg(test)]
mod tests;
