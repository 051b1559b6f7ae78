//! Exporting a pipeline as an Argo Workflows `Workflow`, so the same document runs on
//! Kubernetes: one DAG task per pipeline task, each a pod running `trainstore task run` on
//! the document, which reaches every pod as a raw input artifact.
//!
//! [`export`] is a pure function: a validated [`Pipeline`], the text it was read from and the
//! [`ArgoOptions`] (workspace, image, volumes, environment) in; the manifest as JSON out,
//! which callers print as YAML or JSON. It writes nothing secret: environment that looks
//! like a credential must be a reference to a Kubernetes secret ([`ArgoEnvValue::Secret`]),
//! and a literal one is refused ([`Error::LiteralSecret`]).
//!
//! What each part of the document becomes, and why (`when` is evaluated by `task run`, not
//! by Argo), is in `docs/pipelines.md`, "Running on Argo Workflows".

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use crate::document::Pipeline;
use crate::error::{Error, Result};
use crate::node::{self, Node, Value};
use crate::quantity::{format_cpu, format_memory};
use trainstore_core::retry::Backoff;

/// The `apiVersion` of the manifest.
pub const ARGO_API_VERSION: &str = "argoproj.io/v1alpha1";

/// Where the pipeline document is mounted in every pod, unless [`ArgoOptions::pipeline_path`]
/// says otherwise.
pub const DEFAULT_PIPELINE_PATH: &str = "/etc/trainstore/pipeline.yaml";

/// The exit code with which `trainstore task run` reports a permanent failure (bad
/// configuration, missing data): Argo does not retry it (`retryStrategy.expression`).
pub const PERMANENT_FAILURE_EXIT_CODE: i32 = 3;

/// The largest manifest exported, in bytes of JSON: what the Kubernetes API server accepts
/// in one object (etcd's default request limit, 1.5 MiB). The document is written once per
/// task, so a large document with many tasks can pass it.
pub const MAX_MANIFEST_BYTES: usize = 1_572_864;

/// The CPU a task that gives none requests, as the local executor counts it: one core.
const DEFAULT_CPU: &str = "1";

/// The longest `generateName` kept of a pipeline's name: Kubernetes adds 5 characters, and
/// Argo wants workflow names of at most 63.
const MAX_GENERATE_NAME: usize = 57;

/// The longest Argo task (and template) name: a Kubernetes label value.
const MAX_TASK_NAME: usize = 63;

/// The words that make an environment variable's name look like a credential.
const SECRET_WORDS: &[&str] = &["secret", "password", "passwd", "token", "key", "credential"];

/// How a pipeline is exported: where its pods find the workspace, which image they run,
/// what they mount and which environment they get.
///
/// ```
/// use trainstore_pipeline::{ArgoEnv, ArgoOptions, ArgoVolume};
/// let mut options = ArgoOptions::new("s3://ml-bucket/trainstore");
/// options.volumes.push(ArgoVolume::new("user-data", "user-data-pvc", "/mnt/user"));
/// options.env.push(ArgoEnv::secret("AWS_SECRET_ACCESS_KEY", "s3-credentials", "secret-key"));
/// options.env.push(ArgoEnv::plain("AWS_REGION", "eu-west-1"));
/// assert!(options.default_image.starts_with("trainstore:"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArgoOptions {
    /// The workspace every pod opens (`--workspace`): a URL (`s3://bucket/prefix`) or a path
    /// on a mounted volume. The run state lives there, so it must be storage every pod
    /// shares. A password in it (`s3://user:pass@…`) is refused.
    pub workspace: String,
    /// The image of tasks whose document gives no `image`: `trainstore:<version>` by default.
    pub default_image: String,
    /// Where the document is mounted in every pod (`--pipeline`): [`DEFAULT_PIPELINE_PATH`]
    /// by default.
    pub pipeline_path: String,
    /// Persistent volume claims mounted into every task's container.
    pub volumes: Vec<ArgoVolume>,
    /// Environment of every task's container, in order.
    pub env: Vec<ArgoEnv>,
    /// The Kubernetes service account pods run as; the namespace's default when `None`.
    pub service_account: Option<String>,
    /// When images are pulled; Kubernetes' default when `None`.
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Names of secrets holding registry credentials (`spec.imagePullSecrets`).
    pub image_pull_secrets: Vec<String>,
    /// The most pods of the workflow running at once (`spec.parallelism`); no limit when
    /// `None`.
    pub parallelism: Option<u32>,
    /// The wait before a retry: `base`, doubling, at most `max` (1 s and 5 min by default, as
    /// the local executor).
    pub backoff: Backoff,
}

