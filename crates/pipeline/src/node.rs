//! A YAML (or JSON) document as a tree whose every node knows its line.
//!
//! Errors in a pipeline name the line they are on, and serde's deserializers lose positions
//! once the value is built. So the document is read from the event stream of a YAML 1.2
//! parser (`yaml-rust2`), whose events carry their position, into [`Node`]s; the document
//! module then walks that tree itself, collecting every problem instead of stopping at the
//! first. JSON is YAML, so the same reader serves both; a JSON text the YAML parser refuses
//! (a tab where YAML allows none) is read by `serde_json` instead, without lines.
//!
//! Plain scalars take YAML 1.2's core schema: `null`/`~`/empty, `true`/`false`, integers
//! (decimal, `0x`, `0o`), floats (`1.5`, `1e3`, `.inf`, `.nan`); quoted scalars are strings.
//! Aliases are expanded, with the whole tree bounded to [`MAX_NODES`] nodes, so a handful of
//! nested aliases cannot expand into billions.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The most nodes a document may hold, aliases expanded.
pub(crate) const MAX_NODES: usize = 1_000_000;

/// A value of the document and the 1-based line it starts on (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub line: usize,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Text, quoted or plain. A plain integer too large for `i64` is a `Float` (an infinity
    /// past `f64`'s range), so range checks can say "too large".
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys that are not strings are written as YAML would print
    /// them (`1`, `true`).
    Map(Vec<(Key, Node)>),
}

/// A mapping key and its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub line: usize,
}

impl Value {
    /// The kind of value, for "expected a string, found a list" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The node as JSON: integers and floats as numbers (a float JSON cannot hold, such as
    /// `.nan`, as its YAML text), mappings as objects (a repeated key keeps its last value).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(float_text(*f))),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A node built from JSON, every line unknown.
    fn from_json(value: serde_json::Value) -> Node {
        let value = match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => {
                Value::Seq(items.into_iter().map(Node::from_json).collect())
            }
            serde_json::Value::Object(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Key { name: k, line: 0 }, Node::from_json(v)))
                    .collect(),
            ),
        };
        Node { value, line: 0 }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f > 0.0 {
        ".inf".into()
    } else {
        "-.inf".into()
    }
}

/// Why a text is not a document, and the line where the reader stopped (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub message: String,
    pub line: usize,
}

/// Reads the one document in `text`: YAML, or JSON. An empty text, or one with several
/// documents, is an error.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    // The size and nesting bounds every user YAML document in trainstore gets; a document
    // past them is refused before any parser sees it.
    trainstore_core::yaml::parse::<serde::de::IgnoredAny>(text).map_err(|message| {
        let line = line_in_message(&message);
        SyntaxError { message, line }
    })?;
    match parse_yaml(text) {
        Ok(node) => Ok(node),
        Err(yaml_error) => {
            let looks_like_json = text.trim_start().starts_with(['{', '[']);
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) if looks_like_json => Ok(Node::from_json(value)),
                _ => Err(yaml_error),
            }
        }
    }
}

/// "… at line 3 column 5" → 3.
fn line_in_message(message: &str) -> usize {
    message
        .split("line ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|digits| digits.parse().ok())
        })
        .unwrap_or(0)
}

fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        message: format!("not valid YAML or JSON: {}", e.info()),
        line: e.marker().line(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    match builder.documents.len() {
        0 => Err(SyntaxError {
            message: "the document is empty; expected a Pipeline mapping".into(),
            line: 1,
        }),
        1 => Ok(builder.documents.pop().unwrap_or(Node {
            value: Value::Null,
            line: 1,
        })),
        n => Err(SyntaxError {
            message: format!("the text holds {n} YAML documents; expected one Pipeline"),
            line: builder.documents[1].line,
        }),
    }
}

