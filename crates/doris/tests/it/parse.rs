//! The snapshot parser against a plain reference implementation, on random documents and flat
//! rows: valid values in every accepted encoding, malformed values, nulls, absent and unknown
//! fields, and documents that are not JSON at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, TimestampMillisecondType,
};
use proptest::prelude::*;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use trainstore_core::{Error, Timestamp};
use trainstore_doris::{FeatureKind, SnapshotParser, SnapshotSchema};

/// A parsed cell, comparable across the two implementations.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Text(String),
    Time(i64),
    Num(f64),
    Bool(bool),
    List(Vec<f32>),
    Json(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Key,
    Time,
    Tag,
    Feature(FeatureKind),
}

fn fields(schema: &SnapshotSchema) -> Vec<(String, Kind)> {
    let mut out: Vec<_> = schema
        .keys()
        .iter()
        .map(|k| (k.clone(), Kind::Key))
        .collect();
    out.push((schema.time().into(), Kind::Time));
    out.extend(schema.tag().map(|t| (t.to_owned(), Kind::Tag)));
    out.extend(
        schema
            .features()
            .iter()
            .map(|f| (f.name.clone(), Kind::Feature(f.kind))),
    );
    out
}

/// What the reference says a value is: a cell, missing (None), or malformed (Err).
type Verdict = Result<Option<Cell>, ()>;

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn ref_number(text: &str) -> Verdict {
    if blank(text) {
        return Ok(None);
    }
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(Cell::Num(v))),
        _ => Err(()),
    }
}

fn ref_list(text: &str) -> Verdict {
    if blank(text) {
        return Ok(None);
    }
    let mut body = text.trim();
    if let Some(inner) = body.strip_prefix('[') {
        body = inner.strip_suffix(']').ok_or(())?.trim();
    }
    if body.is_empty() {
        return Ok(Some(Cell::List(vec![])));
    }
    let mut out = Vec::new();
    for item in body.split(',') {
        match item.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => out.push(v),
            _ => return Err(()),
        }
    }
    Ok(Some(Cell::List(out)))
}

fn ref_time(text: &str) -> Verdict {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(v) = t.parse::<i64>() {
        return Ok(Some(Cell::Time(v)));
    }
    if let Ok(v) = t.parse::<f64>()
        && v.is_finite()
        && v.fract() == 0.0
        && v.abs() < 9.0e15
    {
        return Ok(Some(Cell::Time(v as i64)));
    }
    Timestamp::parse(t)
        .map(|ts| Some(Cell::Time(ts.as_millis())))
        .map_err(|_| ())
}

fn ref_bool(text: &str) -> Verdict {
    let t = text.trim();
    if t.is_empty() {
        Ok(None)
    } else if t.eq_ignore_ascii_case("true") || t == "1" {
        Ok(Some(Cell::Bool(true)))
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Ok(Some(Cell::Bool(false)))
    } else {
        Err(())
    }
}

/// A value given as text, by kind.
fn ref_text(kind: Kind, text: &str) -> Verdict {
    match kind {
        Kind::Key | Kind::Feature(FeatureKind::Text) => Ok(Some(Cell::Text(text.to_owned()))),
        Kind::Time => ref_time(text),
        Kind::Tag | Kind::Feature(FeatureKind::Bool) => ref_bool(text),
        Kind::Feature(FeatureKind::Number) => ref_number(text),
        Kind::Feature(FeatureKind::Array) => ref_list(text),
        Kind::Feature(FeatureKind::Json) => {
            if blank(text) {
                return Ok(None);
            }
            serde_json::from_str::<Value>(text)
                .map(|v| Some(Cell::Json(v)))
                .map_err(|_| ())
        }
    }
}

