"""A pipeline exported as an Argo Workflow: its manifest loads into hera's models, and played
the way Argo runs it (each task's container command in a process of its own, in DAG order,
with only the environment the manifest declares and the shared workspace) it ends where a
local ``trainstore pipeline run`` ends."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows.models import Workflow

REPO = Path(__file__).resolve().parents[3]
DOCUMENT = REPO / "examples" / "pipelines" / "design-doc-7.1.yaml"
PARAMETERS = {
    "time_range": {"start": "2022-12-07T00:00:00Z", "end": "2022-12-07T05:59:59Z"},
    "entity_list": None,
    "epochs": 1,
}


@pytest.fixture
def cli() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "trainstore"
    if not path.exists():
        pytest.fail(f"{path} is missing: `cargo build --bin trainstore` (scripts/test does)")
    return path


def trainstore(cli: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(cli), *args], capture_output=True, text=True, env=env, check=False, timeout=600
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def workspace_with_snapshots(cli: Path, path: Path) -> Path:
    """A workspace whose snapshots/ holds the same seeded snapshots every time."""
    trainstore(cli, "workspace", "init", str(path))
    trainstore(
        cli, "snapshots", "generate", "--to", str(path / "snapshots"), "--devices", "2",
        "--snapshots", "60",
    )  # fmt: skip
    return path


def export(cli: Path, workspace: Path) -> dict[str, Any]:
    out = trainstore(
        cli, "pipeline", "export", str(DOCUMENT), "--workspace", str(workspace), "--json"
    )
    manifest: dict[str, Any] = json.loads(out)
    return manifest


def test_the_manifest_loads_into_heras_models(cli: Path, tmp_path: Path) -> None:
    manifest = export(cli, tmp_path / "ws")
    workflow = Workflow.model_validate(manifest)
    assert workflow.spec is not None and workflow.spec.templates is not None
    names = [t.name for t in workflow.spec.templates]
    assert "model-training" in names and "pipeline" in names
    training = next(t for t in workflow.spec.templates if t.name == "model-training")
    assert training.container is not None and training.container.resources is not None
    limits = training.container.resources.limits or {}
    assert limits["cpu"].root == "8" and limits["nvidia.com/gpu"].root == "1"


def dag_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DAG's tasks in an order Argo could start them: each after its dependencies."""
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    while len(order) < len(tasks):
        ready = [
            t for t in tasks if t["name"] not in done and set(t.get("dependencies", [])) <= done
        ]
        assert ready, "the exported DAG has a cycle"
        order.extend(ready)
        done.update(t["name"] for t in ready)
    return order


def play(manifest: dict[str, Any], cli: Path, run: str, sandbox: Path) -> None:
    """Runs every task of `manifest` as Argo would: its container's command, the workflow's
    parameters (overridden by PARAMETERS) and name substituted, its raw artifacts written
    where the container reads them (under `sandbox`), only its declared environment."""
    values = {p["name"]: p["value"] for p in manifest["spec"]["arguments"]["parameters"]}
    values.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in PARAMETERS.items()})
    templates = {t["name"]: t for t in manifest["spec"]["templates"]}
    dag = templates[manifest["spec"]["entrypoint"]]["dag"]["tasks"]

    def substitute(text: str, artifacts: dict[str, str]) -> str:
        text = text.replace("{{workflow.name}}", run)
        text = re.sub(r"\{\{workflow\.parameters\.([^}]+)\}\}", lambda m: values[m[1]], text)
        return artifacts.get(text, text)

    for task in dag_order(dag):
        template = templates[task["template"]]
        artifacts: dict[str, str] = {}
        for artifact in template.get("inputs", {}).get("artifacts", []):
            local = sandbox / task["name"] / artifact["path"].lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(artifact["raw"]["data"])
            artifacts[artifact["path"]] = str(local)
        container = template["container"]
        argv = [substitute(a, artifacts) for a in container["command"] + container["args"]]
        assert argv[0] == "trainstore", argv
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        env["TRAINSTORE_CONFIG"] = str(sandbox / "config.yaml")
        trainstore(cli, *argv[1:], env=env)


def recorded(cli: Path, workspace: Path, run: str) -> list[tuple[str, str, dict[str, str]]]:
    """Each task's status and outputs in run `run`, with the workspace's path taken out."""
    state = json.loads(trainstore(cli, "pipeline", "runs", str(workspace), run, "--json"))
    return [
        (
            t["name"],
            t["status"],
            {k: v.replace(str(workspace), "<ws>") for k, v in t["outputs"].items()},
        )
        for t in state["tasks"]
    ]


def test_the_played_manifest_ends_where_a_local_run_ends(cli: Path, tmp_path: Path) -> None:
    local = workspace_with_snapshots(cli, tmp_path / "local")
    params = [f"--param={k}={json.dumps(v)}" for k, v in PARAMETERS.items()]
    trainstore(cli, "pipeline", "run", str(local), str(DOCUMENT), "--run-id", "here", *params)

    pods = workspace_with_snapshots(cli, tmp_path / "pods")
    play(export(cli, pods), cli, "argo-run-1", tmp_path / "sandbox")

    here = recorded(cli, local, "here")
    there = recorded(cli, pods, "argo-run-1")
    assert [(name, status) for name, status, _ in there] == [
        (name, "succeeded") for name, _, _ in here
    ]
    assert there == here
    # The same rows became the same training set in both workspaces.
    for workspace in (local, pods):
        listed = trainstore(cli, "training-sets", "list", str(workspace), "training-set")
        assert "v1" in listed
    assert yaml.safe_load(DOCUMENT.read_text())["metadata"]["name"] in json.dumps(
        export(cli, pods)["metadata"]
    )
