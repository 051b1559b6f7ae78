//! The built-in task types, bound to the SDK: what each of the design document's pipeline
//! steps does when a workspace runs it (`docs/pipelines.md`, "Built-in task types").
//!
//! Tasks hand each other data only through locations: an output's `destination` is a
//! directory on a mount (a relative path is under the workspace's root), and the next task
//! reads it from there. A task whose output is a catalog entry (a training-set version, a
//! model version) writes a small `_trainstore.json` naming it into that directory, so a task
//! in another process, or another pod, finds it the same way.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use trainstore_core::object_store::path::Path;
use trainstore_core::object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};
use trainstore_core::{
    DatasetName, Error, Filter, ObjectStoreRef, OpenContext, Result, Scalar, ScanRequest,
    SourceSpec, TagName, TimeRange, Timestamp,
};
use trainstore_doris::SnapshotSchema;
use trainstore_featurestore::training::{CreateOptions, TrainingSetVersion};
use trainstore_featurestore::{FeatureRef, HistoricalOptions};
use trainstore_pipeline::{
    Invocation, Outputs, TaskContext, TaskFailure, TaskRunner, TaskRunnerRef,
};
use trainstore_train::{FeatureShape, Layout, ModelConfig, ModelVersion, Task, WindowFeature};

use crate::Workspace;
use crate::models::TrainRequest;

/// The task types every workspace runs: the design document's six steps and `command`.
pub const BUILTIN_TASK_TYPES: &[&str] = &[
    "data_query",
    "feature_engineering",
    "versioning",
    "training",
    "evaluation",
    "deployment",
    "command",
];

/// The file in an output directory that names the catalog entry the task made.
const MARKER: &str = "_trainstore.json";

/// Runs the built-in task types against one workspace, and any added ones.
#[derive(Clone)]
pub struct SdkTasks {
    ws: Workspace,
    extra: BTreeMap<String, TaskRunnerRef>,
}

impl std::fmt::Debug for SdkTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkTasks")
            .field("workspace", &self.ws.url())
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SdkTasks {
    /// The built-in task types over `ws`.
    pub fn new(ws: Workspace) -> Self {
        SdkTasks {
            ws,
            extra: BTreeMap::new(),
        }
    }

    /// Adds task type `name`, run by `runner`.
    pub fn with(mut self, name: &str, runner: TaskRunnerRef) -> Self {
        self.extra.insert(name.to_owned(), runner);
        self
    }
}

#[async_trait]
impl TaskRunner for SdkTasks {
    async fn run(&self, task: Invocation, ctx: TaskContext) -> Result<Outputs, TaskFailure> {
        if let Some(runner) = self.extra.get(&task.task_type) {
            return runner.run(task, ctx).await;
        }
        let step = Step {
            ws: &self.ws,
            task: &task,
            ctx: &ctx,
        };
        let work = async {
            match task.task_type.as_str() {
                "data_query" => step.data_query().await,
                "feature_engineering" => step.feature_engineering().await,
                "versioning" => step.versioning().await,
                "training" => step.training().await,
                "evaluation" => step.evaluation().await,
                "deployment" => step.deployment().await,
                "command" => step.command().await,
                other => Err(Error::invalid(
                    "task type",
                    other,
                    "not one this workspace runs",
                )),
            }
        };
        tokio::select! {
            done = work => done.map_err(failure),
            () = ctx.cancel.cancelled() => Err(TaskFailure::new("cancelled")),
        }
    }
}

/// Refuses a document whose `data_query` tasks name a source that cannot be read (checked
/// before anything runs) or hold a literal Doris password, which every stored version of the
/// document and every exported manifest would carry.
pub fn check_sources(pipeline: &trainstore_pipeline::Pipeline) -> Result<()> {
    for task in pipeline
        .tasks
        .iter()
        .filter(|t| t.task_type == "data_query")
    {
        let Some(spec) = task.config.get("source") else {
            continue;
        };
        let spec: SourceSpec = serde_json::from_value(spec.clone()).map_err(|e| {
            Error::invalid(
                "data_query config.source",
                task.name.as_str(),
                e.to_string(),
            )
        })?;
        if spec.validate(&task.name).is_err() {
            return Err(Error::invalid(
                "data_query config.source",
                task.name.as_str(),
                "the pipeline's stored versions would hold the Doris password; write it as a \
                 reference such as mysql://user:${DORIS_PASSWORD}@host:9030/db",
            ));
        }
    }
    Ok(())
}

