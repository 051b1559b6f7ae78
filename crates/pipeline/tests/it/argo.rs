//! The Argo Workflows exporter: the design document's example as a DAG of its six tasks,
//! references, retries and timeouts, names made valid, secrets only by reference, and every
//! manifest valid under Argo's own JSON Schema with unknown keys refused.
//!
//! The schema is Argo's release file in `../shared/argo/` beside the repository (CI has it);
//! where it is absent, the schema tests say `skipped` on stderr and pass.

use std::path::Path;

use serde_json::{Value, json};
use trainstore_pipeline::{
    ArgoEnv, ArgoOptions, ArgoVolume, Error, ImagePullPolicy, Pipeline, argo,
};

use crate::json_schema::Schema;
use crate::support::{DESIGN_DOC, document, parse, types};

const WORKFLOW: &str = "io.argoproj.workflow.v1alpha1.Workflow";
const SHARED_ARGO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/argo");

/// Argo's schema, strict, or `None` (saying so) when this checkout has no `../shared/argo/`.
fn argo_schema() -> Option<Schema> {
    let path = Path::new(SHARED_ARGO).join("workflow-schema.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipped: {} not found; Argo schema validation did not run",
            path.display()
        );
        return None;
    };
    let root: Value = serde_json::from_str(&text).expect("the Argo schema is JSON");
    Some(Schema::new(root, true))
}

fn assert_valid(schema: &Schema, manifest: &Value, what: &str) {
    let errors = schema.validate(WORKFLOW, manifest);
    assert!(
        errors.is_empty(),
        "{what} is not a valid Workflow:\n{}",
        errors.join("\n")
    );
}

/// Options as a cluster would give them: a PVC for the document's `/mnt/user` paths and S3
/// credentials from a secret.
fn options() -> ArgoOptions {
    let mut options = ArgoOptions::new("s3://ml-bucket/trainstore");
    options
        .volumes
        .push(ArgoVolume::new("user-data", "user-data-pvc", "/mnt/user"));
    options.env.push(ArgoEnv::secret(
        "AWS_ACCESS_KEY_ID",
        "s3-credentials",
        "access-key",
    ));
    options.env.push(ArgoEnv::secret(
        "AWS_SECRET_ACCESS_KEY",
        "s3-credentials",
        "secret-key",
    ));
    options.env.push(ArgoEnv::plain("AWS_REGION", "eu-west-1"));
    options
}

fn export(text: &str, options: &ArgoOptions) -> Value {
    argo::export(&parse(text), text, options).unwrap_or_else(|e| panic!("{e}"))
}

fn template<'a>(workflow: &'a Value, name: &str) -> &'a Value {
    workflow["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no template {name}"))
}

