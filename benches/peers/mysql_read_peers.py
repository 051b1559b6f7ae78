"""Reading design-document snapshots from a MySQL-protocol server (the loopback MariaDB), side
by side in one run on the same table: connectorx and pymysql + pandas against trainstore, raw
columns and parsed.

    .venv/bin/pip install -r benches/requirements.txt
    eval "$(scripts/test-services)"
    .venv/bin/python benches/peers/mysql_read_peers.py --rows 200000 [--partitions 4]

At 1M rows, load the table in a process of its own first (`--rows 1000000 --load-only`).

Prints seconds (best of --repeat) and trainstore's ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import connectorx as cx
import pandas as pd
import pymysql
from parse_peers import FeatureSnapshotParser
from snapshot_table import ensure_snapshot_table, release_snapshot_table

import trainstore as ts

DB = "ts_bench_read"


def best_interleaved(
    readers: list[tuple[str, Callable[[], int]]], rows: int, repeat: int
) -> dict[str, float]:
    """Best time of each reader over `repeat` rounds, each round running every reader once, so
    that a drift in the server's state (caches, background work) falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in readers}
    for _ in range(repeat):
        for name, fn in readers:
            start = time.perf_counter()
            got = fn()
            times[name].append(time.perf_counter() - start)
            assert got == rows, (name, got, rows)
    return {name: min(t) for name, t in times.items()}


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

    def connectorx_raw() -> int:
        return cx.read_sql(url, sql, return_type="arrow").num_rows

    def connectorx_partitions(parts: int) -> Callable[[], int]:
        def read() -> int:
            table = cx.read_sql(
                url, sql, return_type="arrow", partition_on="time", partition_num=parts
            )
            return table.num_rows

        return read

    def pymysql_pandas() -> int:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=DB)
        frame = pd.read_sql(sql, conn)
        conn.close()
        return len(frame)

    def pymysql_design_doc_parser() -> int:
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
        return len(FeatureSnapshotParser().parse_feature_snapshots(records))

    source = ts.DorisSource(url, table="snapshots", partitions=args.partitions)

    def trainstore_raw() -> int:
        return source.query_raw().num_rows

    def trainstore_parsed() -> int:
        return source.query().num_rows

    readers = [
        ("connectorx (raw)", connectorx_raw),
        ("connectorx, 2 partitions (raw)", connectorx_partitions(2)),
        ("connectorx, 4 partitions (raw)", connectorx_partitions(4)),
        ("connectorx, 8 partitions (raw)", connectorx_partitions(8)),
        ("pymysql + pandas (raw)", pymysql_pandas),
        ("trainstore (raw)", trainstore_raw),
        ("pymysql + design doc parser", pymysql_design_doc_parser),
        ("trainstore (parsed)", trainstore_parsed),
    ]
    results = best_interleaved(readers, rows, args.repeat)
    for name, seconds in results.items():
        print(f"{name:<32} {seconds:8.3f} s")
    cx_best = min(seconds for name, seconds in results.items() if name.startswith("connectorx"))
    print(f"trainstore raw vs connectorx (best): {cx_best / results['trainstore (raw)']:.2f}x")
    print(
        "trainstore parsed vs pymysql + design doc parser: "
        f"{results['pymysql + design doc parser'] / results['trainstore (parsed)']:.1f}x"
    )
    release_snapshot_table(admin, DB, keep=args.keep)


if __name__ == "__main__":
    main()
