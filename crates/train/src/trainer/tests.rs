use super::*;
use crate::test_support::{sine_waves, small};
use burn::backend::Autodiff;

type Learning = Autodiff<Cpu>;

fn cpu() -> burn::tensor::Device<Learning> {
    Default::default()
}

fn run_in(checkpoints: &Checkpoints) -> RunOptions<'_> {
    RunOptions {
        checkpoints: Some(checkpoints),
        ..RunOptions::default()
    }
}

#[test]
fn training_learns_a_sine_wave_and_the_same_seed_gives_the_same_run() {
    let data = sine_waves(240);
    let config = TrainConfig {
        epochs: 4,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 7,
        ..TrainConfig::default()
    };
    let first = train(&data, &small(), &config).expect("training");
    let losses: Vec<f64> = first
        .epochs
        .iter()
        .map(|e| e.validation_loss.expect("validation windows"))
        .collect();
    // Predicting the mean scores about 1 (the data is normalised); the learned sine far less
    // (0.13 after the first epoch, 0.0035 after the fourth, when this was written).
    assert!(losses[3] < 0.05, "validation losses {losses:?}");
    assert!(losses[3] < losses[0], "validation losses {losses:?}");
    let again = train(&data, &small(), &config).expect("training");
    assert_eq!(first.epochs, again.epochs);
    let other = train(&data, &small(), &TrainConfig { seed: 8, ..config }).expect("training");
    assert_ne!(first.epochs, other.epochs);
}

#[test]
fn bad_configs_are_refused() {
    let data = sine_waves(40);
    let refused = |model: ModelConfig, config: TrainConfig| {
        train(&data, &model, &config)
            .expect_err("refused")
            .to_string()
    };
    let text = refused(
        small(),
        TrainConfig {
            epochs: 0,
            ..Default::default()
        },
    );
    assert!(text.contains("epochs"), "{text}");
    let text = refused(
        small(),
        TrainConfig {
            learning_rate: f64::NAN,
            ..Default::default()
        },
    );
    assert!(text.contains("learning rate"), "{text}");
    let text = refused(
        ModelConfig {
            heads: 3,
            ..small()
        },
        TrainConfig::default(),
    );
    assert!(text.contains("heads"), "{text}");
}

#[test]
fn a_run_stopped_after_any_epoch_resumes_and_ends_as_an_uninterrupted_run() {
    let data = sine_waves(120);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 11,
        ..TrainConfig::default()
    };
    let model = ModelConfig {
        dropout: 0.1,
        ..small()
    };
    let whole = train(&data, &model, &config).expect("training");
    let dir = tempfile::tempdir().expect("a directory");
    let checkpoints = Checkpoints::new(dir.path()).expect("checkpoints");
    // Stopped after the first epoch, then after the second, then run to the end.
    for stop_after in [1, 2] {
        let stopped =
            train_with::<Learning>(&cpu(), &data, &model, &config, run_in(&checkpoints), |m| {
                if m.epoch == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect("training");
        assert_eq!(stopped.epochs.len(), stop_after);
    }
    let resumed =
        train_with::<Learning>(&cpu(), &data, &model, &config, run_in(&checkpoints), |_| {
            ControlFlow::Continue(())
        })
        .expect("training");
    assert_eq!(resumed.epochs, whole.epochs);
    let score = |t: &Trained| mean_loss(&t.model, &data, &data.validation, 64);
    assert_eq!(score(&resumed), score(&whole));
    // Only the last epoch's files are kept.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("listing")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["checkpoint.json", "model-3.mpk", "optimizer-3.mpk"]);
}

#[test]
fn a_checkpoint_of_another_run_or_a_damaged_one_is_refused() {
    let data = sine_waves(60);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 1,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().expect("a directory");
    let checkpoints = Checkpoints::new(dir.path()).expect("checkpoints");
    let go = |_: &EpochMetrics| ControlFlow::Continue(());
    train_with::<Learning>(&cpu(), &data, &small(), &config, run_in(&checkpoints), go)
        .expect("training");
    let other = TrainConfig { seed: 2, ..config };
    let text = train_with::<Learning>(&cpu(), &data, &small(), &other, run_in(&checkpoints), go)
        .expect_err("another run")
        .to_string();
    assert!(
        text.contains("another model, configuration or data"),
        "{text}"
    );
    let model = dir.path().join("model-1.mpk");
    let mut bytes = std::fs::read(&model).expect("the model file");
    bytes[10] ^= 1;
    std::fs::write(&model, bytes).expect("damaged");
    let more = TrainConfig {
        epochs: 2,
        ..config
    };
    let text = train_with::<Learning>(&cpu(), &data, &small(), &more, run_in(&checkpoints), go)
        .expect_err("a damaged file")
        .to_string();
    assert!(
        text.contains("model-1.mpk") && text.contains("hash"),
        "{text}"
    );
}

#[test]
fn early_stopping_counts_epochs_since_the_best_validation_loss() {
    let metrics = |losses: &[f64]| -> Vec<EpochMetrics> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &l)| EpochMetrics {
                epoch: i + 1,
                train_loss: 1.0,
                validation_loss: Some(l),
            })
            .collect()
    };
    let config = TrainConfig {
        patience: Some(2),
        ..TrainConfig::default()
    };
    assert!(!config.stops_after(&metrics(&[])));
    assert!(!config.stops_after(&metrics(&[0.5, 0.4, 0.45])));
    assert!(config.stops_after(&metrics(&[0.5, 0.4, 0.45, 0.41])));
    // A new best starts the count again.
    assert!(!config.stops_after(&metrics(&[0.5, 0.4, 0.45, 0.3])));
    assert!(!TrainConfig::default().stops_after(&metrics(&[0.1, 0.2, 0.3, 0.4])));
}