/// A value from a JSON document, by kind.
fn ref_value(kind: Kind, value: &Value) -> Verdict {
    match (kind, value) {
        (_, Value::Null) => Ok(None),
        (_, Value::String(s)) => ref_text(kind, s),
        (Kind::Feature(FeatureKind::Json), v) => Ok(Some(Cell::Json(v.clone()))),
        (Kind::Key | Kind::Feature(FeatureKind::Text), Value::Number(n)) => {
            Ok(Some(Cell::Text(n.to_string())))
        }
        (Kind::Tag | Kind::Feature(FeatureKind::Bool), Value::Bool(b)) => Ok(Some(Cell::Bool(*b))),
        (Kind::Feature(FeatureKind::Array), Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item.as_f64() {
                    Some(v) if (v as f32).is_finite() => out.push(v as f32),
                    _ => return Err(()),
                }
            }
            Ok(Some(Cell::List(out)))
        }
        (
            Kind::Time | Kind::Tag | Kind::Feature(FeatureKind::Bool | FeatureKind::Number),
            Value::Number(n),
        ) => ref_text(kind, &n.to_string()),
        _ => Err(()),
    }
}

/// The reference result: rows of cells, and per column (malformed, missing) counts.
struct Reference {
    rows: Vec<Vec<Cell>>,
    unknown: Vec<Option<Map<String, Value>>>,
    counts: BTreeMap<String, (u64, u64)>,
}

fn reference(
    schema: &SnapshotSchema,
    time_column: Option<&[i64]>,
    docs: &[Option<String>],
) -> Reference {
    let fields = fields(schema);
    let mut counts: BTreeMap<String, (u64, u64)> =
        fields.iter().map(|(n, _)| (n.clone(), (0, 0))).collect();
    let mut rows = Vec::new();
    let mut unknown = Vec::new();
    for (r, doc) in docs.iter().enumerate() {
        let map: Option<Map<String, Value>> = match doc {
            None => {
                counts.entry("feature".into()).or_default().1 += 1;
                None
            }
            Some(text) => match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(m) => Some(m),
                Err(_) => {
                    counts.entry("feature".into()).or_default().0 += 1;
                    None
                }
            },
        };
        let mut row = Vec::new();
        for (name, kind) in &fields {
            let verdict = match (time_column, kind) {
                (Some(times), Kind::Time) => Ok(Some(Cell::Time(times[r]))),
                _ => match map.as_ref().and_then(|m| m.get(name)) {
                    Some(v) => ref_value(*kind, v),
                    None => Ok(None),
                },
            };
            let c = counts.get_mut(name).unwrap();
            match verdict {
                Ok(Some(cell)) => row.push(cell),
                Ok(None) => {
                    c.1 += 1;
                    row.push(Cell::Null);
                }
                Err(()) => {
                    c.0 += 1;
                    row.push(Cell::Null);
                }
            }
        }
        rows.push(row);
        unknown.push(map.and_then(|m| {
            let rest: Map<String, Value> = m
                .into_iter()
                .filter(|(k, _)| !fields.iter().any(|(n, _)| n == k))
                .collect();
            (!rest.is_empty()).then_some(rest)
        }));
    }
    Reference {
        rows,
        unknown,
        counts,
    }
}

fn cells(schema: &SnapshotSchema, batch: &RecordBatch) -> Vec<Vec<Cell>> {
    let fields = fields(schema);
    (0..batch.num_rows())
        .map(|r| {
            fields
                .iter()
                .map(|(name, kind)| {
                    let col = batch.column_by_name(name).unwrap();
                    if col.is_null(r) {
                        return Cell::Null;
                    }
                    match kind {
                        Kind::Key | Kind::Feature(FeatureKind::Text) => {
                            Cell::Text(col.as_string::<i32>().value(r).into())
                        }
                        Kind::Time => {
                            Cell::Time(col.as_primitive::<TimestampMillisecondType>().value(r))
                        }
                        Kind::Tag | Kind::Feature(FeatureKind::Bool) => {
                            Cell::Bool(col.as_boolean().value(r))
                        }
                        Kind::Feature(FeatureKind::Number) => {
                            Cell::Num(col.as_primitive::<Float64Type>().value(r))
                        }
                        Kind::Feature(FeatureKind::Array) => {
                            let list = col.as_list::<i32>().value(r);
                            Cell::List(list.as_primitive::<Float32Type>().values().to_vec())
                        }
                        Kind::Feature(FeatureKind::Json) => Cell::Json(
                            serde_json::from_str(col.as_string::<i32>().value(r)).unwrap(),
                        ),
                    }
                })
                .collect()
        })
        .collect()
}

