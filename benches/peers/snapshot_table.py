"""A MySQL-protocol table of generated design-document rows for the read benchmarks, loaded
once and reused while it holds the asked number of rows (the scripts' --keep)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pymysql

import trainstore as ts

START = datetime(2022, 12, 7, tzinfo=timezone.utc)
# 100 snapshots 10 minutes apart, with a margin for their jitter.
CHUNK_SPAN = timedelta(minutes=10 * 105)


def ensure_snapshot_table(
    url: str, db: str, rows: int, chunk_rows: int | None = None, seed: int = 7
) -> pymysql.Connection:
    """Makes `db`.snapshots hold `rows` rows (200 per device: 2 nodes x 100 snapshots), loaded
    `chunk_rows` at a time (all at once by default) with seeds from `seed` up. Returns an admin
    connection to the server."""
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables"
            f" WHERE table_schema = '{db}' AND table_name = 'snapshots'"
        )
        (tables,) = cur.fetchone()
        count = 0
        if tables:
            cur.execute(f"SELECT COUNT(*) FROM `{db}`.snapshots")
            (count,) = cur.fetchone()
    if count == rows:
        return admin
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{db}`.snapshots")
    started = time.perf_counter()
    chunk_rows = chunk_rows or rows
    for chunk, first in enumerate(range(0, rows, chunk_rows)):
        # Each chunk's devices report after the previous chunk's: the table fills in time order.
        start = START + chunk * CHUNK_SPAN
        raw = ts.synthetic_snapshots(
            devices=max(1, min(chunk_rows, rows - first) // 200),
            nodes_per_device=2,
            snapshots=100,
            start=start.isoformat().replace("+00:00", "Z"),
            malformed_rate=0.0,
            seed=seed + chunk,
        )
        # In time order, as a sensor store receives them: the table keeps rows by time.
        ts.load_snapshots(url, "snapshots", raw.sort_by("time"))
    print(f"loaded {rows} rows in {time.perf_counter() - started:.1f} s")
    return admin


def release_snapshot_table(admin: pymysql.Connection, db: str, keep: bool) -> None:
    """Drops `db` unless it is to be kept for a rerun, and closes the admin connection."""
    if not keep:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE `{db}`")
    admin.close()
