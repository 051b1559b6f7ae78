//! A task's `when`: whether it runs, decided when its upstream tasks have finished.
//!
//! Three forms, kept small on purpose (anything richer belongs in a task):
//! - a boolean: `when: false`;
//! - one reference, which must render to a boolean (`true`/`false`, also as text), a number
//!   (non-zero is true) or null (false): `when: "{{ parameters.retrain }}"`;
//! - a comparison of two sides with `==` or `!=`, each side text with references; the sides
//!   are compared as rendered text, and quotes around a whole side are dropped:
//!   `when: "{{ parameters.mode }} == 'incremental'"`.

use serde_json::Value as Json;

use crate::refs::{Reference, Scope, Template};

/// A parsed `when`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    Constant(bool),
    Truthy(Template),
    Compare {
        left: Template,
        equal: bool,
        right: Template,
    },
}

/// The forms, for error messages.
pub(crate) const FORMS: &str =
    "true, false, \"{{ parameters.<name> }}\" or \"<a> == <b>\" / \"<a> != <b>\"";

impl Condition {
    /// Parses the text of a `when`.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let trimmed = text.trim();
        match trimmed {
            "true" => return Ok(Condition::Constant(true)),
            "false" => return Ok(Condition::Constant(false)),
            _ => {}
        }
        if let Some((at, equal)) = find_operator(trimmed) {
            let left = side(&trimmed[..at])?;
            let right = side(&trimmed[at + 2..])?;
            return Ok(Condition::Compare { left, equal, right });
        }
        let template = Template::parse(trimmed)?;
        if template.is_literal() {
            return Err(format!(
                "{trimmed:?} is neither a reference nor a comparison; expected {FORMS}"
            ));
        }
        Ok(Condition::Truthy(template))
    }

    /// The references it reads.
    pub fn references(&self) -> Vec<&Reference> {
        match self {
            Condition::Constant(_) => Vec::new(),
            Condition::Truthy(t) => t.references().collect(),
            Condition::Compare { left, right, .. } => {
                left.references().chain(right.references()).collect()
            }
        }
    }

    /// Whether the task runs.
    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<bool, String> {
        match self {
            Condition::Constant(b) => Ok(*b),
            Condition::Truthy(t) => match t.render(scope)? {
                Json::Bool(b) => Ok(b),
                Json::Null => Ok(false),
                Json::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
                Json::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
                Json::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
                other => Err(format!(
                    "`when` rendered to {other}, which is not a boolean; expected true or false"
                )),
            },
            Condition::Compare { left, equal, right } => {
                let l = left.render_text(scope)?;
                let r = right.render_text(scope)?;
                Ok((l.trim() == r.trim()) == *equal)
            }
        }
    }
}

/// The byte offset of the first `==` or `!=` outside a reference, and whether it is `==`.
fn find_operator(text: &str) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    let mut inside = false;
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'{', b'{') if !inside => inside = true,
            (b'}', b'}') if inside => inside = false,
            (b'=', b'=') if !inside => return Some((i, true)),
            (b'!', b'=') if !inside => return Some((i, false)),
            _ => {}
        }
        i += 1;
    }
    None
}

fn side(text: &str) -> Result<Template, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("a comparison with an empty side; expected {FORMS}"));
    }
    let unquoted = ['\'', '"']
        .iter()
        .find_map(|q| t.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
        .unwrap_or(t);
    Template::parse(unquoted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn conditions_compare_rendered_text_and_read_booleans() {
        let params = json!({"mode": "incremental", "flag": false, "n": 2});
        let outputs = HashMap::new();
        let scope = Scope {
            parameters: params.as_object().unwrap(),
            outputs: &outputs,
        };
        let eval = |t: &str| Condition::parse(t).unwrap().evaluate(&scope).unwrap();
        assert!(eval("{{ parameters.mode }} == 'incremental'"));
        assert!(eval("{{ parameters.mode }} != full"));
        assert!(!eval("{{ parameters.flag }}"));
        assert!(eval("{{ parameters.n }}"));
        assert!(eval("{{ parameters.n }} == 2"));
        assert!(!eval("false"));
        assert!(Condition::parse("maybe").is_err());
        assert!(Condition::parse("== x").is_err());
        assert!(
            Condition::parse("{{ parameters.mode }}")
                .unwrap()
                .evaluate(&scope)
                .is_err()
        );
    }
}
