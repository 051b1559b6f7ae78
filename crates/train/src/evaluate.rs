//! How well a model forecasts: per target feature, in the feature's own units, the mean
//! absolute error, the root mean squared error and the mean absolute percentage error, over a
//! dataset's windows.

use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::model::SeriesTransformer;
use crate::trainer::{batch, forecasts};
use crate::windows::Dataset;

/// One target feature's errors over every forecast step of every window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureErrors {
    pub feature: String,
    pub mae: f64,
    pub rmse: f64,
    /// In percent, over the steps whose actual value is not 0; `None` when every one is.
    pub mape: Option<f64>,
}

/// A model's forecast errors over some windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    pub windows: usize,
    pub features: Vec<FeatureErrors>,
}

/// Sums of one feature's errors, accumulated window by window.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    count: usize,
    absolute: f64,
    squared: f64,
    relative: f64,
    relative_count: usize,
}

impl Sums {
    fn add(&mut self, predicted: f64, actual: f64) {
        let error = predicted - actual;
        self.count += 1;
        self.absolute += error.abs();
        self.squared += error * error;
        if actual != 0.0 {
            self.relative += (error / actual).abs();
            self.relative_count += 1;
        }
    }

    fn finish(self, feature: String) -> FeatureErrors {
        let n = self.count.max(1) as f64;
        FeatureErrors {
            feature,
            mae: self.absolute / n,
            rmse: (self.squared / n).sqrt(),
            mape: (self.relative_count > 0)
                .then(|| 100.0 * self.relative / self.relative_count as f64),
        }
    }
}

/// `model`'s forecast errors over `dataset`'s windows at `starts`, scaled back to the
/// features' units with the dataset's normaliser.
pub fn evaluate<B: Backend>(
    model: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    batch_size: usize,
) -> ForecastReport {
    let (names, scale): (Vec<String>, Vec<(f64, f64)>) = dataset
        .layout()
        .forecast_channels()
        .into_iter()
        .map(|(name, c)| {
            let n = &dataset.normaliser;
            (name, (f64::from(n.mean[c]), f64::from(n.std[c])))
        })
        .unzip();
    if names.is_empty() {
        // No scalar feature: nothing is forecast.
        return ForecastReport {
            windows: starts.len(),
            features: Vec::new(),
        };
    }
    let mut sums = vec![Sums::default(); names.len()];
    let device = model.devices().into_iter().next().unwrap_or_default();
    for chunk in starts.chunks(batch_size.max(1)) {
        let (inputs, targets) = batch::<B>(dataset, chunk, &device);
        let predicted = forecasts(model, inputs);
        let actual = targets.into_data().to_vec::<f32>().unwrap_or_default();
        for (i, (p, a)) in predicted.iter().zip(&actual).enumerate() {
            let feature = i % names.len();
            let (mean, std) = scale[feature];
            let raw = |v: f32| f64::from(v) * std + mean;
            sums[feature].add(raw(*p), raw(*a));
        }
    }
    ForecastReport {
        windows: starts.len(),
        features: names
            .into_iter()
            .zip(sums)
            .map(|(name, s)| s.finish(name))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sine_waves, small};
    use crate::trainer::{TrainConfig, mean_loss, train};

    #[test]
    fn errors_are_those_of_the_definitions() {
        let mut sums = Sums::default();
        for (predicted, actual) in [(1.0, 2.0), (3.0, 0.0), (-1.0, -4.0)] {
            sums.add(predicted, actual);
        }
        let errors = sums.finish("x".into());
        assert_eq!(errors.mae, (1.0 + 3.0 + 3.0) / 3.0);
        assert_eq!(errors.rmse, ((1.0 + 9.0 + 9.0) / 3.0f64).sqrt());
        // The step whose actual value is 0 has no percentage error.
        assert_eq!(errors.mape, Some(100.0 * (0.5 + 0.75) / 2.0));
        assert_eq!(Sums::default().finish("x".into()).mape, None);
    }

    #[test]
    fn the_report_agrees_with_the_training_loss_scaled_back() {
        let data = sine_waves(120);
        let config = TrainConfig {
            epochs: 2,
            batch_size: 16,
            learning_rate: 3e-3,
            seed: 2,
            ..TrainConfig::default()
        };
        let trained = train(&data, &small(), &config).expect("training");
        let report = evaluate(&trained.model, &data, &data.validation, 16);
        assert_eq!(report.windows, data.validation.len());
        let [errors] = &report.features[..] else {
            panic!("one target: {report:?}")
        };
        assert_eq!(errors.feature, "x");
        // One target, one step: the normalised MSE times the variance is the raw MSE.
        let mse = mean_loss(&trained.model, &data, &data.validation, 16);
        let std = f64::from(data.normaliser.std[0]);
        assert!(
            (errors.rmse - mse.sqrt() * std).abs() < 1e-4,
            "{errors:?}, mse {mse}"
        );
        assert!(errors.mae <= errors.rmse);
    }
}
