//! A validating scanner for the top level of a JSON object, without building a tree.
//!
//! Snapshot documents are flat objects whose bulk is long strings (comma-separated arrays).
//! The scanner hands out each member's key and the raw text of its value, validating
//! everything (strings, numbers, literals, nested values) as it goes, so the parser only
//! converts the values it needs. A document is accepted exactly when it is one valid JSON
//! object (RFC 8259), as `serde_json` would accept it.
//!
//! [`Members::float_list`] reads a string of numbers straight into floats as it validates it;
//! other strings are searched eight bytes at a time for the bytes that end or interrupt them
//! (`"`, `\\`, control characters).

use crate::floats::quoted_list;

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
    pub text: &'a str,
}

impl<'a> Raw<'a> {
    /// A string's content between the quotes, still escaped if `escaped`.
    pub fn string_content(&self) -> &'a str {
        &self.text[1..self.text.len() - 1]
    }

    /// A string's content with its escapes resolved, written over `out`; `None` for a `\u`
    /// escape that is half of a surrogate pair without its other half, which `serde_json`
    /// refuses too, and for any escape the scanner would have refused.
    pub fn unescape_into(&self, out: &mut String) -> Option<()> {
        out.clear();
        let mut rest = self.string_content();
        // Escaped strings are short, with escapes close together: a byte search does.
        while let Some(at) = rest.bytes().position(|b| b == b'\\') {
            out.push_str(&rest[..at]);
            let escape = *rest.as_bytes().get(at + 1).filter(|b| b.is_ascii())?;
            rest = &rest[at + 2..];
            out.push(match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let high = hex4(rest)?;
                    rest = &rest[4..];
                    if (0xD800..0xDC00).contains(&high) {
                        let low = hex4(rest.strip_prefix("\\u")?)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        rest = &rest[6..];
                        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                    } else {
                        // A lone low surrogate is no `char`.
                        char::from_u32(high)?
                    }
                }
                _ => return None,
            });
        }
        out.push_str(rest);
        Some(())
    }
}

/// Why a document was rejected.
pub(crate) type ScanError = &'static str;

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    /// The text from `start` to the cursor; both sit next to ASCII delimiters.
    #[inline]
    fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

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
    fn string(&mut self) -> Result<(&'a str, bool), ScanError> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            let Some(at) = string_stop(&self.bytes[self.pos..]) else {
                return Err("unterminated string");
            };
            self.pos += at;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok((self.since(start), escaped));
                }
                b'\\' => {}
                _ => return Err("control character in string"),
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
        let start = self.pos;
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
        let exponent = matches!(self.peek(), Some(b'e' | b'E'));
        if exponent {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err("bad number");
            }
        }
        // Like serde_json: a number must fit an f64 (only an exponent or some 300 digits can
        // leave its range, so only those are converted to check).
        if (exponent || self.pos - start > 300)
            && !self.since(start).parse::<f64>().is_ok_and(f64::is_finite)
        {
            return Err("number out of range");
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
            text: self.since(start),
        })
    }
}

/// The index of the first byte in `bytes` that ends or interrupts a JSON string body: `"`,
/// `\\`, or a control character (not allowed raw in JSON strings).
#[inline]
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of `w` that is below `n` (n <= 0x80); bits above the first
    // such byte may be spurious, the first one never is.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let hits = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if hits != 0 {
            return Some(i * 8 + hits.trailing_zeros() as usize / 8);
        }
    }
    let done = bytes.len() - chunks.remainder().len();
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| done + at)
}

/// A key whose JSON token is its text in quotes (no quote, backslash or control character),
/// so that finding the token in a document finds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlainKey {
    quoted: Box<[u8]>,
    /// The token's first 16 bytes as a little-endian word, and the mask of its bytes there.
    head: u128,
    head_mask: u128,
}

impl PlainKey {
    /// `None` for a key that JSON would have to escape.
    pub fn new(key: &str) -> Option<Self> {
        if !key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            return None;
        }
        let quoted = format!("\"{key}\"").into_bytes();
        let mut head = [0u8; 16];
        let n = quoted.len().min(16);
        head[..n].copy_from_slice(&quoted[..n]);
        Some(PlainKey {
            head: u128::from_le_bytes(head),
            head_mask: u128::MAX.checked_shr(128 - 8 * n as u32).unwrap_or(0),
            quoted: quoted.into(),
        })
    }

    /// Whether `bytes` start with the key's token. Most keys fit one 16-byte comparison.
    #[inline]
    fn starts(&self, bytes: &[u8]) -> bool {
        match bytes.first_chunk::<16>() {
            Some(first) if self.quoted.len() <= 16 => {
                u128::from_le_bytes(*first) & self.head_mask == self.head
            }
            _ => bytes.starts_with(&self.quoted),
        }
    }
}

