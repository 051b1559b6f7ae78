use super::*;
use crate::registry::ModelLineage;
use crate::test_support::{sine_wave_rows, sine_waves, small};
use crate::trainer::{TrainConfig, batch, train};
use crate::windows::{Dataset, SplitSpec};
use arrow::array::{AsArray, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Float64Type, TimestampMillisecondType};

fn predictor() -> Predictor {
    let data = sine_waves(80);
    let config = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let trained = train(&data, &small(), &config).expect("training");
    let lineage = ModelLineage {
        training_sets: vec!["waves@v1".into()],
        base: None,
        library: "trainstore test".into(),
    };
    let card = ModelCard::new(&data, small(), config, &trained, lineage);
    Predictor::new(trained.model, card)
}

/// The sine waves' rows before minute `minutes`.
fn first_rows(minutes: i64) -> RecordBatch {
    let all = sine_wave_rows(100);
    let keep: BooleanArray = all
        .column(1)
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .map(|t| Some(t.expect("a time") < minutes * 60_000))
        .collect();
    filter_record_batch(&all, &keep).expect("filtered")
}

#[test]
fn the_forecast_of_the_latest_window_is_the_models_forecast_of_that_window_in_feature_units() {
    let predictor = predictor();
    let forecast = predictor.predict(&[first_rows(90)]).expect("forecast");
    assert_eq!(forecast.skipped, 0);
    let rows = &forecast.rows;
    let schema = rows.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["entity", "as_of", "step", "x"]);
    assert_eq!(rows.num_rows(), 2);
    let entities = rows.column(0).as_string::<i32>();
    assert_eq!((entities.value(0), entities.value(1)), ("a", "b"));
    let as_of = rows.column(1).as_primitive::<TimestampMillisecondType>();
    assert_eq!(as_of.value(0), 89 * 60_000, "the last row's time");

    // The same window, cut from rows that go one step further, through the model directly.
    let card = predictor.card();
    let every_window = SplitSpec {
        validation: 0.0,
        test: 0.0,
    };
    let longer = Dataset::build_scaled(
        &[first_rows(91)],
        &card.layout,
        card.windows,
        every_window,
        &card.normaliser,
    )
    .expect("windows");
    // Entity a's rows come first: its window of minutes 78..90 starts at row 78.
    let (inputs, _) = batch::<Cpu>(&longer, &[78], &Default::default());
    let direct = forecasts(&predictor.model, inputs)[0];
    let (mean, std) = (card.normaliser.mean[0], card.normaliser.std[0]);
    let x = rows.column(3).as_primitive::<Float64Type>();
    assert_eq!(x.value(0), f64::from(direct * std + mean));
}

#[test]
fn entities_without_a_whole_recent_window_are_counted_not_forecast() {
    let predictor = predictor();
    let rows = first_rows(90);
    // Entity b keeps its first 5 rows only: fewer than a window.
    let entities = rows.column(0).as_string::<i32>();
    let keep: BooleanArray = (0..rows.num_rows())
        .map(|i| Some(entities.value(i) == "a" || i % 90 < 5))
        .collect();
    let rows = filter_record_batch(&rows, &keep).expect("filtered");
    let forecast = predictor
        .predict(std::slice::from_ref(&rows))
        .expect("forecast");
    assert_eq!((forecast.rows.num_rows(), forecast.skipped), (1, 1));

    // Entity a with a gap of 2 minutes among its last rows: no window either.
    let times = rows.column(1).as_primitive::<TimestampMillisecondType>();
    let shifted: TimestampMillisecondArray = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.map(|t| {
                if (85..90).contains(&i) {
                    t + 120_000
                } else {
                    t
                }
            })
        })
        .collect();
    let mut columns = rows.columns().to_vec();
    columns[1] = Arc::new(shifted);
    let gapped = RecordBatch::try_new(rows.schema(), columns).expect("a batch");
    let forecast = predictor.predict(&[gapped]).expect("forecast");
    assert_eq!((forecast.rows.num_rows(), forecast.skipped), (0, 2));
}

#[test]
fn rows_without_the_models_columns_are_refused_naming_the_column() {
    let predictor = predictor();
    let rows = RecordBatch::try_from_iter([(
        "entity",
        Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
    )])
    .expect("a batch");
    let text = predictor.predict(&[rows]).expect_err("refused").to_string();
    assert!(text.contains("time"), "{text}");
    assert!(predictor.predict(&[]).is_err());
}