/// An open collection while events arrive.
enum Open {
    Seq {
        items: Vec<Node>,
        line: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        line: usize,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    documents: Vec<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, message: String, line: usize) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { message, line });
        }
    }

    /// Adds a finished node to the collection it belongs to (or as a document).
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    let name = match &node.value {
                        Value::Str(s) => s.clone(),
                        Value::Null => "null".into(),
                        Value::Bool(b) => b.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            self.fail(
                                "a mapping key is a list or mapping; keys must be plain text"
                                    .into(),
                                node.line,
                            );
                            String::new()
                        }
                    };
                    if let Some(Open::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(Key {
                            name,
                            line: node.line,
                        });
                    }
                }
            },
        }
    }

    fn count(&mut self, n: usize, line: usize) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(
                format!("the document expands to more than {MAX_NODES} values"),
                line,
            );
            return false;
        }
        true
    }
}

fn size(node: &Node) -> usize {
    // Iterative, so a deep alias target cannot overflow the stack.
    let mut n = 0usize;
    let mut todo = vec![node];
    while let Some(node) = todo.pop() {
        n += 1;
        match &node.value {
            Value::Seq(items) => todo.extend(items),
            Value::Map(entries) => todo.extend(entries.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    n
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if !self.count(1, line) {
                    return;
                }
                let forced_string = tag.is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !forced_string {
                    resolve_plain(text)
                } else {
                    Value::Str(text)
                };
                self.push(Node { value, line }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq {
                items: Vec::new(),
                line,
                anchor,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map {
                entries: Vec::new(),
                key: None,
                line,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq {
                        items,
                        line,
                        anchor,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            line,
                        },
                        anchor,
                    ),
                    Some(Open::Map {
                        entries,
                        line,
                        anchor,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            line,
                        },
                        anchor,
                    ),
                    None => return,
                };
                if self.count(1, line) {
                    self.push(node, anchor);
                }
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(mut node) => {
                    if self.count(size(&node), line) {
                        node.line = line;
                        self.push(node, 0);
                    }
                }
                None => self.fail("an alias names no anchor before it".into(), line),
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
}

/// A plain scalar under YAML 1.2's core schema.
fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
    let negative = text.starts_with('-');
    let radix = |prefix: &str, radix: u32| {
        text.strip_prefix(prefix)
            .filter(|d| !d.is_empty())
            .and_then(|d| i64::from_str_radix(d, radix).ok())
    };
    if let Some(i) = radix("0x", 16).or_else(|| radix("0o", 8)) {
        return Value::Int(i);
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            // Too large for i64: a float keeps its magnitude for "too large" messages.
            Err(_) => Value::Float(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
        };
    }
    let float_like = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits.as_bytes()[0] != b'e'
        && digits.as_bytes()[0] != b'E';
    if float_like && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(node: &'a Node, key: &str) -> &'a Node {
        match &node.value {
            Value::Map(entries) => &entries.iter().find(|(k, _)| k.name == key).unwrap().1,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn nodes_carry_their_lines_and_core_schema_types() {
        let doc = parse("a: 1\nb:\n  - x\n  - 'true'\n  - true\nc: 2.5\nd: ~\ne: 0x10\n").unwrap();
        assert_eq!(get(&doc, "a").value, Value::Int(1));
        assert_eq!(get(&doc, "a").line, 1);
        let Value::Seq(items) = &get(&doc, "b").value else {
            panic!()
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].value, Value::Str("true".into()));
        assert_eq!(items[2].value, Value::Bool(true));
        assert_eq!(get(&doc, "c").value, Value::Float(2.5));
        assert_eq!(get(&doc, "d").value, Value::Null);
        assert_eq!(get(&doc, "e").value, Value::Int(16));
    }

    #[test]
    fn json_reads_like_yaml_and_odd_texts_are_errors_not_panics() {
        let doc = parse("{\"a\": [1, 2], \"b\": {\"c\": null}}").unwrap();
        assert_eq!(get(&doc, "a").to_json(), serde_json::json!([1, 2]));
        assert!(parse("").is_err());
        assert!(parse("# only a comment\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse("*nothing").is_err());
        assert!(parse("{\n\t\"a\": 1\n}").is_ok());
        let huge = "99999999999999999999999999999999";
        assert_eq!(parse(huge).unwrap().value, Value::Float(f64::INFINITY));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let error = parse(&text).unwrap_err();
        assert!(error.message.contains("more than"), "{error:?}");
    }
}