/// Mistakes in what a task was given are not retried; everything else may be transient.
fn failure(e: Error) -> TaskFailure {
    match e {
        Error::InvalidInput { .. } | Error::NotFound { .. } | Error::PermissionDenied { .. } => {
            TaskFailure::permanent(e.to_string())
        }
        e => TaskFailure::new(e.to_string()),
    }
}

/// One attempt of one built-in task.
struct Step<'a> {
    ws: &'a Workspace,
    task: &'a Invocation,
    ctx: &'a TaskContext,
}

impl Step<'_> {
    async fn log(&self, line: impl AsRef<str>) {
        self.ctx.log.line(line).await;
    }

    /// Snapshots from a source (`config.source`, a source as in a definitions file; by default
    /// the raw snapshot files under the workspace's `snapshots/`), within the `time_range`
    /// input's `start`/`end` and for the `entity_list` input's devices when given, written
    /// parsed and typed as Parquet to the `feature_snapshots` output (or the task's only one).
    async fn data_query(&self) -> Result<Outputs> {
        let spec = match self.task.config.get("source") {
            Some(spec) => serde_json::from_value(spec.clone()).map_err(|e| {
                Error::invalid("data_query config.source", spec.to_string(), e.to_string())
            })?,
            None => SourceSpec::Files {
                location: format!("{}/snapshots", self.ws.url()),
                format: None,
                snapshots: Some(SnapshotSchema::design_doc()),
            },
        };
        let env = self.ws.source_env();
        let context = OpenContext {
            mounts: &env.mounts,
            options: &env.options,
            time_column: "time",
        };
        let source = env.factories.open(&spec, context).await?;
        let mut request = ScanRequest::default();
        if let Some(range) = self.task.inputs.get("time_range").filter(|r| !r.is_null()) {
            let at = |key: &str| -> Result<Timestamp> {
                let text = range.get(key).and_then(Json::as_str).ok_or_else(|| {
                    Error::invalid(
                        "data_query input time_range",
                        range.to_string(),
                        "an object with start and end times (ISO-8601 text)",
                    )
                })?;
                Timestamp::parse(text)
            };
            request.time_range = Some(TimeRange::new(at("start")?, at("end")?.next()?)?);
        }
        if let Some(list) = self.task.inputs.get("entity_list").filter(|l| !l.is_null()) {
            let uuids: Vec<Scalar> = list
                .as_array()
                .and_then(|l| l.iter().map(|v| v.as_str().map(Scalar::from)).collect())
                .ok_or_else(|| {
                    Error::invalid(
                        "data_query input entity_list",
                        list.to_string(),
                        "a list of device uuids (text)",
                    )
                })?;
            request.filters.push(Filter::is_in("uuid", uuids));
        }
        let batches: Vec<RecordBatch> = source.scan(&request).await?.try_collect().await?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let destination = self.output("feature_snapshots")?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => source.schema().await?,
        };
        write_parquet(&self.store_at(&destination)?, &schema, &batches).await?;
        self.log(format!(
            "{rows} snapshots from {} written to {destination}",
            source.describe()
        ))
        .await;
        Ok(Outputs::from([(
            self.output_name("feature_snapshots")?,
            destination,
        )]))
    }

    /// The design document's feature views over the typed snapshots of the
    /// `feature_snapshots` input, applied to the workspace; then each device's series (one
    /// entity row per snapshot time) joined point in time with `config.features` (by default
    /// `basic_features:meanLf` and `basic_features:temperature`), written as Parquet to the
    /// `training_set` output.
    async fn feature_engineering(&self) -> Result<Outputs> {
        let snapshots = self.input_location("feature_snapshots")?;
        let features = self.ws.features();
        let mut definitions = crate::features::design_doc_definitions(&snapshots)?;
        for view in &mut definitions.feature_views {
            view.source = SourceSpec::Files {
                location: snapshots.clone(),
                format: None,
                snapshots: None,
            };
        }
        let rows = self.config_usize("online_rows", 8)?;
        definitions.feature_views[0].online_rows = rows;
        let applied = features.apply(definitions.into_list()).await?;
        let refs: Vec<FeatureRef> = self
            .config_strings(
                "features",
                &["basic_features:meanLf", "basic_features:temperature"],
            )?
            .iter()
            .map(|r| r.parse())
            .collect::<Result<_>>()?;
        let typed = read_parquet(&self.store_at(&snapshots)?).await?;
        let entity_rows = series_entity_rows(&typed)?;
        let answer = features
            .get_historical_features(&entity_rows, &refs, &HistoricalOptions::default())
            .await?;
        let destination = self.output("training_set")?;
        write_parquet(
            &self.store_at(&destination)?,
            &answer.schema(),
            std::slice::from_ref(&answer),
        )
        .await?;
        self.log(format!(
            "definitions at registry version {}; {} entity rows x {} columns written to {destination}",
            applied.version.map_or("unchanged".into(), |v| v.to_string()),
            answer.num_rows(),
            answer.num_columns()
        ))
        .await;
        Ok(Outputs::from([(
            self.output_name("training_set")?,
            destination,
        )]))
    }

    /// The Parquet rows of the `training_set` input created as a new version of training set
    /// `config.name` (`training-set` by default), its quality scored; the version is named in
    /// the output directory.
    async fn versioning(&self) -> Result<Outputs> {
        let location = self.input_location("training_set")?;
        let batches = read_parquet(&self.store_at(&location)?).await?;
        let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| {
            Error::invalid("versioning input training_set", &location, "holds no rows")
        })?;
        let name = DatasetName::new(self.config_str("name", "training-set")?)?;
        let options = CreateOptions {
            metadata: json!({"description": format!("pipeline run {}, task {}", self.task.run_id, self.task.name)}),
            time_column: Some("event_timestamp".into()),
            ..CreateOptions::default()
        };
        let stream = futures::stream::iter(batches.into_iter().map(Ok)).boxed();
        let version = self
            .ws
            .training_sets()
            .create(&name, schema, stream, options)
            .await?;
        let quality = &version.info.quality;
        self.log(format!(
            "created {}: {} rows, quality {:.3}",
            version.id(),
            version.info.rows,
            quality.overall_score
        ))
        .await;
        self.mark(json!({"training_set": version.id(), "rows": version.info.rows, "quality": quality.overall_score}))
            .await
    }

    /// A forecaster trained on the training-set version the `training_set` input names, as
    /// model `config.model` (`model` by default): from the model the `base_model` input names
    /// when it names one (incremental, replaying `incremental_ratio` of its earlier windows),
    /// afresh otherwise. Epochs, learning rate and batch size come from the parameters of
    /// those names, the model's size and window from `config`.
    async fn training(&self) -> Result<Outputs> {
        let data = self.training_set_input("training_set").await?;
        let base = match self.task.inputs.get("base_model").filter(|v| !v.is_null()) {
            Some(input) => self.marked(input, "model").await?,
            None => None,
        };
        let features = self.config_strings("features", &["meanLf", "temperature"])?;
        let mut request = TrainRequest::new(Layout {
            keys: vec!["uuid".into(), "nodeId".into()],
            time: "event_timestamp".into(),
            features: features
                .iter()
                .map(|f| WindowFeature {
                    name: f.clone(),
                    shape: FeatureShape::Scalar,
                })
                .collect(),
            task: Task::Forecast,
        });
        request.windows.length = self.config_usize("window", 8)?;
        request.windows.stride = 1;
        request.split.validation = 0.25;
        request.split.test = 0.0;
        request.model = ModelConfig {
            d_model: self.config_usize("d_model", 16)?,
            heads: self.config_usize("heads", 2)?,
            layers: self.config_usize("layers", 1)?,
            d_ff: self.config_usize("d_ff", 32)?,
            dropout: 0.0,
        };
        if let Some(epochs) = self.parameter_f64("epochs")? {
            request.training.epochs = epochs as usize;
        }
        if let Some(rate) = self.parameter_f64("learning_rate")? {
            request.training.learning_rate = rate;
        }
        if let Some(batch) = self.parameter_f64("batch_size")? {
            request.training.batch_size = batch as usize;
        }
        if let Some(base) = &base {
            request.base = Some(base.clone());
            request.incremental_ratio = self.parameter_f64("incremental_ratio")?.unwrap_or(0.0);
        }
        let name = DatasetName::new(self.config_str("model", "model")?)?;
        let model = self.ws.models().train(&name, &data, &request).await?;
        self.log(format!(
            "trained {} on {} ({}, {} epochs)",
            model.id(),
            data.id(),
            base.as_deref()
                .map_or("afresh".to_owned(), |b| format!("from {b}")),
            model.card.metrics.len()
        ))
        .await;
        self.mark(json!({"model": model.id(), "training_set": data.id(), "base": base}))
            .await
    }

    /// The `model` input's forecast errors on the training-set version the `test_data` input
    /// names, or, when it names none, on the last training set the model was trained on;
    /// the report is written as `evaluation.json` to the output directory.
    async fn evaluation(&self) -> Result<Outputs> {
        let model = self.model_input("model").await?;
        let data = match self.task.inputs.get("test_data") {
            Some(input) => match self.marked(input, "training_set").await? {
                Some(id) => Some(self.training_set(&id).await?),
                None => None,
            },
            None => None,
        };
        let data = match data {
            Some(data) => data,
            None => self.trained_on(&model).await?,
        };
        let report = self.ws.models().evaluate(&model, &data).await?;
        let destination = self.only_output()?;
        let store = self.store_at(&destination)?;
        let text = serde_json::to_vec_pretty(&report).expect("reports serialize");
        put(&store, "evaluation.json", text.into()).await?;
        let rmse: Vec<String> = report
            .features
            .iter()
            .map(|f| format!("{} RMSE {:.4}", f.feature, f.rmse))
            .collect();
        self.log(format!(
            "{} on {}: {}",
            model.id(),
            data.id(),
            rmse.join(", ")
        ))
        .await;
        let mut outputs = self
            .mark(json!({"model": model.id(), "training_set": data.id(), "report": report}))
            .await?;
        // What this task made is the report, not a catalog entry: its output is the place.
        for value in outputs.values_mut() {
            *value = destination.clone();
        }
        Ok(outputs)
    }

    /// Promotes the `model` input to `config.alias` (`champion`) if it forecasts the data it
    /// was trained on better than the alias's model by `config.min_improvement` (0), then
    /// materializes the online store up to now, so the champion can serve in real time.
    async fn deployment(&self) -> Result<Outputs> {
        let model = self.model_input("model").await?;
        let data = self.trained_on(&model).await?;
        let alias = TagName::new(self.config_str("alias", "champion")?)?;
        let threshold = self.config_f64("min_improvement", 0.0)?;
        let gate = self
            .ws
            .models()
            .promote_if_better(&model, &data, &alias, threshold)
            .await?;
        let done = self
            .ws
            .features()
            .materialize_incremental(Timestamp::now(), None)
            .await?;
        self.log(format!(
            "{} {}: {}; materialized {} view(s)",
            model.id(),
            if gate.promoted {
                format!("promoted to {alias}")
            } else {
                format!("not promoted to {alias}")
            },
            gate.reason,
            done.len()
        ))
        .await;
        let serving = self.ws.models().get(&model.name, alias.as_str()).await?;
        self.mark(json!({"model": serving.id(), "alias": alias.as_str(), "promoted": gate.promoted, "candidate": model.id()}))
            .await
    }

    /// Runs `config.command` (a list: the program and its arguments) with the task's inputs,
    /// outputs and the run's parameters in the environment (`TRAINSTORE_INPUT_<NAME>`,
    /// `TRAINSTORE_OUTPUT_<NAME>`, `TRAINSTORE_PARAMETERS` as JSON) and `config.env` added;
    /// its output lines go to the task's log, and a non-zero exit fails the attempt.
    async fn command(&self) -> Result<Outputs> {
        let argv: Vec<String> = self
            .task
            .config
            .get("command")
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .filter(|a: &Vec<String>| !a.is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    "command task config.command",
                    self.task.name.as_str(),
                    "a non-empty list of text: the program and its arguments",
                )
            })?;
        let mut process = tokio::process::Command::new(&argv[0]);
        process
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in &self.task.inputs {
            process.env(env_name("TRAINSTORE_INPUT_", name), plain(value));
        }
        for (name, value) in &self.task.outputs {
            process.env(env_name("TRAINSTORE_OUTPUT_", name), value);
        }
        process.env(
            "TRAINSTORE_PARAMETERS",
            Json::Object(self.task.parameters.clone()).to_string(),
        );
        if let Some(env) = self.task.config.get("env").and_then(Json::as_object) {
            for (name, value) in env {
                process.env(name, plain(value));
            }
        }
        let mut child = process
            .spawn()
            .map_err(|e| Error::invalid("command", &argv[0], format!("cannot be started: {e}")))?;
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let echo = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| async move {
            if let Some(stream) = stream {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    self.log(line).await;
                }
            }
        };
        let out = out.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
        let err = err.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
        let (status, (), ()) = tokio::join!(child.wait(), echo(out), echo(err));
        let status = status.map_err(|e| Error::Internal {
            operation: format!("wait for {}", argv[0]),
            reason: e.to_string(),
        })?;
        if !status.success() {
            return Err(Error::Remote {
                service: argv[0].clone(),
                operation: "command task",
                reason: format!("exited with {status}"),
                transient: true,
            });
        }
        Ok(self.task.outputs.clone().into_iter().collect())
    }

    /// The rendered destination of output `name`, else of the task's only output, as a
    /// location.
    fn output(&self, name: &str) -> Result<String> {
        let name = self.output_name(name)?;
        Ok(self.location(&self.task.outputs[&name]))
    }

    fn output_name(&self, preferred: &str) -> Result<String> {
        if self.task.outputs.contains_key(preferred) {
            return Ok(preferred.to_owned());
        }
        match self.task.outputs.keys().collect::<Vec<_>>().as_slice() {
            [only] => Ok((*only).clone()),
            _ => Err(Error::invalid(
                "task outputs",
                self.task.name.as_str(),
                format!(
                    "a {} task writes one output with a destination (or one named {preferred})",
                    self.task.task_type
                ),
            )),
        }
    }

    fn only_output(&self) -> Result<String> {
        self.output("")
    }

    /// Where input `name` points, as a location.
    fn input_location(&self, name: &str) -> Result<String> {
        match self.task.inputs.get(name) {
            Some(Json::String(path)) => Ok(self.location(path)),
            other => Err(Error::invalid(
                "task input",
                name,
                format!(
                    "a {} task reads it from a location; got {}",
                    self.task.task_type,
                    other.map_or("nothing".to_owned(), Json::to_string)
                ),
            )),
        }
    }

    /// A path as a location: URLs as they are, absolute paths on this machine's disk,
    /// relative paths under the workspace's root.
    fn location(&self, path: &str) -> String {
        if path.contains("://") {
            path.trim_end_matches('/').to_owned()
        } else if path.starts_with('/') {
            format!("file://{}", path.trim_end_matches('/'))
        } else {
            let relative = path.trim_start_matches("./").trim_end_matches('/');
            format!("{}/{relative}", self.ws.url())
        }
    }

    fn store_at(&self, location: &str) -> Result<ObjectStoreRef> {
        let env = self.ws.source_env();
        Ok(env.mounts.resolve_with(location, &env.options)?.store)
    }

    /// Writes `marker` into the output directory and answers the catalog entry it names as
    /// the output's value.
    async fn mark(&self, marker: Json) -> Result<Outputs> {
        let name = self.output_name("")?;
        let destination = self.location(&self.task.outputs[&name]);
        let text = serde_json::to_vec_pretty(&marker).expect("markers serialize");
        put(&self.store_at(&destination)?, MARKER, text.into()).await?;
        let value = ["training_set", "model"]
            .iter()
            .rev()
            .find_map(|k| marker.get(*k).and_then(Json::as_str))
            .map_or(destination, str::to_owned);
        Ok(Outputs::from([(name, value)]))
    }

    /// The catalog entry of kind `key` an input names: a `name@vN` value, or a location
    /// whose marker names one; `None` for a location with no marker (nothing there yet).
    async fn marked(&self, input: &Json, key: &str) -> Result<Option<String>> {
        let Some(text) = input.as_str() else {
            return Err(Error::invalid(
                "task input",
                input.to_string(),
                "a location or a catalog reference (name@vN)",
            ));
        };
        if !text.contains('/') && text.contains('@') {
            return Ok(Some(text.to_owned()));
        }
        let store = self.store_at(&self.location(text))?;
        let found = match store.get(&Path::from(MARKER)).await {
            Ok(found) => found,
            Err(trainstore_core::object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::storage("read", MARKER, e)),
        };
        let bytes = found
            .bytes()
            .await
            .map_err(|e| Error::storage("read", MARKER, e))?;
        let marker: Json = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: format!("{text}/{MARKER}"),
            reason: e.to_string(),
        })?;
        Ok(marker.get(key).and_then(Json::as_str).map(str::to_owned))
    }

    async fn training_set_input(&self, name: &str) -> Result<TrainingSetVersion> {
        let input = self.task.inputs.get(name).cloned().unwrap_or(Json::Null);
        let id = self.marked(&input, "training_set").await?.ok_or_else(|| {
            Error::invalid(
                "task input",
                name,
                "names no training-set version (run the versioning task first)",
            )
        })?;
        self.training_set(&id).await
    }

    async fn training_set(&self, id: &str) -> Result<TrainingSetVersion> {
        let (name, reference) = trainstore_core::ids::split_reference(id)?;
        self.ws.training_sets().get(&name, &reference).await
    }

    async fn model_input(&self, name: &str) -> Result<ModelVersion> {
        let input = self.task.inputs.get(name).cloned().unwrap_or(Json::Null);
        let id = self.marked(&input, "model").await?.ok_or_else(|| {
            Error::invalid(
                "task input",
                name,
                "names no model version (run the training task first)",
            )
        })?;
        let (model, reference) = trainstore_core::ids::split_reference(&id)?;
        self.ws.models().get(&model, &reference).await
    }

    /// The training set `model` was trained on last (the first of its lineage).
    async fn trained_on(&self, model: &ModelVersion) -> Result<TrainingSetVersion> {
        let id = model.card.lineage.training_sets.first().ok_or_else(|| {
            Error::invalid(
                "model",
                model.id(),
                "records no training set to evaluate on: give test_data",
            )
        })?;
        self.training_set(id).await
    }

    fn config_str(&self, key: &str, default: &str) -> Result<String> {
        match self.task.config.get(key) {
            None => Ok(default.to_owned()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.bad_config(key, other, "text")),
        }
    }

    fn config_strings(&self, key: &str, default: &[&str]) -> Result<Vec<String>> {
        match self.task.config.get(key) {
            None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
            Some(value) => value
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .ok_or_else(|| self.bad_config(key, value, "a list of text")),
        }
    }

    fn config_usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.task.config.get(key) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| self.bad_config(key, value, "a whole number")),
        }
    }

    fn config_f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.task.config.get(key) {
            None => Ok(default),
            Some(value) => value
                .as_f64()
                .ok_or_else(|| self.bad_config(key, value, "a number")),
        }
    }

    fn bad_config(&self, key: &str, value: &Json, expected: &str) -> Error {
        Error::invalid(
            "task config",
            format!("{}.config.{key} = {value}", self.task.name),
            format!("expected {expected}"),
        )
    }

    /// Run parameter `name` as a number (numbers, or text holding one, as Argo passes them).
    fn parameter_f64(&self, name: &str) -> Result<Option<f64>> {
        match self.task.parameters.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => Ok(n.as_f64()),
            Some(Json::String(s)) => s.parse().map(Some).map_err(|_| {
                Error::invalid("pipeline parameter", name, format!("{s:?} is not a number"))
            }),
            Some(other) => Err(Error::invalid(
                "pipeline parameter",
                name,
                format!("{other} is not a number"),
            )),
        }
    }
}