#[test]
fn a_run_with_patience_stops_early_and_one_without_validation_is_refused() {
    let data = sine_waves(120);
    let config = TrainConfig {
        epochs: 30,
        batch_size: 16,
        // Far too large a rate: the validation loss stops improving at once.
        learning_rate: 0.5,
        seed: 3,
        patience: Some(1),
        schedule: Schedule::WarmupCosine { warmup: 0.1 },
    };
    let trained = train(&data, &small(), &config).expect("training");
    assert!(trained.epochs.len() < 30, "{:?}", trained.epochs);
    let mut no_validation = data.clone();
    no_validation.validation.clear();
    let text = train(&no_validation, &small(), &config)
        .expect_err("refused")
        .to_string();
    assert!(text.contains("patience"), "{text}");
}

/// Windows of the labelled waves for `task`: 12 rows each, the last quarter validating.
fn labelled(task: Task) -> Dataset {
    let mut layout = crate::test_support::layout(&["entity"], "time", &[crate::test_support::x()]);
    layout.task = task;
    let spec = crate::windows::WindowSpec {
        length: 12,
        stride: 1,
        horizon: 1,
        max_gap_ms: 60_000,
    };
    let split = crate::windows::SplitSpec {
        validation: 0.25,
        test: 0.0,
    };
    Dataset::build(
        &[crate::test_support::labelled_waves(160)],
        &layout,
        spec,
        split,
    )
    .expect("windows")
}

#[test]
fn a_classifier_learns_a_class_label_and_a_regressor_a_numeric_one() {
    let config = TrainConfig {
        epochs: 6,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 4,
        ..TrainConfig::default()
    };
    let classes = labelled(Task::Classify {
        label: "rising".into(),
    });
    assert_eq!(classes.output_shape(), (1, 2));
    let trained = train(&classes, &small(), &config).expect("a classifier");
    let report = crate::evaluate(&trained.model, &classes, &classes.validation, 32);
    let scores = report.classification.expect("class scores");
    let names: Vec<&str> = scores.classes.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(names, ["down", "up"]);
    // Whether x rose is read off the window's last two rows: far better than a coin.
    assert!(scores.accuracy > 0.85, "{scores:?}");
    assert!(scores.roc_auc.is_some_and(|auc| auc > 0.9), "{scores:?}");

    let values = labelled(Task::Regress {
        label: "change".into(),
    });
    let trained = train(&values, &small(), &config).expect("a regressor");
    let report = crate::evaluate(&trained.model, &values, &values.validation, 32);
    let [errors] = &report.features[..] else {
        panic!("one label: {report:?}")
    };
    assert_eq!(errors.feature, "change");
    // The change per minute is at most 1/6: an error well below its spread.
    let Some(crate::LabelEncoding::Scaled { std, .. }) = values.normaliser.label else {
        panic!("a scaled label")
    };
    assert!(errors.rmse < 0.5 * f64::from(std), "{errors:?}, std {std}");
}

