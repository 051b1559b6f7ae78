use super::*;
use crate::test_support::{layout, sine_wave_rows, small, x};
use crate::trainer::train;
use arrow::array::RecordBatch;

/// `batch` as the stream of training-set version `id`, a few rows at a time.
fn rows(id: &str, batch: &RecordBatch) -> TrainingRows {
    let parts: Vec<_> = (0..batch.num_rows())
        .step_by(25)
        .map(|start| Ok(batch.slice(start, 25.min(batch.num_rows() - start))))
        .collect();
    TrainingRows {
        id: id.into(),
        rows: Box::pin(futures::stream::iter(parts)),
    }
}

fn request() -> TrainRequest {
    let mut request = TrainRequest::new(layout(&["entity"], "time", &[x()]));
    request.windows = WindowSpec {
        length: 12,
        stride: 1,
        horizon: 1,
        max_gap_ms: 60_000,
    };
    request.split = SplitSpec {
        validation: 0.25,
        test: 0.0,
    };
    request.model = small();
    request.training.epochs = 2;
    request
}

fn run(request: &TrainRequest, data: TrainingRows) -> TrainingRun {
    TrainingRun {
        data,
        replay: Vec::new(),
        base: None,
        settings: serde_json::to_value(request).expect("settings"),
        progress: None,
    }
}

#[tokio::test]
async fn a_run_through_the_trait_trains_what_training_the_dataset_directly_trains() {
    let request = request();
    let waves = sine_wave_rows(80);
    let artifact = SeriesTrainer::cpu()
        .train(run(&request, rows("waves@v1", &waves)))
        .await
        .expect("trained");
    let card = ModelCard::from_artifact(&artifact).expect("a card");
    assert_eq!(card.lineage.training_sets, ["waves@v1"]);
    assert_eq!(card.lineage.base, None);
    assert_eq!(card.lineage.library, SeriesTrainer::cpu().describe());
    assert_eq!(card.metrics.len(), 2);

    // The same seed on the dataset built from one batch: the same run, loss for loss (the
    // encoded weights differ in their parameters' random ids, not in their values).
    let dataset =
        Dataset::build(&[waves], &request.layout, request.windows, request.split).expect("windows");
    assert_eq!(card.normaliser, dataset.normaliser);
    let direct = train(&dataset, &request.model, &request.training).expect("trained");
    assert_eq!(card.metrics, direct.epochs);
}

#[tokio::test]
async fn training_further_keeps_the_base_scaling_and_records_base_and_replayed_sets() {
    let request = request();
    let first = SeriesTrainer::cpu()
        .train(run(&request, rows("waves@v1", &sine_wave_rows(80))))
        .await
        .expect("trained");
    let mut further = request.clone();
    further.base = Some("model@champion".into());
    further.incremental_ratio = 0.5;
    let mut again = run(&further, rows("waves@v2", &sine_wave_rows(120)));
    again.replay = vec![rows("waves@v1", &sine_wave_rows(80))];
    again.base = Some(("model@v1".into(), first.clone()));
    let second = SeriesTrainer::cpu().train(again).await.expect("trained");
    let (before, after) = (
        ModelCard::from_artifact(&first).expect("a card"),
        ModelCard::from_artifact(&second).expect("a card"),
    );
    assert_eq!(
        after.normaliser, before.normaliser,
        "the base's scaling is kept"
    );
    assert_eq!(after.lineage.training_sets, ["waves@v2", "waves@v1"]);
    assert_eq!(after.lineage.base.as_deref(), Some("model@v1"));
    // It started from the base's weights: its first epoch on rows like the base's does
    // better than the base's own first epoch from fresh weights did.
    assert!(
        after.metrics[0].train_loss < before.metrics[0].train_loss,
        "{:?} against {:?}",
        after.metrics,
        before.metrics
    );
}

#[tokio::test]
async fn settings_that_are_not_a_request_and_impossible_ones_are_refused_naming_why() {
    let waves = sine_wave_rows(40);
    let mut bad = run(&request(), rows("waves@v1", &waves));
    bad.settings = serde_json::json!({"layout": "x"});
    let text = SeriesTrainer::cpu()
        .train(bad)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        text.contains("training settings") && text.contains("not a training request"),
        "{text}"
    );

    let mut impossible = request();
    impossible.incremental_ratio = 0.5;
    let text = SeriesTrainer::cpu()
        .train(run(&impossible, rows("waves@v1", &waves)))
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        text.contains("incremental ratio") && text.contains("base model"),
        "{text}"
    );

    // A stream that fails part-way fails the run.
    let failing = TrainingRows {
        id: "waves@v1".into(),
        rows: Box::pin(futures::stream::iter([
            Ok(waves.slice(0, 10)),
            Err(trainstore_core::Error::Corrupt {
                path: "part-1.parquet".into(),
                reason: "hash differs".into(),
            }),
        ])),
    };
    let text = SeriesTrainer::cpu()
        .train(run(&request(), failing))
        .await
        .expect_err("refused")
        .to_string();
    assert!(text.contains("part-1.parquet"), "{text}");
}
