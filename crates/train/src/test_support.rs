//! Fixtures the crate's unit tests share.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};

use crate::model::ModelConfig;
use crate::windows::{Dataset, FeatureShape, SplitSpec, WindowFeature, WindowSpec};

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
    Dataset::build(&[batch], &["entity"], "time", &[x()], spec, split).expect("windows")
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
