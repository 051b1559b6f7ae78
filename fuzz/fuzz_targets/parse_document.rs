//! Arbitrary bytes as a snapshot document (design-document layout) and as flat text fields:
//! the parser may reject any of it, but must never panic, and lenient and strict parsing must
//! agree on whether anything was malformed.
#![no_main]

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;
use trainstore_doris::{FeatureKind, SnapshotParser, SnapshotSchema};

fn batch(columns: &[&str], text: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = columns.iter().map(|_| Arc::new(StringArray::from(vec![text])) as ArrayRef).collect();
    RecordBatch::try_new(schema, arrays).unwrap()
}

fn check(parser: SnapshotParser, raw: &RecordBatch) {
    let (_, report) = parser.clone().parse(raw).expect("lenient parsing never fails on well-formed input columns");
    let strict = parser.strict(true).parse(raw);
    assert_eq!(strict.is_err(), report.malformed() > 0);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(SnapshotParser::new(SnapshotSchema::design_doc()), &batch(&["feature"], text));
    let flat = SnapshotSchema::builder()
        .flat()
        .keys(["uuid"])
        .time("time")
        .tag("is_tag")
        .feature("n", FeatureKind::Number)
        .feature("a", FeatureKind::Array)
        .feature("j", FeatureKind::Json)
        .build()
        .unwrap();
    check(SnapshotParser::new(flat), &batch(&["uuid", "time", "is_tag", "n", "a", "j"], text));
});
