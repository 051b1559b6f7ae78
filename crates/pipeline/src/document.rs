//! A pipeline document: what `apiVersion: train-platform/v1`, `kind: Pipeline` holds, once
//! read and validated.
//!
//! [`Pipeline::parse`] reads YAML or JSON and returns either a pipeline whose every reference,
//! dependency and quantity has been checked, or an [`Error::Invalid`] with every problem
//! found (not just the first). Reading is in `read.rs`, the checks across tasks in
//! `validate.rs`, the graph in `graph.rs`. The format is documented for users in
//! `docs/pipelines.md` and as a JSON Schema in `docs/pipeline.schema.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::report::Report;

/// The only `apiVersion` this reader understands.
pub const API_VERSION: &str = "train-platform/v1";

/// The only `kind`.
pub const KIND: &str = "Pipeline";

/// The keys each object of the format may have, by section: `pipeline` (the top level),
/// `metadata`, `spec`, `task`, `resources`, `input`, `output`, `dependency`. Any other key is
/// an error; the JSON Schema's `$defs` use the same section names.
pub const KEYS: &[(&str, &[&str])] = &[
    ("pipeline", &["apiVersion", "kind", "metadata", "spec"]),
    (
        "metadata",
        &["name", "version", "description", "labels", "annotations"],
    ),
    ("spec", &["tasks", "dependencies", "parameters"]),
    (
        "task",
        &[
            "name",
            "type",
            "description",
            "image",
            "resources",
            "inputs",
            "outputs",
            "config",
            "retries",
            "timeout",
            "priority",
            "when",
        ],
    ),
    ("resources", &["cpu", "memory", "gpu"]),
    ("input", &["name", "source"]),
    ("output", &["name", "destination"]),
    ("dependency", &["from", "to"]),
];

/// The keys of one section of [`KEYS`] (empty for an unknown section).
pub(crate) fn keys(section: &str) -> &'static [&'static str] {
    KEYS.iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
        .unwrap_or(&[])
}

/// The most retries a task may ask for.
pub const MAX_RETRIES: u32 = 100;

/// The task types a document may use. The pipeline crate gives types no meaning: whoever
/// runs pipelines registers the types its runner knows, and a document naming any other type
/// is invalid.
///
/// ```
/// use trainstore_pipeline::TaskTypes;
/// let types = TaskTypes::new(["training", "evaluation"]);
/// assert!(types.contains("training"));
/// assert_eq!(types.names().collect::<Vec<_>>(), ["evaluation", "training"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTypes {
    names: BTreeSet<String>,
}

impl TaskTypes {
    /// A registry of the given type names.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TaskTypes {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Adds a type name.
    pub fn register(&mut self, name: impl Into<String>) {
        self.names.insert(name.into());
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// A validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Name, version and labels.
    pub metadata: Metadata,
    /// The tasks, in document order.
    pub tasks: Vec<Task>,
    /// The declared dependencies (data dependencies are in [`Pipeline::edges`]).
    pub dependencies: Vec<Dependency>,
    /// The parameters and their defaults.
    pub parameters: serde_json::Map<String, Json>,
    pub(crate) graph: Graph,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The pipeline's name.
    pub name: String,
    /// The definition's version, as written (`"1.0.0"`).
    pub version: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// String labels.
    pub labels: BTreeMap<String, String>,
    /// String annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One task of `spec.tasks`.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Unique within the pipeline: letters, digits, `-` and `_`, at most 63.
    pub name: String,
    /// One of the registered [`TaskTypes`].
    pub task_type: String,
    /// Free text.
    pub description: Option<String>,
    /// The container image a cluster would run it in; local runners may ignore it.
    pub image: Option<String>,
    /// What it needs while it runs.
    pub resources: Resources,
    /// What it reads.
    pub inputs: Vec<Input>,
    /// What it writes.
    pub outputs: Vec<Output>,
    /// Free-form settings handed to the runner, references rendered.
    pub config: serde_json::Map<String, Json>,
    /// How many times a failed attempt is tried again (0 to [`MAX_RETRIES`]).
    pub retries: u32,
    /// The longest one attempt may take.
    pub timeout: Option<Duration>,
    /// Among tasks ready at once, higher starts first.
    pub priority: i32,
    /// The condition under which it runs, as written; `None` runs always.
    pub when: Option<String>,
    pub(crate) condition: Option<crate::condition::Condition>,
}

/// `resources`: what a task needs, `None` where not written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores (`"2"` is 2000, `"500m"` is 500).
    pub cpu_millis: Option<u64>,
    /// Memory in bytes (`"4Gi"`).
    pub memory_bytes: Option<u64>,
    /// Whole GPUs.
    pub gpu: Option<u64>,
}

