"""Snapshot parsing, side by side on the same data in one run: the design document's Python
parser (transcribed), polars (two ways), and trainstore.

    .venv/bin/pip install -r benches/requirements.txt
    .venv/bin/python benches/peers/parse_peers.py --rows 200000

Prints seconds (best of --repeat; the clock stops when the answer is in hand, its freeing is
not timed for any side), MB/s of raw JSON per core, and trainstore's speed-up; reports the bars
(>= 30x the Python parser, >= 5x polars' better way) through bars.py, each process's first
call beside. Value checks: every side's parsed meanLf (non-null count, sum) and peakPowers
(number of values, their sum) must agree with the Python parser's, within float32 rounding
for the lists; the script exits 1 naming the side and the figure otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import bars
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

import trainstore as ts

NUMBERS = ["meanLf", "std", "mean", "meanHf", "temperature"]
ARRAYS = ["peakPowers", "peakFreqs", "bandSpectrum", "feature1", "feature2", "feature3", "feature4"]


class FeatureSnapshotParser:
    """The design document's parser, transcribed as written."""

    def __init__(self) -> None:
        self.feature_extractors: dict[str, Callable[[Any], Any]] = {
            **{n: self.extract_numeric_feature for n in NUMBERS},
            **{n: self.extract_array_feature for n in ARRAYS},
            "extend": self.extract_json_feature,
        }

    def parse_feature_snapshots(self, raw_data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.parse_single_snapshot(record) for record in raw_data]

    def parse_single_snapshot(self, record: dict[str, Any]) -> dict[str, Any]:
        feature_data = record["feature"]
        parsed = {
            "uuid": feature_data.get("uuid"),
            "nodeId": feature_data.get("nodeId"),
            "time": feature_data.get("time"),
            "is_tag": feature_data.get("is_tag"),
            "features": {},
        }
        for name, value in feature_data.items():
            if name in self.feature_extractors:
                parsed["features"][name] = self.feature_extractors[name](value)
        return parsed

    def extract_numeric_feature(self, value: Any) -> float:
        try:
            return float(value) if value else 0.0
        except (ValueError, TypeError):
            return 0.0

    def extract_array_feature(self, value: Any) -> list[float]:
        if not value:
            return []
        try:
            return [float(x.strip()) for x in value.split(",") if x.strip()]
        except (ValueError, TypeError):
            return []

    def extract_json_feature(self, value: Any) -> Any:
        if not value:
            return {}
        try:
            return json.loads(value)
        except (ValueError, TypeError):
            return {}


def design_doc_parser(raw: pa.Table) -> list[dict[str, Any]]:
    # The document's records carry `feature` as a dict: json.loads is part of its cost.
    docs = raw.column("feature").to_pylist()
    records = []
    for d in docs:
        try:
            records.append({"feature": json.loads(d)})
        except ValueError:
            records.append({"feature": {}})
    return FeatureSnapshotParser().parse_feature_snapshots(records)


