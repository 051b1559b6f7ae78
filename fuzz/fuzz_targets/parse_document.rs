//! Arbitrary bytes as a snapshot document (design-document layout) and as flat text fields:
//! the parser may reject any of it, but must never panic, lenient and strict parsing must
//! agree on whether anything was malformed, and a document is read exactly when serde_json
//! reads the text as a JSON object.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use trainstore_doris::{FeatureKind, ParseReport, SnapshotParser, SnapshotSchema};

fn batch(columns: &[&str], text: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = columns.iter().map(|_| Arc::new(StringArray::from(vec![text])) as ArrayRef).collect();
    RecordBatch::try_new(schema, arrays).unwrap()
}

fn check(parser: SnapshotParser, raw: &RecordBatch) -> ParseReport {
    let (_, report) = parser.clone().parse(raw).expect("lenient parsing never fails on well-formed input columns");
    let strict = parser.strict(true).parse(raw);
    assert_eq!(strict.is_err(), report.malformed() > 0);
    report
}

/// The document was read exactly when serde_json reads `text` as an object (its syntax only:
/// numbers of any size; texts nested past serde_json's depth limit are not compared).
fn agrees_with_serde_json(text: &str, report: &ParseReport) {
    if text.trim().is_empty() {
        return;
    }
    let serde = serde_json::from_str::<HashMap<String, IgnoredAny>>(text);
    if serde.as_ref().is_err_and(|e| e.to_string().contains("recursion limit")) {
        return;
    }
    let unreadable = report.columns.get("feature").is_some_and(|c| c.malformed > 0);
    assert_eq!(unreadable, serde.is_err(), "{text:?}: serde_json says {:?}", serde.err());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = check(SnapshotParser::new(SnapshotSchema::design_doc()), &batch(&["feature"], text));
    agrees_with_serde_json(text, &report);
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
