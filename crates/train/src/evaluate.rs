//! How well a model forecasts: per target feature, in the feature's own units, the mean
//! absolute error, the root mean squared error and the mean absolute percentage error, over a
//! dataset's windows; and the distribution of the windows' anomaly scores (how far each
//! window's forecast missed, in standard deviations squared), from which a threshold for
//! unusual windows is chosen.

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
    /// The windows' anomaly scores: each window's mean squared forecast error over its steps
    /// and features, in normalised units (1: off by one standard deviation on average).
    pub anomaly: ScoreDistribution,
}

/// How a score is distributed over windows (all 0 when there are none).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoreDistribution {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl ScoreDistribution {
    /// Nearest-rank quantiles of `scores`.
    fn of(mut scores: Vec<f64>) -> Self {
        if scores.is_empty() {
            return ScoreDistribution::default();
        }
        scores.sort_by(f64::total_cmp);
        let n = scores.len();
        let rank = |q: f64| scores[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        ScoreDistribution {
            mean: scores.iter().sum::<f64>() / n as f64,
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: scores[n - 1],
        }
    }
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
            anomaly: ScoreDistribution::default(),
        };
    }
    let mut sums = vec![Sums::default(); names.len()];
    let mut scores = Vec::with_capacity(starts.len());
    let per_window = dataset.spec().horizon * names.len();
    let device = model.devices().into_iter().next().unwrap_or_default();
    for chunk in starts.chunks(batch_size.max(1)) {
        let (inputs, targets) = batch::<B>(dataset, chunk, &device);
        let predicted = forecasts(model, inputs);
        let actual = targets.into_data().to_vec::<f32>().unwrap_or_default();
        for (p, a) in predicted.chunks(per_window).zip(actual.chunks(per_window)) {
            let squared: f64 = p.iter().zip(a).map(|(p, a)| f64::from(p - a).powi(2)).sum();
            scores.push(squared / per_window as f64);
        }
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
        anomaly: ScoreDistribution::of(scores),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sine_waves, small};
    use crate::trainer::{TrainConfig, mean_loss, train};

    #[test]
    fn quantiles_are_nearest_rank() {
        let scores = ScoreDistribution::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((scores.p50, scores.p90, scores.p99), (50.0, 90.0, 99.0));
        assert_eq!((scores.mean, scores.max), (50.5, 100.0));
        assert_eq!(
            ScoreDistribution::of(Vec::new()),
            ScoreDistribution::default()
        );
    }

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
        // One target, one step: the windows' scores average to the normalised MSE.
        let anomaly = report.anomaly;
        assert!((anomaly.mean - mse).abs() < 1e-6, "{anomaly:?}, mse {mse}");
        assert!(anomaly.p50 <= anomaly.p90 && anomaly.p90 <= anomaly.p99);
        assert!(anomaly.p99 <= anomaly.max && anomaly.max > 0.0);
    }
}