def polars_path_match(raw: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(raw)
    doc = pl.col("feature")
    exprs = [doc.str.json_path_match(f"$.{k}").alias(k) for k in ["uuid", "nodeId", "time"]]
    exprs.append((doc.str.json_path_match("$.is_tag") == "true").alias("is_tag"))
    exprs += [
        doc.str.json_path_match(f"$.{n}").cast(pl.Float64, strict=False).alias(n) for n in NUMBERS
    ]
    exprs += [
        doc.str.json_path_match(f"$.{a}")
        .str.split(",")
        .cast(pl.List(pl.Float32), strict=False)
        .alias(a)
        for a in ARRAYS
    ]
    exprs.append(doc.str.json_path_match("$.extend").alias("extend"))
    return df.select(exprs)


def polars_json_decode(raw: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(raw)
    dtype = pl.Struct(
        {"uuid": pl.String, "nodeId": pl.String, "time": pl.String, "is_tag": pl.Boolean}
        | {n: pl.String for n in NUMBERS + ARRAYS + ["extend"]}
    )
    decoded = df.select(pl.col("feature").str.json_decode(dtype).alias("d")).unnest("d")
    exprs = [pl.col(k) for k in ["uuid", "nodeId", "time", "is_tag", "extend"]]
    exprs += [pl.col(n).cast(pl.Float64, strict=False) for n in NUMBERS]
    exprs += [pl.col(a).str.split(",").cast(pl.List(pl.Float32), strict=False) for a in ARRAYS]
    return decoded.select(exprs)


def trainstore_parse(raw: pa.Table) -> pa.Table:
    table, _ = ts.parse_snapshots(raw)
    return table


# ---------------------------------------------------------------------------------------------
# Value checks: the figures each side's answer is compared on

NUMBER_CHECKED = "meanLf"
LIST_CHECKED = "peakPowers"


def figures(answer: Any) -> dict[str, Any]:
    """Rows; meanLf's non-null count and sum; peakPowers' number of values, their sum and the
    sum of their magnitudes (which sets the float32 tolerance). For the Python parser's list of
    records, a value is non-null when the parser produced it."""
    if isinstance(answer, list):
        numbers = [r["features"][NUMBER_CHECKED] for r in answer if NUMBER_CHECKED in r["features"]]
        # List by list, not one list of every value: at 1M rows the answer alone nearly fills
        # the machine (mysql_read_peers.py).
        lists = [r["features"].get(LIST_CHECKED) or [] for r in answer]
        return {
            "rows": len(answer),
            f"{NUMBER_CHECKED}_non_null": len(numbers),
            f"{NUMBER_CHECKED}_sum": math.fsum(numbers),
            f"{LIST_CHECKED}_values": sum(map(len, lists)),
            f"{LIST_CHECKED}_sum": math.fsum(map(math.fsum, lists)),
            f"{LIST_CHECKED}_abs_sum": math.fsum(math.fsum(map(abs, v)) for v in lists),
        }
    table = answer.to_arrow() if isinstance(answer, pl.DataFrame) else answer
    return table_figures(table, NUMBER_CHECKED, LIST_CHECKED)


def table_figures(table: pa.Table, number: str, array: str) -> dict[str, Any]:
    """The figures of :func:`figures` for an Arrow table (used by mysql_read_peers.py too)."""
    mean = table.column(number).cast(pa.float64())
    flat = pc.list_flatten(table.column(array)).cast(pa.float64())
    return {
        "rows": table.num_rows,
        f"{number}_non_null": len(mean) - mean.null_count,
        f"{number}_sum": pc.sum(mean).as_py() or 0.0,
        f"{array}_values": len(flat) - flat.null_count,
        f"{array}_sum": pc.sum(flat).as_py() or 0.0,
        f"{array}_abs_sum": pc.sum(pc.abs(flat)).as_py() or 0.0,
    }


def check_figures(
    what: str, side: str, got: dict[str, Any], reference: str, want: dict[str, Any]
) -> list[str]:
    """`got` against `want`: counts equal, meanLf's sum to 1e-12 (both are float64 parses of
    the same text), peakPowers' sum within float32 rounding of its values' magnitudes."""
    want = dict(want)
    magnitude = want.pop(f"{LIST_CHECKED}_abs_sum")
    tolerance = bars.Tolerance(relative=1e-12, per_key={f"{LIST_CHECKED}_sum": 1e-6 * magnitude})
    return bars.agree(what, side, got, reference, want, tolerance)


def measure(
    fn: Callable[[pa.Table], Any], raw: pa.Table, repeat: int
) -> tuple[list[float], dict[str, Any]]:
    """Each call's seconds, and the figures of the first call's answer (outside the clock)."""
    times: list[float] = []
    got: dict[str, Any] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        answer = fn(raw)
        times.append(time.perf_counter() - start)
        if not got:
            got = figures(answer)
        del answer
    return times, got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    devices = max(1, args.rows // 200)
    # Clean data: polars' json_decode fails the whole column on one truncated document.
    raw = ts.synthetic_snapshots(
        devices=devices, nodes_per_device=2, snapshots=100, malformed_rate=0.0, seed=7
    )
    megabytes = sum(len(s) for s in raw.column("feature").to_pylist()) / 1e6
    cores = os.cpu_count() or 1
    print(
        f"{raw.num_rows} rows, {megabytes:.0f} MB of JSON, {cores} cores, polars {pl.__version__}"
    )
    times: dict[str, list[float]] = {}
    answers: dict[str, dict[str, Any]] = {}
    per_core: dict[str, float] = {}
    for name, fn, used_cores in [
        (PYTHON, design_doc_parser, 1),
        (PATH_MATCH, polars_path_match, cores),
        (JSON_DECODE, polars_json_decode, cores),
        (TRAINSTORE, trainstore_parse, cores),
    ]:
        times[name], answers[name] = measure(fn, raw, args.repeat)
        seconds = min(times[name])
        per_core[name] = megabytes / seconds / used_cores
        print(f"{name:<30} {seconds:8.3f} s  {per_core[name]:8.1f} MB/s per core")

    problems: list[str] = []
    for name, got in answers.items():
        if name != PYTHON:
            problems += check_figures("parsed values", name, got, PYTHON, answers[PYTHON])
        if got["rows"] != raw.num_rows:
            problems.append(f"parsed values: {name} returned {got['rows']} rows of {raw.num_rows}")

    ours = times[TRAINSTORE]
    polars_name = min((PATH_MATCH, JSON_DECODE), key=lambda n: min(times[n]))
    print(f"trainstore vs design doc parser: {min(times[PYTHON]) / min(ours):.1f}x")
    print(f"trainstore vs polars (best of two): {min(times[polars_name]) / min(ours):.1f}x")
    scale = f"{raw.num_rows:,} rows, {megabytes:.0f} MB of JSON"
    note = (
        f"{scale}; MB/s per core: trainstore {per_core[TRAINSTORE]:.0f}, "
        f"{PYTHON} {per_core[PYTHON]:.1f}, {polars_name} {per_core[polars_name]:.0f}"
    )
    for peer, threshold, named in ((PYTHON, 30.0, PYTHON), (polars_name, 5.0, "polars")):
        bars.faster(
            f"parse snapshots ({raw.num_rows:,} rows)",
            peer,
            min(ours),
            min(times[peer]),
            threshold,
            note=note,
            beside=("first call", ours[0], times[peer][0]),
            named=named,
        )
    bars.finish(problems)


PYTHON = "design doc parser (Python)"
PATH_MATCH = "polars json_path_match"
JSON_DECODE = "polars json_decode + split"
TRAINSTORE = "trainstore"


if __name__ == "__main__":
    main()
