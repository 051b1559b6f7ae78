//! From the line-marked tree to the document's types, checking each value where it stands:
//! types, ranges, quantities, durations, names, unknown keys. A bad value is reported and
//! read as absent, so reading goes on and every problem is found in one pass. Checks that
//! need the whole document (names across tasks, references, cycles) are in `validate.rs`.
//!
//! Every node read leaves its path and line in a [`Lines`] table, the locator the later
//! checks use to say where a problem is.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use crate::condition::Condition;
use crate::document::{
    Dependency, Input, MAX_RETRIES, Metadata, Output, Resources, Source, Task, keys,
};
use crate::node::{Key, Node, Value};
use crate::quantity::{Unit, parse_duration, parse_quantity};
use crate::refs::{Reference, Template};
use crate::report::{IssueKind, Report};

/// Path → line of every node read.
#[derive(Debug, Default)]
pub(crate) struct Lines(HashMap<String, usize>);

impl Lines {
    /// The line of `path`, or of the nearest enclosing path that has one.
    pub fn of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(&line) = self.0.get(p) {
                return line;
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return 0,
            }
        }
    }
}

/// What reading produced: the parts of the document that read well.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub metadata: Metadata,
    pub tasks: Vec<Task>,
    pub dependencies: Vec<(usize, Dependency)>,
    pub parameters: serde_json::Map<String, Json>,
    /// Every reference in a string of a task: (task index, path of the string, reference).
    pub references: Vec<(usize, String, Reference)>,
}

pub(crate) struct Reader<'r> {
    pub report: &'r mut Report,
    pub lines: Lines,
}