/// An environment variable's name for an input or output: upper case, `-` as `_`.
fn env_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.to_uppercase().replace(['-', '.'], "_"))
}

/// A value as a process sees it: text as itself, anything else as JSON.
fn plain(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn put(store: &ObjectStoreRef, name: &str, bytes: Bytes) -> Result<()> {
    store
        .put(&Path::from(name), PutPayload::from(bytes))
        .await
        .map_err(|e| Error::storage("write", name, e))?;
    Ok(())
}

/// Writes `batches` as `part-0.parquet` into `store` (one file: what a task hands on).
async fn write_parquet(
    store: &ObjectStoreRef,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let bad = |e: parquet::errors::ParquetError| Error::Internal {
        operation: "write Parquet".into(),
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), None).map_err(bad)?;
    for batch in batches {
        writer.write(batch).map_err(bad)?;
    }
    writer.close().map_err(bad)?;
    put(store, "part-0.parquet", out.into()).await
}

/// Every Parquet file's rows in `store`, in name order.
async fn read_parquet(store: &ObjectStoreRef) -> Result<Vec<RecordBatch>> {
    let mut files: Vec<Path> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::storage("list", "task input", e))?;
    files.retain(|p| p.as_ref().ends_with(".parquet"));
    files.sort();
    let mut batches = Vec::new();
    for file in files {
        let bytes = store
            .get(&file)
            .await
            .map_err(|e| Error::storage("read", &file, e))?
            .bytes()
            .await
            .map_err(|e| Error::storage("read", &file, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| Error::Corrupt {
                path: file.to_string(),
                reason: e.to_string(),
            })?;
        for batch in reader {
            batches.push(batch?);
        }
    }
    Ok(batches)
}

