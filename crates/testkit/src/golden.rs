//! Golden files: the bytes a persisted format is written as, kept in the repository so that a
//! change to a format is deliberate.
//!
//! A test writes with the real code into a temporary directory, then
//! [`assert_matches_golden`] compares what it wrote, file by file, with the tree committed
//! under `tests/golden/`; the same test then reads the committed tree back with the real code,
//! so data written by an earlier trainstore stays readable. What changes from run to run (the
//! times written, random file-name prefixes, the temporary directory, the library version) is
//! replaced by fixed text first ([`Normalize`]).
//!
//! When a format changes on purpose, bump its version number, add the refusal or migration
//! for the old one, and rewrite the golden files with `TRAINSTORE_BLESS=1 cargo test`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How written files are made comparable across runs.
#[derive(Debug, Clone, Default)]
pub struct Normalize {
    /// JSON keys whose numbers are times (or ages, measured from now): written as `0`.
    pub time_keys: Vec<&'static str>,
    /// Literal text replaced everywhere (paths and text contents), in order.
    pub replace: Vec<(String, String)>,
}

impl Normalize {
    /// `text` with the times, the listed literals, 32-hex-digit random name prefixes
    /// (`<32 hex>-name`) and audit event names (`<24 digits>-<16 hex>`) replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (from, to) in &self.replace {
            out = out.replace(from.as_str(), to);
        }
        for key in &self.time_keys {
            out = zero_integer_values(&out, key);
        }
        zero_random_prefixes(&out)
    }
}

/// `"key": 123` (or `"key":1.5e3`) → `"key": 0` / `"key":0`.
fn zero_integer_values(text: &str, key: &str) -> String {
    let quoted = format!("\"{key}\":");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&quoted) {
        let after_key = at + quoted.len();
        out.push_str(&rest[..after_key]);
        rest = &rest[after_key..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        out.push_str(&rest[..spaces]);
        rest = &rest[spaces..];
        let digits = rest
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+') || (*i == 0 && *c == '-')
            })
            .count();
        if digits > 0 {
            out.push('0');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

fn zero_random_prefixes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let hex_after = |at: usize, n: usize| {
            bytes.get(at..at + n).is_some_and(|b| {
                b.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            })
        };
        // An audit event's name: its time in nanoseconds (24 digits), a dash, 16 random hex.
        if run == 24 && starts_word && bytes.get(i + 24) == Some(&b'-') && hex_after(i + 25, 16) {
            out.push_str(&format!("{}-{}", "0".repeat(24), "0".repeat(16)));
            i += 41;
        } else if run == 32 && starts_word && bytes.get(i + 32) == Some(&b'-') {
            out.push_str(&"0".repeat(32));
            i += 32;
        } else if run > 0 {
            out.push_str(&text[i..i + run]);
            i += run;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Every file under `root` whose relative path `keep` accepts, path → bytes, with paths and
/// text files (JSON, plain text) normalized.
pub fn read_tree(
    root: &Path,
    normalize: &Normalize,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if !keep(&relative) {
                continue;
            }
            let bytes = std::fs::read(&path).expect("readable file");
            let bytes = match String::from_utf8(bytes) {
                Ok(text) if is_text(&relative) => normalize.apply(&text).into_bytes(),
                Ok(text) => text.into_bytes(),
                Err(e) => e.into_bytes(),
            };
            files.insert(normalize.apply(&relative), bytes);
        }
    }
    files
}

fn is_text(path: &str) -> bool {
    path.ends_with(".json") || path.ends_with("_latest") || path.ends_with(".txt")
}

/// Fails unless `written` equals the tree under `golden`, naming the first file that differs
/// and saying what to do; with `TRAINSTORE_BLESS=1`, rewrites `golden` instead.
pub fn assert_matches_golden(written: &BTreeMap<String, Vec<u8>>, golden: &Path) {
    if std::env::var_os("TRAINSTORE_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(golden);
        copy_into(written, golden);
        return;
    }
    let pinned = read_tree(golden, &Normalize::default(), |_| true);
    let advice = "a persisted format changed: if on purpose, bump its version, add a refusal or \
                  migration for the old one, and rewrite the golden files with \
                  TRAINSTORE_BLESS=1 cargo test";
    let written_paths: Vec<&String> = written.keys().collect();
    let pinned_paths: Vec<&String> = pinned.keys().collect();
    assert_eq!(
        written_paths,
        pinned_paths,
        "the files written differ from {}: {advice}",
        golden.display()
    );
    for (path, bytes) in written {
        let expected = &pinned[path];
        if bytes != expected {
            let detail = match (std::str::from_utf8(bytes), std::str::from_utf8(expected)) {
                (Ok(w), Ok(g)) => {
                    let (line, (w, g)) = w
                        .lines()
                        .chain(std::iter::repeat(""))
                        .zip(g.lines().chain(std::iter::repeat("")))
                        .enumerate()
                        .find(|(_, (w, g))| w != g)
                        .expect("texts that differ differ in a line");
                    format!("line {}:\n  written: {w}\n  golden:  {g}", line + 1)
                }
                _ => format!("{} bytes written, {} pinned", bytes.len(), expected.len()),
            };
            panic!(
                "{path} differs from {} at {detail}\n{advice}",
                golden.join(path).display()
            );
        }
    }
}

/// Writes `files` (relative path → bytes) under `root`.
pub fn copy_into(files: &BTreeMap<String, Vec<u8>>, root: &Path) {
    for (relative, bytes) in files {
        let path: PathBuf = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write golden file");
    }
}

/// The golden tree `name` of the crate whose tests call this (`<crate>/tests/golden/<name>`).
pub fn golden_dir(manifest_dir: &str, name: &str) -> PathBuf {
    Path::new(manifest_dir)
        .join("tests")
        .join("golden")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_random_prefixes_and_literals_are_fixed_and_nothing_else() {
        let n = Normalize {
            time_keys: vec!["created_at"],
            replace: vec![("/tmp/xyz".into(), "<root>".into())],
        };
        let text = format!(
            "{{\"created_at\": 1733443200000, \"n\": 5, \"created_at\":-3.5e2,\n\"path\": \"/tmp/xyz/data/{}-part.parquet\", \"sha256\": \"{}\"}}",
            "0123456789abcdef0123456789abcdef",
            "ab".repeat(32)
        );
        assert_eq!(
            n.apply(&text),
            format!(
                "{{\"created_at\": 0, \"n\": 5, \"created_at\":0,\n\"path\": \"<root>/data/{}-part.parquet\", \"sha256\": \"{}\"}}",
                "0".repeat(32),
                "ab".repeat(32)
            )
        );
    }
}