/// The members of one JSON object, read in order: a key, then its value (by [`value`] or
/// [`float_list`]), then the next key. The whole document has been validated once
/// [`next_key`] returns `None`.
///
/// [`value`]: Members::value
/// [`float_list`]: Members::float_list
/// [`next_key`]: Members::next_key
pub(crate) struct Members<'a> {
    c: Cursor<'a>,
    /// Whether a member has been read, so that the next one must follow a comma.
    started: bool,
}

impl<'a> Members<'a> {
    pub fn new(doc: &'a str) -> Result<Self, ScanError> {
        let mut c = Cursor::new(doc);
        c.skip_ws();
        c.expect(b'{', "not a JSON object")?;
        Ok(Members { c, started: false })
    }

    /// The next member's key (the raw token with its quotes), or `None` once the object has
    /// closed with nothing but whitespace after it. When the key is `expected`, as it mostly
    /// is in documents that repeat one key order, it is taken by one comparison.
    pub fn next_key(&mut self, expected: Option<&PlainKey>) -> Result<Option<Raw<'a>>, ScanError> {
        let c = &mut self.c;
        c.skip_ws();
        let more = if self.started {
            let comma = c.peek() == Some(b',');
            c.pos += usize::from(comma);
            comma
        } else {
            c.peek() != Some(b'}')
        };
        if !more {
            c.expect(b'}', "expected ',' or '}'")?;
            c.skip_ws();
            if c.pos != c.bytes.len() {
                return Err("trailing characters after the object");
            }
            return Ok(None);
        }
        self.started = true;
        c.skip_ws();
        if c.peek() != Some(b'"') {
            return Err("expected a key");
        }
        let (key, escaped) = match expected.filter(|k| k.starts(&c.bytes[c.pos..])) {
            Some(k) => {
                // The same token `string` would read: the content holds no quote or escape.
                let start = c.pos;
                c.pos += k.quoted.len();
                (c.since(start), false)
            }
            None => c.string()?,
        };
        c.skip_ws();
        c.expect(b':', "expected ':'")?;
        c.skip_ws();
        Ok(Some(Raw {
            kind: Kind::String { escaped },
            text: key,
        }))
    }

    /// The value of the member whose key was read last.
    pub fn value(&mut self) -> Result<Raw<'a>, ScanError> {
        self.c.value(1)
    }

    /// Reads the value of the member whose key was read last straight into `out` when it is a
    /// string of comma-separated short decimals (`"1.5,-2,0.25"`), in one pass; otherwise
    /// leaves `out` and the position as they were and returns false, for [`Members::value`].
    pub fn float_list(&mut self, out: &mut Vec<f32>) -> bool {
        if self.c.peek() != Some(b'"') {
            return false;
        }
        match quoted_list(&self.c.bytes[self.c.pos + 1..], out) {
            Some(used) => {
                self.c.pos += 1 + used;
                true
            }
            None => false,
        }
    }
}

/// The four hex digits that start `text`, as a number.
fn hex4(text: &str) -> Option<u32> {
    let digits = text.as_bytes().get(..4)?;
    digits
        .iter()
        .try_fold(0, |n, &b| Some(n << 4 | char::from(b).to_digit(16)?))
}

/// Whether `text` is exactly one JSON value (whitespace around it allowed).
pub(crate) fn is_json(text: &str) -> bool {
    let mut c = Cursor::new(text);
    c.skip_ws();
    let valid = c.value(1).is_ok();
    c.skip_ws();
    valid && c.pos == text.len()
}

