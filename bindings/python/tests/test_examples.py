"""The example notebook (`examples/quickstart.ipynb`) runs as written, cell by cell, in a real
Jupyter kernel, on the embedded default: no server."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[3] / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs_and_shows_a_training_set(tmp_path: Path) -> None:
    notebook = nbformat.reads(NOTEBOOK.read_text(), as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    assert "TrainingSetVersion('vibration@v1'" in text
    assert "malformed values" in text
    # The online lookup found the known device's latest values and nothing for the unknown one.
    online = notebook.cells[-1].outputs[-1]["data"]["text/plain"]
    known, unknown = online.splitlines()[1:3]
    assert "NaN" not in known and "None" not in known, online
    assert "NO-SUCH-DEVICE" in unknown and ("NaN" in unknown or "None" in unknown), online