/// Numbers parsed from JSON by serde_json may be one ulp off the correctly rounded value.
fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Num(x), Cell::Num(y)) => x == y || ((x - y) / x).abs() < 1e-15,
        _ => a == b,
    }
}

// ---- generators --------------------------------------------------------------------------

fn float_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1.0e6f64..1.0e6).prop_map(|v| v.to_string()),
        (-1000i64..1000).prop_map(|v| v.to_string()),
        (1u32..9, -30i32..30).prop_map(|(m, e)| format!("{m}e{e}")),
    ]
}

fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("  ".into()),
        Just("abc".into()),
        Just("1,,2".into()),
        Just("1.2.3".into()),
        Just("nan".into()),
        Just("inf".into()),
        Just("[1,2".into()),
        Just("0x10".into()),
        Just("1e999".into()),
        Just("tru".into()),
        Just("{\"a\":".into()),
        "[a-z0-9,. \\[\\]-]{0,8}",
    ]
}

/// A JSON value for a field of `kind`: usually valid, sometimes malformed, null, or absent (None).
fn field_value(kind: Kind) -> BoxedStrategy<Option<Value>> {
    let valid: BoxedStrategy<Value> = match kind {
        Kind::Key => prop_oneof![
            "[A-F0-9]{1,12}".prop_map(Value::String),
            (0u32..100_000).prop_map(Value::from),
            Just(Value::String("it's \"quoted\" \\ ü".into())),
        ]
        .boxed(),
        Kind::Time => prop_oneof![
            (1_500_000_000_000i64..1_800_000_000_000).prop_map(Value::from),
            (1_500_000_000_000i64..1_800_000_000_000).prop_map(|t| Value::String(t.to_string())),
            (1_500_000_000_000i64..1_800_000_000_000)
                .prop_map(|t| Value::String(Timestamp::from_millis(t).to_string())),
        ]
        .boxed(),
        Kind::Tag | Kind::Feature(FeatureKind::Bool) => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![Just("true"), Just("FALSE"), Just("1"), Just("0")]
                .prop_map(|s| Value::String(s.into())),
            (0u8..2).prop_map(Value::from),
        ]
        .boxed(),
        Kind::Feature(FeatureKind::Number) => prop_oneof![
            (-1.0e9f64..1.0e9).prop_map(Value::from),
            float_text().prop_map(Value::String),
            float_text().prop_map(|t| Value::String(format!(" {t} "))),
        ]
        .boxed(),
        Kind::Feature(FeatureKind::Array) => {
            let items =
                prop::collection::vec((-1.0e4f32..1.0e4).prop_map(|v| v.to_string()), 0..12);
            prop_oneof![
                items.clone().prop_map(|v| Value::String(v.join(","))),
                items
                    .clone()
                    .prop_map(|v| Value::String(format!("[{}]", v.join(", ")))),
                items.prop_map(|v| Value::Array(
                    v.iter().map(|s| serde_json::from_str(s).unwrap()).collect()
                )),
            ]
            .boxed()
        }
        Kind::Feature(FeatureKind::Json | FeatureKind::Text) => prop_oneof![
            Just(serde_json::json!({"SerialData": "", "GpioData": -1})),
            Just(Value::String(
                "{\"SerialData\": \"x\", \"GpioData\": 3}".into()
            )),
            (0i32..10).prop_map(|n| serde_json::json!([n, {"k": n}])),
        ]
        .boxed(),
    };
    prop_oneof![
        6 => valid.prop_map(Some),
        2 => garbage().prop_map(|g| Some(Value::String(g))),
        1 => Just(Some(Value::Null)),
        1 => Just(None),
        1 => prop_oneof![Just(serde_json::json!({"x": 1})), Just(serde_json::json!([["nested"]])), Just(Value::Bool(true))].prop_map(Some),
    ]
    .boxed()
}

