"""Snapshot parsing, side by side on the same data in one run: the design document's Python
parser (transcribed), polars, and trainstore.

    .venv/bin/pip install -r benches/requirements.txt
    .venv/bin/python benches/peers/parse_peers.py --rows 200000

Prints seconds (best of --repeat), MB/s of raw JSON per core, and trainstore's speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa

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


def design_doc_parser(raw: pa.Table) -> int:
    # The document's records carry `feature` as a dict: json.loads is part of its cost.
    docs = raw.column("feature").to_pylist()
    records = []
    for d in docs:
        try:
            records.append({"feature": json.loads(d)})
        except ValueError:
            records.append({"feature": {}})
    return len(FeatureSnapshotParser().parse_feature_snapshots(records))


def polars_path_match(raw: pa.Table) -> int:
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
    return df.select(exprs).height


def polars_json_decode(raw: pa.Table) -> int:
    df = pl.from_arrow(raw)
    dtype = pl.Struct(
        {"uuid": pl.String, "nodeId": pl.String, "time": pl.String, "is_tag": pl.Boolean}
        | {n: pl.String for n in NUMBERS + ARRAYS + ["extend"]}
    )
    decoded = df.select(pl.col("feature").str.json_decode(dtype).alias("d")).unnest("d")
    exprs = [pl.col(k) for k in ["uuid", "nodeId", "time", "is_tag", "extend"]]
    exprs += [pl.col(n).cast(pl.Float64, strict=False) for n in NUMBERS]
    exprs += [pl.col(a).str.split(",").cast(pl.List(pl.Float32), strict=False) for a in ARRAYS]
    return decoded.select(exprs).height


def trainstore_parse(raw: pa.Table) -> int:
    table, _ = ts.parse_snapshots(raw)
    return table.num_rows


def best(fn: Callable[[pa.Table], int], raw: pa.Table, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        rows = fn(raw)
        times.append(time.perf_counter() - start)
        assert rows == raw.num_rows, (fn.__name__, rows)
    return min(times)


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
    results = {}
    for name, fn, used_cores in [
        ("design doc parser (Python)", design_doc_parser, 1),
        ("polars json_path_match", polars_path_match, cores),
        ("polars json_decode + split", polars_json_decode, cores),
        ("trainstore", trainstore_parse, cores),
    ]:
        seconds = best(fn, raw, args.repeat)
        results[name] = seconds
        print(f"{name:<30} {seconds:8.3f} s  {megabytes / seconds / used_cores:8.1f} MB/s per core")
    ours = results["trainstore"]
    polars_best = min(results["polars json_path_match"], results["polars json_decode + split"])
    print(f"trainstore vs design doc parser: {results['design doc parser (Python)'] / ours:.1f}x")
    print(f"trainstore vs polars (best of two): {polars_best / ours:.1f}x")


if __name__ == "__main__":
    main()