#[test]
fn a_label_that_is_a_feature_a_key_not_a_number_or_no_column_is_refused() {
    let mut layout = crate::test_support::layout(&["entity"], "time", &[crate::test_support::x()]);
    layout.task = Task::Classify { label: "x".into() };
    let spec = crate::windows::WindowSpec {
        length: 4,
        stride: 1,
        horizon: 1,
        max_gap_ms: 60_000,
    };
    let split = crate::windows::SplitSpec {
        validation: 0.0,
        test: 0.0,
    };
    let rows = [crate::test_support::labelled_waves(20)];
    let text = Dataset::build(&rows, &layout, spec, split)
        .expect_err("refused")
        .to_string();
    assert!(text.contains("also a feature"), "{text}");
    layout.task = Task::Classify {
        label: "entity".into(),
    };
    let text = Dataset::build(&rows, &layout, spec, split)
        .expect_err("refused")
        .to_string();
    assert!(text.contains("also a feature or a key"), "{text}");
    layout.task = Task::Regress {
        label: "rising".into(),
    };
    let text = Dataset::build(&rows, &layout, spec, split)
        .expect_err("refused")
        .to_string();
    assert!(text.contains("a regression label is a number"), "{text}");
    layout.task = Task::Classify {
        label: "missing".into(),
    };
    let text = Dataset::build(&rows, &layout, spec, split)
        .expect_err("refused")
        .to_string();
    assert!(
        text.contains("missing") && text.contains("not a column"),
        "{text}"
    );
}

#[test]
fn a_batch_cut_into_shards_has_the_gradients_of_the_whole_batch() {
    let data = sine_waves(60);
    let _turn = take_turn();
    let device = cpu();
    Learning::seed(&device, 5);
    let shapes = Shapes {
        length: data.spec().length,
        channels: data.channels(),
        horizon: 1,
        targets: 1,
    };
    let learner = SeriesTransformer::<Learning>::new(&small(), shapes, &device)
        .expect("a model")
        .fork(&device);
    // Seven windows: shards of four and three, weighted unequally.
    let starts = &data.train[..7];
    let (sharded_loss, sharded) = gradients(&learner, &data, starts, 0, &device);
    let (inputs, targets) = batch::<Learning>(&data, starts, &device);
    let whole = loss(&data, learner.forward(inputs), targets);
    let whole_loss = whole.clone().into_scalar().elem::<f64>();
    let whole = GradientsParams::from_grads(whole.backward(), &learner);
    assert!(
        (sharded_loss - whole_loss).abs() < 1e-6,
        "{sharded_loss} against {whole_loss}"
    );
    // One plain gradient step with each: the same model, to rounding.
    let stepped = |grads| {
        let mut sgd = burn::optim::SgdConfig::new().init();
        let model = sgd.step(1.0, learner.clone(), grads).valid();
        forecasts(
            &model,
            batch::<Cpu>(&data, &data.validation, &Default::default()).0,
        )
    };
    let (a, b) = (stepped(sharded), stepped(whole));
    assert_eq!(a.len(), b.len());
    let moved = stepped(GradientsParams::new());
    assert!(
        a.iter().zip(&moved).any(|(x, y)| (x - y).abs() > 1e-3),
        "the step moved the model"
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "forecasts differ by up to {worst}");
}

#[test]
fn a_whole_batch_on_the_device_learns_as_the_shards_do() {
    let data = sine_waves(240);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 7,
        ..TrainConfig::default()
    };
    let model = ModelConfig {
        dropout: 0.1,
        ..small()
    };
    let go = |_: &EpochMetrics| ControlFlow::Continue(());
    let device = RunOptions {
        stepping: Stepping::Device,
        ..RunOptions::default()
    };
    let whole =
        train_with::<Learning>(&cpu(), &data, &model, &config, device, go).expect("trained");
    let shards = train(&data, &model, &config).expect("trained");
    let last = |t: &Trained| t.epochs[2].validation_loss.expect("validation windows");
    // Both learn the wave (a mean forecast scores about 1); their dropout masks differ.
    assert!(
        last(&whole) < 0.1 && last(&shards) < 0.1,
        "{:?} / {:?}",
        whole.epochs,
        shards.epochs
    );
    assert_ne!(whole.epochs, shards.epochs);
}