fn document(schema: &SnapshotSchema) -> BoxedStrategy<Option<String>> {
    let per_field: Vec<_> = fields(schema)
        .into_iter()
        .map(|(name, kind)| field_value(kind).prop_map(move |v| (name.clone(), v)))
        .collect();
    let unknown = prop::collection::btree_map("x[a-z]{0,4}", (0i32..9).prop_map(Value::from), 0..3);
    let object = (per_field, unknown).prop_map(|(values, unknown)| {
        let mut m = Map::new();
        for (name, v) in values {
            if let Some(v) = v {
                m.insert(name, v);
            }
        }
        for (k, v) in unknown {
            m.insert(k, v);
        }
        Some(serde_json::to_string(&Value::Object(m)).unwrap())
    });
    // The same field twice: the last value counts. An array field's list may already have been
    // read when the second value (or a later syntax error) comes.
    let array_field = fields(schema)
        .into_iter()
        .find(|(_, kind)| *kind == Kind::Feature(FeatureKind::Array));
    let repeated = match array_field {
        Some((name, kind)) => (object.clone(), field_value(kind))
            .prop_map(move |(doc, again)| {
                let doc = doc.expect("an object");
                let again = serde_json::to_string(&again.unwrap_or(Value::Null)).unwrap();
                let member = serde_json::to_string(&name).unwrap();
                let body = doc.strip_suffix('}').expect("an object");
                let sep = if body.len() > 1 { "," } else { "" };
                Some(format!("{body}{sep}{member}:{again}}}"))
            })
            .boxed(),
        None => object.clone().boxed(),
    };
    let truncated = (object.clone(), 0.0..1.0f64).prop_map(|(doc, at)| {
        let doc = doc.expect("an object");
        let mut cut = (doc.len() as f64 * at) as usize;
        while !doc.is_char_boundary(cut) {
            cut -= 1;
        }
        Some(doc[..cut].to_owned())
    });
    prop_oneof![
        20 => object,
        3 => repeated,
        2 => truncated,
        1 => Just(None),
        1 => Just(Some("not json".to_owned())),
        1 => Just(Some("[1, 2]".to_owned())),
        1 => Just(Some("{\"uuid\": \"A\", ".to_owned())),
    ]
    .boxed()
}

/// Text made of JSON's pieces, well or badly put together: strings with escapes (lone
/// surrogates among them), numbers of every shape, nesting, stray commas and colons.
fn json_ish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just(":"),
        Just(","),
        Just("\""),
        Just("\"a\""),
        Just("\"uuid\""),
        Just("\"\\u00e9\""),
        Just("\"\\ud800\""),
        Just("\"\\ud83d\\ude00\""),
        Just("\"\\x\""),
        Just("\"\t\""),
        Just("1"),
        Just("-0.5"),
        Just("1e400"),
        Just("01"),
        Just("1."),
        Just(".5"),
        Just("-"),
        Just("true"),
        Just("nul"),
        Just("null"),
        Just(" "),
        Just("\n"),
        Just("x"),
        Just("é"),
    ];
    let soup = prop::collection::vec(piece, 0..24).prop_map(|p| p.concat());
    // Mostly objects, so that the inside of a document is explored, not only its first byte.
    prop_oneof![1 => soup.clone(), 3 => soup.prop_map(|inner| format!("{{{inner}}}"))]
}

