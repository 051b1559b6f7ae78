"""Every peer comparison in one command, and one summary table of the bars.

    python benches/peers/run_all.py                      # everything, at the bars' sizes
    python benches/peers/run_all.py --only parse,join    # a subset (names below)
    python benches/peers/run_all.py --quick              # small sizes: checks the runner
    python benches/peers/run_all.py --markdown bars.md   # the table as Markdown too

Run it with the Python of the benchmark venv (the peers of benches/requirements.txt and a
release build of trainstore; see BENCHMARKS.md); `cargo` must be on the PATH for the Rust
sides (`cargo bench`), or pass --no-cargo to leave them out. The MySQL comparisons need the
loopback MariaDB: unless TRAINSTORE_TEST_MYSQL_URL is set, the runner runs
`scripts/test-services` (which starts or finds it) and takes its `export` lines.

Each comparison is its own script, run in its own subprocess exactly as a reader would run
it by hand (the command is printed); its output streams through, and it reports every bar it
measured through bars.py into a JSON-lines file (TRAINSTORE_BARS_FILE). At the end the runner
prints one table: each bar, trainstore's figure, the peer's, the ratio, met or NOT MET, and a
second reading beside (a first call, or the warm figure where the bar is judged cold); then
each script's time and value checks. The table is also written as Markdown (summary.md in
the output folder, and --markdown).

Exit status: 0 when every script ran and every value check agreed, whether or not the bars
held (this is a report); 1 when a script failed or a value check did not agree.

Steps (--only), at full size (the sizes of BENCHMARKS.md):
  parse          parse_peers.py --rows 200000
  mysql-read     mysql_read_peers.py --rows 1000000 (the table loaded first by --load-only)
  mysql-stream   mysql_stream_memory.py --rows 10000000 (loading it takes about 10 minutes)
  join           feature_join_peers.py, 1M x 100k, Feast, both DuckDBs, trainstore cold and
                 warm, with --online (cold and warm passes)
  join-10m       feature_join_peers.py --scale 10m, both DuckDBs, trainstore cold and warm
  training-sets  training_set_peers.py, every section (join, big, list, drift, stream)
  train          train_peers.py: CPU training (8,192 windows x 3 epochs) and one-window
                 forecasts, trainstore (burn flex) against PyTorch; needs torch in the
                 runner's Python (benches/requirements-train.txt)
All of it takes about an hour on 2 cores and needs about 50 GB of disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bars

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

NOT_YET_MEASURED = [
    "pipeline bars (not built yet)",
    "the Flight SQL path against a real Doris (the test server is MariaDB-backed)",
    "the pushdown engine's speed (its equality with the in-process engine is tested)",
]


@dataclass
class Step:
    name: str
    what: str
    commands: list[list[str]]
    mysql: bool = False
    # Filled in as it runs.
    seconds: float = 0.0
    failed: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)


def steps(args: argparse.Namespace) -> list[Step]:
    """The comparisons and their commands (script and arguments), at full or --quick size."""

    def repeat(full: int, quick: int = 1) -> list[str]:
        return ["--repeat", str(args.repeat or (quick if args.quick else full))]

    quick_dir = Path(tempfile.gettempdir()) / "trainstore_quick"
    join_dir = ["--data-dir", str(quick_dir / "feature_join")] if args.quick else []
    no_rust = ["--no-rust"] if args.no_cargo else []
    historical = "duckdb,duckdb-keys,trainstore,trainstore-ingested"
    if args.quick:
        mysql_read = [["mysql_read_peers.py", "--rows", "2000", *repeat(2)]]
        join = ["--feature-rows", "20000", "--entity-rows", "2000", "--lookups", "200"]
        join_10m = ["--feature-rows", "40000", "--entity-rows", "4000"]
        training = [
            *("--join-feature-rows", "20000", "--join-entity-rows", "2000"),
            *("--big-rows", "20000", "--drift-rows", "20000", "--list-repeat", "3"),
            *("--stream-feature-rows", "20000", "--stream-entity-rows", "2000"),
            *("--data-dir", str(quick_dir / "training_sets")),
            *("--join-data-dir", str(quick_dir / "feature_join")),
        ]
    else:
        rows = ["--rows", "1000000"]
        # At 1M rows the loader and pymysql + the Python parser do not fit in 24 GiB together.
        mysql_read = [
            ["mysql_read_peers.py", *rows, "--load-only"],
            ["mysql_read_peers.py", *rows, *repeat(2)],
        ]
        join, join_10m, training = [], ["--scale", "10m"], []
    return [
        Step(
            "parse",
            "snapshot parsing: the design document's Python parser, polars, trainstore",
            [["parse_peers.py", "--rows", "2000" if args.quick else "200000", *repeat(3)]],
        ),
        Step(
            "mysql-read",
            "a MySQL-protocol table into Arrow: connectorx, pymysql (+ pandas, + the parser)",
            mysql_read,
            mysql=True,
        ),
        Step(
            "mysql-stream",
            "streaming 10M rows from MySQL: resident memory",
            [["mysql_stream_memory.py", "--rows", "20000" if args.quick else "10000000"]],
            mysql=True,
        ),
        Step(
            "join",
            "point-in-time build 1M x 100k (Feast, DuckDB, trainstore) and online lookups",
            [
                [
                    "feature_join_peers.py",
                    *("--peers", f"feast-duckdb,{historical}", "--online"),
                    *join,
                    *join_dir,
                    *no_rust,
                    *repeat(3),
                ]
            ],
        ),
        Step(
            "join-10m",
            "point-in-time build 10M x 1M (DuckDB, trainstore)",
            [["feature_join_peers.py", *join_10m, "--peers", historical, *join_dir, *repeat(2)]],
        ),
        Step(
            "training-sets",
            "training-set versions: create, read, list, drift, streaming 10M x 1M into one",
            [["training_set_peers.py", *training, *no_rust, *repeat(3)]],
        ),
        Step(
            "train",
            "CPU training throughput and one-window forecast latency: trainstore vs PyTorch",
            [["train_peers.py", *(["--quick"] if args.quick else []), *no_rust]],
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Running


def services(env: dict[str, str]) -> str:
    """Starts or finds the loopback servers; their `export` lines go into `env`. Returns an
    error message, or "" on success."""
    script = REPO / "scripts" / "test-services"
    try:
        run = subprocess.run([str(script)], cwd=REPO, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as error:
        return f"scripts/test-services: {error}"
    if run.returncode != 0:
        return f"scripts/test-services exited {run.returncode}: {run.stderr.strip()[-500:]}"
    for line in run.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return "" if "TRAINSTORE_TEST_MYSQL_URL" in env else "scripts/test-services gave no MySQL URL"


def run_step(step: Step, python: str, env: dict[str, str], out_dir: Path) -> None:
    records = out_dir / f"{step.name}.jsonl"
    records.unlink(missing_ok=True)
    log_path = out_dir / f"{step.name}.log"
    started = time.perf_counter()
    with log_path.open("w") as log:
        for command in step.commands:
            argv = [python, str(HERE / command[0]), *command[1:]]
            shown = " ".join(["python", f"benches/peers/{command[0]}", *command[1:]])
            print(f"\n=== {step.name}: {shown}", flush=True)
            log.write(f"$ {shown}\n")
            tail: deque[str] = deque(maxlen=12)
            begun = time.perf_counter()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env={**env, bars.ENV: str(records)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                )
            except OSError as error:
                step.failed = f"`{shown}` did not start: {error}"
                break
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(f"  {line}")
                sys.stdout.flush()
                log.write(line)
                tail.append(line.rstrip())
            code = proc.wait()
            print(f"=== {step.name}: exit {code} after {time.perf_counter() - begun:.1f} s")
            if code != 0:
                step.failed = f"`{shown}` exited {code}:\n    " + "\n    ".join(tail)
                break
    step.seconds = time.perf_counter() - started
    if records.exists():
        step.records = [json.loads(line) for line in records.read_text().splitlines() if line]


# ---------------------------------------------------------------------------------------------
# The summary

HEADER = ["comparison", "bar", "trainstore", "peer", "ratio", "held", "beside"]


def bar_rows(all_steps: list[Step]) -> list[list[str]]:
    rows = []
    for step in all_steps:
        for record in step.records:
            if record.get("record") != "bar":
                continue
            beside = record.pop("beside", None)
            known = {k: v for k, v in record.items() if k in bars.Bar.__dataclass_fields__}
            bar = bars.Bar(**known)
            bar.beside = bars.Figure(**beside) if beside else None
            rows.append(bar.row())
    return rows


def checks_text(step: Step) -> str:
    checks = [r for r in step.records if r.get("record") == "checks"]
    if not checks:
        return "no checks reported" if step.failed else "—"
    compared = sum(r["checked"] for r in checks)
    failed = sum(len(r["problems"]) for r in checks)
    return f"{failed} of {compared} disagree" if failed else f"all {compared} agree"


def portable(text: str) -> str:
    """`text` with the temporary folder written as $TMPDIR, so the Markdown can be pasted into
    BENCHMARKS.md (whose checks refuse paths outside the repository)."""
    return text.replace(tempfile.gettempdir().rstrip("/") + "/", "$TMPDIR/")


def text_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    rule = "  ".join("-" * w for w in widths)
    head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))
    return "\n".join([head, rule, *lines])


def markdown_table(rows: list[list[str]], header: list[str], right: set[int]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|") if text else ""

    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |"]
    for row in rows:
        shown = [cell(c) for c in row]
        shown = [f"**{c}**" if c in ("NOT MET", "FAILED") else c for c in shown]
        lines.append(f"| {' | '.join(shown)} |")
    return "\n".join(lines)


def summary(args: argparse.Namespace, chosen: list[Step], out_dir: Path) -> str:
    """Prints the summary and returns it as Markdown."""
    context = bars.context()
    rows = bar_rows(chosen)
    print("\n" + "=" * 100)
    print(f"Bars ({context['date']}, commit {context['commit']}, {context['machine']})\n")
    print(text_table(rows, HEADER) if rows else "no bar was reported")
    step_rows = [
        [s.name, "FAILED" if s.failed else "ok", f"{s.seconds:.1f} s", checks_text(s)]
        for s in chosen
    ]
    step_header = ["script", "status", "time", "value checks"]
    print("\n" + text_table(step_rows, step_header))
    commands = [f"`python benches/peers/{' '.join(c)}`" for s in chosen for c in s.commands]
    for step in chosen:
        if step.failed:
            print(f"\n{step.name} FAILED: {step.failed}")
        elif not any(r.get("record") == "bar" for r in step.records):
            print(f"\n{step.name}: ran, but reported no bar")
    print("\nnot yet measured: " + "; ".join(NOT_YET_MEASURED))
    print(f"logs and records: {out_dir}")

    scale = " (--quick: small sizes, the figures say nothing)" if args.quick else ""
    parts = [
        f"Measured {context['date']} at {context['commit']} on {context['machine']}{scale}, "
        f"by `{portable(bars.command_line())}`:",
        "",
        markdown_table(rows, HEADER, {2, 3, 4}),
        "",
        markdown_table(step_rows, step_header, {2}),
        "",
        portable("Commands: " + "; ".join(commands) + "."),
        "",
        "Not yet measured: " + "; ".join(NOT_YET_MEASURED) + ".",
        "",
    ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [s.name for s in steps(argparse.Namespace(repeat=None, quick=False, no_cargo=False))]
    parser.add_argument("--only", help=f"comma-separated, of {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (checks the runner)")
    parser.add_argument("--repeat", type=int, help="passed to every script (default: theirs)")
    parser.add_argument("--markdown", help="also write the summary as Markdown here")
    parser.add_argument(
        "--no-cargo",
        action="store_true",
        help="leave out the sides that run `cargo bench` (the Rust online lookups, the list "
        "section, the Rust drift, trainstore's training side)",
    )
    parser.add_argument("--python", default=sys.executable, help="the Python that runs them")
    parser.add_argument("--out-dir", help="logs and records (default: a new temporary folder)")
    args = parser.parse_args()
    chosen = steps(args)
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in names]
        if unknown:
            parser.error(f"unknown steps {unknown}; known: {', '.join(names)}")
        chosen = [s for s in chosen if s.name in wanted]
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="trainstore_bars_")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    if any(s.mysql for s in chosen) and "TRAINSTORE_TEST_MYSQL_URL" not in env:
        print("starting or finding the loopback MariaDB: scripts/test-services", flush=True)
        error = services(env)
        for step in chosen:
            if step.mysql and error:
                step.failed = error
    started = time.perf_counter()
    for step in chosen:
        if not step.failed:
            run_step(step, args.python, env, out_dir)
    markdown = summary(args, chosen, out_dir)
    print(f"total: {time.perf_counter() - started:.1f} s")
    (out_dir / "summary.md").write_text(markdown)
    if args.markdown:
        Path(args.markdown).write_text(markdown)
        print(f"Markdown: {args.markdown}")
    failed = [s.name for s in chosen if s.failed]
    if failed:
        print(f"FAILED: {', '.join(failed)} (a script failed or a value check disagreed)")
        sys.exit(1)


if __name__ == "__main__":
    main()
