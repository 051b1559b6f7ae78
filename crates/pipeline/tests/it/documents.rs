//! Reading and validating documents: the design document's example, located errors, every
//! problem at once, and no panic on any input.

use trainstore_pipeline::{EdgeOrigin, Error, IssueKind, Pipeline, Report, Source};

use crate::support::{DESIGN_DOC, document, parse, types};

fn report(text: &str) -> Report {
    Pipeline::validate(text, &types())
}

fn kinds(report: &Report) -> Vec<IssueKind> {
    report.issues.iter().map(|i| i.kind).collect()
}

#[test]
fn the_design_documents_example_validates_with_no_problem() {
    let report = report(DESIGN_DOC);
    assert!(report.is_empty(), "{report}");
    let p = parse(DESIGN_DOC);
    assert_eq!(p.metadata.name, "doris-feast-incremental-pipeline");
    assert_eq!(p.metadata.version.as_deref(), Some("1.0.0"));
    assert_eq!(p.tasks.len(), 6);
    let training = p.task("model-training").unwrap();
    assert_eq!(training.resources.cpu_millis, Some(8000));
    assert_eq!(training.resources.memory_bytes, Some(16 << 30));
    assert_eq!(training.resources.gpu, Some(1));
    assert_eq!(
        p.task("doris-data-query").unwrap().inputs[0].source,
        Source::Parameter
    );
    assert_eq!(p.parameters["epochs"], serde_json::json!(100));
    assert_eq!(
        p.parameters["time_range"]["start"],
        serde_json::json!("2024-01-01T00:00:00Z")
    );
    // Declared edges, and the data edges the destinations imply (evaluation and deployment
    // both read the trained model).
    let data_via = |e: &trainstore_pipeline::Edge| match &e.origin {
        EdgeOrigin::Data { via } => Some(via.clone()),
        EdgeOrigin::Declared => None,
    };
    assert!(p.edges().iter().any(|e| e.from == "model-training"
        && e.to == "model-deployment"
        && data_via(e).as_deref() == Some("spec.tasks[5].inputs[0].source")));
    assert_eq!(p.upstream("model-training"), ["training-set-versioning"]);
    assert_eq!(
        p.topological_order(),
        [
            "doris-data-query",
            "feast-feature-engineering",
            "training-set-versioning",
            "model-training",
            "model-evaluation",
            "model-deployment"
        ]
    );
}

/// A cycle, a dangling input and a bad quantity in one document.
fn three_problems() -> String {
    document(
        "    - name: a
      type: command
      resources:
        memory: 4Gx
    - name: b
      type: command
      inputs:
        - name: model
          source: \"{{ tasks.trainer.outputs.model }}\"
    - name: c
      type: command
",
        "  dependencies:
    - from: a
      to: b
    - from: b
      to: c
    - from: c
      to: a
",
    )
}

