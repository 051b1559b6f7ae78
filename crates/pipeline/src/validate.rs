//! The checks across a document: task names and types, dependencies, references to
//! parameters and task outputs, data dependencies, cycles.
//!
//! Data dependencies are added, not demanded: an input whose `source` is the `destination`
//! of another task's output, or any `{{ tasks.t.outputs.o }}` reference, makes the reading
//! task wait for the producer whether or not `spec.dependencies` says so. A document cannot
//! then run a consumer before its producer by forgetting a line, and the §7.1-style document
//! that declares both stays valid. Paths that no task produces are external inputs, read as
//! they are.

use std::collections::HashMap;

use crate::document::{Edge, EdgeOrigin, Pipeline, Source, TaskTypes};
use crate::graph::Graph;
use crate::node;
use crate::read::{Lines, Reader, did_you_mean, join};
use crate::refs::Reference;
use crate::report::{IssueKind, Report};

/// At most this many cycles are reported; after that the document has bigger problems.
const MAX_CYCLES: usize = 20;

/// Reads and checks `text`: the pipeline when it read far enough to build one, and every
/// problem found.
pub(crate) fn check(text: &str, types: &TaskTypes) -> (Option<Pipeline>, Report) {
    let mut report = Report::default();
    let root = match node::parse(text) {
        Ok(root) => root,
        Err(e) => {
            report.push(IssueKind::Syntax, "", e.line, e.message);
            return (None, report);
        }
    };
    let mut reader = Reader {
        report: &mut report,
        lines: Lines::default(),
    };
    let read = reader.document(&root);
    let lines = reader.lines;
    let mut checks = Checks {
        report: &mut report,
        lines: &lines,
    };
    let tasks = &read.tasks;
    let mut graph = Graph::new(tasks.iter().map(|t| t.name.as_str()));

    // Names and types.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, task) in tasks.iter().enumerate() {
        if task.name.is_empty() {
            continue;
        }
        if let Some(&j) = first.get(task.name.as_str()) {
            let line = lines.of(&format!("spec.tasks[{j}].name"));
            checks.issue(
                IssueKind::Duplicate,
                format!("spec.tasks[{i}].name"),
                format!(
                    "task name {:?} is also used by spec.tasks[{j}] (line {line}); task names must be unique",
                    task.name
                ),
            );
        } else {
            first.insert(&task.name, i);
        }
        if !task.task_type.is_empty() && !types.contains(&task.task_type) {
            let hint = did_you_mean(&task.task_type, types.names())
                .map(|t| format!(" (did you mean {t:?}?)"))
                .unwrap_or_default();
            checks.issue(
                IssueKind::UnknownTaskType,
                format!("spec.tasks[{i}].type"),
                format!(
                    "unknown task type {:?}{hint}; expected one of: {}",
                    task.task_type,
                    types.names().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let mut seen = HashMap::new();
        for (k, input) in task.inputs.iter().enumerate() {
            if seen.insert(input.name.as_str(), k).is_some() {
                checks.issue(
                    IssueKind::Duplicate,
                    format!("spec.tasks[{i}].inputs[{k}].name"),
                    format!("input {:?} is declared twice", input.name),
                );
            }
        }
        let mut seen = HashMap::new();
        for (k, output) in task.outputs.iter().enumerate() {
            if seen.insert(output.name.as_str(), k).is_some() {
                checks.issue(
                    IssueKind::Duplicate,
                    format!("spec.tasks[{i}].outputs[{k}].name"),
                    format!("output {:?} is declared twice", output.name),
                );
            }
        }
    }
    let task_names = || {
        tasks
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| !n.is_empty())
    };
    let known_tasks = || {
        let mut names: Vec<&str> = task_names().collect();
        names.sort_unstable();
        names.join(", ")
    };

    // Declared dependencies.
    for (k, dep) in &read.dependencies {
        let path = format!("spec.dependencies[{k}]");
        let mut ends = [None, None];
        for (end, (key, name)) in [("from", &dep.from), ("to", &dep.to)]
            .into_iter()
            .enumerate()
        {
            match graph.index(name) {
                Some(i) => ends[end] = Some(i),
                None => {
                    let hint = did_you_mean(name, task_names())
                        .map(|t| format!(" (did you mean {t:?}?)"))
                        .unwrap_or_default();
                    checks.issue(
                        IssueKind::MissingTask,
                        join(&path, key),
                        format!(
                            "no task is called {name:?}{hint}; the tasks are: {}",
                            known_tasks()
                        ),
                    );
                }
            }
        }
        if let [Some(from), Some(to)] = ends {
            graph.add(
                from,
                to,
                Edge {
                    from: dep.from.clone(),
                    to: dep.to.clone(),
                    origin: EdgeOrigin::Declared,
                },
            );
        }
    }
    // Where each edge came from, for cycle messages.
    let mut edge_paths: HashMap<(usize, usize), String> = read
        .dependencies
        .iter()
        .filter_map(|(k, d)| {
            Some((
                (graph.index(&d.from)?, graph.index(&d.to)?),
                format!("spec.dependencies[{k}]"),
            ))
        })
        .collect();

    // Producers of destinations: a destination written by two tasks is ambiguous.
    let mut producers: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, task) in tasks.iter().enumerate() {
        for (k, output) in task.outputs.iter().enumerate() {
            let Some(dest) = output.destination.as_deref() else {
                continue;
            };
            match producers.get(&normalize(dest)) {
                Some(&(j, _)) if j != i => checks.issue(
                    IssueKind::Duplicate,
                    format!("spec.tasks[{i}].outputs[{k}].destination"),
                    format!(
                        "{dest:?} is also the destination of an output of task {:?}; each \
                         destination has one producer",
                        tasks[j].name
                    ),
                ),
                Some(_) => {}
                None => {
                    producers.insert(normalize(dest), (i, k));
                }
            }
        }
    }

    // Inputs: parameters, producers, external paths.
    let mut data_edge = |graph: &mut Graph, from: usize, to: usize, via: String| {
        edge_paths.entry((from, to)).or_insert_with(|| via.clone());
        graph.add(
            from,
            to,
            Edge {
                from: tasks[from].name.clone(),
                to: tasks[to].name.clone(),
                origin: EdgeOrigin::Data { via },
            },
        );
    };
    for (i, task) in tasks.iter().enumerate() {
        for (k, input) in task.inputs.iter().enumerate() {
            let path = format!("spec.tasks[{i}].inputs[{k}].source");
            match &input.source {
                Source::Parameter if !read.parameters.contains_key(&input.name) => checks.issue(
                    IssueKind::UnknownParameter,
                    path,
                    format!(
                        "input {:?} takes the parameter of its name, but spec.parameters declares no {:?}; declared: {}",
                        input.name,
                        input.name,
                        list(read.parameters.keys().map(String::as_str))
                    ),
                ),
                Source::Path(p) => {
                    if let Some(&(j, _)) = producers.get(&normalize(p))
                        && j != i
                    {
                        data_edge(&mut graph, j, i, path);
                    }
                }
                // Task-output sources are references, checked below with the others.
                Source::Parameter | Source::Output { .. } => {}
            }
        }
    }

    // References in strings.
    for (i, path, reference) in &read.references {
        let i = *i;
        match reference {
            Reference::Parameter(segments) => match read.parameters.get(&segments[0]) {
                None => checks.issue(
                    IssueKind::UnknownParameter,
                    path.clone(),
                    format!(
                        "{reference} names no declared parameter{}; declared: {}",
                        did_you_mean(&segments[0], read.parameters.keys().map(String::as_str))
                            .map(|p| format!(" (did you mean {p:?}?)"))
                            .unwrap_or_default(),
                        list(read.parameters.keys().map(String::as_str))
                    ),
                ),
                Some(default) => {
                    // A key missing from a mapping default is a typo; values of other shapes
                    // are checked when the run's parameters are known.
                    let mut value = default;
                    for (depth, key) in segments.iter().enumerate().skip(1) {
                        let serde_json::Value::Object(map) = value else {
                            break;
                        };
                        match map.get(key) {
                            Some(v) => value = v,
                            None => {
                                checks.issue(
                                    IssueKind::UnknownParameter,
                                    path.clone(),
                                    format!(
                                        "{reference}: parameters.{} has no key {key:?}; its keys: {}",
                                        segments[..depth].join("."),
                                        list(map.keys().map(String::as_str))
                                    ),
                                );
                                break;
                            }
                        }
                    }
                }
            },
            Reference::TaskOutput { task, output } => {
                let Some(j) = graph.index(task) else {
                    checks.issue(
                        IssueKind::DanglingInput,
                        path.clone(),
                        format!(
                            "{reference}: no task is called {task:?}, so nothing produces it; \
                             the tasks are: {}",
                            known_tasks()
                        ),
                    );
                    continue;
                };
                if !tasks[j].outputs.iter().any(|o| &o.name == output) {
                    checks.issue(
                        IssueKind::DanglingInput,
                        path.clone(),
                        format!(
                            "{reference}: task {task:?} declares no output {output:?}, so nothing produces it; its outputs: {}",
                            list(tasks[j].outputs.iter().map(|o| o.name.as_str()))
                        ),
                    );
                } else if j == i {
                    checks.issue(
                        IssueKind::Cycle,
                        path.clone(),
                        format!("{reference}: a task cannot read its own output"),
                    );
                } else {
                    data_edge(&mut graph, j, i, path.clone());
                }
            }
        }
    }

    // Cycles, declared and through data alike.
    for cycle in graph.cycles(MAX_CYCLES) {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| tasks[i].name.as_str())
            .collect();
        let links: Vec<(String, usize)> = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .map(|(&a, &b)| {
                let path = edge_paths.get(&(a, b)).cloned().unwrap_or_default();
                let line = lines.of(&path);
                (
                    format!(
                        "{} -> {} ({path}, line {line})",
                        tasks[a].name, tasks[b].name
                    ),
                    line,
                )
            })
            .collect();
        let at = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .filter_map(|(&a, &b)| edge_paths.get(&(a, b)))
            .min_by_key(|p| lines.of(p))
            .cloned()
            .unwrap_or_default();
        checks.issue(
            IssueKind::Cycle,
            at,
            format!(
                "the tasks form a cycle: {}; no task of it can ever start. Its edges: {}",
                names.join(" -> "),
                links
                    .into_iter()
                    .map(|(l, _)| l)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
    }

    report.sort();
    let pipeline = Pipeline {
        api_version: crate::document::API_VERSION.to_string(),
        kind: crate::document::KIND.to_string(),
        metadata: read.metadata,
        tasks: read.tasks,
        dependencies: read.dependencies.into_iter().map(|(_, d)| d).collect(),
        parameters: read.parameters,
        graph,
    };
    (Some(pipeline), report)
}

struct Checks<'a> {
    report: &'a mut Report,
    lines: &'a Lines,
}

impl Checks<'_> {
    fn issue(&mut self, kind: IssueKind, path: String, message: String) {
        let line = self.lines.of(&path);
        self.report.push(kind, path, line, message);
    }
}

/// A destination as compared with sources: surrounding blanks and trailing slashes dropped.
fn normalize(path: &str) -> String {
    let t = path.trim();
    let trimmed = t.trim_end_matches('/');
    if trimmed.is_empty() {
        t.to_string()
    } else {
        trimmed.to_string()
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
