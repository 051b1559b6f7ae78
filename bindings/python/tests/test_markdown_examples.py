"""Every code block of the README and of the pages in docs/ and examples/ runs as written, so
an example that breaks fails the tests.

A page runs top to bottom in a fresh directory of its own, as a reader would follow it from a
clone's root (the clone's ``scripts`` and ``.venv`` are linked in):

- ```` ```python ```` blocks run in one namespace per page: a later block sees what an
  earlier one defined, and each page defines everything it uses.
- ```` ```sh ```` blocks run in bash (``set -euo pipefail``) with the ``trainstore`` CLI of this
  build first on ``PATH``, then the ``python`` running the tests. Two commands are not run
  again here: ``scripts/test`` (it is what is running this test) and ``scripts/demo``
  (``tests/it/workspace.rs`` runs its ``trainstore demo`` in the same test run).
- a block whose first line names a file (``# file: features.yaml``) is written to that file
  before the blocks after it run; other ```` ```yaml ```` and ```` ```json ```` blocks must
  parse.
- ```` ```rust ```` blocks are doctests of the ``trainstore`` crate (``src/lib.rs`` includes
  the pages), run by ``cargo test``.
- ```` ```text ```` blocks show output and layouts; they are not code.

What a page may assume from its environment, as a user would set it: ``TRAINSTORE_DORIS_URL``
(a MySQL-protocol server with a database of the page's own, here the test MariaDB),
``S3_ENDPOINT`` and ``S3_BUCKET`` (an S3-compatible store and a fresh bucket, here the test
server, its credentials in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``), and a settings
file of its own (``TRAINSTORE_CONFIG``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "examples" / "README.md",
]
LANGUAGES = {"python", "sh", "yaml", "json", "rust", "text"}
# Commands a page shows that this test does not run again, and why.
NOT_RUN_AGAIN = {
    "scripts/test": "it is the command running this test",
    "scripts/demo": "tests/it/workspace.rs runs its `trainstore demo` in the same run",
}

FENCE = re.compile(r"^```(\S*)")
FILE_LINE = re.compile(r"^# file: (\S+)$")


@dataclass
class Block:
    page: Path
    line: int
    language: str
    code: str

    def file(self) -> str | None:
        """The file the block is, when its first line names one."""
        match = FILE_LINE.match(self.code.split("\n", 1)[0])
        return match.group(1) if match else None

    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line} ({self.language})"


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks, in order, with the line each starts on."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        language = match.group(1)
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page.relative_to(REPO)}:{i + 1}: a block is never closed")
        found.append(Block(page, i + 1, language, "\n".join(lines[i + 1 : end]) + "\n"))
        i = end + 1
    return found


def test_every_block_names_a_language_this_test_knows() -> None:
    unknown = [b.where() for p in PAGES for b in blocks(p) if b.language not in LANGUAGES]
    assert not unknown, f"blocks of no language or an unknown one: {unknown}"


def test_every_rust_block_is_a_doctest() -> None:
    """``src/lib.rs`` includes every page that has Rust blocks, so ``cargo test`` runs them."""
    lib = (REPO / "src" / "lib.rs").read_text()
    missing = [
        str(p.relative_to(REPO))
        for p in PAGES
        if any(b.language == "rust" for b in blocks(p))
        and f'include_str!("../{p.relative_to(REPO)}")' not in lib
    ]
    assert not missing, f"pages whose Rust blocks no doctest runs: {missing}"


@pytest.fixture
def page_env(
    tmp_path: Path,
    mysql_server: str,
    mysql_connection: Callable[[str], pymysql.connections.Connection],
    s3_bucket: tuple[str, dict[str, str]],
) -> dict[str, str]:
    """The environment a page runs in: this build's CLI first on PATH, a settings file, a
    MySQL database and an S3 bucket of the page's own."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    cli = target / "debug" / "trainstore"
    if not cli.exists():
        pytest.fail(f"{cli} is missing: `cargo build --bin trainstore` (scripts/test does)")
    for shared in ("scripts", ".venv"):
        (tmp_path / shared).symlink_to(REPO / shared)
    env = dict(os.environ)
    # This build's CLI, then the Python the tests run in (with the package installed).
    env["PATH"] = os.pathsep.join([str(cli.parent), str(Path(sys.executable).parent), env["PATH"]])
    env["TRAINSTORE_CONFIG"] = str(tmp_path / "config.yaml")
    database = f"ts_docs_{uuid.uuid4().hex[:12]}"
    with mysql_connection(mysql_server) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
    env["TRAINSTORE_DORIS_URL"] = f"{mysql_server}/{database}"
    url, options = s3_bucket
    env["S3_ENDPOINT"] = options["aws_endpoint"]
    env["S3_BUCKET"] = url.removeprefix("s3://").split("/", 1)[0]
    return env


def run_sh(block: Block, cwd: Path, env: dict[str, str]) -> None:
    script = []
    for line in block.code.splitlines():
        command = line.split("#", 1)[0].strip()
        script.append(
            f": not run again here, {NOT_RUN_AGAIN[command]}" if command in NOT_RUN_AGAIN else line
        )
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + "\n".join(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"{block.where()} exited {done.returncode}\n--- stdout\n{done.stdout}"
        f"\n--- stderr\n{done.stderr}"
    )


def run_python(block: Block, namespace: dict[str, object]) -> None:
    code = compile(block.code, block.where(), "exec")
    exec(code, namespace)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_page_runs_as_written(
    page: Path, page_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in page_env.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, object] = {"__name__": "__page__"}
    for block in blocks(page):
        if file_name := block.file():
            (tmp_path / file_name).write_text(block.code)
        elif block.language == "yaml":
            yaml.safe_load(block.code)
        elif block.language == "json":
            json.loads(block.code)
        if block.language == "sh":
            run_sh(block, tmp_path, page_env)
        elif block.language == "python":
            run_python(block, namespace)