impl Reader<'_> {
    fn issue(&mut self, kind: IssueKind, path: &str, line: usize, message: impl Into<String>) {
        self.report.push(kind, path, line, message);
    }

    fn wrong_type(&mut self, path: &str, node: &Node, expected: &str) {
        self.issue(
            IssueKind::BadValue,
            path,
            node.line,
            format!("expected {expected}, found {}", node.value.kind()),
        );
    }

    /// The entries of a mapping in `section`, unknown and repeated keys reported.
    fn mapping<'n>(&mut self, node: &'n Node, path: &str, section: &str) -> Option<Fields<'n>> {
        self.lines.0.insert(path.to_string(), node.line);
        let Value::Map(entries) = &node.value else {
            self.wrong_type(
                path,
                node,
                &format!("a mapping of {}", keys(section).join(", ")),
            );
            return None;
        };
        let allowed = keys(section);
        let mut fields = Fields::default();
        for (key, value) in entries {
            let here = join(path, &key.name);
            if !allowed.contains(&key.name.as_str()) {
                let hint = did_you_mean(&key.name, allowed.iter().copied())
                    .map(|k| format!(" (did you mean {k:?}?)"))
                    .unwrap_or_default();
                self.issue(
                    IssueKind::UnknownKey,
                    &here,
                    key.line,
                    format!(
                        "unknown key {:?}{hint}; expected one of: {}",
                        key.name,
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if fields
                .0
                .insert(key.name.clone(), (key.clone(), value))
                .is_some()
            {
                self.issue(
                    IssueKind::Duplicate,
                    &here,
                    key.line,
                    format!("key {:?} appears twice", key.name),
                );
            }
            self.lines.0.insert(here, value.line);
        }
        Some(fields)
    }

    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        path: &str,
        line: usize,
        key: &str,
    ) -> Option<&'n Node> {
        let found = fields.get(key);
        if found.is_none() {
            self.issue(
                IssueKind::MissingKey,
                &join(path, key),
                line,
                format!("missing required key {key:?}"),
            );
        }
        found
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(path, node, "a string");
                None
            }
        }
    }

    /// A string, a number written as its text (`version: 1.0` is "1.0").
    fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) if f.is_finite() => Some(f.to_string()),
            _ => {
                self.wrong_type(path, node, "a string");
                None
            }
        }
    }

    fn name(&mut self, node: &Node, path: &str, max: usize) -> Option<String> {
        let name = self.string(node, path)?;
        let ok = !name.is_empty()
            && name.len() <= max
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            self.issue(
                IssueKind::BadValue,
                path,
                node.line,
                format!(
                    "{name:?} is not a valid name: expected 1 to {max} letters, digits, '-' or \
                     '_', starting with a letter, digit or '_'"
                ),
            );
            return None;
        }
        Some(name)
    }

    fn string_map(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        self.lines.0.insert(path.to_string(), node.line);
        let Value::Map(entries) = &node.value else {
            self.wrong_type(path, node, "a mapping of strings");
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (key, value) in entries {
            if let Some(v) = self.text(value, &join(path, &key.name)) {
                out.insert(key.name.clone(), v);
            }
        }
        out
    }

    fn list<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> &'n [Node] {
        self.lines.0.insert(path.to_string(), node.line);
        match &node.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.lines.0.insert(format!("{path}[{i}]"), item.line);
                }
                items
            }
            Value::Null => &[],
            _ => {
                self.wrong_type(path, node, &format!("a list of {what}"));
                &[]
            }
        }
    }

    fn integer(&mut self, node: &Node, path: &str, min: i64, max: i64, what: &str) -> Option<i64> {
        let expected = format!("{what}: a whole number from {min} to {max}");
        match &node.value {
            Value::Int(i) if (min..=max).contains(i) => Some(*i),
            Value::Int(_) => {
                self.issue(
                    IssueKind::BadValue,
                    path,
                    node.line,
                    format!("out of range; expected {expected}"),
                );
                None
            }
            Value::Float(f) if f.is_infinite() => {
                self.issue(
                    IssueKind::BadValue,
                    path,
                    node.line,
                    format!("too large; expected {expected}"),
                );
                None
            }
            _ => {
                self.wrong_type(path, node, &expected);
                None
            }
        }
    }

    fn quantity(&mut self, node: &Node, path: &str, unit: Unit) -> Option<u64> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => format!("{f}"),
            _ => {
                self.issue(
                    IssueKind::BadQuantity,
                    path,
                    node.line,
                    format!(
                        "expected a quantity (a string such as \"2\", \"500m\" or \"4Gi\", or a \
                         number), found {}",
                        node.value.kind()
                    ),
                );
                return None;
            }
        };
        match parse_quantity(&text, unit) {
            Ok(v) => Some(v),
            Err(message) => {
                self.issue(
                    IssueKind::BadQuantity,
                    path,
                    node.line,
                    format!("bad quantity: {message}"),
                );
                None
            }
        }
    }

    /// A string that may hold references: parsed, its references recorded.
    fn template(
        &mut self,
        text: &str,
        path: &str,
        line: usize,
        task: usize,
        refs: &mut Vec<(usize, String, Reference)>,
    ) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                refs.extend(t.references().map(|r| (task, path.to_string(), r.clone())));
                Some(t)
            }
            Err(message) => {
                self.issue(IssueKind::BadReference, path, line, message);
                None
            }
        }
    }

    /// A free-form value; its strings' references are checked and recorded.
    fn free_form(
        &mut self,
        node: &Node,
        path: &str,
        task: usize,
        refs: &mut Vec<(usize, String, Reference)>,
    ) {
        self.lines.0.insert(path.to_string(), node.line);
        match &node.value {
            Value::Str(s) => {
                self.template(s, path, node.line, task, refs);
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.free_form(item, &format!("{path}[{i}]"), task, refs);
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    self.free_form(value, &join(path, &key.name), task, refs);
                }
            }
            _ => {}
        }
    }

    pub fn document(&mut self, root: &Node) -> Read {
        let mut read = Read::default();
        let Some(top) = self.mapping(root, "", "pipeline") else {
            return read;
        };
        let line = root.line;
        if let Some(node) = self.required(&top, "", line, "apiVersion")
            && let Some(v) = self.string(node, "apiVersion")
            && v != crate::document::API_VERSION
        {
            self.issue(
                IssueKind::WrongVersion,
                "apiVersion",
                node.line,
                format!(
                    "apiVersion {v:?} is not understood; expected {:?}",
                    crate::document::API_VERSION
                ),
            );
        }
        if let Some(node) = self.required(&top, "", line, "kind")
            && let Some(v) = self.string(node, "kind")
            && v != crate::document::KIND
        {
            self.issue(
                IssueKind::WrongVersion,
                "kind",
                node.line,
                format!(
                    "kind {v:?} is not a pipeline; expected {:?}",
                    crate::document::KIND
                ),
            );
        }
        if let Some(node) = self.required(&top, "", line, "metadata") {
            read.metadata = self.metadata(node);
        }
        let Some(spec_node) = self.required(&top, "", line, "spec") else {
            return read;
        };
        let Some(spec) = self.mapping(spec_node, "spec", "spec") else {
            return read;
        };
        if let Some(node) = spec.get("parameters") {
            self.lines.0.insert("spec.parameters".into(), node.line);
            match &node.value {
                Value::Map(entries) => {
                    for (key, value) in entries {
                        self.lines
                            .0
                            .insert(join("spec.parameters", &key.name), key.line);
                        read.parameters.insert(key.name.clone(), value.to_json());
                    }
                }
                Value::Null => {}
                _ => self.wrong_type(
                    "spec.parameters",
                    node,
                    "a mapping of parameter names to default values",
                ),
            }
        }
        if let Some(node) = self.required(&spec, "spec", spec_node.line, "tasks") {
            let items = self.list(node, "spec.tasks", "tasks");
            if items.is_empty() && matches!(node.value, Value::Seq(_) | Value::Null) {
                self.issue(
                    IssueKind::BadValue,
                    "spec.tasks",
                    node.line,
                    "no tasks; expected at least one",
                );
            }
            for (i, item) in items.iter().enumerate() {
                let path = format!("spec.tasks[{i}]");
                let index = read.tasks.len();
                if let Some(task) = self.task(item, &path, index, &mut read.references) {
                    read.tasks.push(task);
                } else {
                    // Keep indices aligned with the document: a task that did not read at
                    // all is a placeholder no check will match.
                    read.tasks.push(placeholder());
                }
            }
        }
        if let Some(node) = spec.get("dependencies") {
            for (i, item) in self
                .list(node, "spec.dependencies", "{from, to}")
                .iter()
                .enumerate()
            {
                let path = format!("spec.dependencies[{i}]");
                let Some(fields) = self.mapping(item, &path, "dependency") else {
                    continue;
                };
                let from = self
                    .required(&fields, &path, item.line, "from")
                    .and_then(|n| self.string(n, &format!("{path}.from")));
                let to = self
                    .required(&fields, &path, item.line, "to")
                    .and_then(|n| self.string(n, &format!("{path}.to")));
                if let (Some(from), Some(to)) = (from, to) {
                    read.dependencies.push((i, Dependency { from, to }));
                }
            }
        }
        read
    }

    fn metadata(&mut self, node: &Node) -> Metadata {
        let mut metadata = Metadata::default();
        let Some(fields) = self.mapping(node, "metadata", "metadata") else {
            return metadata;
        };
        if let Some(n) = self.required(&fields, "metadata", node.line, "name") {
            metadata.name = self.name(n, "metadata.name", 253).unwrap_or_default();
        }
        if let Some(n) = fields.get("version") {
            metadata.version = self.text(n, "metadata.version");
        }
        if let Some(n) = fields.get("description") {
            metadata.description = self.string(n, "metadata.description");
        }
        if let Some(n) = fields.get("labels") {
            metadata.labels = self.string_map(n, "metadata.labels");
        }
        if let Some(n) = fields.get("annotations") {
            metadata.annotations = self.string_map(n, "metadata.annotations");
        }
        metadata
    }

    fn task(
        &mut self,
        node: &Node,
        path: &str,
        index: usize,
        refs: &mut Vec<(usize, String, Reference)>,
    ) -> Option<Task> {
        let fields = self.mapping(node, path, "task")?;
        // A task whose name or type does not read keeps them empty; later checks skip it.
        let mut task = placeholder();
        if let Some(name) = self
            .required(&fields, path, node.line, "name")
            .and_then(|n| self.name(n, &join(path, "name"), 63))
        {
            task.name = name;
        }
        if let Some(t) = self
            .required(&fields, path, node.line, "type")
            .and_then(|n| self.string(n, &join(path, "type")))
        {
            task.task_type = t;
        }
        if let Some(n) = fields.get("description") {
            task.description = self.string(n, &join(path, "description"));
        }
        if let Some(n) = fields.get("image") {
            task.image = self.string(n, &join(path, "image"));
        }
        if let Some(n) = fields.get("resources") {
            task.resources = self.resources(n, &join(path, "resources"));
        }
        if let Some(n) = fields.get("inputs") {
            let base = join(path, "inputs");
            for (i, item) in self.list(n, &base, "{name, source}").iter().enumerate() {
                let p = format!("{base}[{i}]");
                let Some(f) = self.mapping(item, &p, "input") else {
                    continue;
                };
                let name = self
                    .required(&f, &p, item.line, "name")
                    .and_then(|n| self.name(n, &join(&p, "name"), 63));
                let source = self.required(&f, &p, item.line, "source").and_then(|n| {
                    let sp = join(&p, "source");
                    let text = self.string(n, &sp)?;
                    self.source(&text, &sp, n.line, index, refs)
                });
                if let (Some(name), Some(source)) = (name, source) {
                    task.inputs.push(Input { name, source });
                }
            }
        }
        if let Some(n) = fields.get("outputs") {
            let base = join(path, "outputs");
            for (i, item) in self
                .list(n, &base, "{name, destination}")
                .iter()
                .enumerate()
            {
                let p = format!("{base}[{i}]");
                let Some(f) = self.mapping(item, &p, "output") else {
                    continue;
                };
                let name = self
                    .required(&f, &p, item.line, "name")
                    .and_then(|n| self.name(n, &join(&p, "name"), 63));
                let destination = match f.get("destination") {
                    Some(d) => {
                        let dp = join(&p, "destination");
                        match self.string(d, &dp) {
                            Some(text) => {
                                if text.trim().is_empty() {
                                    self.issue(
                                        IssueKind::BadValue,
                                        &dp,
                                        d.line,
                                        "an empty destination; expected a path or URI",
                                    );
                                }
                                self.template(&text, &dp, d.line, index, refs);
                                Some(text)
                            }
                            None => None,
                        }
                    }
                    None => None,
                };
                if let Some(name) = name {
                    task.outputs.push(Output { name, destination });
                }
            }
        }
        if let Some(n) = fields.get("config") {
            let p = join(path, "config");
            match &n.value {
                Value::Map(_) => {
                    self.free_form(n, &p, index, refs);
                    if let Json::Object(map) = n.to_json() {
                        task.config = map;
                    }
                }
                Value::Null => {}
                _ => self.wrong_type(&p, n, "a mapping of settings"),
            }
        }
        if let Some(n) = fields.get("retries") {
            task.retries = self
                .integer(
                    n,
                    &join(path, "retries"),
                    0,
                    i64::from(MAX_RETRIES),
                    "retries",
                )
                .unwrap_or(0) as u32;
        }
        if let Some(n) = fields.get("priority") {
            task.priority = self
                .integer(
                    n,
                    &join(path, "priority"),
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                    "priority",
                )
                .unwrap_or(0) as i32;
        }
        if let Some(n) = fields.get("timeout") {
            let p = join(path, "timeout");
            let text = match &n.value {
                Value::Str(s) => Some(s.clone()),
                Value::Int(i) => Some(i.to_string()),
                _ => {
                    self.wrong_type(&p, n, "a duration such as \"30s\", \"10m\" or \"1h\"");
                    None
                }
            };
            if let Some(text) = text {
                match parse_duration(&text) {
                    Ok(d) => task.timeout = Some(d),
                    Err(message) => self.issue(IssueKind::BadValue, &p, n.line, message),
                }
            }
        }
        if let Some(n) = fields.get("when") {
            let p = join(path, "when");
            let text = match &n.value {
                Value::Bool(b) => Some(b.to_string()),
                Value::Str(s) => Some(s.clone()),
                _ => {
                    self.wrong_type(&p, n, &format!("a condition: {}", crate::condition::FORMS));
                    None
                }
            };
            if let Some(text) = text {
                match Condition::parse(&text) {
                    Ok(c) => {
                        refs.extend(
                            c.references()
                                .into_iter()
                                .map(|r| (index, p.clone(), r.clone())),
                        );
                        task.condition = Some(c);
                        task.when = Some(text);
                    }
                    Err(message) => self.issue(IssueKind::BadCondition, &p, n.line, message),
                }
            }
        }
        Some(task)
    }

    fn resources(&mut self, node: &Node, path: &str) -> Resources {
        let mut r = Resources::default();
        let Some(fields) = self.mapping(node, path, "resources") else {
            return r;
        };
        if let Some(n) = fields.get("cpu") {
            r.cpu_millis = self.quantity(n, &join(path, "cpu"), Unit::Millicores);
        }
        if let Some(n) = fields.get("memory") {
            r.memory_bytes = self.quantity(n, &join(path, "memory"), Unit::Bytes);
        }
        if let Some(n) = fields.get("gpu") {
            r.gpu = self.quantity(n, &join(path, "gpu"), Unit::Devices);
        }
        r
    }

    fn source(
        &mut self,
        text: &str,
        path: &str,
        line: usize,
        task: usize,
        refs: &mut Vec<(usize, String, Reference)>,
    ) -> Option<Source> {
        if text.trim() == "parameters" {
            return Some(Source::Parameter);
        }
        if text.trim().is_empty() {
            self.issue(
                IssueKind::BadValue,
                path,
                line,
                "an empty source; expected \"parameters\", a path or URI, or \
                 {{ tasks.<task>.outputs.<output> }}",
            );
            return None;
        }
        let template = self.template(text, path, line, task, refs)?;
        if let [crate::refs::Part::Ref(Reference::TaskOutput { task, output })] =
            template.parts.as_slice()
        {
            return Some(Source::Output {
                task: task.clone(),
                output: output.clone(),
            });
        }
        Some(Source::Path(text.to_string()))
    }
}

/// The fields of a mapping by key.
#[derive(Default)]
struct Fields<'n>(HashMap<String, (Key, &'n Node)>);

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.0.get(key).map(|(_, n)| *n)
    }
}

fn placeholder() -> Task {
    Task {
        name: String::new(),
        task_type: String::new(),
        description: None,
        image: None,
        resources: Resources::default(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        config: serde_json::Map::new(),
        retries: 0,
        timeout: None,
        priority: 0,
        when: None,
        condition: None,
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The candidate closest to `word` by edit distance, when close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    if a.len().abs_diff(b.len()) > 3 || a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        let keys = ["inputs", "outputs", "resources"];
        assert_eq!(did_you_mean("input", keys.iter().copied()), Some("inputs"));
        assert_eq!(
            did_you_mean("resorces", keys.iter().copied()),
            Some("resources")
        );
        assert_eq!(did_you_mean("zzz", keys.iter().copied()), None);
    }
}