#[test]
fn a_cycle_a_dangling_input_and_a_bad_quantity_are_reported_together_with_lines() {
    let text = three_problems();
    let report = report(&text);
    assert_eq!(
        kinds(&report),
        [
            IssueKind::BadQuantity,
            IssueKind::DanglingInput,
            IssueKind::Cycle
        ],
        "{report}"
    );
    let quantity = &report.issues[0];
    assert_eq!(quantity.path, "spec.tasks[0].resources.memory");
    assert_eq!(quantity.line, 10);
    assert!(
        quantity.message.contains("4Gi"),
        "says what is expected: {quantity}"
    );
    let dangling = &report.issues[1];
    assert_eq!(dangling.path, "spec.tasks[1].inputs[0].source");
    assert_eq!(dangling.line, 15);
    assert!(
        dangling.message.contains("no task is called \"trainer\""),
        "{dangling}"
    );
    let cycle = &report.issues[2];
    assert_eq!(cycle.path, "spec.dependencies[0]");
    assert_eq!(cycle.line, 19);
    assert!(cycle.message.contains("a -> b -> c -> a"), "{cycle}");
    let shown = report.to_string();
    assert!(
        shown.starts_with("the pipeline document has 3 problems:"),
        "{shown}"
    );
    assert!(
        shown.contains("line 10: spec.tasks[0].resources.memory: bad quantity"),
        "{shown}"
    );
    match Pipeline::parse(&text, &types()) {
        Err(Error::Invalid(r)) => assert_eq!(r, report),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_kind_of_mistake_is_named_with_what_was_expected() {
    let text = "apiVersion: train-platform/v2
kind: Pipelin
metadata:
  name: p
  owner: me
spec:
  tasks:
    - name: a
      type: trainig
      retries: -1
      timeout: 10x
      priority: high
      imge: x
      config:
        start: \"{{ parameters.time_range.stop }}\"
        n: \"{{ parameters.epoch }}\"
        bad: \"{{ parameters.epochs\"
      when: maybe
    - name: a
      type: command
      inputs:
        - name: entity_list
          source: parameters
      outputs:
        - name: out
          destination: /x
    - name: b
      type: command
      inputs:
        - name: x
          source: \"{{ tasks.a.outputs.nope }}\"
  dependencies:
    - from: a
      to: z
  parameters:
    epochs: 3
    time_range: {start: s, end: e}
";
    let report = report(text);
    let has = |kind: IssueKind, path: &str, needle: &str| {
        assert!(
            report.issues.iter().any(|i| i.kind == kind
                && i.path == path
                && i.message.contains(needle)
                && i.line > 0),
            "no {kind:?} at {path} mentioning {needle:?} in\n{report}"
        );
    };
    has(IssueKind::WrongVersion, "apiVersion", "train-platform/v1");
    has(IssueKind::WrongVersion, "kind", "\"Pipeline\"");
    has(
        IssueKind::UnknownKey,
        "metadata.owner",
        "expected one of: name, version",
    );
    has(
        IssueKind::UnknownTaskType,
        "spec.tasks[0].type",
        "did you mean \"training\"",
    );
    has(
        IssueKind::UnknownTaskType,
        "spec.tasks[0].type",
        "command, data_query, deployment",
    );
    has(
        IssueKind::BadValue,
        "spec.tasks[0].retries",
        "from 0 to 100",
    );
    has(IssueKind::BadValue, "spec.tasks[0].timeout", "\"30s\"");
    has(
        IssueKind::BadValue,
        "spec.tasks[0].priority",
        "whole number",
    );
    has(
        IssueKind::UnknownKey,
        "spec.tasks[0].imge",
        "did you mean \"image\"",
    );
    has(
        IssueKind::UnknownParameter,
        "spec.tasks[0].config.start",
        "has no key \"stop\"",
    );
    has(
        IssueKind::UnknownParameter,
        "spec.tasks[0].config.n",
        "did you mean \"epochs\"",
    );
    has(
        IssueKind::BadReference,
        "spec.tasks[0].config.bad",
        "never closed",
    );
    has(
        IssueKind::BadCondition,
        "spec.tasks[0].when",
        "expected true, false",
    );
    has(
        IssueKind::Duplicate,
        "spec.tasks[1].name",
        "also used by spec.tasks[0] (line 8)",
    );
    has(
        IssueKind::UnknownParameter,
        "spec.tasks[1].inputs[0].source",
        "declares no \"entity_list\"",
    );
    has(
        IssueKind::DanglingInput,
        "spec.tasks[2].inputs[0].source",
        "declares no output \"nope\"",
    );
    has(
        IssueKind::MissingTask,
        "spec.dependencies[0].to",
        "no task is called \"z\"",
    );
    let lines: Vec<usize> = report.issues.iter().map(|i| i.line).collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "sorted by line: {lines:?}"
    );
}

#[test]
fn producers_are_found_by_destination_and_external_inputs_are_allowed() {
    let text = document(
        "    - name: train
      type: training
      inputs:
        - name: data
          source: /data/prepared/
        - name: base
          source: s3://bucket/models/base
      outputs:
        - name: model
          destination: \"/models/{{ parameters.tag }}\"
    - name: prepare
      type: command
      priority: 2
      outputs:
        - name: data
          destination: /data/prepared
    - name: report
      type: command
      when: \"{{ tasks.train.outputs.model }} != none\"
",
        "  parameters:\n    tag: v1\n",
    );
    let p = parse(&text);
    assert_eq!(
        p.upstream("train"),
        ["prepare"],
        "the trailing slash does not matter"
    );
    assert_eq!(
        p.upstream("report"),
        ["train"],
        "a reference in `when` is a data edge"
    );
    assert_eq!(p.topological_order(), ["prepare", "train", "report"]);
    assert!(p.dependencies.is_empty());
}

#[test]
fn a_cycle_through_data_is_a_cycle_too() {
    let text = document(
        "    - name: a
      type: command
      inputs: [{name: i, source: /b}]
      outputs: [{name: o, destination: /a}]
    - name: b
      type: command
      inputs: [{name: i, source: /a}]
      outputs: [{name: o, destination: /b}]
",
        "",
    );
    let report = report(&text);
    assert_eq!(kinds(&report), [IssueKind::Cycle], "{report}");
    assert!(report.issues[0].message.contains("a -> b -> a"), "{report}");
    assert!(
        report.issues[0].message.contains("inputs[0].source"),
        "{report}"
    );
}

#[test]
fn json_documents_read_like_yaml() {
    let json = r#"{
  "apiVersion": "train-platform/v1",
  "kind": "Pipeline",
  "metadata": {"name": "j", "version": 2},
  "spec": {
    "tasks": [
      {"name": "a", "type": "command", "resources": {"cpu": 0.5, "memory": 1024}},
      {"name": "b", "type": "command", "resources": {"cpu": "x"}}
    ],
    "dependencies": [{"from": "a", "to": "b"}]
  }
}"#;
    let report = report(json);
    assert_eq!(kinds(&report), [IssueKind::BadQuantity]);
    assert_eq!(report.issues[0].line, 8);
    let p = parse(&json.replace("\"x\"", "\"250m\""));
    assert_eq!(p.tasks[0].resources.cpu_millis, Some(500));
    assert_eq!(p.tasks[0].resources.memory_bytes, Some(1024));
    assert_eq!(p.metadata.version.as_deref(), Some("2"));
}