impl ArgoOptions {
    /// Options for a workspace, with the defaults: image `trainstore:<version>`, the
    /// document at [`DEFAULT_PIPELINE_PATH`], no volumes, no environment.
    pub fn new(workspace: impl Into<String>) -> ArgoOptions {
        ArgoOptions {
            workspace: workspace.into(),
            default_image: format!("trainstore:{}", env!("CARGO_PKG_VERSION")),
            pipeline_path: DEFAULT_PIPELINE_PATH.to_string(),
            volumes: Vec::new(),
            env: Vec::new(),
            service_account: None,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            parallelism: None,
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
        }
    }
}

/// A persistent volume claim mounted into every task's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoVolume {
    /// The volume's name in the manifest: lowercase letters, digits and `-`, at most 63.
    pub name: String,
    /// The claim (`persistentVolumeClaim.claimName`), which must exist in the namespace.
    pub claim_name: String,
    /// Where it is mounted: an absolute path.
    pub mount_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl ArgoVolume {
    /// A read-write mount of `claim_name` at `mount_path`.
    pub fn new(
        name: impl Into<String>,
        claim_name: impl Into<String>,
        mount_path: impl Into<String>,
    ) -> ArgoVolume {
        ArgoVolume {
            name: name.into(),
            claim_name: claim_name.into(),
            mount_path: mount_path.into(),
            read_only: false,
        }
    }
}

/// An environment variable of every task's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoEnv {
    /// Its name.
    pub name: String,
    /// Its value, or where Kubernetes reads it from.
    pub value: ArgoEnvValue,
}

impl ArgoEnv {
    /// A variable with a literal value, written into the manifest. Refused by [`export`]
    /// when its name looks like a credential.
    pub fn plain(name: impl Into<String>, value: impl Into<String>) -> ArgoEnv {
        ArgoEnv {
            name: name.into(),
            value: ArgoEnvValue::Plain(value.into()),
        }
    }

    /// A variable read from key `key` of the Kubernetes secret `secret`.
    pub fn secret(
        name: impl Into<String>,
        secret: impl Into<String>,
        key: impl Into<String>,
    ) -> ArgoEnv {
        ArgoEnv {
            name: name.into(),
            value: ArgoEnvValue::Secret {
                name: secret.into(),
                key: key.into(),
            },
        }
    }
}

/// An environment variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgoEnvValue {
    /// Written into the manifest as it is.
    Plain(String),
    /// Read from a Kubernetes secret (`valueFrom.secretKeyRef`); only the reference is
    /// written.
    Secret {
        /// The secret's name.
        name: String,
        /// The key inside it.
        key: String,
    },
}

/// When Kubernetes pulls a task's image (`imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// On every start.
    Always,
    /// Only when the node does not have it.
    IfNotPresent,
    /// Never; the node must have it.
    Never,
}