/// One of a task's `inputs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The name the runner receives it under.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
}

/// Where an input's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `source: parameters`: the parameter named like the input.
    Parameter,
    /// `source: "{{ tasks.t.outputs.o }}"`: what task `t` recorded as output `o`.
    Output {
        /// The producing task.
        task: String,
        /// Its output.
        output: String,
    },
    /// A path or URI, possibly with references. When it equals another task's output
    /// `destination`, that task produces it (a data dependency); otherwise it is an external
    /// input the pipeline does not produce.
    Path(String),
}

/// One of a task's `outputs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its name, for `{{ tasks.<task>.outputs.<name> }}`.
    pub name: String,
    /// Where the task writes it (references allowed). Without one, the runner must report
    /// the output's value.
    pub destination: Option<String>,
}

/// One of `spec.dependencies`: `to` starts after `from` succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The upstream task.
    pub from: String,
    /// The downstream task.
    pub to: String,
}

/// Why one task waits for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeOrigin {
    /// Declared in `spec.dependencies`.
    Declared,
    /// The downstream task reads what the upstream one writes: an input whose `source` is
    /// the upstream task's output `destination`, or a `{{ tasks.… }}` reference. Added
    /// implicitly; `via` is the path of the input or string that creates it.
    Data {
        /// Where in the document the data dependency comes from.
        via: String,
    },
}

/// An edge of the task graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The upstream task.
    pub from: String,
    /// The downstream task.
    pub to: String,
    /// Why.
    pub origin: EdgeOrigin,
}

impl Pipeline {
    /// Reads and validates a YAML or JSON document. Fails with [`Error::Invalid`] listing
    /// every problem found.
    ///
    /// ```
    /// use trainstore_pipeline::{Pipeline, TaskTypes};
    /// let text = "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  tasks:\n    - {name: a, type: command}\n";
    /// let pipeline = Pipeline::parse(text, &TaskTypes::new(["command"])).unwrap();
    /// assert_eq!(pipeline.tasks[0].name, "a");
    /// let error = Pipeline::parse(&text.replace("command}", "comand}"), &TaskTypes::new(["command"])).unwrap_err();
    /// assert!(error.to_string().contains("did you mean \"command\""));
    /// ```
    pub fn parse(text: &str, types: &TaskTypes) -> Result<Pipeline> {
        let (pipeline, report) = crate::validate::check(text, types);
        match pipeline {
            Some(p) if report.is_empty() => Ok(p),
            _ => Err(Error::Invalid(report)),
        }
    }

    /// Every problem of a document, without keeping the pipeline (empty when it is valid).
    pub fn validate(text: &str, types: &TaskTypes) -> Report {
        crate::validate::check(text, types).1
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.graph.index(name).map(|i| &self.tasks[i])
    }

    /// Every edge: the declared dependencies and the data dependencies the document implies,
    /// each pair once.
    pub fn edges(&self) -> &[Edge] {
        &self.graph.edges
    }

    /// The tasks `name` waits for directly (declared or through data).
    pub fn upstream(&self, name: &str) -> Vec<&str> {
        self.graph
            .index(name)
            .map(|i| {
                self.graph.upstream[i]
                    .iter()
                    .map(|&u| self.tasks[u as usize].name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The task names in an order that respects every edge (ties in document order).
    pub fn topological_order(&self) -> Vec<&str> {
        self.graph
            .topological_order()
            .into_iter()
            .map(|i| self.tasks[i].name.as_str())
            .collect()
    }
}
