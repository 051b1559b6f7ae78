"""Training-set versions, side by side on the same data in one run:

- create and read: ``ws.training_sets.create`` (quality with the label's balance, SHA-256
  and XXH3 of every file, manifest) and ``v.to_arrow()`` against ``pq.write_table`` /
  ``pq.read_table`` of the same pyarrow table with the same properties (Snappy, row groups
  of 131,072 rows), for the feature-store benchmark's 1M x 100k join answer (computed by
  trainstore from ``feature_join_peers.py``'s generated data, then cached) and for
  --big-rows rows of the answer's scalar columns (10,000,000 unless
  ``TRAINSTORE_BENCH_BIG_ROWS`` says otherwise; generated; the lists left out, 10M rows of
  them would be 10 GB). Each round creates a fresh version, so "first read" (its files
  checked against their XXH3, as once per process) is timed every round; "read again"
  re-reads it.
- list / select_best: on a set of 100 versions and one of 10,000, from Python. The versions
  are committed through the catalog by the Rust bench binary (``--make-versions``; each with
  a real create's manifest, scores and sizes varied), once, and kept in --data-dir.
- drift: two 1M-row versions shaped like the join answer, all 12 features (19 measures: the
  values of each, the lengths of the 7 lists): scipy's ``ks_2samp(method="asymp")`` plus the
  numpy PSI of ``crates/featurestore/src/training/drift.rs`` against trainstore's drift,
  twice: ``ws.training_sets.drift`` from Python (which reads both versions inside the call:
  the peer's inputs are in memory before its clock starts) and ``drift`` alone in the Rust
  bench binary (``--drift``) on the same two versions, read outside the clock. Both sides'
  figures are checked against scipy's.
- stream: the peak resident memory of building a version from a historical request of
  --stream-scale (10M feature rows x 1M entity rows by default, ``feature_join_peers.py``'s
  data, generated if absent) straight from the Parquet file, with
  ``ws.training_sets.create_from_features``, in a fresh process (its own ``VmHWM``); beside it,
  the same request's ``ws.features.get_historical_features`` alone, in another. The bar: under
  2 GiB resident.

    .venv/bin/pip install -r benches/requirements.txt
    VIRTUAL_ENV=$PWD/.venv .venv/bin/maturin develop --release -m bindings/python/Cargo.toml
    cargo bench --bench training_sets --no-run
    .venv/bin/python benches/peers/training_set_peers.py --repeat 3

Prints seconds (best of --repeat; --drift-repeat for drift) and trainstore's ratios, and
reports the bars through bars.py: create >= 0.8x ``pq.write_table`` (first round beside), read
>= 1x ``pq.read_table`` judged on the first read of a version in the process (its files'
XXH3 checked; the read again beside), list / select_best at 10,000 versions <= 3x at 100,
drift >= 5x scipy + numpy (from Python, reads included; the Rust call alone), and the stream's
peak < 2 GiB.

Value checks (the script exits 1 naming the side and the figure when one fails): each version
read back, and ``pq.read_table``'s table, equal the table written; the join answer (cached
from an earlier run) and both stream sides' answers match ``feature_join_peers.py``'s numpy
oracle (rows, meanLf's non-null count and sum, peakPowers' values and sum) and each other
(every feature's figures); both drift sides match scipy's figures, measure by measure; the
listed versions are as many as were made.

Smaller runs (checking the script itself): --join-feature-rows / --join-entity-rows and
--stream-feature-rows / --stream-entity-rows override the 1M x 100k and --stream-scale
requests; --no-rust leaves out what needs ``cargo bench`` (the list section, the Rust drift).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import trainstore as ts

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bars
import feature_join_peers as fj

REPO = Path(__file__).resolve().parents[2]
ROW_GROUP_ROWS = 128 * 1024
BATCH_ROWS = 64 * 1024
LABEL_WIDTH = 52
FEATURES = fj.NUMBERS + fj.ARRAYS
# Bumped whenever generation changes, so stale cached data is not reused.
DATA_VERSION = 1


def best(seconds: list[float]) -> float:
    return min(seconds)


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = call()
    return time.perf_counter() - started, out


def rebatch(table: pa.Table) -> pa.Table:
    """The table as batches of BATCH_ROWS, as a stream of rows would hand them over (the Rust
    bench uses the same size)."""
    return pa.Table.from_batches(table.combine_chunks().to_batches(max_chunksize=BATCH_ROWS))


def bare(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(None)


# ---------------------------------------------------------------------------------------------
# Data


def join_data(args: argparse.Namespace) -> fj.Data:
    return fj.Data(
        Path(args.join_data_dir), args.join_feature_rows, args.join_entity_rows, args.seed
    )


def join_label(args: argparse.Namespace) -> str:
    return (
        f"{fj.short(args.join_feature_rows)} \u00d7 {fj.short(args.join_entity_rows)} join answer"
    )


def join_answer(args: argparse.Namespace) -> pa.Table:
    """trainstore's answer to the feature-store benchmark's 1M x 100k request, cached."""
    data = join_data(args)
    cache = Path(args.data_dir) / (
        f"join_answer_v{fj.DATA_VERSION}_s{args.seed}_{data.feature_rows}_{data.entity_rows}.parquet"
    )
    fj.ensure_data(data, 2000)  # also brings an older oracle up to date
    if not cache.exists():
        with tempfile.TemporaryDirectory(dir=args.data_dir) as work:
            ws = fj.trainstore_workspace(data, Path(work) / "ws")
            answer = ws.features.get_historical_features(pq.read_table(data.entities), fj.REFS)
        partial = cache.with_suffix(".partial")
        pq.write_table(answer, partial)
        partial.rename(cache)
        print(f"wrote {cache}")
    return rebatch(pq.read_table(cache))


def scalar_rows(rows: int, seed: int) -> pa.Table:
    """The join answer's scalar columns at `rows` rows: uuids of rows/20 devices x 2 nodes,
    times over 120 days, a 0/1 label, 5 float32 features null on a fifth of the rows."""
    rng = np.random.default_rng([seed, DATA_VERSION, 1])
    devices = max(1, rows // 20)
    uuids = pa.array(fj.make_uuids(devices, seed, 8))
    key = rng.integers(0, devices * 2, rows)
    valid = rng.integers(0, 5, rows) != 0
    columns = {
        "uuid": uuids.take(pa.array(key // 2)),
        "nodeId": pa.array(fj.NODES).take(pa.array(key % 2)),
        "event_timestamp": pa.array(
            fj.T0_MS + rng.integers(0, 120 * fj.DAY_MS, rows), pa.timestamp("ms", tz="UTC")
        ),
        "label": pa.array(rng.integers(0, 2, rows)),
    }
    for i, name in enumerate(fj.NUMBERS):
        values = (rng.random(rows, np.float32) - 0.5) * np.float32(10.0 ** (i % 3))
        columns[name] = pa.array(values, mask=~valid)
    return rebatch(pa.table(columns))


def drift_set(rows: int, seed: int, shift: float) -> pa.Table:
    """1M rows of the join answer's shape; `shift` moves every value and lengthens a quarter
    of the lists by one."""
    table = scalar_rows(rows, seed)
    rng = np.random.default_rng([seed, DATA_VERSION, 2])
    valid = table.column("meanLf").is_valid().to_numpy(zero_copy_only=False)
    columns = {name: table.column(name) for name in table.column_names}
    for name in fj.NUMBERS:
        columns[name] = pc.add(columns[name], pa.scalar(shift, pa.float32()))
    for i, name in enumerate(fj.ARRAYS):
        lengths = rng.integers(8, 65, rows) + (shift > 0) * (rng.integers(0, 4, rows) == 0)
        lengths[~valid] = 0
        offsets = np.zeros(rows + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        values = rng.random(int(offsets[-1]), np.float32) * np.float32(
            10.0 ** (i % 3) * (1 + shift)
        )
        columns[name] = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(values), mask=pa.array(~valid)
        )
    return rebatch(pa.table(columns))


# ---------------------------------------------------------------------------------------------
# Create and read


def create_and_read(args: argparse.Namespace, label: str, table: pa.Table) -> list[str]:
    problems = []
    mb = table.nbytes / 1e6
    print(f"\n{label}: {table.num_rows:,} rows, {table.num_columns} columns, {mb:,.1f} MB in Arrow")
    times: dict[str, list[float]] = {
        k: [] for k in ("create", "write", "first_read", "read_again", "read_table")
    }
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=args.data_dir) as work:
        ws = ts.Workspace.open(os.path.join(work, "ws"))
        direct = os.path.join(work, "direct.parquet")
        for r in range(args.repeat):
            name = f"bench-{r}"
            seconds, version = timed(
                lambda name=name: ws.training_sets.create(name, table, label="label")
            )
            times["create"].append(seconds)
            seconds, _ = timed(
                lambda: pq.write_table(
                    table, direct, compression="snappy", row_group_size=ROW_GROUP_ROWS
                )
            )
            times["write"].append(seconds)
            gc.collect()
            seconds, got = timed(version.to_arrow)
            times["first_read"].append(seconds)
            if r == 0:
                if not bare(got).equals(bare(table)):
                    problems.append(f"{label}: the version read back differs from the table")
                sizes["trainstore"] = ws.training_sets.list(name)[0].bytes
                sizes["pyarrow"] = os.path.getsize(direct)
            del got
            gc.collect()
            seconds, got = timed(version.to_arrow)
            times["read_again"].append(seconds)
            del got
            gc.collect()
            seconds, got = timed(lambda: pq.read_table(direct))
            times["read_table"].append(seconds)
            if r == 0 and not bare(got).equals(bare(table)):
                problems.append(f"{label}: pq.read_table's table differs from the table")
            del got
            gc.collect()
    for key, values in times.items():
        print(f"  {key}: " + ", ".join(f"{s:.3f}" for s in values) + " s")
    print(
        f"  files: trainstore {sizes['trainstore'] / 1e6:,.1f} MB, "
        f"pyarrow {sizes['pyarrow'] / 1e6:,.1f} MB"
    )
    b = {k: best(v) for k, v in times.items()}
    bars.faster(
        f"training-set version create, {label}",
        "pq.write_table",
        b["create"],
        b["write"],
        0.8,
        note="create: quality, SHA-256 and XXH3, manifest; write_table: Snappy, same row groups",
        beside=("first round", times["create"][0], times["write"][0]),
    )
    bars.faster(
        f"training-set version read, {label}",
        "pq.read_table",
        b["first_read"],
        b["read_table"],
        1.0,
        note="judged on the first read of a version in the process (XXH3 of its files)",
        beside=("read again", b["read_again"], b["read_table"]),
    )
    rows = [
        ("trainstore create (quality, hashes, manifest)", b["create"], ""),
        ("pyarrow pq.write_table (snappy)", b["write"], ""),
        (
            "create / write_table (bar >= 0.8x)",
            None,
            f"{b['write'] / b['create']:.2f}x",
        ),
        ("trainstore read, first in process (XXH3)", b["first_read"], ""),
        ("trainstore read again", b["read_again"], ""),
        ("pyarrow pq.read_table", b["read_table"], ""),
        (
            "read / read_table, first | again (bar >= 1x)",
            None,
            f"{b['read_table'] / b['first_read']:.2f}x | {b['read_table'] / b['read_again']:.2f}x",
        ),
    ]
    print(f"\n{'side (best of ' + str(args.repeat) + ')':<{LABEL_WIDTH}}{'seconds':>10}  ratio")
    for name, seconds, note in rows:
        shown = f"{seconds:>10.3f}" if seconds is not None else f"{'':>10}"
        print(f"{name:<{LABEL_WIDTH}}{shown}  {note}")
    return problems


# ---------------------------------------------------------------------------------------------
# List and select


def cargo_bench(*args: str) -> str:
    command = ["cargo", "bench", "--quiet", "--bench", "training_sets", "--", *args]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    return run.stdout.strip().splitlines()[-1]


def list_select(args: argparse.Namespace) -> list[str]:
    if args.no_rust:
        print(
            "\nlist / select_best: left out (--no-rust; the Rust bench binary makes the versions)"
        )
        return []
    started = time.perf_counter()
    location = cargo_bench("--make-versions", os.path.join(args.data_dir, "versions"))
    print(f"\nlist / select_best (workspace ready in {time.perf_counter() - started:.1f} s)")
    ws = ts.Workspace.open(location)
    sets = ws.training_sets
    results: dict[tuple[str, int], float] = {}
    first: dict[tuple[str, int], float] = {}
    problems = []
    for count in (100, 10_000):
        name = f"versions-{count}"
        listed = sets.list(name)
        if len(listed) != count:
            problems.append(f"{name}: listed {len(listed)} versions")
        calls: dict[str, Callable[[], Any]] = {
            # `list` returns a sequence read on demand: the call and its best version.
            "list": lambda name=name: sets.list(name)[0],
            "select_best": lambda name=name: sets.select_best(name, min_data_size=50_000),
        }
        for what, call in calls.items():
            first[(what, count)] = timed(call)[0]  # the first call opens the store's files
            results[(what, count)] = best([timed(call)[0] for _ in range(args.list_repeat)])
    heading = f"call (best of {args.list_repeat})"
    print(f"{heading:<{LABEL_WIDTH}}{'100':>10}{'10,000':>10}")
    for what in ("list", "select_best"):
        small, large = results[(what, 100)], results[(what, 10_000)]
        print(
            f"{'ws.training_sets.' + what + ', ms':<{LABEL_WIDTH}}{small * 1e3:>10.2f}"
            f"{large * 1e3:>10.2f}  10,000 / 100: {large / small:.2f}x (bar <= 3x)"
        )
        bars.at_most(
            f"training-set {what}, 10,000 versions",
            "100 versions",
            large * 1e3,
            small * 1e3,
            3.0,
            unit="ms",
            note=f"from Python, best of {args.list_repeat} after a first call"
            + ("; list timed as list(name)[0]" if what == "list" else ""),
            beside=("first call", first[(what, 10_000)] * 1e3, first[(what, 100)] * 1e3),
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Drift


def psi(base: np.ndarray, cur: np.ndarray, bins: int = 10, eps: float = 1e-6) -> float:
    """drift.rs's doc comment, line for line."""
    base, cur = base[~np.isnan(base)], cur[~np.isnan(cur)]
    q = np.quantile(base, np.linspace(0, 1, bins + 1))
    cuts = np.unique(q[1:-1])

    def count(x: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(cuts, x, side="right"), minlength=len(cuts) + 1)

    pb, pc_ = count(base) / len(base), count(cur) / len(cur)
    pb, pc_ = np.where(pb == 0, eps, pb), np.where(pc_ == 0, eps, pc_)
    return float(np.sum((pc_ - pb) * np.log(pc_ / pb)))