/// Calls `member(key, value)` for each member of the JSON object `doc`, in order. `key` is the
/// raw key token with its quotes. Fails unless `doc` is exactly one valid JSON object; members
/// seen before a failure have already been reported.
pub(crate) fn for_each_member<'a>(
    doc: &'a str,
    mut member: impl FnMut(Raw<'a>, Raw<'a>),
) -> Result<(), ScanError> {
    let mut members = Members::new(doc)?;
    while let Some(key) = members.next_key(None)? {
        member(key, members.value()?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn members(doc: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        for_each_member(doc, |k, v| out.push((k.text.to_owned(), v.text.to_owned())))?;
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
    fn keys_that_json_escapes_are_not_plain() {
        for key in ["a\"b", "a\\b", "a\nb", "\u{1}"] {
            assert_eq!(PlainKey::new(key), None, "{key:?}");
        }
        assert!(PlainKey::new("peakPowers \u{e9}").is_some());
    }

    #[test]
    fn unescaping_refuses_what_the_scanner_refuses_without_a_panic() {
        for bad in ["\"\\\u{e9}\"", "\"\\x\"", "\"\\u12\"", "\"\\\""] {
            let raw = Raw {
                kind: Kind::String { escaped: true },
                text: bad,
            };
            assert_eq!(raw.unescape_into(&mut String::new()), None, "{bad}");
        }
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
            "{\"a\":1e999}",
            "{\"a\":[-1E+400]}",
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
        /// The word-at-a-time search finds the same first stop byte as a plain loop, at every
        /// alignment and with stops anywhere (including several in one word).
        #[test]
        fn string_stop_finds_the_first_stop_byte(
            bytes in prop::collection::vec(prop_oneof![
                4 => 0x20u8..=0xff,
                1 => Just(b'"'),
                1 => Just(b'\\'),
                1 => 0u8..0x20,
            ], 0..40),
            skip in 0usize..8,
        ) {
            let bytes = &bytes[skip.min(bytes.len())..];
            let plain = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_stop(bytes), plain);
        }

        /// Every valid object scans to members whose values parse back to the same JSON.
        #[test]
        fn agrees_with_serde_json_on_valid_objects(
            map in prop::collection::btree_map("\\PC{0,8}", json_value(), 0..6),
            pretty in any::<bool>(),
        ) {
            let value = serde_json::Value::Object(map.clone().into_iter().collect());
            let doc = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
            let mut seen = Vec::new();
            for_each_member(&doc, |k, v| {
                let key: String = serde_json::from_str(k.text).unwrap();
                let val: serde_json::Value = serde_json::from_str(v.text).unwrap();
                seen.push((key, val));
            }).unwrap();
            // Compared after one text round trip on both sides: serde_json's float parsing is
            // not exact, and that is not what is under test.
            let reparse = |v: &serde_json::Value| serde_json::from_str::<serde_json::Value>(&v.to_string()).unwrap();
            let want: Vec<_> = map.iter().map(|(k, v)| (k.clone(), reparse(v))).collect();
            prop_assert_eq!(seen, want);
        }

        #[test]
        fn an_expected_key_is_read_as_the_scan_reads_it(
            keys in proptest::collection::vec(prop_oneof![
                Just("\"a\""), Just("\"ab\""), Just("\"\""), Just("\"a\\u0062\""),
                Just("\"a\\\"\""), Just("\"a"), Just("a"), Just("\"\\a\""),
                // Past the 16 bytes of one comparison.
                Just("\"abababababababababab\""), Just("\"ababababababababX\""),
            ], 0..5),
            expected in prop_oneof![Just("a"), Just("ab"), Just(""), Just("abababababababababab")],
            cut in 0usize..40,
        ) {
            let body: Vec<String> = keys.iter().map(|k| format!("{k}:1")).collect();
            let doc = format!("{{{}}}", body.join(","));
            let doc = &doc[..doc.len().saturating_sub(cut % 4)];
            let read = |expected: Option<&PlainKey>| -> Result<Vec<(Raw<'_>, Raw<'_>)>, ScanError> {
                let mut members = Members::new(doc)?;
                let mut out = Vec::new();
                while let Some(key) = members.next_key(expected)? {
                    out.push((key, members.value()?));
                }
                Ok(out)
            };
            let key = PlainKey::new(expected).unwrap();
            prop_assert_eq!(read(Some(&key)), read(None), "{}", doc);
        }

        #[test]
        fn unescapes_strings_as_serde_json_does(
            parts in proptest::collection::vec(prop_oneof![
                "[a-z \u{e9}\u{1F600}]{0,4}",
                Just("\\\"".to_owned()), Just("\\\\".to_owned()), Just("\\/".to_owned()),
                Just("\\b".to_owned()), Just("\\f".to_owned()), Just("\\n".to_owned()),
                Just("\\r".to_owned()), Just("\\t".to_owned()),
                // Any code unit, surrogates (paired, lone, reversed) included.
                prop_oneof![0u32..0x80, 0xD7F0u32..0xE010, 0xFFF0u32..0x10000]
                    .prop_map(|u| format!("\\u{u:04x}")),
                Just("\\uD83D\\uDE00".to_owned()),
            ], 0..8)
        ) {
            let token = format!("\"{}\"", parts.concat());
            let mut c = Cursor::new(&token);
            let raw = c.value(1).unwrap();
            let mut ours = String::from("left over");
            let ours = raw.unescape_into(&mut ours).map(|()| ours);
            prop_assert_eq!(ours, serde_json::from_str::<String>(&token).ok(), "{}", token);
        }

        /// Any JSON text is recognised as JSON exactly when serde_json reads it as a value.
        #[test]
        fn is_json_agrees_with_serde_json(text in "[ {}\\[\\]\":,a-z0-9.eE+\\-\\\\]{0,24}") {
            prop_assert_eq!(is_json(&text), serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{:?}", text);
        }

        /// On arbitrary text, the scanner accepts exactly what serde_json accepts as an object.
        #[test]
        fn accepts_exactly_valid_objects(doc in "[ {}\\[\\]\":,a-z0-9.eE+\\-\\\\]{0,24}") {
            let ours = for_each_member(&doc, |_, _| {}).is_ok();
            let theirs = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&doc).is_ok();
            prop_assert_eq!(ours, theirs, "{:?}", doc);
        }
    }
}
