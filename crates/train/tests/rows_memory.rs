//! Rows gathered batch by batch hold what windows are made of, not the batches: a training
//! set far larger than what gathering it takes trains. A binary of its own, so that its
//! allocator counts this test's memory only.

use std::alloc::{GlobalAlloc, Layout as Allocation, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{
    Array, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use trainstore_train::{
    Dataset, FeatureShape, Layout, ListFit, SplitSpec, Task, WindowFeature, WindowRows, WindowSpec,
};

/// The system allocator, counting the bytes held now and the most held at once.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Allocation) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(held, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Allocation) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SPECTRUM: i32 = 2048;
const ROWS_PER_BATCH: usize = 1024;
const BATCHES: usize = 64;
const DEVICES: i64 = 16;

/// Batch `n` of the stream: 1,024 rows of 16 devices, each with a 2,048-value spectrum
/// (8 KiB) beside two numbers: made when asked for, as a file's row groups are read.
fn batch(n: usize) -> RecordBatch {
    let rows = 0..ROWS_PER_BATCH as i64;
    let row = move |i: i64| n as i64 * ROWS_PER_BATCH as i64 + i;
    let spectrum = Float32Array::from_iter_values(
        rows.clone()
            .flat_map(|i| (0..SPECTRUM).map(move |k| ((row(i) + k as i64) % 13) as f32)),
    );
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let spectrum = FixedSizeListArray::new(item, SPECTRUM, Arc::new(spectrum), None);
    let schema = Schema::new(vec![
        Field::new("device", DataType::Int64, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("x", DataType::Float64, false),
        Field::new("spectrum", spectrum.data_type().clone(), false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(
                rows.clone().map(|i| row(i) % DEVICES),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.clone().map(|i| row(i) / DEVICES * 1000),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.map(|i| (row(i) as f64 * 0.01).sin()),
            )),
            Arc::new(spectrum),
        ],
    )
    .expect("a batch")
}

#[test]
fn gathering_a_stream_holds_its_windows_not_its_batches() {
    let layout = Layout {
        keys: vec!["device".into()],
        time: "time".into(),
        features: vec![
            WindowFeature {
                name: "x".into(),
                shape: FeatureShape::Scalar,
            },
            WindowFeature {
                name: "spectrum".into(),
                shape: FeatureShape::List {
                    len: 8,
                    fit: ListFit::MeanPool,
                },
            },
        ],
        task: Task::Forecast,
    };
    let batch_bytes = batch(0).get_array_memory_size();
    let streamed_bytes = batch_bytes * BATCHES;
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);

    let mut rows = WindowRows::new(&layout).expect("a layout");
    for n in 0..BATCHES {
        rows.push(&batch(n)).expect("a batch");
    }
    let spec = WindowSpec {
        length: 16,
        stride: 4,
        horizon: 1,
        max_gap_ms: 5_000,
    };
    let split = SplitSpec {
        validation: 0.1,
        test: 0.1,
    };
    let set = Dataset::from_rows(rows, spec, split, None).expect("windows");
    let peak = PEAK.load(Ordering::Relaxed) - before;

    // 65,536 rows of 9 channels: each device's 4,096 rows give windows every 4 rows.
    assert!(set.train.len() > 10_000, "{} windows", set.train.len());
    assert_eq!(set.channels(), 9);
    // 64 batches of 8 MiB and more went through; what is held at the most is the windows'
    // rows (65,536 × (9 × 4 + 8 + 8) bytes, 3.4 MB, twice while they are sorted) and the
    // batch being read (8.6 MB, twice while its spectrum is cast).
    assert!(
        streamed_bytes > 500 << 20,
        "{streamed_bytes} bytes streamed"
    );
    assert!(
        peak < 40 << 20,
        "gathering {streamed_bytes} bytes of batches held {peak} bytes at the most"
    );
}