/// Entity rows for a training set of series: one per typed snapshot (`uuid`, `nodeId`, its
/// `time` as `event_timestamp`), so each device's series is joined point in time.
pub fn series_entity_rows(snapshots: &[RecordBatch]) -> Result<RecordBatch> {
    let (mut uuids, mut nodes, mut times) = (vec![], vec![], vec![]);
    for batch in snapshots {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                Error::invalid(
                    "snapshots",
                    name,
                    "a design-document column is missing (uuid, nodeId and time are needed)",
                )
            })
        };
        let (uuid, node, time) = (column("uuid")?, column("nodeId")?, column("time")?);
        let (Some(uuid), Some(node), Some(time)) = (
            uuid.as_string_opt::<i32>(),
            node.as_string_opt::<i32>(),
            time.as_primitive_opt::<TimestampMillisecondType>(),
        ) else {
            return Err(Error::invalid(
                "snapshots",
                format!("{:?}", batch.schema()),
                "uuid and nodeId text and time a timestamp (ms), as parsed snapshots have them",
            ));
        };
        for row in 0..batch.num_rows() {
            if uuid.is_valid(row) && node.is_valid(row) && time.is_valid(row) {
                uuids.push(uuid.value(row).to_owned());
                nodes.push(node.value(row).to_owned());
                times.push(time.value(row));
            }
        }
    }
    Ok(RecordBatch::try_from_iter([
        ("uuid", Arc::new(StringArray::from(uuids)) as Arc<dyn Array>),
        ("nodeId", Arc::new(StringArray::from(nodes))),
        (
            "event_timestamp",
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC")),
        ),
    ])?)
}
