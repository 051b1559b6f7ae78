//! YAML documents from users (definitions, snapshot schemas, settings), read with bounds.
//!
//! The YAML parser's work grows with the square of the nesting depth, so a document of a
//! hundred thousand `[` took minutes to reject. Every document is checked in one linear pass
//! first: its size and how deep its flow collections (`[…]`, `{…}`) and indentation nest.

use serde::de::DeserializeOwned;

/// The largest document accepted.
pub const MAX_YAML_BYTES: usize = 16 << 20;

/// The deepest nesting accepted, of brackets and of indentation levels alike.
pub const MAX_YAML_DEPTH: usize = 64;

/// Parses `text` into `T` after checking its size and nesting. The error is a reason to wrap
/// in the caller's error (it names line and column where the parser gives them).
///
/// ```
/// use trainstore_core::yaml;
/// let v: Vec<u32> = yaml::parse("[1, 2]").unwrap();
/// assert_eq!(v, [1, 2]);
/// let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
/// assert!(yaml::parse::<serde_yaml_ng::Value>(&deep).unwrap_err().contains("nests deeper"));
/// ```
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    check_bounds(text)?;
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// Refuses a document too large or too deeply nested for the parser.
fn check_bounds(text: &str) -> Result<(), String> {
    if text.len() > MAX_YAML_BYTES {
        return Err(format!(
            "the document is {} bytes; at most {MAX_YAML_BYTES} are accepted",
            text.len()
        ));
    }
    let too_deep = |line: usize| {
        Err(format!(
            "nests deeper than {MAX_YAML_DEPTH} levels at line {line}"
        ))
    };
    // Brackets inside quotes or comments do not nest; an unbalanced one in a plain scalar
    // only counts towards the bound, which real documents are far from.
    let mut brackets = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches([' ', '-']);
        if brackets == 0 && !content.is_empty() && !content.starts_with('#') {
            let indent = line.len() - content.len();
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            if indents.len() > MAX_YAML_DEPTH {
                return too_deep(number + 1);
            }
        }
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    brackets += 1;
                    if brackets > MAX_YAML_DEPTH {
                        return too_deep(number + 1);
                    }
                }
                (None, ']' | '}') => brackets = brackets.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_documents_are_refused_before_parsing_and_ordinary_ones_pass() {
        let flow = |n: usize| format!("a: {}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check_bounds(&flow(MAX_YAML_DEPTH)).is_ok());
        assert!(
            check_bounds(&flow(MAX_YAML_DEPTH + 1))
                .unwrap_err()
                .contains("line 1")
        );
        let block = |n: usize| {
            (0..n)
                .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
                .collect::<String>()
        };
        assert!(check_bounds(&block(MAX_YAML_DEPTH)).is_ok());
        assert!(
            check_bounds(&block(MAX_YAML_DEPTH + 1))
                .unwrap_err()
                .contains("line 65")
        );
        let ordinary =
            "a:\n  - {b: '[[[[', c: \"{{{{\"}  # [[[[ [[[[ [[[[ [[[[\n  - x\nd: [1, [2, 3]]\n";
        let parsed: serde_yaml_ng::Value = parse(ordinary).unwrap();
        assert_eq!(parsed["d"][1][0].as_u64(), Some(2));
        let huge = "a".repeat(MAX_YAML_BYTES + 1);
        assert!(check_bounds(&huge).unwrap_err().contains("bytes"));
    }
}