impl ImagePullPolicy {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// The Argo Workflows `Workflow` that runs `pipeline` on Kubernetes, as JSON.
///
/// `document` is the text `pipeline` was read from: every pod gets it as a raw input
/// artifact at [`ArgoOptions::pipeline_path`] and runs `trainstore task run` on it. Fails
/// with [`Error::LiteralSecret`] when an option would write a credential into the manifest,
/// and with [`Error::Export`] when an option is not valid, two tasks would get the same Argo
/// name, the text is not `pipeline`'s, or the manifest would be too large for Kubernetes.
///
/// ```
/// use trainstore_pipeline::{ArgoOptions, Pipeline, TaskTypes, argo};
/// let text = "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata: {name: Nightly_Run}\n\
///             spec:\n  tasks:\n    - {name: a, type: command}\n    - {name: b, type: command}\n\
///             \x20 dependencies: [{from: a, to: b}]\n";
/// let pipeline = Pipeline::parse(text, &TaskTypes::new(["command"])).unwrap();
/// let workflow = argo::export(&pipeline, text, &ArgoOptions::new("s3://bucket/ws")).unwrap();
/// assert_eq!(workflow["metadata"]["generateName"], "nightly-run-");
/// let dag = &workflow["spec"]["templates"][0]["dag"]["tasks"];
/// assert_eq!(dag[1]["dependencies"], serde_json::json!(["a"]));
/// ```
pub fn export(pipeline: &Pipeline, document: &str, options: &ArgoOptions) -> Result<Json> {
    check_options(options)?;
    let names = task_names(pipeline)?;
    let artifact = artifact_text(pipeline, document)?;
    // The document is written once per task: refuse early what cannot fit.
    if artifact.len().saturating_mul(pipeline.tasks.len()) > MAX_MANIFEST_BYTES {
        return Err(too_large(
            artifact.len().saturating_mul(pipeline.tasks.len()),
            pipeline,
            &artifact,
        ));
    }
    let argo_name: HashMap<&str, &str> = names
        .iter()
        .map(|(task, argo)| (task.as_str(), argo.as_str()))
        .collect();
    let entrypoint = entrypoint_name(names.iter().map(|(_, argo)| argo.as_str()));

    for name in pipeline.parameters.keys() {
        if !is_parameter_name(name) {
            return Err(export_error(
                format!("parameter {name:?}"),
                "Argo parameter names are letters, digits, '-' and '_'; rename the parameter",
            ));
        }
    }
    // In name order, whatever order the map keeps.
    let parameters: Vec<Json> = sorted_parameters(pipeline)
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({"name": name, "value": value})
        })
        .collect();

    // The DAG: every task, waiting for its upstream tasks (declared and through data), in
    // document order.
    let position: HashMap<&str, usize> = pipeline
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut dag_tasks = Vec::with_capacity(pipeline.tasks.len());
    for task in &pipeline.tasks {
        let name = argo_name[task.name.as_str()];
        let mut upstream = pipeline.upstream(&task.name);
        upstream.sort_by_key(|u| position.get(u).copied().unwrap_or(usize::MAX));
        let mut dag_task = Map::new();
        dag_task.insert("name".into(), json!(name));
        dag_task.insert("template".into(), json!(name));
        if !upstream.is_empty() {
            let dependencies: Vec<&str> = upstream
                .iter()
                .filter_map(|u| argo_name.get(u).copied())
                .collect();
            dag_task.insert("dependencies".into(), json!(dependencies));
        }
        dag_tasks.push(Json::Object(dag_task));
    }
    let mut templates = vec![json!({
        "name": entrypoint,
        // Independent branches go on after a failure, as in a local run.
        "dag": {"failFast": false, "tasks": dag_tasks},
    })];
    for task in &pipeline.tasks {
        templates.push(task_template(
            pipeline,
            task,
            argo_name[task.name.as_str()],
            &artifact,
            options,
        ));
    }

    let mut spec = Map::new();
    spec.insert("entrypoint".into(), json!(entrypoint));
    if !parameters.is_empty() {
        spec.insert("arguments".into(), json!({"parameters": parameters}));
    }
    if let Some(account) = &options.service_account {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    if !options.image_pull_secrets.is_empty() {
        let secrets: Vec<Json> = options
            .image_pull_secrets
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        spec.insert("imagePullSecrets".into(), json!(secrets));
    }
    if let Some(parallelism) = options.parallelism {
        spec.insert("parallelism".into(), json!(parallelism));
    }
    if !options.volumes.is_empty() {
        let volumes: Vec<Json> = options
            .volumes
            .iter()
            .map(|v| {
                let mut claim = Map::new();
                claim.insert("claimName".into(), json!(v.claim_name));
                if v.read_only {
                    claim.insert("readOnly".into(), json!(true));
                }
                json!({"name": v.name, "persistentVolumeClaim": claim})
            })
            .collect();
        spec.insert("volumes".into(), json!(volumes));
    }
    spec.insert("templates".into(), json!(templates));

    let workflow = json!({
        "apiVersion": ARGO_API_VERSION,
        "kind": "Workflow",
        "metadata": metadata(pipeline),
        "spec": spec,
    });
    let size = workflow.to_string().len();
    if size > MAX_MANIFEST_BYTES {
        return Err(too_large(size, pipeline, &artifact));
    }
    Ok(workflow)
}

fn too_large(size: usize, pipeline: &Pipeline, artifact: &str) -> Error {
    export_error(
        "the manifest",
        format!(
            "it would be at least {size} bytes, more than the {MAX_MANIFEST_BYTES} Kubernetes \
             accepts in one object; the document is written once per task ({} tasks, {} bytes), \
             so shorten the document or split the pipeline",
            pipeline.tasks.len(),
            artifact.len()
        ),
    )
}