#[test]
fn odd_texts_are_reported_not_panicked_on() {
    let odd = [
        "",
        "   \n",
        "~",
        "42",
        "[1, 2]",
        "\"text\"",
        "apiVersion: [1]\nkind: {a: b}\nmetadata: 7\nspec: []\n",
        "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata: {name: x}\nspec: {tasks: []}\n",
        "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata: {name: x}\nspec: {tasks: [1, null, [], {}]}\n",
        "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  tasks:\n    - {name: a, type: command, retries: 99999999999999999999999, priority: 1e400, resources: {cpu: 1e400, memory: 99999999999999999999Ei, gpu: -1}}\n",
        "? [a, b]\n: c\n",
        "a: &x 1\nb: *x\n",
        "a: *unknown\n",
        "{\"a\": ",
        "\u{feff}apiVersion: x\n",
        "- - - - - -\n",
        "a:\tb\n",
        "{{ parameters.x }}",
    ];
    for text in odd {
        let report = report(text);
        assert!(!report.is_empty(), "{text:?} passed");
        assert!(Pipeline::parse(text, &types()).is_err());
    }
    let deep = format!("a: {}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(kinds(&report(&deep)), [IssueKind::Syntax]);
}

#[test]
fn mangled_copies_of_the_example_never_panic() {
    // A deterministic generator: each copy loses, repeats or garbles a few bytes or lines.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let lines: Vec<&str> = DESIGN_DOC.lines().collect();
    let junk = [
        "{{", "}}", ":", "- ", "&a", "*a", "[", "\"", "'", "\t", "9e999", "-1", "?",
    ];
    for _ in 0..600 {
        let mut copy: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % copy.len();
            match next() % 4 {
                0 => {
                    copy.remove(at);
                }
                1 => {
                    let line = copy[at].clone();
                    copy.insert(at, line);
                }
                2 => {
                    let line = &mut copy[at];
                    let cut = line
                        .char_indices()
                        .map(|(i, _)| i)
                        .nth((next() as usize) % (line.chars().count() + 1))
                        .unwrap_or(line.len());
                    line.insert_str(cut, junk[(next() as usize) % junk.len()]);
                }
                _ => {
                    let line = &mut copy[at];
                    let keep = line
                        .char_indices()
                        .map(|(i, _)| i)
                        .nth((next() as usize) % (line.chars().count() + 1))
                        .unwrap_or(line.len());
                    line.truncate(keep);
                }
            }
        }
        let text = copy.join("\n");
        let _ = Pipeline::validate(&text, &types());
    }
}

/// The fenced blocks of `docs/pipelines.md` in `language`.
fn doc_blocks(language: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/pipelines.md");
    let page = std::fs::read_to_string(path).expect("docs/pipelines.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) if lang == language => current = Some(String::new()),
            (Some(block), Some(_)) => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_example_of_docs_pipelines_md_is_valid_and_its_report_is_the_validators() {
    let yaml = doc_blocks("yaml");
    let example = parse(&yaml[0]);
    assert_eq!(example.upstream("train"), ["query"]);
    let mut deploy = example.upstream("deploy");
    deploy.sort_unstable();
    assert_eq!(deploy, ["evaluate", "train"]);
    let shown = report(&three_problems()).to_string();
    assert!(
        doc_blocks("text").iter().any(|b| b.trim_end() == shown),
        "docs/pipelines.md should show:\n{shown}"
    );
}
