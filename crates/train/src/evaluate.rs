//! How well a model forecasts: per target feature, in the feature's own units, the mean
//! absolute error, the root mean squared error and the mean absolute percentage error, over a
//! dataset's windows; and the distribution of the windows' anomaly scores (how far each
//! window's forecast missed, in standard deviations squared), from which a threshold for
//! unusual windows is chosen.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use trainstore_core::Result;

use crate::model::SeriesTransformer;
use crate::predict::leading_columns;
use crate::trainer::{batch, forecasts};
use crate::windows::{Dataset, LabelEncoding};

/// One target feature's errors over every forecast step of every window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureErrors {
    pub feature: String,
    pub mae: f64,
    pub rmse: f64,
    /// In percent, over the steps whose actual value is not 0; `None` when every one is.
    pub mape: Option<f64>,
}

/// A model's errors over some windows: per forecast feature (or the regressed label), or a
/// classifier's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    pub windows: usize,
    pub features: Vec<FeatureErrors>,
    /// The windows' anomaly scores: each window's mean squared forecast error over its steps
    /// and features, in normalised units (1: off by one standard deviation on average).
    pub anomaly: ScoreDistribution,
    /// A classifier's scores (its `features` are then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassScores>,
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

/// `model`'s errors over `dataset`'s windows at `starts`: a forecast's or a regression's in
/// the values' units (scaled back with the dataset's normaliser), a classifier's scores.
pub fn evaluate<B: Backend>(
    model: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    batch_size: usize,
) -> ForecastReport {
    let (predicted, actual) = outputs(model, dataset, starts, batch_size);
    let normaliser = &dataset.normaliser;
    let (names, scale): (Vec<String>, Vec<(f64, f64)>) = match &normaliser.label {
        Some(LabelEncoding::Classes { names }) => {
            return ForecastReport {
                windows: starts.len(),
                features: Vec::new(),
                anomaly: ScoreDistribution::default(),
                classification: Some(ClassScores::of(names, &predicted, &actual)),
            };
        }
        Some(LabelEncoding::Scaled { mean, std }) => {
            let label = dataset.layout().task.label().unwrap_or_default().to_owned();
            (vec![label], vec![(f64::from(*mean), f64::from(*std))])
        }
        None => dataset
            .layout()
            .forecast_channels()
            .into_iter()
            .map(|(name, c)| {
                let scale = (f64::from(normaliser.mean[c]), f64::from(normaliser.std[c]));
                (name, scale)
            })
            .unzip(),
    };
    let scores = anomaly_scores(&predicted, &actual, dataset.target_shape().0 * names.len());
    let mut sums = vec![Sums::default(); names.len()];
    if !names.is_empty() {
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
        classification: None,
    }
}

/// The model's outputs for the windows at `starts` and their targets, flattened, as
/// [`Dataset::fill`] lays targets out (normalised).
fn outputs<B: Backend>(
    model: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    batch_size: usize,
) -> (Vec<f32>, Vec<f32>) {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let (mut predicted, mut actual) = (Vec::new(), Vec::new());
    for chunk in starts.chunks(batch_size.max(1)) {
        let (inputs, targets) = batch::<B>(dataset, chunk, &device);
        predicted.extend(forecasts(model, inputs));
        actual.extend(targets.into_data().to_vec::<f32>().unwrap_or_default());
    }
    (predicted, actual)
}

/// Each window's anomaly score: its mean squared error over its `per_window` values.
fn anomaly_scores(predicted: &[f32], actual: &[f32], per_window: usize) -> Vec<f64> {
    if per_window == 0 {
        return Vec::new();
    }
    predicted
        .chunks(per_window)
        .zip(actual.chunks(per_window))
        .map(|(p, a)| {
            let squared: f64 = p.iter().zip(a).map(|(p, a)| f64::from(p - a).powi(2)).sum();
            squared / per_window as f64
        })
        .collect()
}

