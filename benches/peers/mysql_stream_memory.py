"""Peak memory while streaming many design-document rows from a MySQL-protocol server into
parsed snapshots: the process's resident memory is sampled as batches arrive, and should stay
flat however many rows have gone by.

    eval "$(scripts/test-services)"
    .venv/bin/python benches/peers/mysql_stream_memory.py --rows 10000000

The table is loaded in chunks of generated rows (about 1.8 KB each) the first time and kept
for reruns with --keep; --drop removes it.

Reports the bar through bars.py: flat resident memory, taken as the peak after every row at
most 1.5x the peak after the first tenth of the rows. Value checks: the rows streamed, their
non-null meanLf count and sum, and the number of peakPowers values must equal what the server
computes from the stored JSON (`JSON_VALUE`, one aggregate query after the stream); the
script exits 1 naming the figure otherwise. The checks' own work on each batch is left out of
the time shown.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from typing import Any

import bars
import pyarrow as pa
import pyarrow.compute as pc
import pymysql
from snapshot_table import ensure_snapshot_table, release_snapshot_table

import trainstore as ts

DB = "ts_bench_stream"
FLAT = 1.5


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def report(rows: int) -> float:
    peak = peak_mb()
    print(f"after {rows:>11,} rows: RSS {rss_mb():8,.0f} MB, peak so far {peak:8,.0f} MB")
    return peak


def add_figures(totals: dict[str, Any], batch: pa.RecordBatch) -> None:
    mean = batch.column("meanLf")
    totals["rows"] += batch.num_rows
    totals["meanLf_non_null"] += len(mean) - mean.null_count
    totals["meanLf_sum"] += pc.sum(mean).as_py() or 0.0
    totals["peakPowers_values"] += pc.sum(pc.list_value_length(batch.column("peakPowers"))).as_py()


def server_figures(admin: pymysql.Connection) -> dict[str, Any]:
    """The same figures, computed by the server from the stored documents."""
    with admin.cursor() as cur:
        cur.execute(
            f"""SELECT COUNT(*), COUNT(m), SUM(m),
                  SUM(CHAR_LENGTH(p) - CHAR_LENGTH(REPLACE(p, ',', '')) + (p <> ''))
                FROM (SELECT JSON_VALUE(feature, '$.meanLf') AS m,
                             JSON_VALUE(feature, '$.peakPowers') AS p
                      FROM `{DB}`.snapshots) AS docs"""
        )
        rows, non_null, total, values = cur.fetchone()
    return {
        "rows": int(rows),
        "meanLf_non_null": int(non_null),
        "meanLf_sum": float(total or 0.0),
        "peakPowers_values": int(values or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the table for a rerun")
    parser.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="0 turns off the retry ledger (16 bytes per row handed out, to skip them on a retry)",
    )
    args = parser.parse_args()

    server = os.environ["TRAINSTORE_TEST_MYSQL_URL"].rstrip("/")
    url = f"{server}/{DB}"
    admin = ensure_snapshot_table(url, DB, args.rows, chunk_rows=100_000, seed=1000)

    source = ts.DorisSource(url, table="snapshots", max_retries=args.max_retries)
    baseline = rss_mb()
    started = time.perf_counter()
    checking = 0.0
    raw_bytes = 0
    totals: dict[str, Any] = {
        "rows": 0,
        "meanLf_non_null": 0,
        "meanLf_sum": 0.0,
        "peakPowers_values": 0,
    }
    marks = [m for m in (args.rows // 10, args.rows // 2) if m > 0]
    early = 0.0
    for batch in source.stream():
        begin = time.perf_counter()
        add_figures(totals, batch)
        raw_bytes += batch.nbytes
        checking += time.perf_counter() - begin
        if marks and totals["rows"] >= marks[0]:
            peak = report(totals["rows"])
            early = early or peak
            marks.pop(0)
        del batch
    seconds = time.perf_counter() - started - checking
    final = report(totals["rows"])
    print(
        f"streamed {totals['rows']:,} parsed rows ({raw_bytes / 1e9:.1f} GB of Arrow) in "
        f"{seconds:.1f} s; RSS before the read {baseline:,.0f} MB, peak {peak_mb():,.0f} MB"
    )
    want = server_figures(admin)
    problems = bars.agree("streamed values", "trainstore stream", totals, "the server", want)
    release_snapshot_table(admin, DB, keep=args.keep)
    bars.flat(
        f"MySQL streaming memory ({totals['rows']:,} rows, max_retries={args.max_retries})",
        final,
        early or final,
        FLAT,
        "MB",
        note=f"{raw_bytes / 1e9:.1f} GB of Arrow in {seconds:.1f} s; RSS before the read "
        f"{baseline:,.0f} MB",
    )
    bars.finish(problems)


if __name__ == "__main__":
    main()
