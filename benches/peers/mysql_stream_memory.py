"""Peak memory while streaming many design-document rows from a MySQL-protocol server into
parsed snapshots: the process's resident memory is sampled as batches arrive, and should stay
flat however many rows have gone by.

    eval "$(scripts/test-services)"
    .venv/bin/python benches/peers/mysql_stream_memory.py --rows 10000000

The table is loaded in chunks of generated rows (about 1.8 KB each) the first time and kept
for reruns with --keep; --drop removes it.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from snapshot_table import ensure_snapshot_table, release_snapshot_table

import trainstore as ts

DB = "ts_bench_stream"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def report(rows: int) -> None:
    print(f"after {rows:>11,} rows: RSS {rss_mb():8,.0f} MB, peak so far {peak_mb():8,.0f} MB")


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
    rows = 0
    raw_bytes = 0
    marks = [m for m in (args.rows // 10, args.rows // 2) if m > 0]
    for batch in source.stream():
        rows += batch.num_rows
        raw_bytes += batch.nbytes
        if marks and rows >= marks[0]:
            report(rows)
            marks.pop(0)
        del batch
    seconds = time.perf_counter() - started
    report(rows)
    print(
        f"streamed {rows:,} parsed rows ({raw_bytes / 1e9:.1f} GB of Arrow) in {seconds:.1f} s; "
        f"RSS before the read {baseline:,.0f} MB, peak {peak_mb():,.0f} MB"
    )
    release_snapshot_table(admin, DB, keep=args.keep)


if __name__ == "__main__":
    main()