/// Every window at `starts`, forecast beside what followed it: one row per window and step,
/// the key columns, `as_of` (the window's last row's time), `step`, and per forecast feature
/// (or the regressed label) `<name>` (what happened) and `<name>_forecast`, in their units,
/// then the window's `anomaly_score`. A classifier's: `<label>`, `<label>_forecast` (the most
/// likely class) and `<label>_probability` (its probability).
pub fn backtest<B: Backend>(
    model: &SeriesTransformer<B>,
    dataset: &Dataset,
    starts: &[usize],
    batch_size: usize,
) -> Result<RecordBatch> {
    let (predicted, actual) = outputs(model, dataset, starts, batch_size);
    let layout = dataset.layout();
    let label = layout.task.label().unwrap_or_default();
    let steps = dataset.target_shape().0;
    let ends: Vec<i64> = starts.iter().map(|&s| dataset.window_end(s)).collect();
    let keys = dataset.window_keys(starts)?;
    let (mut fields, mut columns, repeat) = leading_columns(&layout.keys, &keys, &ends, steps)?;
    let normaliser = &dataset.normaliser;
    let mut add = |name: String, column: ArrayRef| {
        fields.push(Field::new(name, column.data_type().clone(), true));
        columns.push(column);
    };
    if let Some(LabelEncoding::Classes { names }) = &normaliser.label {
        let guesses: Vec<(usize, f64)> = predicted.chunks(names.len()).map(most_likely).collect();
        let actual = actual
            .iter()
            .map(|&a| names.get(a as usize).map(String::as_str));
        add(label.to_owned(), Arc::new(StringArray::from_iter(actual)));
        let guess = guesses
            .iter()
            .map(|&(class, _)| Some(names[class].as_str()));
        add(
            format!("{label}_forecast"),
            Arc::new(StringArray::from_iter(guess)),
        );
        let probability = guesses.iter().map(|&(_, p)| p);
        add(
            format!("{label}_probability"),
            Arc::new(Float64Array::from_iter_values(probability)),
        );
    } else {
        let targets: Vec<(String, (f64, f64))> = match &normaliser.label {
            Some(LabelEncoding::Scaled { mean, std }) => {
                vec![(label.to_owned(), (f64::from(*mean), f64::from(*std)))]
            }
            _ => layout
                .forecast_channels()
                .into_iter()
                .map(|(name, c)| {
                    let scale = (f64::from(normaliser.mean[c]), f64::from(normaliser.std[c]));
                    (name, scale)
                })
                .collect(),
        };
        let count = targets.len().max(1);
        for (t, (name, (mean, std))) in targets.iter().enumerate() {
            let raw = |values: &[f32]| -> ArrayRef {
                Arc::new(Float64Array::from_iter_values(
                    values
                        .iter()
                        .skip(t)
                        .step_by(count)
                        .map(|&v| f64::from(v) * std + mean),
                ))
            };
            add(name.clone(), raw(&actual));
            add(format!("{name}_forecast"), raw(&predicted));
        }
        let scores = anomaly_scores(&predicted, &actual, steps * targets.len());
        let per_row = repeat.values().iter().map(|&w| scores[w as usize]);
        add(
            "anomaly_score".into(),
            Arc::new(Float64Array::from_iter_values(per_row)),
        );
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A classifier's scores over some windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// The share of windows whose most likely class was the actual one.
    pub accuracy: f64,
    /// Means over the classes of the per-class figures below (macro averages).
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// The area under the ROC curve: of the second class's probability when there are two
    /// classes (`false`/`true`: of `true`), else the mean of each class against the rest;
    /// `None` when no class was both present and absent among the windows.
    pub roc_auc: Option<f64>,
    pub classes: Vec<ClassScore>,
}

/// One class's figures: of the windows predicted to be of it, the share that were
/// (precision); of those that were, the share predicted so (recall); F1 their harmonic mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Windows whose actual class this is.
    pub support: usize,
}