fn raw_batch(time_column: Option<&[i64]>, docs: &[Option<String>]) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some(times) = time_column {
        fields.push(Field::new("time", DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from(times.to_vec())));
    }
    fields.push(Field::new("feature", DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from(docs.to_vec())));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn check(
    schema: &SnapshotSchema,
    time_column: Option<&[i64]>,
    docs: &[Option<String>],
) -> Result<(), TestCaseError> {
    let raw = raw_batch(time_column, docs);
    let want = reference(schema, time_column, docs);
    let (batch, report) = SnapshotParser::new(schema.clone()).parse(&raw).unwrap();
    let got = cells(schema, &batch);
    for (r, (g, w)) in got.iter().zip(&want.rows).enumerate() {
        for (c, (a, b)) in g.iter().zip(w).enumerate() {
            prop_assert!(
                same(a, b),
                "row {} field {}: ours {:?}, reference {:?}\ndoc {:?}",
                r,
                fields(schema)[c].0,
                a,
                b,
                docs[r]
            );
        }
    }
    let unknown = batch.column_by_name("_unknown").unwrap().as_string::<i32>();
    for (r, w) in want.unknown.iter().enumerate() {
        let ours = unknown
            .is_valid(r)
            .then(|| serde_json::from_str::<Map<String, Value>>(unknown.value(r)).unwrap());
        prop_assert_eq!(&ours, w, "unknown keys of row {}", r);
    }
    for (name, (malformed, missing)) in &want.counts {
        let c = &report.columns[name];
        prop_assert_eq!(
            (c.malformed, c.missing),
            (*malformed, *missing),
            "counts of {}",
            name
        );
    }
    prop_assert_eq!(report.rows, docs.len() as u64);
    let any_malformed = want.counts.values().any(|(m, _)| *m > 0);
    let strict = SnapshotParser::new(schema.clone()).strict(true).parse(&raw);
    prop_assert_eq!(strict.is_err(), any_malformed);
    if let Err(e) = strict {
        prop_assert!(matches!(e, Error::Malformed { .. }), "{}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn design_doc_documents_match_the_reference(docs in prop::collection::vec(document(&SnapshotSchema::design_doc()), 0..24)) {
        check(&SnapshotSchema::design_doc(), None, &docs)?;
    }

    /// Whatever the text, the parser reads a document exactly when serde_json reads it as a
    /// JSON object (syntax alone: any number, any depth below serde_json's limit).
    #[test]
    fn documents_are_read_exactly_when_serde_json_reads_an_object(text in json_ish()) {
        prop_assume!(!blank(&text));
        let serde = serde_json::from_str::<std::collections::HashMap<String, IgnoredAny>>(&text);
        prop_assume!(!serde.as_ref().is_err_and(|e| e.to_string().contains("recursion limit")));
        let parser = SnapshotParser::new(SnapshotSchema::design_doc());
        let (_, report) = parser.parse(&raw_batch(None, &[Some(text.clone())])).unwrap();
        let unreadable = report.columns.get("feature").is_some_and(|c| c.malformed > 0);
        prop_assert_eq!(unreadable, serde.is_err(), "{:?}: serde_json says {:?}", text, serde.err());
    }

    #[test]
    fn a_time_column_takes_precedence_over_the_document(
        docs in prop::collection::vec(document(&SnapshotSchema::design_doc()), 1..16),
        base in 1_600_000_000_000i64..1_700_000_000_000,
    ) {
        let times: Vec<i64> = (0..docs.len() as i64).map(|i| base + i).collect();
        check(&SnapshotSchema::design_doc(), Some(&times), &docs)?;
    }
}

#[test]
fn the_design_docs_example_parses_to_typed_values() {
    let doc = r#"{"uuid": "704A0ED440F4", "nodeId": "1465", "time": "1670387403396", "is_tag": true,
        "meanLf": 8478281.0, "std": "4.0", "peakPowers": "9.31,9.25,8.94", "temperature": -274.0,
        "extend": "{\"SerialData\": \"\", \"GpioData\": -1}", "firmware": "v2"}"#;
    let (batch, report) = SnapshotParser::new(SnapshotSchema::design_doc())
        .parse(&raw_batch(None, &[Some(doc.into())]))
        .unwrap();
    let schema = SnapshotSchema::design_doc();
    let row = &cells(&schema, &batch)[0];
    let by_name: BTreeMap<_, _> = fields(&schema)
        .into_iter()
        .map(|(n, _)| n)
        .zip(row.iter().cloned())
        .collect();
    assert_eq!(by_name["uuid"], Cell::Text("704A0ED440F4".into()));
    assert_eq!(by_name["time"], Cell::Time(1670387403396));
    assert_eq!(by_name["is_tag"], Cell::Bool(true));
    assert_eq!(by_name["std"], Cell::Num(4.0));
    assert_eq!(by_name["peakPowers"], Cell::List(vec![9.31, 9.25, 8.94]));
    assert_eq!(
        by_name["extend"],
        Cell::Json(serde_json::json!({"SerialData": "", "GpioData": -1}))
    );
    assert_eq!(by_name["peakFreqs"], Cell::Null);
    assert_eq!(
        batch
            .column_by_name("_unknown")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        r#"{"firmware":"v2"}"#
    );
    assert_eq!(report.malformed(), 0);
    assert_eq!(report.columns["peakFreqs"].missing, 1);
}

