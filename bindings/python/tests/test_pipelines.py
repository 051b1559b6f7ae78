"""``ws.pipelines``: documents validated with every problem at once, versioned, run end to end
with the built-in task types and with ``python`` tasks calling Python functions (retried,
feeding each other, resumed, cancelled by a signal)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pyarrow.parquet as pq
import pytest

import trainstore as ts

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pipelines" / "design-doc-7.1.yaml"

BROKEN = """\
apiVersion: train-platform/v1
kind: Pipeline
metadata:
  name: broken
spec:
  tasks:
    - name: a
      type: python
      config: {function: f}
      resources:
        memory: 4Gx
    - name: b
      type: python
      config: {function: f}
      inputs:
        - name: model
          source: "{{ tasks.trainer.outputs.model }}"
    - name: c
      type: python
      config: {function: f}
  dependencies:
    - {from: a, to: b}
    - {from: b, to: c}
    - {from: c, to: a}
"""


def pipeline(name: str, tasks: str, extra: str = "") -> str:
    """A document named ``name`` with ``tasks`` (YAML list items, indented by four)."""
    return (
        "apiVersion: train-platform/v1\nkind: Pipeline\n"
        f"metadata:\n  name: {name}\n  version: '1'\nspec:\n  tasks:\n{tasks}{extra}"
    )


@pytest.fixture
def ws(tmp_path: Path) -> ts.Workspace:
    return ts.Workspace.open(tmp_path / "ws")


def test_a_bad_document_reports_every_problem_at_once_with_its_line(ws: ts.Workspace) -> None:
    issues = ws.pipelines.validate(BROKEN)
    kinds = {i.kind for i in issues}
    assert {"bad_quantity", "dangling_input", "cycle"} <= kinds, issues
    by_kind = {i.kind: i for i in issues}
    assert by_kind["bad_quantity"].path == "spec.tasks[0].resources.memory"
    assert by_kind["bad_quantity"].line == 11
    assert "trainer" in by_kind["dangling_input"].message
    assert "a -> b -> c -> a" in by_kind["cycle"].message
    assert all(i.line > 0 for i in issues)

    with pytest.raises(ts.InvalidInputError) as raised:
        ws.pipelines.apply(BROKEN)
    message = str(raised.value)
    for issue in issues:
        assert str(issue) in message
    assert "line 11: spec.tasks[0].resources.memory" in message
    with pytest.raises(ts.NotFoundError):
        ws.pipelines.history("broken")


def test_a_valid_document_has_no_issues_and_python_tasks_are_a_known_type(
    ws: ts.Workspace, tmp_path: Path
) -> None:
    doc = pipeline("ok", "    - {name: a, type: python, config: {function: f}}\n")
    assert ws.pipelines.validate(doc) == []
    path = tmp_path / "ok.yaml"
    path.write_text(doc)
    assert ws.pipelines.validate(path) == []
    assert ws.pipelines.validate(str(path)) == []
    unknown = ws.pipelines.validate(doc.replace("type: python", "type: pyhton"))
    assert [i.kind for i in unknown] == ["unknown_task_type"]


def test_apply_versions_a_document_and_rollback_brings_an_old_one_back(ws: ts.Workspace) -> None:
    first = pipeline("versioned", "    - {name: a, type: python, config: {function: f}}\n")
    second = first.replace("version: '1'", "version: '2'")
    applied = ws.pipelines.apply(first)
    assert (applied.name, applied.version, applied.changed) == ("versioned", 1, True)
    assert ws.pipelines.apply(first) == ts.AppliedPipeline("versioned", 1, False)
    assert ws.pipelines.apply(second).version == 2

    history = ws.pipelines.history("versioned")
    assert [(v.version, v.document_version) for v in history] == [(1, "1"), (2, "2")]
    assert history[0].author == ws.user

    back = ws.pipelines.rollback("versioned", 1)
    assert (back.version, back.changed) == (3, True)
    assert ws.pipelines.document("versioned") == first
    assert ws.pipelines.document("versioned", 2) == second
    assert [v.version for v in ws.pipelines.history("versioned")] == [1, 2, 3]


def test_the_design_documents_pipeline_runs_two_rounds_end_to_end(ws: ts.Workspace) -> None:
    snapshots = ts.synthetic_snapshots(devices=2, snapshots=150, start="2022-12-07T00:00:00Z")
    folder = Path(ws.url.removeprefix("file://")) / "snapshots"
    folder.mkdir(parents=True)
    pq.write_table(snapshots, folder / "part-0.parquet")
    rounds = [
        ({"start": "2022-12-07T00:00:00Z", "end": "2022-12-07T12:00:00Z"}, None),
        ({"start": "2022-12-07T12:00:00Z", "end": "2022-12-08T00:00:00Z"}, "model@champion"),
    ]
    runs = []
    for time_range, base_model in rounds:
        parameters: dict[str, Any] = {"epochs": 1, "entity_list": None}
        parameters.update(time_range=time_range, base_model=base_model)
        run = ws.pipelines.run(EXAMPLE, parameters=parameters)
        assert run.ok, run.tasks
        assert [t.status for t in run.tasks] == ["succeeded"] * 6
        assert run.parameters["base_model"] == base_model
        runs.append(run)

    assert [v.version for v in ws.models.list("model")] == [1, 2]
    assert ws.models.get("model@champion").version in (1, 2)
    definition = "pipeline-doris-feast-incremental-pipeline@v1"
    assert runs[0].definition == runs[1].definition == definition
    assert {r.run_id for r in ws.pipelines.runs()} == {r.run_id for r in runs}
    assert ws.pipelines.get(runs[1].run_id) == runs[1]
    assert "trained model@v2" in ws.pipelines.logs(runs[1].run_id, "model-training")


def test_a_python_task_failing_twice_succeeds_on_its_third_attempt(ws: ts.Workspace) -> None:
    calls = []

    def flaky(task: ts.TaskInvocation) -> dict[str, str]:
        calls.append(task.attempt)
        if len(calls) < 3:
            raise RuntimeError(f"not yet ({len(calls)})")
        return {"answer": "42"}

    doc = pipeline(
        "flaky",
        "    - name: flaky\n      type: python\n      retries: 2\n"
        "      config: {function: flaky}\n      outputs: [{name: answer}]\n",
    )
    run = ws.pipelines.run(doc, functions={"flaky": flaky})
    assert run.ok
    assert calls == [1, 2, 3]
    task = run.task("flaky")
    assert (task.attempts, task.outputs, task.error) == (3, {"answer": "42"}, None)
    logs = ws.pipelines.logs(run.run_id, "flaky")
    assert "== flaky attempt 1" in logs and "RuntimeError: not yet (1)" in logs


def test_a_python_tasks_outputs_feed_a_downstream_tasks_inputs(ws: ts.Workspace) -> None:
    seen: dict[str, Any] = {}

    def produce(task: ts.TaskInvocation) -> dict[str, str]:
        return {"x": f"made by {task.name} with {task.parameters['greeting']}"}

    def consume(task: ts.TaskInvocation) -> None:
        seen.update(inputs=task.inputs, config=task.config, outputs=task.outputs)

    doc = pipeline(
        "feeding",
        "    - {name: a, type: python, config: {function: produce}, outputs: [{name: x}]}\n"
        "    - name: b\n      type: python\n"
        "      config: {function: consume, copy: '{{ tasks.a.outputs.x }}'}\n"
        "      inputs: [{name: x, source: '{{ tasks.a.outputs.x }}'}]\n"
        "      outputs: [{name: out, destination: 'data/{{ parameters.greeting }}'}]\n",
        "  parameters:\n    greeting: hello\n",
    )
    run = ws.pipelines.run(
        doc, parameters={"greeting": "hi"}, functions={"produce": produce, "consume": consume}
    )
    assert run.ok, run.tasks
    assert seen["inputs"] == {"x": "made by a with hi"}
    assert seen["config"]["copy"] == "made by a with hi"
    assert seen["outputs"] == {"out": "data/hi"}
    assert run.task("b").outputs == {"out": "data/hi"}


def test_resume_runs_again_only_the_failed_task(ws: ts.Workspace) -> None:
    calls = {"up": 0, "down": 0}
    broken = True

    def up(task: ts.TaskInvocation) -> dict[str, str]:
        calls["up"] += 1
        return {"value": "7"}

    def down(task: ts.TaskInvocation) -> None:
        calls["down"] += 1
        if broken:
            raise ValueError("the flag is still set")
        assert task.inputs == {"value": "7"}

    functions = {"up": up, "down": down}
    doc = pipeline(
        "resumable",
        "    - {name: up, type: python, config: {function: up}, outputs: [{name: value}]}\n"
        "    - name: down\n      type: python\n      config: {function: down}\n"
        "      inputs: [{name: value, source: '{{ tasks.up.outputs.value }}'}]\n",
    )
    failed = ws.pipelines.run(doc, run_id="resumable-1", functions=functions)
    assert (failed.run_id, failed.status, failed.ok) == ("resumable-1", "failed", False)
    assert failed.task("up").status == "succeeded"
    assert failed.task("down").status == "failed"
    assert "ValueError: the flag is still set" in (failed.task("down").error or "")

    broken = False
    resumed = ws.pipelines.resume("resumable-1", functions=functions)
    assert resumed.ok
    assert calls == {"up": 1, "down": 2}
    assert (resumed.task("up").attempts, resumed.task("down").attempts) == (1, 2)
    assert resumed.started_at == failed.started_at


def test_a_python_task_without_its_function_fails_at_once_saying_so(ws: ts.Workspace) -> None:
    doc = pipeline(
        "missing", "    - {name: a, type: python, retries: 2, config: {function: nowhere}}\n"
    )
    run = ws.pipelines.run(doc)
    task = run.task("a")
    assert (run.status, task.status, task.attempts) == ("failed", "failed", 1)
    assert "no function 'nowhere' was given" in (task.error or "")

    imported = doc.replace("nowhere", "os.path:basename").replace("missing", "imported")
    wrong = ws.pipelines.run(imported)
    # basename(TaskInvocation) raises TypeError, which is retried: the callable was found.
    assert wrong.task("a").attempts == 3
    assert "TypeError" in (wrong.task("a").error or "")


def test_a_run_shows_its_tasks_in_a_notebook(ws: ts.Workspace) -> None:
    doc = pipeline(
        "shown",
        "    - {name: first-step, type: python, config: {function: f}}\n"
        "    - {name: second-step, type: python, config: {function: f}}\n",
    )
    run = ws.pipelines.run(doc, functions={"f": lambda task: None})
    html = run._repr_html_()
    assert "first-step" in html and "second-step" in html and "succeeded" in html
    assert run.run_id in html


def test_a_signal_cancels_the_run_and_saves_it_for_resume(ws: ts.Workspace) -> None:
    class Interrupted(Exception):
        pass

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    release = threading.Event()

    def slow(task: ts.TaskInvocation) -> None:
        release.wait(timeout=30)

    doc = pipeline("cancelled", "    - {name: slow, type: python, config: {function: slow}}\n")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            ws.pipelines.run(doc, run_id="cancelled-1", functions={"slow": slow})
        assert time.monotonic() - started < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.set()
    cancelled = ws.pipelines.get("cancelled-1")
    assert (cancelled.status, cancelled.task("slow").status) == ("cancelled", "cancelled")
    assert ws.pipelines.resume("cancelled-1", functions={"slow": slow}).ok


def test_export_writes_an_argo_workflow_with_secrets_only_as_references(
    ws: ts.Workspace,
) -> None:
    manifest = ws.pipelines.export(
        EXAMPLE,
        workspace="s3://bucket/ws",
        image="registry.example/trainstore:1",
        volumes=[ts.ArgoVolume("user-data", "user-data-pvc", "/mnt/user")],
        env={"AWS_SECRET_ACCESS_KEY": ts.SecretRef("s3", "secret-key"), "AWS_REGION": "eu"},
        parallelism=2,
    )
    assert (manifest["kind"], manifest["spec"]["parallelism"]) == ("Workflow", 2)
    dag = manifest["spec"]["templates"][0]["dag"]["tasks"]
    assert [t["name"] for t in dag[:2]] == ["doris-data-query", "feast-feature-engineering"]
    assert "s3://bucket/ws" in str(manifest) and "secret-key" in str(manifest)
    with pytest.raises(ts.InvalidInputError, match="AWS_SECRET_ACCESS_KEY"):
        ws.pipelines.export(EXAMPLE, env={"AWS_SECRET_ACCESS_KEY": "literal"})
    with pytest.raises(ValueError, match="unknown export format"):
        ws.pipelines.export(EXAMPLE, format="airflow")  # type: ignore[arg-type]
