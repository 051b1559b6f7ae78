//! References inside strings: `{{ parameters.x }}`, `{{ parameters.time_range.start }}` and
//! `{{ tasks.<task>.outputs.<name> }}`.
//!
//! A string is parsed once, at validation, into a [`Template`] of text and references; it is
//! rendered at run time, when the parameters (the document's defaults overridden by the run's)
//! and the outputs of finished tasks are known. A string that is exactly one reference
//! renders to the referenced value itself, keeping its type (a mapping stays a mapping);
//! a reference among other text is spliced in as text (strings as they are, other values as
//! JSON).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value as Json;

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A parameter, and the keys (or list indices) inside its value: `parameters.a.b` is
    /// `["a", "b"]`.
    Parameter(Vec<String>),
    /// An output of another task.
    TaskOutput {
        /// The task that produces it.
        task: String,
        /// The output's name.
        output: String,
    },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Parameter(path) => write!(f, "{{{{ parameters.{} }}}}", path.join(".")),
            Reference::TaskOutput { task, output } => {
                write!(f, "{{{{ tasks.{task}.outputs.{output} }}}}")
            }
        }
    }
}

/// One piece of a parsed string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Ref(Reference),
}

/// A string of text and references.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    pub parts: Vec<Part>,
}

/// The syntax, for error messages.
pub(crate) const SYNTAX: &str =
    "{{ parameters.<name>[.<key>…] }} or {{ tasks.<task>.outputs.<output> }}";

impl Template {
    /// Parses `text`; the error says what is wrong with the first bad reference.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!("a reference opened with {{{{ is never closed; expected {SYNTAX}")
            })?;
            parts.push(Part::Ref(parse_reference(after[..close].trim())?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The references in the string.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    /// Whether the string holds no reference.
    pub fn is_literal(&self) -> bool {
        self.references().next().is_none()
    }

    /// The rendered value: the referenced value itself when the string is one reference and
    /// nothing else, the spliced text otherwise.
    pub fn render(&self, scope: &Scope<'_>) -> Result<Json, String> {
        if let [Part::Ref(r)] = self.parts.as_slice() {
            return scope.lookup(r);
        }
        self.render_text(scope).map(Json::String)
    }

    /// The rendered text.
    pub fn render_text(&self, scope: &Scope<'_>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(r) => out.push_str(&as_text(&scope.lookup(r)?)),
            }
        }
        Ok(out)
    }
}

/// A value as text: strings as they are, everything else as JSON.
pub(crate) fn as_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_reference(expr: &str) -> Result<Reference, String> {
    let bad = |why: &str| format!("{why} in {{{{ {expr} }}}}; expected {SYNTAX}");
    let segments: Vec<&str> = expr.split('.').map(str::trim).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(bad("an empty name"));
    }
    match segments.as_slice() {
        ["parameters", path @ ..] if !path.is_empty() => Ok(Reference::Parameter(
            path.iter().map(|s| s.to_string()).collect(),
        )),
        ["tasks", task, "outputs", output] => Ok(Reference::TaskOutput {
            task: task.to_string(),
            output: output.to_string(),
        }),
        ["tasks", ..] => Err(bad("a malformed task reference")),
        _ => Err(bad("an unknown reference")),
    }
}

/// What references resolve against at run time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub parameters: &'a serde_json::Map<String, Json>,
    pub outputs: &'a HashMap<String, BTreeMap<String, String>>,
}

impl Scope<'_> {
    pub fn lookup(&self, reference: &Reference) -> Result<Json, String> {
        match reference {
            Reference::Parameter(path) => {
                let mut value = self
                    .parameters
                    .get(&path[0])
                    .ok_or_else(|| format!("{reference}: no parameter {:?}", path[0]))?;
                for (depth, key) in path.iter().enumerate().skip(1) {
                    let next = match value {
                        Json::Object(map) => map.get(key),
                        Json::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    };
                    value = next.ok_or_else(|| {
                        format!(
                            "{reference}: parameters.{} has no {key:?}",
                            path[..depth].join(".")
                        )
                    })?;
                }
                Ok(value.clone())
            }
            Reference::TaskOutput { task, output } => self
                .outputs
                .get(task)
                .and_then(|outputs| outputs.get(output))
                .map(|v| Json::String(v.clone()))
                .ok_or_else(|| format!("{reference}: task {task:?} recorded no output {output:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_parse_and_render_keeping_types_when_alone() {
        let t =
            Template::parse("from {{ parameters.time_range.start }} to {{parameters.n}}").unwrap();
        assert_eq!(t.references().count(), 2);
        let params = json!({"time_range": {"start": "2024-01-01"}, "n": 3, "list": [1, 2]});
        let params = params.as_object().unwrap();
        let mut outputs = HashMap::new();
        outputs.insert(
            "a".to_string(),
            BTreeMap::from([("o".to_string(), "/x".to_string())]),
        );
        let scope = Scope {
            parameters: params,
            outputs: &outputs,
        };
        assert_eq!(t.render(&scope).unwrap(), json!("from 2024-01-01 to 3"));
        let whole = Template::parse("{{ parameters.time_range }}").unwrap();
        assert_eq!(
            whole.render(&scope).unwrap(),
            json!({"start": "2024-01-01"})
        );
        let item = Template::parse("{{ parameters.list.1 }}").unwrap();
        assert_eq!(item.render(&scope).unwrap(), json!(2));
        let out = Template::parse("{{ tasks.a.outputs.o }}/part").unwrap();
        assert_eq!(out.render(&scope).unwrap(), json!("/x/part"));
        assert!(
            Template::parse("{{ parameters.nope }}")
                .unwrap()
                .render(&scope)
                .is_err()
        );
        assert!(
            Template::parse("{{ parameters.n.x }}")
                .unwrap()
                .render(&scope)
                .is_err()
        );
        for bad in [
            "{{ parameters }}",
            "{{ foo.bar }}",
            "{{ tasks.a.o }}",
            "{{ x",
            "{{ parameters..a }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse("plain").unwrap().is_literal());
    }
}
