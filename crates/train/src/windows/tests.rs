use super::*;
use crate::test_support::layout;
use arrow::array::{Float64Array, Int64Array, ListArray, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Schema, TimeUnit};
use proptest::prelude::*;

const MINUTE: i64 = 60_000;

/// One row: its entity, its time in minutes, x, and a list.
type Row<'a> = (&'a str, i64, Option<f64>, Option<Vec<Option<f32>>>);

fn rows(data: &[Row<'_>]) -> RecordBatch {
    let entity = StringArray::from_iter_values(data.iter().map(|r| r.0));
    let time = TimestampMillisecondArray::from_iter_values(data.iter().map(|r| r.1 * MINUTE))
        .with_timezone("UTC");
    let x = Float64Array::from_iter(data.iter().map(|r| r.2));
    let list =
        ListArray::from_iter_primitive::<Float32Type, _, _>(data.iter().map(|r| r.3.clone()));
    let schema = Schema::new(vec![
        Field::new("entity", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("x", DataType::Float64, true),
        Field::new("spectrum", list.data_type().clone(), true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(entity),
            Arc::new(time),
            Arc::new(x),
            Arc::new(list),
        ],
    )
    .expect("a batch")
}

fn scalar(name: &str) -> WindowFeature {
    WindowFeature {
        name: name.into(),
        shape: FeatureShape::Scalar,
    }
}

/// The list feature `spectrum` as `len` channels fitted by `fit`.
fn spectrum(len: usize, fit: ListFit) -> WindowFeature {
    WindowFeature {
        name: "spectrum".into(),
        shape: FeatureShape::List { len, fit },
    }
}

fn spec(length: usize, stride: usize, horizon: usize) -> WindowSpec {
    WindowSpec {
        length,
        stride,
        horizon,
        max_gap_ms: 5 * MINUTE,
    }
}

const ALL_TRAIN: SplitSpec = SplitSpec {
    validation: 0.0,
    test: 0.0,
};

fn build(batch: &RecordBatch, features: &[WindowFeature], spec: WindowSpec) -> Result<Dataset> {
    Dataset::build(
        std::slice::from_ref(batch),
        &layout(&["entity"], "time", features),
        spec,
        ALL_TRAIN,
    )
}

#[test]
fn windows_start_every_stride_rows_and_leave_room_for_their_target() {
    let data: Vec<_> = (0..10).map(|t| ("a", t, Some(t as f64), None)).collect();
    let set = build(&rows(&data), &[scalar("x")], spec(3, 2, 1)).expect("windows");
    // Starts 0, 2, 4, 6: the window at 6 takes rows 6-8 and its target row 9.
    assert_eq!(set.train, vec![0, 2, 4, 6]);
    assert!(set.validation.is_empty() && set.test.is_empty());
}

#[test]
fn rows_in_any_order_are_grouped_by_entity_and_put_in_time_order() {
    let data = [
        ("b", 2, Some(20.0), None),
        ("a", 1, Some(1.0), None),
        ("b", 0, Some(0.0), None),
        ("a", 0, Some(0.0), None),
        ("b", 1, Some(10.0), None),
        ("a", 2, Some(2.0), None),
    ];
    let set = build(&rows(&data), &[scalar("x")], spec(2, 1, 1)).expect("windows");
    // Two windows per entity, none across the two.
    assert_eq!(set.train, vec![0, 3]);
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    set.fill(&set.train, &mut inputs, &mut targets);
    let n = &set.normaliser;
    let raw = |v: f32| v * n.std[0] + n.mean[0];
    let inputs: Vec<f32> = inputs.into_iter().map(raw).collect();
    let targets: Vec<f32> = targets.into_iter().map(raw).collect();
    let close = |got: &[f32], want: &[f32]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-4);
    assert!(close(&inputs, &[0.0, 1.0, 0.0, 10.0]), "{inputs:?}");
    assert!(close(&targets, &[2.0, 20.0]), "{targets:?}");
}

#[test]
fn rows_pushed_batch_by_batch_cut_as_one_batch_does() {
    // Three entities, a list feature, rows shuffled, then split into uneven batches.
    let mut data: Vec<Row<'_>> = Vec::new();
    for (i, entity) in ["a", "b", "c"].into_iter().enumerate() {
        for t in 0..40 {
            let x = (t as f64 * 0.3 + i as f64).sin();
            let list = (t % 7 != 0).then(|| vec![Some(x as f32), None, Some(t as f32)]);
            data.push((entity, t, (t % 5 != 0).then_some(x), list));
        }
    }
    data.sort_by_key(|r| (r.1 * 7919 + r.2.map_or(0, |x| (x * 1e3) as i64)) % 97);
    let features = [scalar("x"), spectrum(2, ListFit::MeanPool)];
    let layout = layout(&["entity"], "time", &features);
    let split = SplitSpec {
        validation: 0.2,
        test: 0.2,
    };
    let whole = Dataset::build(&[rows(&data)], &layout, spec(4, 2, 2), split).expect("windows");
    let mut gathered = WindowRows::new(&layout).expect("a layout");
    for part in [&data[..1], &data[1..50], &data[50..51], &data[51..]] {
        gathered.push(&rows(part)).expect("a batch");
    }
    assert_eq!(gathered.len(), data.len());
    let streamed = Dataset::from_rows(gathered, spec(4, 2, 2), split, None).expect("windows");
    assert_eq!(streamed.normaliser, whole.normaliser);
    for (a, b) in [
        (&streamed.train, &whole.train),
        (&streamed.validation, &whole.validation),
        (&streamed.test, &whole.test),
    ] {
        assert_eq!(a, b);
        assert!(!a.is_empty());
        let filled = |set: &Dataset| {
            let (mut inputs, mut targets) = (Vec::new(), Vec::new());
            set.fill(a, &mut inputs, &mut targets);
            (inputs, targets, set.window_keys(a).expect("keys"))
        };
        let (got, want) = (filled(&streamed), filled(&whole));
        assert_eq!(got.0.len(), want.0.len());
        assert!(
            got.0
                .iter()
                .zip(&want.0)
                .all(|(g, w)| g.to_bits() == w.to_bits())
        );
        assert_eq!((got.1, got.2), (want.1, want.2));
    }
}

#[test]
fn a_batch_without_a_layout_column_is_refused_naming_it() {
    // One row whose `spectrum` holds a list, gathered for `features`: refused, saying `says`.
    let refused = |features: &[WindowFeature], says: &[&str]| {
        let mut gathered =
            WindowRows::new(&layout(&["entity"], "time", features)).expect("a layout");
        let text = gathered
            .push(&rows(&[("a", 0, Some(1.0), None)]))
            .expect_err("refused")
            .to_string();
        assert!(says.iter().all(|s| text.contains(s)), "{text}");
        assert!(gathered.is_empty(), "a refused batch adds no row");
        gathered
    };
    refused(
        &[scalar("x"), scalar("missing")],
        &["missing", "entity, time, x, spectrum"],
    );
    // A batch refused half-way through its features leaves no channel behind either.
    let mut gathered = refused(
        &[scalar("x"), scalar("spectrum")],
        &["spectrum", "not numbers"],
    );
    // The same rows with numbers in `spectrum` then cut as if the refused batch never came.
    let data: Vec<_> = (0..6).map(|t| ("a", t, Some(t as f64), None)).collect();
    let numbers = rows(&data);
    let numbers = RecordBatch::try_from_iter([
        ("entity", numbers.column(0).clone()),
        ("time", numbers.column(1).clone()),
        ("x", numbers.column(2).clone()),
        ("spectrum", numbers.column(2).clone()),
    ])
    .expect("a batch");
    gathered.push(&numbers).expect("a batch");
    let set = Dataset::from_rows(gathered, spec(2, 1, 1), ALL_TRAIN, None).expect("windows");
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    set.fill(&set.train[..1], &mut inputs, &mut targets);
    let n = &set.normaliser;
    let raw: Vec<f32> = (inputs.iter().enumerate())
        .map(|(i, v)| v * n.std[i % 2] + n.mean[i % 2])
        .collect();
    assert!(
        raw.iter()
            .zip([0.0, 0.0, 1.0, 1.0])
            .all(|(g, w)| (g - w).abs() < 1e-4),
        "{raw:?}"
    );
}

#[test]
fn no_window_spans_a_gap_longer_than_allowed() {
    // Rows every minute, then a 10-minute gap between minute 4 and 14.
    let mut data: Vec<_> = (0..5).map(|t| ("a", t, Some(1.0), None)).collect();
    data.extend((14..19).map(|t| ("a", t, Some(1.0), None)));
    let set = build(&rows(&data), &[scalar("x")], spec(2, 1, 1)).expect("windows");
    // Rows 0-4 give windows at 0, 1, 2; rows 5-9 at 5, 6, 7; none takes rows 3-5 or 4-6.
    assert_eq!(set.train, vec![0, 1, 2, 5, 6, 7]);
}

#[test]
fn list_features_are_truncated_and_padded_or_mean_pooled() {
    let mut out = [f32::NAN; 3];
    fit_list(&[1.0, 2.0, 3.0, 4.0], ListFit::TruncateOrPad, &mut out);
    assert_eq!(out, [1.0, 2.0, 3.0]);
    let mut out = [f32::NAN; 3];
    fit_list(&[1.0], ListFit::TruncateOrPad, &mut out);
    assert!(out[0] == 1.0 && out[1].is_nan() && out[2].is_nan());
    let mut out = [f32::NAN; 2];
    fit_list(&[1.0, 2.0, 3.0, 5.0], ListFit::MeanPool, &mut out);
    assert_eq!(out, [1.5, 4.0]);
    // Fewer values than bins: each bin still holds at least one value.
    let mut out = [f32::NAN; 4];
    fit_list(&[2.0, 6.0], ListFit::MeanPool, &mut out);
    assert_eq!(out, [2.0, 2.0, 6.0, 6.0]);
    let mut out = [f32::NAN; 2];
    fit_list(&[], ListFit::MeanPool, &mut out);
    assert!(out.iter().all(|v| v.is_nan()));
}

#[test]
fn a_list_feature_gives_its_channels_and_missing_values_read_as_the_mean() {
    let data = [
        ("a", 0, Some(1.0), Some(vec![Some(1.0), Some(3.0)])),
        ("a", 1, None, Some(vec![Some(3.0)])),
        ("a", 2, Some(3.0), None),
    ];
    let features = [scalar("x"), spectrum(2, ListFit::TruncateOrPad)];
    let set = build(&rows(&data), &features, spec(3, 1, 0)).expect("windows");
    assert_eq!((set.channels(), set.target_shape().1), (3, 1));
    assert_eq!(set.normaliser.mean, vec![2.0, 2.0, 3.0]);
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    set.fill(&set.train, &mut inputs, &mut targets);
    assert!(targets.is_empty());
    // Row 1's x, row 1's second list value and row 2's list are missing: 0 once normalised.
    assert_eq!(inputs[3], 0.0);
    assert_eq!(inputs[5], 0.0);
    assert_eq!(&inputs[7..9], &[0.0, 0.0]);
    assert!(inputs[0] < 0.0 && inputs[6] > 0.0);
}

#[test]
fn the_normaliser_sees_only_rows_before_the_validation_cut() {
    // 100 minutes: x is 1 for the first 60, then 1,000.
    let data: Vec<_> = (0..100)
        .map(|t| ("a", t, Some(if t < 60 { 1.0 } else { 1_000.0 }), None))
        .collect();
    let split = SplitSpec {
        validation: 0.2,
        test: 0.2,
    };
    let set = Dataset::build(
        &[rows(&data)],
        &layout(&["entity"], "time", &[scalar("x")]),
        spec(4, 1, 1),
        split,
    )
    .expect("windows");
    assert_eq!(set.normaliser.mean, vec![1.0]);
    assert!(!set.train.is_empty() && !set.validation.is_empty() && !set.test.is_empty());
}

#[test]
fn bad_input_is_refused_naming_what_is_wrong() {
    let batch = rows(&[("a", 0, Some(1.0), None), ("a", 1, Some(1.0), None)]);
    let error = |features: &[WindowFeature], spec: WindowSpec, split: SplitSpec| {
        Dataset::build(
            std::slice::from_ref(&batch),
            &layout(&["entity"], "time", features),
            spec,
            split,
        )
        .expect_err("refused")
        .to_string()
    };
    let text = error(&[scalar("nope")], spec(1, 1, 0), ALL_TRAIN);
    assert!(
        text.contains("nope") && text.contains("entity, time, x, spectrum"),
        "{text}"
    );
    let text = error(&[scalar("entity")], spec(1, 1, 0), ALL_TRAIN);
    assert!(text.contains("not numbers"), "{text}");
    let text = error(&[scalar("spectrum")], spec(1, 1, 0), ALL_TRAIN);
    assert!(text.contains("list shape"), "{text}");
    let text = error(&[scalar("x")], spec(0, 1, 0), ALL_TRAIN);
    assert!(text.contains("window length"), "{text}");
    let text = error(&[scalar("x"), scalar("x")], spec(1, 1, 0), ALL_TRAIN);
    assert!(text.contains("more than once"), "{text}");
    let split = SplitSpec {
        validation: 0.5,
        test: 0.5,
    };
    let text = error(&[scalar("x")], spec(1, 1, 0), split);
    assert!(text.contains("split"), "{text}");
    let text = Dataset::build(
        std::slice::from_ref(&batch),
        &layout(&["entity"], "x", &[scalar("x")]),
        spec(1, 1, 0),
        ALL_TRAIN,
    )
    .expect_err("a float time")
    .to_string();
    assert!(text.contains("not timestamps"), "{text}");
    let ints = RecordBatch::try_from_iter([("t", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
        .expect("batch");
    assert!(
        Dataset::build(
            &[ints],
            &layout(&["t"], "t", &[scalar("t")]),
            spec(1, 1, 0),
            ALL_TRAIN,
        )
        .is_err()
    );
}

proptest! {
    /// Whatever the rows, windows stay inside one entity, never span a long gap, and a
    /// training window ends before every validation window starts, which ends before every
    /// test window starts.
    #[test]
    fn windows_respect_entities_gaps_and_the_time_split(
        steps in prop::collection::vec((0usize..3, 1i64..8), 1..120),
        length in 1usize..5,
        stride in 1usize..4,
        horizon in 0usize..3,
        validation in 0.0f64..0.4,
        test in 0.0f64..0.4,
    ) {
        let mut clock = [0i64; 3];
        let data: Vec<_> = steps
            .iter()
            .map(|&(entity, step)| {
                clock[entity] += step;
                (["a", "b", "c"][entity], clock[entity], Some(clock[entity] as f64), None)
            })
            .collect();
        let built = Dataset::build(
            &[rows(&data)],
            &layout(&["entity"], "time", &[scalar("x")]),
            spec(length, stride, horizon),
            SplitSpec { validation, test },
        );
        let Ok(set) = built else { return Ok(()) };
        let span = length + horizon;
        let raw = |row: usize| set.values[row] * set.normaliser.std[0] + set.normaliser.mean[0];
        let mut bounds = Vec::new();
        for part in [&set.train, &set.validation, &set.test] {
            let mut lo_hi = (i64::MAX, i64::MIN);
            for &start in part.iter() {
                let rows = start..start + span;
                // x is the entity's clock: increasing within one entity, by at most 5 minutes.
                for r in rows.clone().skip(1) {
                    let step = set.times[r] - set.times[r - 1];
                    prop_assert!(step > 0 && step <= 5 * MINUTE);
                    prop_assert!(raw(r) > raw(r - 1));
                }
                lo_hi = (lo_hi.0.min(set.times[start]), lo_hi.1.max(set.times[start + span - 1]));
            }
            bounds.push(lo_hi);
        }
        for pair in bounds.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            if earlier.1 != i64::MIN && later.0 != i64::MAX {
                prop_assert!(earlier.1 < later.0);
            }
        }
    }
}