/// Each task's name in Argo, in document order: lowercased, `_` written `-`, a leading or
/// trailing `-` dropped, and `t-` put before a name that starts with a digit (Argo refuses
/// those in a DAG with dependencies). Fails with [`Error::Export`] when two tasks would get
/// the same name (`Train_A` and `train-a`).
///
/// ```
/// use trainstore_pipeline::{Pipeline, TaskTypes, argo};
/// let text = "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  tasks:\n\
///             \x20   - {name: Load_Data, type: command}\n    - {name: 2nd, type: command}\n";
/// let pipeline = Pipeline::parse(text, &TaskTypes::new(["command"])).unwrap();
/// let names = argo::task_names(&pipeline).unwrap();
/// assert_eq!(names[0], ("Load_Data".to_string(), "load-data".to_string()));
/// assert_eq!(names[1].1, "t-2nd");
/// ```
pub fn task_names(pipeline: &Pipeline) -> Result<Vec<(String, String)>> {
    let mut taken: HashMap<String, &str> = HashMap::new();
    let mut names = Vec::with_capacity(pipeline.tasks.len());
    for task in &pipeline.tasks {
        let mut name = dns_label(&task.name, MAX_TASK_NAME);
        if name.is_empty() {
            name = "task".into();
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            name = dns_label(&format!("t-{name}"), MAX_TASK_NAME);
        }
        if let Some(other) = taken.get(&name) {
            return Err(export_error(
                "task names",
                format!(
                    "tasks {other:?} and {:?} would both be called {name:?} in Argo, whose task \
                     names are lowercase letters, digits and '-'; rename one of them",
                    task.name
                ),
            ));
        }
        taken.insert(name.clone(), &task.name);
        names.push((task.name.clone(), name));
    }
    Ok(names)
}

/// The workflow's `metadata.generateName` for a pipeline called `name`: lowercased, `_` and
/// any other character but a letter or digit written `-`, at most 56 characters, then `-`
/// (Kubernetes appends five random characters).
///
/// ```
/// assert_eq!(trainstore_pipeline::argo::generate_name("Nightly_Retrain"), "nightly-retrain-");
/// ```
pub fn generate_name(name: &str) -> String {
    let base = dns_label(name, MAX_GENERATE_NAME - 1);
    if base.is_empty() {
        "pipeline-".to_string()
    } else {
        format!("{base}-")
    }
}

/// The CLI arguments of a task's pod (after `trainstore`).
fn args(pipeline: &Pipeline, task: &str, options: &ArgoOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "task",
        "run",
        "--workspace",
        &options.workspace,
        "--pipeline",
        &options.pipeline_path,
        "--task",
        task,
        "--run",
        "{{workflow.name}}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, _) in sorted_parameters(pipeline) {
        args.push("--param".into());
        args.push(format!("{name}={{{{workflow.parameters.{name}}}}}"));
    }
    args
}

/// The parameters and their defaults, by name.
fn sorted_parameters(pipeline: &Pipeline) -> Vec<(&String, &Json)> {
    let mut parameters: Vec<_> = pipeline.parameters.iter().collect();
    parameters.sort_by(|a, b| a.0.cmp(b.0));
    parameters
}