fn dag(workflow: &Value) -> Vec<(String, Vec<String>)> {
    let entrypoint = workflow["spec"]["entrypoint"].as_str().unwrap();
    template(workflow, entrypoint)["dag"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["template"], t["name"]);
            let deps = t["dependencies"]
                .as_array()
                .map(|d| d.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (t["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_design_document_exports_as_a_dag_of_its_six_tasks() {
    let workflow = export(DESIGN_DOC, &options());
    assert_eq!(workflow["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(workflow["kind"], "Workflow");
    assert_eq!(
        workflow["metadata"]["generateName"],
        "doris-feast-incremental-pipeline-"
    );
    assert_eq!(workflow["spec"]["entrypoint"], "pipeline");
    assert_eq!(
        dag(&workflow),
        vec![
            ("doris-data-query".into(), vec![]),
            (
                "feast-feature-engineering".into(),
                strings(&["doris-data-query"])
            ),
            (
                "training-set-versioning".into(),
                strings(&["feast-feature-engineering"])
            ),
            (
                "model-training".into(),
                strings(&["training-set-versioning"])
            ),
            ("model-evaluation".into(), strings(&["model-training"])),
            // Declared after evaluation, and through data on the trained model.
            (
                "model-deployment".into(),
                strings(&["model-training", "model-evaluation"])
            ),
        ]
    );
    assert_eq!(
        template(&workflow, "pipeline")["dag"]["failFast"],
        json!(false)
    );

    // One container template per task, its resources Kubernetes quantity strings.
    let templates = workflow["spec"]["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 7);
    for t in &templates[1..] {
        let resources = t["container"]["resources"].as_object().unwrap();
        for (kind, amounts) in resources {
            for (name, amount) in amounts.as_object().unwrap() {
                assert!(
                    amount.is_string(),
                    "{}: {kind}.{name} = {amount}",
                    t["name"]
                );
            }
        }
        assert!(t.get("retryStrategy").is_none() && t.get("activeDeadlineSeconds").is_none());
    }
    let training = template(&workflow, "model-training");
    assert_eq!(
        training["container"]["resources"],
        json!({
            "requests": {"cpu": "8", "memory": "16Gi"},
            "limits": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"},
        })
    );
    assert_eq!(
        training["container"]["image"],
        "train-platform/transformer-training:latest"
    );
    assert_eq!(training["container"]["command"], json!(["trainstore"]));
    assert_eq!(
        training["container"]["args"],
        json!([
            "task",
            "run",
            "--workspace",
            "s3://ml-bucket/trainstore",
            "--pipeline",
            "/etc/trainstore/pipeline.yaml",
            "--task",
            "model-training",
            "--run",
            "{{workflow.name}}",
            "--param",
            "batch_size={{workflow.parameters.batch_size}}",
            "--param",
            "entity_list={{workflow.parameters.entity_list}}",
            "--param",
            "epochs={{workflow.parameters.epochs}}",
            "--param",
            "incremental_ratio={{workflow.parameters.incremental_ratio}}",
            "--param",
            "learning_rate={{workflow.parameters.learning_rate}}",
            "--param",
            "time_range={{workflow.parameters.time_range}}",
        ])
    );
    assert_eq!(
        training["container"]["volumeMounts"],
        json!([{"name": "user-data", "mountPath": "/mnt/user"}])
    );
    assert_eq!(
        workflow["spec"]["volumes"],
        json!([{"name": "user-data", "persistentVolumeClaim": {"claimName": "user-data-pvc"}}])
    );

    // Parameters: text as it is, anything else as JSON.
    let parameters = &workflow["spec"]["arguments"]["parameters"];
    let value = |name: &str| {
        parameters
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))["value"]
            .clone()
    };
    assert_eq!(parameters.as_array().unwrap().len(), 6);
    assert_eq!(value("epochs"), "100");
    assert_eq!(value("learning_rate"), "0.001");
    assert_eq!(value("entity_list"), r#"["uuid1","uuid2","uuid3"]"#);
    let range: Value = serde_json::from_str(value("time_range").as_str().unwrap()).unwrap();
    assert_eq!(range["start"], "2024-01-01T00:00:00Z");

    // The document reaches every pod verbatim (it holds no `{{`).
    for t in &templates[1..] {
        let artifacts = t["inputs"]["artifacts"].as_array().unwrap();
        assert_eq!(artifacts.len(), 1);
        assert_eq!(artifacts[0]["name"], "pipeline");
        assert_eq!(artifacts[0]["path"], "/etc/trainstore/pipeline.yaml");
        assert_eq!(artifacts[0]["raw"]["data"].as_str(), Some(DESIGN_DOC));
    }

    // Callers print it as YAML; it reads back the same.
    let yaml = serde_yaml_ng::to_string(&workflow).unwrap();
    let again: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(again, workflow);
}

/// References, `when`, retries, a timeout, a label and a task without an image.
const WITH_REFERENCES: &str = r#"
apiVersion: train-platform/v1
kind: Pipeline
metadata:
  name: nightly_retrain
  labels:
    team: vibration
    owner: "Jane Doe"
  annotations:
    example.com/docs: "https://example.com/pipelines/nightly"
spec:
  tasks:
    - name: query
      type: data_query
      outputs:
        - name: snapshots
          destination: "/mnt/user/data/{{ parameters.tag }}/snapshots"
      retries: 3
      timeout: 1h30m
    - name: train
      type: training
      image: registry.example.com/trainer:1.2
      resources: {cpu: 500m, memory: 1536Mi, gpu: 2}
      inputs:
        - name: snapshots
          source: "/mnt/user/data/{{ parameters.tag }}/snapshots"
      outputs:
        - name: model
      config:
        epochs: "{{ parameters.epochs }}"
        ratio: 0.5
        big: 1.0
      when: "{{ parameters.retrain }}"
      timeout: 90.5s
    - name: deploy
      type: deployment
      when: "{{ tasks.train.outputs.model }} != 'none'"
      priority: 10
  parameters:
    tag: nightly
    retrain: true
    epochs: 10
"#;

#[test]
fn references_retries_timeouts_and_when_export_without_argo_variables_of_ours() {
    let pipeline = parse(WITH_REFERENCES);
    let workflow = export(WITH_REFERENCES, &options());
    assert_eq!(workflow["metadata"]["generateName"], "nightly-retrain-");
    assert_eq!(workflow["metadata"]["labels"], json!({"team": "vibration"}));
    // A label value Kubernetes refuses is kept as an annotation.
    assert_eq!(workflow["metadata"]["annotations"]["owner"], "Jane Doe");
    assert_eq!(
        dag(&workflow),
        vec![
            ("query".into(), vec![]),
            ("train".into(), strings(&["query"])),
            ("deploy".into(), strings(&["train"])),
        ]
    );
    // `when` is the CLI's: Argo runs every task, and `task run` skips.
    for t in template(&workflow, "pipeline")["dag"]["tasks"]
        .as_array()
        .unwrap()
    {
        assert!(t.get("when").is_none());
    }

    let query = template(&workflow, "query");
    assert_eq!(
        query["retryStrategy"],
        json!({
            "limit": "3",
            "retryPolicy": "Always",
            "expression": "lastRetry.exitCode != \"3\"",
            "backoff": {"duration": "1s", "factor": "2", "cap": "5m"},
        })
    );
    assert_eq!(query["activeDeadlineSeconds"], "5400");
    assert_eq!(
        query["container"]["image"],
        ArgoOptions::new("x").default_image
    );
    assert_eq!(
        query["container"]["resources"],
        json!({"requests": {"cpu": "1"}})
    );
    let train = template(&workflow, "train");
    assert_eq!(train["activeDeadlineSeconds"], "91");
    assert_eq!(
        train["container"]["resources"],
        json!({
            "requests": {"cpu": "500m", "memory": "1536Mi"},
            "limits": {"cpu": "500m", "memory": "1536Mi", "nvidia.com/gpu": "2"},
        })
    );
    assert_eq!(
        template(&workflow, "deploy")["retryStrategy"],
        Value::Null,
        "no retries, no strategy"
    );

    // The document holds `{{ tasks.… }}`, which Argo would try to resolve: pods get it as a
    // flow mapping without `{{`, which reads to the same pipeline.
    let data = train["inputs"]["artifacts"][0]["raw"]["data"]
        .as_str()
        .unwrap();
    assert!(!data.contains("{{"), "{data}");
    let again = Pipeline::parse(data, &types()).unwrap_or_else(|e| panic!("{e}\n{data}"));
    assert_eq!(again, pipeline);
    // Every `{{` left in the manifest is one of Argo's own variables.
    let text = workflow.to_string();
    for (at, _) in text.match_indices("{{") {
        assert!(
            text[at..].starts_with("{{workflow.name}}")
                || text[at..].starts_with("{{workflow.parameters."),
            "{}",
            &text[at..(at + 60).min(text.len())]
        );
    }
}

#[test]
fn exported_manifests_pass_argos_schema_with_unknown_keys_refused() {
    let Some(schema) = argo_schema() else { return };
    let mut all = options();
    all.service_account = Some("trainstore-runner".into());
    all.image_pull_policy = Some(ImagePullPolicy::IfNotPresent);
    all.image_pull_secrets = vec!["registry-credentials".into()];
    all.parallelism = Some(4);
    let mut models = ArgoVolume::new("models", "models-pvc", "/mnt/models");
    models.read_only = true;
    all.volumes.push(models);
    for (name, text) in [
        ("the design document", DESIGN_DOC),
        ("the document with references", WITH_REFERENCES),
    ] {
        assert_valid(
            &schema,
            &export(text, &ArgoOptions::new("/mnt/user/ws")),
            name,
        );
        let workflow = export(text, &all);
        assert_eq!(workflow["spec"]["serviceAccountName"], "trainstore-runner");
        assert_valid(&schema, &workflow, name);
    }
}

#[test]
fn argos_own_examples_pass_the_strict_validator() {
    let Some(schema) = argo_schema() else { return };
    let mut examples: Vec<_> = std::fs::read_dir(SHARED_ARGO)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("example-") && name.ends_with(".yaml")
        })
        .collect();
    examples.sort();
    assert_eq!(examples.len(), 4, "{examples:?}");
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_valid(&schema, &manifest, &path.display().to_string());
    }
}

#[test]
fn a_misspelt_key_or_a_quantity_as_a_number_fails_the_strict_validator() {
    let Some(schema) = argo_schema() else { return };
    let good = export(WITH_REFERENCES, &options());
    assert_valid(&schema, &good, "the export");
    let broken = |path: &[&str], key: &str, value: Value| {
        let mut manifest = good.clone();
        let mut at = &mut manifest;
        for step in path {
            at = match step.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*step],
            };
        }
        at[key] = value;
        schema.validate(WORKFLOW, &manifest)
    };
    let errors = broken(
        &["spec", "templates", "1", "container"],
        "imgae",
        json!("x"),
    );
    assert_eq!(
        errors,
        ["$.spec.templates[1].container.imgae: unknown key"],
        "a misspelt key"
    );
    let errors = broken(&["spec"], "entrypiont", json!("pipeline"));
    assert_eq!(errors, ["$.spec.entrypiont: unknown key"]);
    let errors = broken(
        &[
            "spec",
            "templates",
            "2",
            "container",
            "resources",
            "requests",
        ],
        "cpu",
        json!(2),
    );
    assert_eq!(
        errors,
        ["$.spec.templates[2].container.resources.requests.cpu: number is not [\"string\"]"]
    );
    let errors = broken(
        &["spec", "templates", "1", "retryStrategy"],
        "limit",
        json!(3),
    );
    assert_eq!(
        errors,
        ["$.spec.templates[1].retryStrategy.limit: number is not [\"string\"]"]
    );
    let errors = broken(&[], "kind", json!("CronWorkflow"));
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn secrets_only_by_reference_and_never_written() {
    let text = DESIGN_DOC;
    let pipeline = parse(text);
    let literal = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    for name in [
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "hf_token",
        "API_KEY",
    ] {
        let mut options = ArgoOptions::new("s3://ml-bucket/trainstore");
        options.env.push(ArgoEnv::plain(name, literal));
        let error = argo::export(&pipeline, text, &options).unwrap_err();
        assert!(matches!(error, Error::LiteralSecret { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(name) && message.contains("secret"),
            "{message}"
        );
        assert!(!message.contains(literal), "{message}");
    }
    // Nor in the workspace URL.
    for url in [
        "s3://AKIAEXAMPLE:hunter2@bucket/ws",
        "s3://bucket/ws?aws_secret_access_key=hunter2",
    ] {
        let error = argo::export(&pipeline, text, &ArgoOptions::new(url)).unwrap_err();
        assert!(matches!(error, Error::LiteralSecret { .. }), "{error:?}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    // A reference passes; only the secret's name and key are written.
    let workflow = argo::export(&pipeline, text, &options()).unwrap();
    let env = &template(&workflow, "model-training")["container"]["env"];
    assert_eq!(
        env[1],
        json!({"name": "AWS_SECRET_ACCESS_KEY",
               "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": "secret-key"}}})
    );
    assert_eq!(env[2], json!({"name": "AWS_REGION", "value": "eu-west-1"}));
    let manifest = workflow.to_string();
    assert!(!manifest.contains(literal) && !manifest.contains("hunter2"));
}

#[test]
fn names_are_made_valid_for_argo_and_collisions_refused() {
    let text = document(
        "    - {name: Load_Data, type: command}\n    - {name: _prep, type: command}\n    - {name: 2nd, type: command}\n    - {name: pipeline, type: command}\n",
        "  dependencies:\n    - {from: Load_Data, to: _prep}\n    - {from: _prep, to: 2nd}\n    - {from: 2nd, to: pipeline}\n",
    );
    let pipeline = parse(&text);
    assert_eq!(
        argo::task_names(&pipeline).unwrap(),
        vec![
            ("Load_Data".to_string(), "load-data".to_string()),
            ("_prep".into(), "prep".into()),
            ("2nd".into(), "t-2nd".into()),
            ("pipeline".into(), "pipeline".into()),
        ]
    );
    let workflow = export(&text, &ArgoOptions::new("/mnt/ws"));
    // The entrypoint steps aside for the task called `pipeline`.
    assert_eq!(workflow["spec"]["entrypoint"], "pipeline-1");
    assert_eq!(
        dag(&workflow),
        vec![
            ("load-data".into(), vec![]),
            ("prep".into(), strings(&["load-data"])),
            ("t-2nd".into(), strings(&["prep"])),
            ("pipeline".into(), strings(&["t-2nd"])),
        ]
    );
    // The CLI is given the document's name, not Argo's.
    let args = &template(&workflow, "t-2nd")["container"]["args"];
    assert_eq!(args[7], "2nd");

    let clash = document(
        "    - {name: Train_A, type: command}\n    - {name: train-a, type: command}\n",
        "",
    );
    let error = argo::export(&parse(&clash), &clash, &ArgoOptions::new("/mnt/ws")).unwrap_err();
    assert!(matches!(error, Error::Export { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("\"Train_A\"")
            && message.contains("\"train-a\"")
            && message.contains("rename"),
        "{message}"
    );

    assert_eq!(argo::generate_name("My_Pipeline"), "my-pipeline-");
    let long = "x".repeat(63);
    assert_eq!(argo::generate_name(&long).len() + 5, 62);
}

#[test]
fn bad_options_and_a_foreign_document_are_refused_with_the_reason() {
    let pipeline = parse(DESIGN_DOC);
    let refused = |change: &dyn Fn(&mut ArgoOptions), expected: &str| {
        let mut options = options();
        change(&mut options);
        let error = argo::export(&pipeline, DESIGN_DOC, &options).unwrap_err();
        assert!(matches!(error, Error::Export { .. }), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
    };
    refused(&|o| o.workspace = " ".into(), "the workspace");
    refused(
        &|o| o.volumes[0].name = "User_Data".into(),
        "volume \"User_Data\"",
    );
    refused(&|o| o.volumes[0].mount_path = "mnt/user".into(), "absolute");
    refused(
        &|o| {
            o.volumes
                .push(ArgoVolume::new("other", "other-pvc", "/mnt/user/"))
        },
        "mounted at \"/mnt/user\" too",
    );
    refused(
        &|o| o.env.push(ArgoEnv::plain("AWS_REGION", "x")),
        "given twice",
    );
    refused(
        &|o| o.pipeline_path = "pipeline.yaml".into(),
        "absolute path",
    );
    refused(
        &|o| o.pipeline_path = "/mnt/user".into(),
        "where the pipeline document goes",
    );
    refused(&|o| o.parallelism = Some(0), "parallelism");

    let other = document("    - {name: a, type: command}\n", "");
    let error = argo::export(&pipeline, &other, &options()).unwrap_err();
    assert!(
        error.to_string().contains("not the document pipeline"),
        "{error}"
    );
}

#[test]
fn a_manifest_too_large_for_kubernetes_is_refused() {
    let description = "x".repeat(40_000);
    let tasks: String = (0..40)
        .map(|i| format!("    - {{name: t{i}, type: command, description: {description}}}\n"))
        .collect();
    let text = document(&tasks, "");
    let error = argo::export(&parse(&text), &text, &options()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Kubernetes accepts in one object"),
        "{error}"
    );
}
