//! Fixtures the crate's unit tests share.

use std::sync::Arc;

use arrow::array::{AsArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};

use crate::model::ModelConfig;
use crate::windows::{Dataset, FeatureShape, Layout, SplitSpec, Task, WindowFeature, WindowSpec};

/// Two devices whose x is a sine wave, one row a minute, cut into windows of 12 steps (the
/// last quarter of the time validates).
pub(crate) fn sine_waves(rows: i64) -> Dataset {
    let spec = WindowSpec {
        length: 12,
        stride: 1,
        horizon: 1,
        max_gap_ms: 60_000,
    };
    let split = SplitSpec {
        validation: 0.25,
        test: 0.0,
    };
    let batch = sine_wave_rows(rows);
    Dataset::build(&[batch], &layout(&["entity"], "time", &[x()]), spec, split).expect("windows")
}

/// A forecast's layout of `features`.
pub(crate) fn layout(keys: &[&str], time: &str, features: &[WindowFeature]) -> Layout {
    Layout {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        time: time.to_owned(),
        features: features.to_vec(),
        task: Task::Forecast,
    }
}

/// The feature `x`, a scalar.
pub(crate) fn x() -> WindowFeature {
    WindowFeature {
        name: "x".into(),
        shape: FeatureShape::Scalar,
    }
}

/// The rows of [`sine_waves`]: `entity`, `time` and `x`.
pub(crate) fn sine_wave_rows(rows: i64) -> RecordBatch {
    let (mut entity, mut time, mut x) = (Vec::new(), Vec::new(), Vec::new());
    for (device, phase) in [("a", 0.0), ("b", 1.3)] {
        for t in 0..rows {
            entity.push(device);
            time.push(t * 60_000);
            x.push((t as f64 / 6.0 + phase).sin());
        }
    }
    RecordBatch::try_from_iter([
        ("entity", Arc::new(StringArray::from(entity)) as _),
        ("time", Arc::new(TimestampMillisecondArray::from(time)) as _),
        ("x", Arc::new(Float64Array::from(x)) as _),
    ])
    .expect("a batch")
}

pub(crate) fn small() -> ModelConfig {
    ModelConfig {
        d_model: 16,
        heads: 2,
        layers: 1,
        d_ff: 32,
        dropout: 0.0,
    }
}

/// [`sine_wave_rows`] with labels: `rising` (whether x rose since the row before; text
/// "up"/"down") and `change` (how much it rose).
pub(crate) fn labelled_waves(rows: i64) -> RecordBatch {
    let waves = sine_wave_rows(rows);
    let x = waves
        .column(2)
        .as_primitive::<arrow::datatypes::Float64Type>();
    let change: Vec<f64> = (0..x.len())
        .map(|i| {
            let first = i as i64 % rows == 0;
            if first {
                0.0
            } else {
                x.value(i) - x.value(i - 1)
            }
        })
        .collect();
    let rising: Vec<&str> = change
        .iter()
        .map(|c| if *c > 0.0 { "up" } else { "down" })
        .collect();
    let mut columns = waves.columns().to_vec();
    columns.push(Arc::new(StringArray::from(rising)));
    columns.push(Arc::new(Float64Array::from(change)));
    let mut fields: Vec<_> = waves.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "rising",
        arrow::datatypes::DataType::Utf8,
        false,
    )));
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "change",
        arrow::datatypes::DataType::Float64,
        false,
    )));
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns).expect("a batch")
}