#[test]
fn malformed_values_never_become_zero_or_empty_and_strict_mode_names_them() {
    let doc = r#"{"uuid": "704A0ED440F4", "nodeId": "1465", "time": 1670387403396, "meanLf": "8478281.0x",
        "peakPowers": "9.31,oops,8.94", "bandSpectrum": "1,2,", "std": ""}"#;
    let raw = raw_batch(None, &[Some(doc.into())]);
    let (batch, report) = SnapshotParser::new(SnapshotSchema::design_doc())
        .parse(&raw)
        .unwrap();
    for name in ["meanLf", "peakPowers", "bandSpectrum"] {
        assert!(
            batch.column_by_name(name).unwrap().is_null(0),
            "{name} must be null"
        );
        assert_eq!(report.columns[name].malformed, 1, "{name}");
    }
    assert_eq!(report.columns["std"].missing, 1);
    assert_eq!(report.examples[0].field, "meanLf");
    assert!(report.examples[0].row.contains("uuid=704A0ED440F4"));
    let err = SnapshotParser::new(SnapshotSchema::design_doc())
        .strict(true)
        .parse(&raw)
        .unwrap_err();
    let text = err.to_string();
    for part in [
        "meanLf",
        "uuid=704A0ED440F4",
        "nodeId=1465",
        "time=1670387403396",
        "8478281.0x",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
}

#[test]
fn flat_rows_parse_with_the_same_rules() {
    let schema = SnapshotSchema::builder()
        .flat()
        .keys(["uuid"])
        .time("time")
        .feature("rms", FeatureKind::Number)
        .feature("spectrum", FeatureKind::Array)
        .build()
        .unwrap();
    let raw = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("uuid", DataType::Utf8, true),
            Field::new("time", DataType::Utf8, true),
            Field::new("rms", DataType::Utf8, true),
            Field::new("spectrum", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                None,
                Some("d"),
            ])),
            Arc::new(StringArray::from(vec![
                Some("2022-12-07T04:30:00Z"),
                Some("1670387400000"),
                Some("later"),
                Some("1670387400000"),
            ])),
            Arc::new(StringArray::from(vec![
                Some("1.5"),
                Some("x"),
                None,
                Some("2"),
            ])),
            Arc::new(StringArray::from(vec![
                Some("[1.5, 2]"),
                Some(""),
                Some("1,2"),
                Some("[]"),
            ])),
        ],
    )
    .unwrap();
    let (batch, report) = SnapshotParser::new(schema.clone()).parse(&raw).unwrap();
    let rows = cells(&schema, &batch);
    assert_eq!(
        rows[0],
        vec![
            Cell::Text("a".into()),
            Cell::Time(1670387400000),
            Cell::Num(1.5),
            Cell::List(vec![1.5, 2.0])
        ]
    );
    assert_eq!(
        rows[1],
        vec![
            Cell::Text("b".into()),
            Cell::Time(1670387400000),
            Cell::Null,
            Cell::Null
        ]
    );
    assert_eq!(
        rows[2],
        vec![
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::List(vec![1.0, 2.0])
        ]
    );
    // Blank text is an absent list, "[]" an empty one.
    assert_eq!(rows[3][3], Cell::List(vec![]));
    assert_eq!(report.columns["spectrum"].missing, 1);
    assert_eq!(report.columns["spectrum"].malformed, 0);
    assert_eq!(report.columns["rms"].malformed, 1);
    assert_eq!(report.columns["time"].malformed, 1);
    assert_eq!(report.columns["uuid"].missing, 1);
    assert!(batch.schema().column_with_name("_unknown").is_none());
}

