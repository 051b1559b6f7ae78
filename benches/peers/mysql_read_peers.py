"""Reading design-document snapshots from a MySQL-protocol server (the loopback MariaDB), side
by side in one run on the same table: connectorx and pymysql + pandas against trainstore, raw
columns and parsed.

    .venv/bin/pip install -r benches/requirements.txt
    eval "$(scripts/test-services)"
    .venv/bin/python benches/peers/mysql_read_peers.py --rows 200000 [--partitions 4]

At 1M rows, load the table in a process of its own first (`--rows 1000000 --load-only`).

Prints seconds (best of --repeat; the clock stops when the answer is in hand) and trainstore's
ratios, and reports the bars (raw >= 1x connectorx's best, parsed >= 10x pymysql + the design
document's parser) through bars.py, the first round's ratios beside. Value checks, on the
first round's answers outside the clock: every raw reader's rows, sum of `time`, total bytes
of `feature` and an order-independent digest of its rows (the sum of polars' row hashes of
time and feature) must equal connectorx's one-part read; the parsed readers' meanLf (non-null
count, sum) and peakPowers (values, sum) must agree. The script exits 1 naming the reader and
the figure otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import bars
import connectorx as cx
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pymysql
from parse_peers import FeatureSnapshotParser, check_figures, figures
from snapshot_table import ensure_snapshot_table, release_snapshot_table

import trainstore as ts

DB = "ts_bench_read"


def best_interleaved(
    readers: list[tuple[str, Callable[[], Any], Callable[[Any], dict[str, Any]]]], repeat: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Each reader's seconds over `repeat` rounds, each round running every reader once, so
    that a drift in the server's state (caches, background work) falls on all of them alike;
    and the figures of each reader's first answer, taken outside the clock."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in readers}
    got: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for name, fn, summarize in readers:
            start = time.perf_counter()
            answer = fn()
            times[name].append(time.perf_counter() - start)
            if name not in got:
                got[name] = summarize(answer)
            del answer
    return times, got


def raw_figures(answer: Any) -> dict[str, Any]:
    """Rows, sum of `time`, bytes of `feature`, and the sum (mod 2^64) of each row's hash of
    the two: equal whatever order the rows came in. A slice at a time, so that at 1M rows
    (2 GB of text) no second copy of the answer is made."""
    rows = len(answer)
    got = {"rows": rows, "time_sum": 0, "feature_bytes": 0, "row_digest": 0}
    digest = np.uint64(0)
    for lo in range(0, rows, SLICE):
        if isinstance(answer, pd.DataFrame):
            part = pa.Table.from_pandas(answer.iloc[lo : lo + SLICE], preserve_index=False)
        else:
            part = answer.slice(lo, SLICE)
        times = part.column("time").cast(pa.int64())
        feature = part.column("feature")
        if pa.types.is_binary(feature.type) or pa.types.is_large_binary(feature.type):
            feature = feature.cast(pa.string())
        frame = pl.DataFrame(
            {"time": pl.from_arrow(times), "feature": pl.from_arrow(feature).cast(pl.String)}
        )
        hashes = frame.hash_rows(seed=7).to_numpy()
        digest = np.add.reduce(np.append(hashes, digest), dtype=np.uint64)
        got["time_sum"] += pc.sum(times).as_py() or 0
        got["feature_bytes"] += pc.sum(pc.binary_length(feature)).as_py() or 0
    got["row_digest"] = int(digest)
    return got


SLICE = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the loaded table for a rerun")
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="load the table, keep it and stop (at 1M rows the loader and pymysql + the Python "
        "parser do not fit in 24 GiB together)",
    )
    parser.add_argument("--partitions", type=int, default=4, help="trainstore's parallel parts")
    args = parser.parse_args()
    server = os.environ.get("TRAINSTORE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306").rstrip("/")
    url = f"{server}/{DB}"
    admin = ensure_snapshot_table(url, DB, args.rows)
    if args.load_only:
        release_snapshot_table(admin, DB, keep=True)
        return
    rows = args.rows
    sql = "SELECT time, feature FROM snapshots"

    def connectorx_raw() -> Any:
        return cx.read_sql(url, sql, return_type="arrow")

    def connectorx_partitions(parts: int) -> Callable[[], Any]:
        def read() -> Any:
            return cx.read_sql(
                url, sql, return_type="arrow", partition_on="time", partition_num=parts
            )

        return read

    def pymysql_pandas() -> Any:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=DB)
        frame = pd.read_sql(sql, conn)
        conn.close()
        return frame

    def pymysql_design_doc_parser() -> list[dict[str, Any]]:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=DB)
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql)
            records: list[dict[str, Any]] = []
            for row in cur.fetchall():
                try:
                    records.append({"feature": json.loads(row["feature"])})
                except ValueError:
                    records.append({"feature": {}})
        conn.close()
        return FeatureSnapshotParser().parse_feature_snapshots(records)

    source = ts.DorisSource(url, table="snapshots", partitions=args.partitions)

    def trainstore_raw() -> Any:
        return source.query_raw()

    def trainstore_parsed() -> Any:
        return source.query()

    readers = [
        (CX, connectorx_raw, raw_figures),
        ("connectorx, 2 partitions (raw)", connectorx_partitions(2), raw_figures),
        ("connectorx, 4 partitions (raw)", connectorx_partitions(4), raw_figures),
        ("connectorx, 8 partitions (raw)", connectorx_partitions(8), raw_figures),
        ("pymysql + pandas (raw)", pymysql_pandas, raw_figures),
        (TS_RAW, trainstore_raw, raw_figures),
        (PARSER, pymysql_design_doc_parser, figures),
        (TS_PARSED, trainstore_parsed, figures),
    ]
    times, got = best_interleaved(readers, args.repeat)
    for name, seconds in times.items():
        print(f"{name:<32} {min(seconds):8.3f} s")

    problems: list[str] = []
    for name, _, summarize in readers:
        if got[name]["rows"] != rows:
            problems.append(f"read values: {name} returned {got[name]['rows']} rows of {rows}")
        if summarize is raw_figures and name != CX:
            problems += bars.agree("raw values", name, got[name], CX, got[CX])
    problems += check_figures("parsed values", TS_PARSED, got[TS_PARSED], PARSER, got[PARSER])

    cx_names = [name for name in times if name.startswith("connectorx")]
    cx_best = min(cx_names, key=lambda n: min(times[n]))
    cx_first = min(times[n][0] for n in cx_names)
    ours, parsed = times[TS_RAW], times[TS_PARSED]
    print(f"trainstore raw vs connectorx (best): {min(times[cx_best]) / min(ours):.2f}x")
    print(
        f"trainstore parsed vs pymysql + design doc parser: {min(times[PARSER]) / min(parsed):.1f}x"
    )
    scale = f"{rows:,} rows"
    bars.faster(
        f"read a MySQL-protocol table into Arrow, raw columns ({scale})",
        cx_best.removesuffix(" (raw)"),
        min(ours),
        min(times[cx_best]),
        1.0,
        note=f"trainstore {args.partitions} parts; connectorx offered 1, 2, 4, 8 parts, "
        "its best counts",
        beside=("first round", ours[0], cx_first),
        named="connectorx",
    )
    bars.faster(
        f"read a MySQL-protocol table into Arrow, parsed ({scale})",
        "pymysql + the design doc's parser",
        min(parsed),
        min(times[PARSER]),
        10.0,
        beside=("first round", parsed[0], times[PARSER][0]),
    )
    release_snapshot_table(admin, DB, keep=args.keep)
    bars.finish(problems)


CX = "connectorx (raw)"
TS_RAW = "trainstore (raw)"
PARSER = "pymysql + design doc parser"
TS_PARSED = "trainstore (parsed)"


if __name__ == "__main__":
    main()