def samples(column: pa.ChunkedArray) -> list[tuple[str, np.ndarray]]:
    """The numbers drift compares: values (list items flattened), and list lengths."""

    def numbers(array: Any) -> np.ndarray:
        return pc.drop_null(array).to_numpy().astype(np.float64)

    if pa.types.is_list(column.type):
        return [
            ("values", numbers(pc.list_flatten(column))),
            ("list_length", numbers(pc.list_value_length(column))),
        ]
    return [("values", numbers(column))]


def scipy_drift(base: pa.Table, cur: pa.Table) -> list[dict[str, Any]]:
    from scipy.stats import ks_2samp

    rows = []
    for name in FEATURES:
        for (measure, b), (_, c) in zip(
            samples(base.column(name)), samples(cur.column(name)), strict=True
        ):
            ks = ks_2samp(b, c, method="asymp")
            rows.append(
                {
                    "column": name,
                    "measure": measure,
                    "psi": psi(b, c),
                    "ks_statistic": float(ks.statistic),
                    "ks_pvalue": float(ks.pvalue),
                    "baseline_count": len(b),
                    "current_count": len(c),
                }
            )
    return rows


def check_drift(side: str, ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> list[str]:
    """`ours` against scipy's figures, measure by measure."""
    problems = []
    theirs = {(r["column"], r["measure"]): r for r in peer}
    for row in ours:
        other = theirs.pop((row["column"], row["measure"]), None)
        if other is None:
            problems.append(f"drift: scipy has no {row['column']} {row['measure']}")
            continue
        for key, tolerance in (
            ("ks_statistic", 1e-12),
            ("ks_pvalue", 1e-9),
            ("psi", 1e-9),
            ("baseline_count", 0),
            ("current_count", 0),
        ):
            a, b = row[key], other[key]
            if not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
                where = f"{row['column']} {row['measure']} {key}"
                problems.append(f"drift ({side}): {where}: {a} != {b}")
    problems += [f"drift ({side}): trainstore has no {c} {m}" for c, m in theirs]
    return problems


def drift_section(args: argparse.Namespace) -> list[str]:
    location = Path(args.data_dir) / f"drift_v{DATA_VERSION}_s{args.seed}_{args.drift_rows}"
    done = location / "done"
    if not done.exists():
        ws = ts.Workspace.open(str(location / "ws"))
        for seed, shift in ((args.seed, 0.0), (args.seed + 1, 0.02)):
            ws.training_sets.create("drift", drift_set(args.drift_rows, seed, shift), label="label")
        done.write_text("")
        del ws
        gc.collect()
    print(
        f"\ndrift of two {args.drift_rows:,}-row versions, {len(FEATURES)} features "
        f"(best of {args.drift_repeat})"
    )
    rust: dict[str, Any] = {"seconds": [], "rows": []}
    if not args.no_rust:
        rust = json.loads(
            cargo_bench(
                "--drift", str(location / "ws"), "drift", "--repeat", str(args.drift_repeat)
            )
        )
    ws = ts.Workspace.open(str(location / "ws"))
    python_seconds: list[float] = []
    python_rows: list[dict[str, Any]] = []
    for _ in range(args.drift_repeat):
        gc.collect()
        s, table = timed(lambda: ws.training_sets.drift("drift@1", "drift@2", columns=FEATURES))
        python_seconds.append(s)
        python_rows = table.to_pylist()
        del table
    base = ws.training_sets.get("drift", 1).to_arrow()
    cur = ws.training_sets.get("drift", 2).to_arrow()
    seconds, rows = [], []
    for _ in range(args.drift_repeat):
        gc.collect()
        s, rows = timed(lambda: scipy_drift(base, cur))
        seconds.append(s)
    print(f"  scipy + numpy: {', '.join(f'{s:.3f}' for s in seconds)} s")
    print(f"  trainstore, Python: {', '.join(f'{s:.3f}' for s in python_seconds)} s")
    problems = check_drift("Python", python_rows, rows)
    sides = [("trainstore ws.training_sets.drift (reads included)", "from Python", python_seconds)]
    if not args.no_rust:
        print(f"  trainstore, Rust: {', '.join(f'{s:.3f}' for s in rust['seconds'])} s")
        problems += check_drift("Rust", rust["rows"], rows)
        sides.append(("trainstore drift (Rust, inputs in memory)", "Rust alone", rust["seconds"]))
    scipy_best = best(seconds)
    print(f"{'side':<{LABEL_WIDTH}}{'seconds':>10}  ratio")
    print(f"{'scipy ks_2samp(method=asymp) + numpy PSI':<{LABEL_WIDTH}}{scipy_best:>10.3f}")
    for label, where, ours in sides:
        print(
            f"{label:<{LABEL_WIDTH}}{best(ours):>10.3f}  {scipy_best / best(ours):.1f}x faster "
            "(bar >= 5x)"
        )
        bars.faster(
            f"drift, 2 \u00d7 {fj.short(args.drift_rows)} rows, {len(rows)} measures, {where}",
            "scipy ks_2samp + numpy PSI",
            best(ours),
            scipy_best,
            5.0,
            note="reads of both versions inside the call"
            if where == "from Python"
            else "inputs read beforehand",
        )
    print(f"  {len(rows)} measures compared")
    return problems


# ---------------------------------------------------------------------------------------------
# A 10M x 1M historical request streamed into a version: peak memory

STREAM_SIDES = {
    "join": "ws.features.get_historical_features alone",
    "create": "ws.training_sets.create_from_features",
}
GIB = 1 << 30


def stream_data(args: argparse.Namespace) -> fj.Data:
    rows, entities = fj.SCALES[args.stream_scale]
    rows = args.stream_feature_rows or rows
    entities = args.stream_entity_rows or entities
    return fj.Data(Path(args.join_data_dir), rows, entities, args.seed)


def stream_child(args: argparse.Namespace) -> None:
    """One historical request in this (fresh) process; prints its figures as JSON."""
    data = stream_data(args)
    ws = fj.trainstore_workspace(data, Path(args.work) / "ws")
    entities = pq.read_table(data.entities)
    before = fj.own_peak_mb()
    started = time.perf_counter()
    if args.child == "join":
        answer = ws.features.get_historical_features(entities, fj.REFS)
    else:
        version = ws.training_sets.create_from_features("stream", entities, fj.REFS, label="label")
    seconds = time.perf_counter() - started
    peak = fj.own_peak_mb()
    # The values, after the peak is taken: the version is read back whole.
    if args.child != "join":
        answer = version.to_arrow()
    figures = fj.summary(answer)
    print(json.dumps({"seconds": seconds, "before_mb": before, "peak_mb": peak, **figures}))


def stream_section(args: argparse.Namespace) -> list[str]:
    data = stream_data(args)
    fj.ensure_data(data, 2000)
    size_gb = data.features.stat().st_size / 1e9
    print(
        f"\nhistorical request into a version: {data.feature_rows:,} feature rows "
        f"({size_gb:.2f} GB Parquet) x {data.entity_rows:,} entity rows, "
        f"{len(FEATURES)} features, from the Parquet file; each side in a fresh process"
    )
    problems = []
    results: dict[str, dict[str, Any]] = {}
    print(f"{'side':<{LABEL_WIDTH}}{'seconds':>10}{'peak MiB':>10}{'before':>8}  bar")
    for side, label in STREAM_SIDES.items():
        with tempfile.TemporaryDirectory(dir=args.data_dir, prefix=f"stream-{side}-") as work:
            command = [
                sys.executable, os.path.abspath(__file__), "--child", side, "--work", work,
                "--stream-scale", args.stream_scale, "--seed", str(args.seed),
                "--join-data-dir", args.join_data_dir, "--data-dir", args.data_dir,
                "--stream-feature-rows", str(data.feature_rows),
                "--stream-entity-rows", str(data.entity_rows),
            ]  # fmt: skip
            run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            problems.append(f"stream {side}: exit {run.returncode}: {run.stderr[-2000:]}")
            continue
        results[side] = got = json.loads(run.stdout.strip().splitlines()[-1])
        problems += fj.disagreements(f"stream {side}", got, data.expected())
        peak_mib, before_mib = (got[k] * 1e6 / (1 << 20) for k in ("peak_mb", "before_mb"))
        bar = ""
        if side == "create":
            met = got["peak_mb"] * 1e6 < 2 * GIB
            bar = f"< 2,048 MiB: {'met' if met else 'NOT MET'}"
        print(
            f"{label:<{LABEL_WIDTH}}{got['seconds']:>10.3f}{peak_mib:>10,.0f}{before_mib:>8,.0f}"
            f"  {bar}"
        )
    print("  (before: the process's peak after imports, definitions and reading the entity rows)")
    if "join" in results and "create" in results:
        problems += fj.cross_check(
            "stream create (read back)", results["create"], "join", results["join"]
        )
    if "create" in results:
        scale = f"{fj.short(data.feature_rows)} \u00d7 {fj.short(data.entity_rows)}"
        mib = 1e6 / (1 << 20)
        join = results.get("join")
        bars.below(
            f"stream {scale} into a training-set version, peak resident",
            results["create"]["peak_mb"] * mib,
            2048.0,
            "MiB",
            peer="get_historical_features alone" if join else "",
            theirs=join["peak_mb"] * mib if join else None,
            note=f"create_from_features {results['create']['seconds']:.1f} s",
        )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections",
        default="join,big,list,drift,stream",
        help="of join, big, list, drift, stream",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--list-repeat", type=int, default=20)
    parser.add_argument("--drift-repeat", type=int, default=1, help="scipy takes minutes")
    parser.add_argument(
        "--big-rows",
        type=int,
        default=int(os.environ.get("TRAINSTORE_BENCH_BIG_ROWS", "10000000")),
        help="rows of the scalar-columns case (default $TRAINSTORE_BENCH_BIG_ROWS or 10M)",
    )
    parser.add_argument("--drift-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--stream-scale",
        choices=fj.SCALES,
        default=os.environ.get("TRAINSTORE_BENCH_STREAM_SCALE", "10m"),
        help="feature x entity rows of the stream section (default $TRAINSTORE_BENCH_STREAM_SCALE"
        " or 10m)",
    )
    parser.add_argument("--stream-feature-rows", type=int, help="overrides --stream-scale")
    parser.add_argument("--stream-entity-rows", type=int, help="overrides --stream-scale")
    parser.add_argument("--join-feature-rows", type=int, default=1_000_000)
    parser.add_argument("--join-entity-rows", type=int, default=100_000)
    parser.add_argument(
        "--no-rust",
        action="store_true",
        help="leave out what runs `cargo bench`: the list section and the Rust drift",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data-dir", default=os.path.join(tempfile.gettempdir(), "trainstore_training_sets")
    )
    parser.add_argument(
        "--join-data-dir",
        default=os.path.join(tempfile.gettempdir(), "trainstore_feature_join"),
        help="feature_join_peers.py's --data-dir (its 1M x 100k data is generated if absent)",
    )
    parser.add_argument("--child", choices=STREAM_SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data_dir = os.path.abspath(args.data_dir)
    args.join_data_dir = os.path.abspath(args.join_data_dir)
    if args.child:
        stream_child(args)
        return
    os.makedirs(args.data_dir, exist_ok=True)
    sections = args.sections.split(",")
    problems: list[str] = []
    if "join" in sections:
        answer = join_answer(args)
        problems += fj.disagreements("join answer", fj.summary(answer), join_data(args).expected())
        problems += create_and_read(args, join_label(args), answer)
        del answer
        gc.collect()
    if "big" in sections:
        problems += create_and_read(
            args,
            f"{fj.short(args.big_rows)} rows, scalar columns",
            scalar_rows(args.big_rows, args.seed),
        )
        gc.collect()
    if "list" in sections:
        problems += list_select(args)
    if "drift" in sections:
        problems += drift_section(args)
    if "stream" in sections:
        problems += stream_section(args)
    if not problems:
        print(
            "\nagreement: every read equals its table; drift figures match scipy's; the join "
            "answer and the stream's answers match the oracle and each other"
        )
    bars.finish(problems)


if __name__ == "__main__":
    main()