impl ClassScores {
    /// From each window's scores per class (`logits`, `[window, class]`) and actual class
    /// index.
    fn of(names: &[String], logits: &[f32], actual: &[f32]) -> Self {
        let k = names.len().max(1);
        let probabilities: Vec<Vec<f64>> = logits.chunks(k).map(softmax).collect();
        let truth: Vec<usize> = actual.iter().map(|&a| a as usize).collect();
        let guess: Vec<usize> = probabilities
            .iter()
            .map(|p| {
                (0..p.len())
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                    .unwrap_or_default()
            })
            .collect();
        let n = truth.len();
        let correct = truth.iter().zip(&guess).filter(|(t, g)| t == g).count();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let classes: Vec<ClassScore> = names
            .iter()
            .enumerate()
            .map(|(c, class)| {
                let hit = truth
                    .iter()
                    .zip(&guess)
                    .filter(|&(&t, &g)| t == c && g == c);
                let hits = hit.count();
                let predicted = guess.iter().filter(|&&g| g == c).count();
                let support = truth.iter().filter(|&&t| t == c).count();
                let (precision, recall) = (ratio(hits, predicted), ratio(hits, support));
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassScore {
                    class: class.clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let mean = |f: fn(&ClassScore) -> f64| classes.iter().map(f).sum::<f64>() / k as f64;
        let auc_of = |c: usize| {
            let scores: Vec<(f64, bool)> = probabilities
                .iter()
                .zip(&truth)
                .map(|(p, &t)| (p[c], t == c))
                .collect();
            roc_auc(scores)
        };
        let roc_auc = if k == 2 {
            auc_of(1)
        } else {
            let each: Vec<f64> = (0..k).filter_map(auc_of).collect();
            (!each.is_empty()).then(|| each.iter().sum::<f64>() / each.len() as f64)
        };
        ClassScores {
            accuracy: ratio(correct, n),
            precision: mean(|c| c.precision),
            recall: mean(|c| c.recall),
            f1: mean(|c| c.f1),
            roc_auc,
            classes,
        }
    }
}

/// The most likely class of a window's scores, and its probability.
pub(crate) fn most_likely(logits: &[f32]) -> (usize, f64) {
    let probabilities = softmax(logits);
    let best = (0..probabilities.len())
        .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
        .unwrap_or_default();
    (best, probabilities.get(best).copied().unwrap_or_default())
}

/// Probabilities from scores.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The area under the ROC curve of `scores` (score, positive?): the chance that a positive
/// scores above a negative, ties counting half (the Mann-Whitney U statistic); `None`
/// without both positives and negatives.
fn roc_auc(mut scores: Vec<(f64, bool)>) -> Option<f64> {
    let positives = scores.iter().filter(|s| s.1).count();
    let negatives = scores.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    scores.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Ranks from 1, tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scores.len() {
        let j = (i..scores.len())
            .find(|&j| scores[j].0 != scores[i].0)
            .unwrap_or(scores.len());
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * scores[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sine_waves, small};
    use crate::trainer::{TrainConfig, mean_loss, train};

    #[test]
    fn a_backtest_puts_each_windows_forecast_beside_what_followed() {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float64Type, TimestampMillisecondType};

        let data = sine_waves(80);
        let config = TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        };
        let trained = train(&data, &small(), &config).expect("training");
        let starts = &data.validation;
        let rows = backtest(&trained.model, &data, starts, 16).expect("a backtest");
        let schema = rows.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "entity",
                "as_of",
                "step",
                "x",
                "x_forecast",
                "anomaly_score"
            ]
        );
        assert_eq!(rows.num_rows(), starts.len());
        let entity = rows.column(0).as_string::<i32>();
        let as_of = rows.column(1).as_primitive::<TimestampMillisecondType>();
        let actual = rows.column(3).as_primitive::<Float64Type>();
        for row in 0..rows.num_rows() {
            // What followed the window: the wave one minute after its last row.
            let phase = if entity.value(row) == "a" { 0.0 } else { 1.3 };
            let next = (as_of.value(row) / 60_000 + 1) as f64;
            let wave = (next / 6.0 + phase).sin();
            assert!((actual.value(row) - wave).abs() < 1e-5, "row {row}");
        }
        let scores = rows.column(5).as_primitive::<Float64Type>();
        let mean = scores.values().iter().sum::<f64>() / scores.len() as f64;
        let report = evaluate(&trained.model, &data, starts, 16);
        assert!((mean - report.anomaly.mean).abs() < 1e-9);
    }

    #[test]
    fn roc_auc_is_the_chance_a_positive_outscores_a_negative() {
        let separated = vec![(0.1, false), (0.4, true), (0.35, false), (0.8, true)];
        assert_eq!(roc_auc(separated), Some(1.0));
        assert_eq!(roc_auc(vec![(0.5, true), (0.5, false)]), Some(0.5));
        // One of the four positive-negative pairs is out of order.
        let one_swap = vec![(0.1, false), (0.3, true), (0.35, false), (0.8, true)];
        assert_eq!(roc_auc(one_swap), Some(0.75));
        assert_eq!(roc_auc(vec![(0.5, true)]), None);
    }

    #[test]
    fn class_scores_follow_their_definitions() {
        let names = ["a".to_owned(), "b".to_owned()];
        // Scores favouring: a, a, b, b; actual: a, b, b, b.
        let logits = [2.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 1.0];
        let scores = ClassScores::of(&names, &logits, &[0.0, 1.0, 1.0, 1.0]);
        assert_eq!(scores.accuracy, 0.75);
        let (a, b) = (&scores.classes[0], &scores.classes[1]);
        assert_eq!((a.precision, a.recall, a.support), (0.5, 1.0, 1));
        assert_eq!((b.precision, b.recall, b.support), (1.0, 2.0 / 3.0, 3));
        assert_eq!(scores.precision, 0.75);
        assert_eq!(scores.roc_auc, Some(1.0));
    }

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
        assert_eq!(report.classification, None);
        let anomaly = report.anomaly;
        assert!((anomaly.mean - mse).abs() < 1e-6, "{anomaly:?}, mse {mse}");
        assert!(anomaly.p50 <= anomaly.p90 && anomaly.p90 <= anomaly.p99);
        assert!(anomaly.p99 <= anomaly.max && anomaly.max > 0.0);
    }
}