#[test]
fn inputs_missing_a_needed_column_are_refused() {
    let flat = SnapshotSchema::builder()
        .flat()
        .keys(["uuid"])
        .time("time")
        .build()
        .unwrap();
    let raw = raw_batch(None, &[Some("{}".into())]);
    let err = SnapshotParser::new(flat)
        .parse(&raw)
        .unwrap_err()
        .to_string();
    assert!(err.contains("uuid"), "{err}");
    let only_time = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "time",
            DataType::Int64,
            false,
        )])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let err = SnapshotParser::new(SnapshotSchema::design_doc())
        .parse(&only_time)
        .unwrap_err()
        .to_string();
    assert!(err.contains("feature"), "{err}");
}

#[test]
fn parsing_in_parallel_slices_gives_the_same_rows_and_report() {
    let raw: Vec<RecordBatch> =
        trainstore_doris::SnapshotGenerator::new(trainstore_doris::SynthConfig {
            devices: 7,
            snapshots: 50,
            malformed_rate: 0.05,
            ..Default::default()
        })
        .unwrap()
        .batches(300)
        .collect();
    let parser = SnapshotParser::new(SnapshotSchema::design_doc());
    let (sliced, report) = parser.parse_batches(&raw, 64).unwrap();
    let mut whole_report = trainstore_doris::ParseReport::default();
    let mut whole = Vec::new();
    for b in &raw {
        let (t, r) = parser.parse(b).unwrap();
        whole_report.merge(&r);
        whole.push(t);
    }
    let schema = SnapshotSchema::design_doc().output_schema();
    assert_eq!(
        arrow::compute::concat_batches(&schema, &sliced).unwrap(),
        arrow::compute::concat_batches(&schema, &whole).unwrap()
    );
    assert_eq!(report.columns, whole_report.columns);
    assert_eq!(report.rows, 700);
}

#[test]
fn parsing_in_parallel_cuts_large_inputs_into_enough_slices_for_every_core() {
    let raw: Vec<RecordBatch> =
        trainstore_doris::SnapshotGenerator::new(trainstore_doris::SynthConfig {
            devices: 50,
            snapshots: 100,
            ..Default::default()
        })
        .unwrap()
        .batches(10_000)
        .collect();
    assert_eq!(raw.len(), 1);
    let parser = SnapshotParser::new(SnapshotSchema::design_doc());
    let (sliced, report) = parser.parse_batches(&raw, 8192).unwrap();
    // On any number of cores, 10,000 rows are cut to the smallest slices, 512 rows: 20.
    assert_eq!(sliced.len(), 20);
    assert!(sliced.iter().all(|b| b.num_rows() <= 8192));
    assert_eq!(report.rows, 10_000);
    let (whole, _) = parser.parse(&raw[0]).unwrap();
    let schema = SnapshotSchema::design_doc().output_schema();
    assert_eq!(
        arrow::compute::concat_batches(&schema, &sliced).unwrap(),
        whole
    );
}