/// The container template of one task.
fn task_template(
    pipeline: &Pipeline,
    task: &crate::document::Task,
    name: &str,
    artifact: &str,
    options: &ArgoOptions,
) -> Json {
    let mut container = Map::new();
    container.insert(
        "image".into(),
        json!(task.image.as_deref().unwrap_or(&options.default_image)),
    );
    if let Some(policy) = options.image_pull_policy {
        container.insert("imagePullPolicy".into(), json!(policy.as_str()));
    }
    container.insert("command".into(), json!(["trainstore"]));
    container.insert("args".into(), json!(args(pipeline, &task.name, options)));
    if !options.env.is_empty() {
        let env: Vec<Json> = options
            .env
            .iter()
            .map(|e| match &e.value {
                ArgoEnvValue::Plain(value) => json!({"name": e.name, "value": value}),
                ArgoEnvValue::Secret { name, key } => json!({
                    "name": e.name,
                    "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
                }),
            })
            .collect();
        container.insert("env".into(), json!(env));
    }

    let resources = &task.resources;
    let mut requests = Map::new();
    let mut limits = Map::new();
    match resources.cpu_millis {
        Some(cpu) => {
            requests.insert("cpu".into(), json!(format_cpu(cpu)));
            limits.insert("cpu".into(), json!(format_cpu(cpu)));
        }
        None => {
            requests.insert("cpu".into(), json!(DEFAULT_CPU));
        }
    }
    if let Some(memory) = resources.memory_bytes {
        requests.insert("memory".into(), json!(format_memory(memory)));
        limits.insert("memory".into(), json!(format_memory(memory)));
    }
    if let Some(gpu) = resources.gpu.filter(|&g| g > 0) {
        limits.insert("nvidia.com/gpu".into(), json!(gpu.to_string()));
    }
    let mut resources = Map::new();
    resources.insert("requests".into(), Json::Object(requests));
    if !limits.is_empty() {
        resources.insert("limits".into(), Json::Object(limits));
    }
    container.insert("resources".into(), Json::Object(resources));

    if !options.volumes.is_empty() {
        let mounts: Vec<Json> = options
            .volumes
            .iter()
            .map(|v| {
                let mut mount = Map::new();
                mount.insert("name".into(), json!(v.name));
                mount.insert("mountPath".into(), json!(v.mount_path));
                if v.read_only {
                    mount.insert("readOnly".into(), json!(true));
                }
                Json::Object(mount)
            })
            .collect();
        container.insert("volumeMounts".into(), json!(mounts));
    }

    let mut template = Map::new();
    template.insert("name".into(), json!(name));
    template.insert(
        "inputs".into(),
        json!({"artifacts": [{
            "name": "pipeline",
            "path": options.pipeline_path,
            "raw": {"data": artifact},
        }]}),
    );
    template.insert("container".into(), Json::Object(container));
    if task.retries > 0 {
        template.insert(
            "retryStrategy".into(),
            json!({
                "limit": task.retries.to_string(),
                // Errors (an evicted pod, a lost node) are retried as failures are; a
                // permanent failure is not.
                "retryPolicy": "Always",
                "expression": format!("lastRetry.exitCode != \"{PERMANENT_FAILURE_EXIT_CODE}\""),
                "backoff": {
                    "duration": go_duration(options.backoff.base),
                    "factor": "2",
                    "cap": go_duration(options.backoff.max),
                },
            }),
        );
    }
    if let Some(timeout) = task.timeout {
        let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        template.insert(
            "activeDeadlineSeconds".into(),
            json!(seconds.max(1).to_string()),
        );
    }
    Json::Object(template)
}

