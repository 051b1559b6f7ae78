//! A validating scanner for the top level of a JSON object, without building a tree.
//!
//! Snapshot documents are flat objects whose bulk is long strings (comma-separated arrays).
//! The scanner hands out each member's key and the raw bytes of its value, finding string
//! ends with `memchr` and validating everything else (numbers, literals, nested values) as it
//! goes, so the parser only converts the values it needs. A document is accepted exactly when
//! it is one valid JSON object (RFC 8259), as `serde_json` would accept it.

use memchr::memchr2;

/// The kind of a raw JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; `escaped` when it contains a backslash escape.
    String {
        escaped: bool,
    },
    Number,
    True,
    False,
    Null,
    Object,
    Array,
}

/// A raw JSON value: its kind and its exact text (strings with their quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw<'a> {
    pub kind: Kind,
    pub text: &'a [u8],
}

impl<'a> Raw<'a> {
    /// A string's content between the quotes, still escaped if `escaped`.
    pub fn string_content(&self) -> &'a [u8] {
        &self.text[1..self.text.len() - 1]
    }
}

/// Why a document was rejected.
pub(crate) type ScanError = &'static str;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, b: u8, err: ScanError) -> Result<(), ScanError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err)
        }
    }

    /// A string starting at the current `"`; returns (text with quotes, escaped).
    #[inline]
    fn string(&mut self) -> Result<(&'a [u8], bool), ScanError> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(at) = memchr2(b'"', b'\\', rest) else {
                return Err("unterminated string");
            };
            if has_control(&rest[..at]) {
                return Err("control character in string");
            }
            self.pos += at;
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok((&self.bytes[start..self.pos], escaped));
            }
            escaped = true;
            self.pos += 1;
            match self.peek() {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                Some(b'u') => {
                    let hex = self
                        .bytes
                        .get(self.pos + 1..self.pos + 5)
                        .ok_or("bad \\u escape")?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err("bad \\u escape");
                    }
                    self.pos += 5;
                }
                _ => return Err("bad escape"),
            }
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("bad number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err("bad number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err("bad number");
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err("bad literal")
        }
    }

    /// Any value at the current position (after whitespace); nested values are validated.
    fn value(&mut self, depth: u32) -> Result<Raw<'a>, ScanError> {
        if depth > 128 {
            return Err("nested too deeply");
        }
        let start = self.pos;
        let kind = match self.peek().ok_or("unexpected end")? {
            b'"' => {
                let (_, escaped) = self.string()?;
                Kind::String { escaped }
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Kind::Number
            }
            b't' => {
                self.literal(b"true")?;
                Kind::True
            }
            b'f' => {
                self.literal(b"false")?;
                Kind::False
            }
            b'n' => {
                self.literal(b"null")?;
                Kind::Null
            }
            b'{' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() != Some(b'}') {
                    loop {
                        self.skip_ws();
                        if self.peek() != Some(b'"') {
                            return Err("expected a key");
                        }
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':', "expected ':'")?;
                        self.skip_ws();
                        self.value(depth + 1)?;
                        self.skip_ws();
                        if self.peek() == Some(b',') {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(b'}', "expected ',' or '}'")?;
                Kind::Object
            }
            b'[' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() != Some(b']') {
                    loop {
                        self.skip_ws();
                        self.value(depth + 1)?;
                        self.skip_ws();
                        if self.peek() == Some(b',') {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(b']', "expected ',' or ']'")?;
                Kind::Array
            }
            _ => return Err("unexpected character"),
        };
        Ok(Raw {
            kind,
            text: &self.bytes[start..self.pos],
        })
    }
}

/// Whether `bytes` holds an ASCII control character (not allowed raw inside JSON strings).
#[inline]
fn has_control(bytes: &[u8]) -> bool {
    // A branch-free fold vectorises; strings here are mostly long runs of digits and commas.
    bytes.iter().fold(false, |acc, &b| acc | (b < 0x20))
}

/// Calls `member(key, value)` for each member of the JSON object `doc`, in order. `key` is the
/// raw key token with its quotes. Fails unless `doc` is exactly one valid JSON object; members
/// seen before a failure have already been reported.
pub(crate) fn for_each_member<'a>(
    doc: &'a [u8],
    mut member: impl FnMut(Raw<'a>, Raw<'a>),
) -> Result<(), ScanError> {
    let mut c = Cursor { bytes: doc, pos: 0 };
    c.skip_ws();
    c.expect(b'{', "not a JSON object")?;
    c.skip_ws();
    if c.peek() != Some(b'}') {
        loop {
            c.skip_ws();
            if c.peek() != Some(b'"') {
                return Err("expected a key");
            }
            let (key, escaped) = c.string()?;
            c.skip_ws();
            c.expect(b':', "expected ':'")?;
            c.skip_ws();
            let value = c.value(1)?;
            member(
                Raw {
                    kind: Kind::String { escaped },
                    text: key,
                },
                value,
            );
            c.skip_ws();
            if c.peek() == Some(b',') {
                c.pos += 1;
            } else {
                break;
            }
        }
    }
    c.expect(b'}', "expected ',' or '}'")?;
    c.skip_ws();
    if c.pos != doc.len() {
        return Err("trailing characters after the object");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn members(doc: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        for_each_member(doc.as_bytes(), |k, v| {
            out.push((
                String::from_utf8(k.text.to_vec()).unwrap(),
                String::from_utf8(v.text.to_vec()).unwrap(),
            ))
        })?;
        Ok(out)
    }

    #[test]
    fn reports_members_with_raw_values() {
        let got =
            members(r#" { "a" : 1.5e3 , "b":"x\"y", "c": {"d": [1, {}]}, "e": null } "#).unwrap();
        let want = [
            ("\"a\"", "1.5e3"),
            ("\"b\"", "\"x\\\"y\""),
            ("\"c\"", "{\"d\": [1, {}]}"),
            ("\"e\"", "null"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(members("{}").unwrap(), vec![]);
    }

    #[test]
    fn rejects_what_json_rejects() {
        for bad in [
            "",
            "[]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12g4\"}",
            "{a:1}",
            "{\"a\":1}x",
            "{\"a\":[1,]}",
            "{\"a\":{\"b\" 1}}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":+1}",
        ] {
            assert!(members(bad).is_err(), "accepted {bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(bad).is_err(),
                "{bad:?}"
            );
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(Into::into),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Into::into),
            "\\PC{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Every valid object scans to members whose values parse back to the same JSON.
        #[test]
        fn agrees_with_serde_json_on_valid_objects(
            map in prop::collection::btree_map("\\PC{0,8}", json_value(), 0..6),
            pretty in any::<bool>(),
        ) {
            let value = serde_json::Value::Object(map.clone().into_iter().collect());
            let doc = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
            let mut seen = Vec::new();
            for_each_member(doc.as_bytes(), |k, v| {
                let key: String = serde_json::from_slice(k.text).unwrap();
                let val: serde_json::Value = serde_json::from_slice(v.text).unwrap();
                seen.push((key, val));
            }).unwrap();
            // Compared after one text round trip on both sides: serde_json's float parsing is
            // not exact, and that is not what is under test.
            let reparse = |v: &serde_json::Value| serde_json::from_str::<serde_json::Value>(&v.to_string()).unwrap();
            let want: Vec<_> = map.iter().map(|(k, v)| (k.clone(), reparse(v))).collect();
            prop_assert_eq!(seen, want);
        }

        /// On arbitrary text, the scanner accepts exactly what serde_json accepts as an object.
        #[test]
        fn accepts_exactly_valid_objects(doc in "[ {}\\[\\]\":,a-z0-9.eE+\\-\\\\]{0,24}") {
            let ours = for_each_member(doc.as_bytes(), |_, _| {}).is_ok();
            let theirs = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&doc).is_ok();
            prop_assert_eq!(ours, theirs, "{:?}", doc);
        }
    }
}