/// `metadata`: the generated name, and the document's labels and annotations where
/// Kubernetes accepts them. A label whose value is no valid label value becomes an
/// annotation; a key that is no valid key is left out.
fn metadata(pipeline: &Pipeline) -> Json {
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    for (key, value) in &pipeline.metadata.labels {
        if !is_qualified_name(key) {
            continue;
        }
        if is_label_value(value) {
            labels.insert(key.clone(), value.clone());
        } else {
            annotations.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in &pipeline.metadata.annotations {
        if is_qualified_name(key) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    let mut metadata = Map::new();
    metadata.insert(
        "generateName".into(),
        json!(generate_name(&pipeline.metadata.name)),
    );
    if !labels.is_empty() {
        metadata.insert("labels".into(), json!(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), json!(annotations));
    }
    Json::Object(metadata)
}

/// The document as pods get it: the text as it is, unless it holds `{{`, which Argo would
/// take for its own variables (and refuse `{{ tasks.… }}`); then the same document as one
/// YAML flow mapping in which every `{` inside a string is written as an escape. Both read
/// to the same pipeline. Fails when the text is not `pipeline`'s document.
fn artifact_text(pipeline: &Pipeline, document: &str) -> Result<String> {
    let not_it = |reason: String| export_error("the document text", reason);
    let root = node::parse(document).map_err(|e| not_it(e.message))?;
    let json = root.to_json();
    let name = json["metadata"]["name"].as_str().unwrap_or_default();
    let tasks: Vec<&str> = json["spec"]["tasks"]
        .as_array()
        .map(|tasks| tasks.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    let expected: Vec<&str> = pipeline.tasks.iter().map(|t| t.name.as_str()).collect();
    if name != pipeline.metadata.name || tasks != expected {
        return Err(not_it(format!(
            "it is not the document pipeline {:?} was read from (it names pipeline {name:?} \
             and tasks {tasks:?})",
            pipeline.metadata.name
        )));
    }
    if !document.contains("{{") {
        return Ok(document.to_string());
    }
    let mut out = String::from(
        "# The pipeline document, written by the Argo exporter as one YAML flow mapping with\n\
         # every opening brace inside a string escaped, so that Argo leaves its references alone.\n",
    );
    flow(&root, &mut out);
    out.push('\n');
    Ok(out)
}

/// Writes `node` as YAML flow: strings double-quoted, `{` inside them as `\u007b`.
fn flow(node: &Node, out: &mut String) {
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str(".nan"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { ".inf" } else { "-.inf" }),
        // serde_json writes a float with its point or exponent (`1.0`, `1e300`), so it reads
        // back as a float.
        Value::Float(f) => out.push_str(&Json::from(*f).to_string()),
        Value::Str(s) => quoted(s, out),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quoted(&key.name, out);
                out.push_str(": ");
                flow(value, out);
            }
            out.push('}');
        }
    }
}

/// A YAML double-quoted string.
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '{' => out.push_str("\\u007b"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The entrypoint's name: `pipeline`, or `pipeline-<n>` when a task is called so.
fn entrypoint_name<'a>(tasks: impl Iterator<Item = &'a str>) -> String {
    let taken: Vec<&str> = tasks.collect();
    let mut name = "pipeline".to_string();
    let mut n = 1;
    while taken.contains(&name.as_str()) {
        name = format!("pipeline-{n}");
        n += 1;
    }
    name
}

/// Checks the options: valid names and paths, no literal secret.
fn check_options(options: &ArgoOptions) -> Result<()> {
    check_workspace(&options.workspace)?;
    if options.default_image.trim().is_empty() {
        return Err(export_error("the default image", "it is empty"));
    }
    let path = &options.pipeline_path;
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(export_error(
            format!("the pipeline path {path:?}"),
            "expected an absolute path of a file, such as \"/etc/trainstore/pipeline.yaml\"",
        ));
    }
    let mut volume_names = HashMap::new();
    let mut mount_paths = HashMap::new();
    for volume in &options.volumes {
        let what = || format!("volume {:?}", volume.name);
        if !is_dns_label(&volume.name) {
            return Err(export_error(
                what(),
                "a volume name is 1 to 63 lowercase letters, digits or '-', starting and \
                 ending with a letter or digit",
            ));
        }
        if !is_dns_subdomain(&volume.claim_name) {
            return Err(export_error(
                what(),
                format!(
                    "claim name {:?} is not a Kubernetes name (lowercase letters, digits, '-' \
                     and '.')",
                    volume.claim_name
                ),
            ));
        }
        let mount = volume.mount_path.trim_end_matches('/');
        if !volume.mount_path.starts_with('/') || mount.is_empty() {
            return Err(export_error(
                what(),
                format!(
                    "mount path {:?} is not an absolute path below /",
                    volume.mount_path
                ),
            ));
        }
        if volume_names.insert(volume.name.as_str(), ()).is_some() {
            return Err(export_error(what(), "two volumes have this name"));
        }
        if let Some(other) = mount_paths.insert(mount, volume.name.as_str()) {
            return Err(export_error(
                what(),
                format!("volume {other:?} is mounted at {mount:?} too"),
            ));
        }
        if mount == path.as_str() {
            return Err(export_error(
                what(),
                format!("it is mounted where the pipeline document goes ({path:?})"),
            ));
        }
    }
    let mut env_names = HashMap::new();
    for env in &options.env {
        let what = || format!("environment variable {:?}", env.name);
        if env.name.is_empty()
            || env
                .name
                .chars()
                .any(|c| c == '=' || c.is_whitespace() || c.is_control())
        {
            return Err(export_error(
                what(),
                "not a valid name: expected letters, digits and '_', without '=' or spaces",
            ));
        }
        if env_names.insert(env.name.as_str(), ()).is_some() {
            return Err(export_error(what(), "given twice"));
        }
        match &env.value {
            ArgoEnvValue::Plain(_) if looks_secret(&env.name) => {
                return Err(Error::LiteralSecret { what: what() });
            }
            ArgoEnvValue::Plain(_) => {}
            ArgoEnvValue::Secret { name, key } => {
                if !is_dns_subdomain(name) {
                    return Err(export_error(
                        what(),
                        format!("secret name {name:?} is not a Kubernetes name"),
                    ));
                }
                if key.is_empty()
                    || key.len() > 253
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(export_error(
                        what(),
                        format!(
                            "secret key {key:?} is not a valid key (letters, digits, '-', '_', '.')"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(account) = &options.service_account
        && !is_dns_subdomain(account)
    {
        return Err(export_error(
            format!("service account {account:?}"),
            "not a Kubernetes name (lowercase letters, digits, '-' and '.')",
        ));
    }
    for secret in &options.image_pull_secrets {
        if !is_dns_subdomain(secret) {
            return Err(export_error(
                format!("image pull secret {secret:?}"),
                "not a Kubernetes name (lowercase letters, digits, '-' and '.')",
            ));
        }
    }
    if options.parallelism == Some(0) {
        return Err(export_error("parallelism", "0 would never run a task"));
    }
    Ok(())
}

/// The workspace URL: present, without a password or a secret-looking query parameter.
fn check_workspace(workspace: &str) -> Result<()> {
    if workspace.trim().is_empty() {
        return Err(export_error(
            "the workspace",
            "it is empty; give the URL or path of the workspace every pod opens",
        ));
    }
    if let Some((_, rest)) = workspace.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return Err(Error::LiteralSecret {
                what: "the workspace URL's password".into(),
            });
        }
    }
    if let Some((_, query)) = workspace.split_once('?') {
        for pair in query.split('&') {
            let key = pair.split('=').next().unwrap_or_default();
            if looks_secret(key) {
                return Err(Error::LiteralSecret {
                    what: format!("the workspace URL's parameter {key:?}"),
                });
            }
        }
    }
    Ok(())
}

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

fn export_error(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Export {
        what: what.into(),
        reason: reason.into(),
    }
}

/// `text` as a DNS-1123 label of at most `max` characters: lowercase, every character but a
/// letter or digit written `-`, no `-` at either end. Empty when nothing is left.
fn dns_label(text: &str, max: usize) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let cut = &trimmed[..trimmed.len().min(max)];
    cut.trim_end_matches('-').to_string()
}

/// An Argo parameter name: letters, digits, `-`, `_`.
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A DNS-1123 label: 1 to 63 of `a-z0-9-`, a letter or digit at both ends.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: labels joined by `.`, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label or annotation key: an optional DNS subdomain and `/`, then a name of at most 63
/// letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or at most 63 letters, digits, `-`, `_`, `.`, starting and ending
/// with a letter or digit.
fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A duration as Go writes one (`"1s"`, `"5m"`, `"250ms"`), which Argo reads.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_string(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("Doris_Query", 63), "doris-query");
        assert_eq!(dns_label("__x__", 63), "x");
        assert_eq!(dns_label("abc-def", 4), "abc");
        assert_eq!(dns_label("___", 63), "");
        assert_eq!(generate_name("___"), "pipeline-");
        assert_eq!(generate_name(&"a".repeat(100)).len(), MAX_GENERATE_NAME);
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("team"));
        assert!(!is_qualified_name("Bad Key"));
        assert!(!is_label_value("has space"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert_eq!(go_duration(Duration::from_secs(300)), "5m");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h");
        assert!(looks_secret("AWS_SECRET_ACCESS_KEY"));
        assert!(looks_secret("db_password"));
        assert!(!looks_secret("AWS_REGION"));
    }

    #[test]
    fn flow_text_reads_back_to_the_same_values() {
        let text = "a: \"{{ x }} \\\" \\\\ \\t\"\nb: [1, 1.0, 1e300, .nan, -.inf, null, true]\nc: {}\n\"{d}\": 你好\n";
        let root = node::parse(text).unwrap();
        let mut out = String::new();
        flow(&root, &mut out);
        assert!(!out.contains("{{"), "{out}");
        let again = node::parse(&out).unwrap();
        assert_eq!(
            format!("{:?}", again.to_json()),
            format!("{:?}", root.to_json())
        );
        // NaN != NaN, so compare the kinds of the floats by their text.
        let Value::Map(entries) = &again.value else {
            panic!()
        };
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert!(matches!(items[1].value, Value::Float(f) if f == 1.0));
        assert!(matches!(items[3].value, Value::Float(f) if f.is_nan()));
    }
}
