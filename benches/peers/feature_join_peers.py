"""Point-in-time training-set retrieval, side by side on the same data in one run: Feast 0.67
(local provider; its DuckDB offline store and its default dask one), DuckDB written two ways
(an ASOF JOIN carrying every column; the ASOF JOIN on keys and times with the winners' values
joined back, as its best users write it), and trainstore (from the Parquet file, and from its
ingested offline store); with --online, single-entity online lookups (Feast's SQLite online
store against trainstore's, from Python and from Rust), cold and warm.

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install -r benches/requirements.txt maturin==1.16.0
    VIRTUAL_ENV=/tmp/benchvenv /tmp/benchvenv/bin/maturin develop --release \\
        -m bindings/python/Cargo.toml
    /tmp/benchvenv/bin/python benches/peers/feature_join_peers.py --skip-feast-default --online
    /tmp/benchvenv/bin/python benches/peers/feature_join_peers.py --scale 10m \\
        --peers duckdb,duckdb-keys,trainstore,trainstore-ingested --repeat 2

The data is generated once (seeded) and kept in --data-dir. Features: --feature-rows rows of
the design document's snapshots, rows/200 uuids x 2 nodeIds x 100 snapshots over 120 days, in
time order (as snapshots arrive), one snappy Parquet file of 4 row groups: 5 float32 features,
7 list<float32> features of 8-64 values (36 on average) and a small `extend` JSON string.
Entity rows: 89% uniform from 15 days before a key's first snapshot to 45 days after its last,
5% exactly on a snapshot, 1% at last + TTL (matches), 1% at last + TTL + 1 ms (does not), 2%
an unknown uuid, 2% a known uuid with nodeId "1467", which no uuid has. TTL is 30 days.

Each side runs in a fresh process of its own, so its peak RSS (the whole process: imports,
setup and the timed calls) is its own; trainstore's ingest runs in one more, before. The clock
covers only retrieval, never apply. A side past --timeout is stopped and keeps the calls it
finished. Feast's entity is two entities (uuid, nodeId) since a Feast entity has one join
key; trainstore's is one entity with both.

Value checks (outside the clock; the script exits 1 naming the side and the figure when one
fails): every side against a numpy oracle computed with the data (rows, meanLf's non-null
count and sum, and peakPowers' number of values and their sum, read back from the file), and
every side's whole answer against the first side's: each of the 12 features' non-null count,
number of list values and sum (float sums within 1e-9 of their values' magnitudes). The online
sides are checked the same way on the looked-up keys' latest snapshots (the Rust side reports
meanLf only).

Online: both sides materialize every snapshot of the same file (Feast through its DuckDB
offline store), then look up --lookups seeded keys, one entity per call, ignoring the TTL
as Feast's online reads do, in two passes, each side in a fresh process per pass: cold (no
warm-up: a fresh serving process, first touches included) and warm (after --warmup calls, one
per materialized key by default). trainstore's Rust side is the bench binary
`benches/online_lookups.rs` (built by `cargo bench`, outside the clock; --no-rust leaves it
out) reading the workspace its Python child materialized, with the same keys.

Prints seconds (best of --repeat), peak MB and trainstore's ratios; with --online, lookup
p50/p99 in microseconds. Reports the bars through bars.py: cold build >= 1.25x DuckDB's better
SQL, warm build (ingested store) >= 50x Feast and >= 10x DuckDB (20x at 10M x 1M), rows
identical to Feast's, each judged on the best of --repeat with a fresh process's first call
beside; online p99 >= 100x Feast from Rust and >= 20x from Python, judged cold, warm beside.
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
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bars
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

NUMBERS = ["meanLf", "std", "mean", "meanHf", "temperature"]
ARRAYS = [
    "peakPowers",
    "peakFreqs",
    "bandSpectrum",
    "feature1",
    "feature2",
    "feature3",
    "feature4",
]
FEATURES = NUMBERS + ARRAYS
# The list feature the oracle checks (besides meanLf): its values' count and sum.
LIST_CHECKED = "peakPowers"
REFS = [f"snapshots:{name}" for name in FEATURES]
NODES = ["1465", "1466"]
MISSING_NODE = "1467"
SNAPSHOTS = 100
DAY_MS = 86_400_000
TTL_MS = 30 * DAY_MS
T0_MS = int(datetime(2025, 1, 6, tzinfo=timezone.utc).timestamp() * 1000)
STEP_MS = 120 * DAY_MS // SNAPSHOTS
ROW_GROUPS = 4
# Bumped whenever generation changes, so stale cached files are not reused.
DATA_VERSION = 2

HISTORICAL = {
    "trainstore": "trainstore, from the Parquet file",
    "trainstore-ingested": "trainstore, from its ingested offline store",
    "duckdb": "DuckDB ASOF JOIN (hand-written SQL)",
    "duckdb-keys": "DuckDB ASOF JOIN on keys and times, values joined back",
    "feast-duckdb": "Feast 0.67, DuckDB offline store",
    # Last: the slowest by far, and the one the timeout or memory guard may stop.
    "feast-dask": "Feast 0.67, default (dask) offline store",
}
ONLINE = {
    "feast-online": "Feast 0.67, SQLite online store",
    "trainstore-online": "trainstore, embedded online store, from Python",
    "trainstore-online-rust": "trainstore, embedded online store, from Rust",
}
REPO = Path(__file__).resolve().parents[2]
LABEL_WIDTH = 58
RESULT = "result.json"
INGEST = "trainstore-ingest"
SCALES = {"1m": (1_000_000, 100_000), "10m": (10_000_000, 1_000_000)}


# ---------------------------------------------------------------------------------------------
# Data


def snapshot_times(keys: int, seed: int) -> np.ndarray:
    """(keys, SNAPSHOTS) epoch ms; each key's times strictly increase (jitter < step)."""
    rng = np.random.default_rng([seed, 0])
    offsets = rng.integers(0, STEP_MS // 2, size=(keys, 1))
    jitter = rng.integers(0, STEP_MS // 2, size=(keys, SNAPSHOTS))
    return T0_MS + offsets + np.arange(SNAPSHOTS) * STEP_MS + jitter


def make_uuids(count: int, seed: int, stream: int) -> list[str]:
    raw = np.random.default_rng([seed, stream]).bytes(16 * count)
    return [str(uuid.UUID(bytes=raw[16 * i : 16 * (i + 1)])) for i in range(count)]


def scalar_features(rows: int, seed: int) -> np.ndarray:
    """(5, rows) float32, rows in file (time) order."""
    return np.random.default_rng([seed, 1]).standard_normal((len(NUMBERS), rows), np.float32)


def key_count(feature_rows: int) -> int:
    return feature_rows // SNAPSHOTS


class Data:
    """The generated files of one parameter set, and the oracle's answers for them."""

    def __init__(self, directory: Path, feature_rows: int, entity_rows: int, seed: int) -> None:
        self.feature_rows = feature_rows
        self.entity_rows = entity_rows
        self.seed = seed
        stem = f"v{DATA_VERSION}_s{seed}_{feature_rows}"
        self.features = directory / f"features_{stem}.parquet"
        self.entities = directory / f"entities_{stem}_{entity_rows}.parquet"
        self.expected_path = directory / f"expected_{stem}_{entity_rows}.json"

    @property
    def keys(self) -> int:
        return key_count(self.feature_rows)

    def expected(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.expected_path.read_text())
        return result

    def lookup_keys(self, lookups: int) -> list[dict[str, str]]:
        """The online section's keys, one per lookup, the same for every side."""
        picks = np.random.default_rng([self.seed, 3]).integers(0, self.keys, lookups)
        return self.key_dicts(picks)

    def warmup_keys(self, calls: int) -> list[dict[str, str]]:
        """Keys of the warm-up calls: every materialized key once in a seeded order, then
        again, until `calls` (a serving process's caches hold what it serves)."""
        order = np.random.default_rng([self.seed, 4]).permutation(self.keys)
        return self.key_dicts(np.resize(order, calls))

    def key_dicts(self, picks: np.ndarray) -> list[dict[str, str]]:
        uuids = make_uuids(self.keys // len(NODES), self.seed, 2)
        return [{"uuid": uuids[k // 2], "nodeId": NODES[k % 2]} for k in picks.tolist()]


def ensure_data(data: Data, lookups: int) -> None:
    data.features.parent.mkdir(parents=True, exist_ok=True)
    times = snapshot_times(data.keys, data.seed)
    order = np.argsort(times.ravel(), kind="stable")
    scalars = scalar_features(data.feature_rows, data.seed)
    if not data.features.exists():
        started = time.perf_counter()
        write_features(data, times, order, scalars)
        print(
            f"wrote {data.features} ({data.features.stat().st_size / 1e9:.2f} GB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    lists = ListOracle(data, order)
    # An expectation written before the list figures were checked is written again.
    if not (
        data.entities.exists()
        and data.expected_path.exists()
        and f"{LIST_CHECKED}_values" in data.expected()
    ):
        write_entities(data, times, order, scalars, lookups, lists)
        print(f"wrote {data.entities}")
    expected = data.expected()
    if expected.get("lookups") != lookups:
        expected.update(online_expectation(data, times, order, scalars, lookups, lists))
        data.expected_path.write_text(json.dumps(expected))


class ListOracle:
    """Each feature row's number of LIST_CHECKED values and their sum, read back from the
    written file (one column, a row group at a time) on first use, indexed key-major like
    the oracle's other arrays."""

    def __init__(self, data: Data, order: np.ndarray) -> None:
        self.data = data
        self.order = order
        self._figures: tuple[np.ndarray, np.ndarray] | None = None

    def figures(self) -> tuple[np.ndarray, np.ndarray]:
        if self._figures is None:
            lengths = np.empty(self.data.feature_rows, np.int64)
            sums = np.empty(self.data.feature_rows, np.float64)
            file = pq.ParquetFile(self.data.features)
            row = 0
            for g in range(file.num_row_groups):
                column = file.read_row_group(g, columns=[LIST_CHECKED]).column(0)
                for chunk in column.chunks:
                    n = len(chunk)
                    parents = pc.list_parent_indices(chunk).to_numpy()
                    values = pc.list_flatten(chunk).to_numpy().astype(np.float64)
                    # File row i is key-major row order[i] (see write_entities).
                    at = self.order[row : row + n]
                    lengths[at] = pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
                    sums[at] = np.bincount(parents, weights=values, minlength=n)
                    row += n
            self._figures = lengths, sums
        return self._figures


def write_features(data: Data, times: np.ndarray, order: np.ndarray, scalars: np.ndarray) -> None:
    rows = data.feature_rows
    uuids = pa.array(make_uuids(data.keys // len(NODES), data.seed, 2))
    nodes = pa.array(NODES)
    key = order // SNAPSHOTS
    extend_pool = pa.array(
        [json.dumps({"fw": f"2.{i % 8}.{i // 8}", "gain": 1 + i % 4}) for i in range(32)]
    )
    extend_pick = np.random.default_rng([data.seed, 5]).integers(0, len(extend_pool), rows)
    schema = pa.schema(
        [
            ("uuid", pa.string()),
            ("nodeId", pa.string()),
            ("time", pa.timestamp("ms", tz="UTC")),
            *[(name, pa.float32()) for name in NUMBERS],
            *[(name, pa.list_(pa.float32())) for name in ARRAYS],
            ("extend", pa.string()),
        ]
    )
    group = -(-rows // ROW_GROUPS)
    partial = data.features.with_suffix(".partial")
    # Random floats do not compress; dictionary-encoding them only bloats small files, so
    # only the strings are, and the file's size grows with its rows (1.09 GB at 1M).
    dictionary = ["uuid", "nodeId", "extend"]
    with pq.ParquetWriter(
        partial, schema, compression="snappy", use_dictionary=dictionary
    ) as writer:
        for g, lo in enumerate(range(0, rows, group)):
            hi = min(rows, lo + group)
            # One generator per row group: the lists of a 10M-row file never sit in memory
            # at once, and each group is the same whatever the group size of a rerun.
            rng = np.random.default_rng([data.seed, 6, g])
            columns: list[pa.Array] = [
                uuids.take(pa.array(key[lo:hi] // len(NODES))),
                nodes.take(pa.array(key[lo:hi] % len(NODES))),
                pa.array(times.ravel()[order[lo:hi]], pa.timestamp("ms", tz="UTC")),
                *[pa.array(scalars[i, lo:hi]) for i in range(len(NUMBERS))],
            ]
            for i in range(len(ARRAYS)):
                lengths = rng.integers(8, 65, hi - lo)
                offsets = np.zeros(hi - lo + 1, np.int32)
                np.cumsum(lengths, out=offsets[1:])
                values = rng.random(int(offsets[-1]), np.float32) * (10.0 ** (i % 3))
                columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))
            columns.append(extend_pool.take(pa.array(extend_pick[lo:hi])))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=group)
    partial.rename(data.features)


def write_entities(
    data: Data,
    times: np.ndarray,
    order: np.ndarray,
    scalars: np.ndarray,
    lookups: int,
    lists: ListOracle,
) -> None:
    n = data.entity_rows
    rng = np.random.default_rng([data.seed, 4])
    counts = {
        name: round(n * share)
        for name, share in [
            ("on", 0.05),
            ("at_ttl", 0.01),
            ("past_ttl", 0.01),
            ("unknown_uuid", 0.02),
            ("unknown_node", 0.02),
        ]
    }
    counts["uniform"] = n - sum(counts.values())
    first, last = times[:, 0], times[:, -1]
    parts_key, parts_time, parts_uuid_override = [], [], []
    for name, count in counts.items():
        k = rng.integers(0, data.keys, count)
        if name == "uniform":
            lo, hi = first[k] - 15 * DAY_MS, last[k] + 45 * DAY_MS
            t = lo + (rng.random(count) * (hi - lo + 1)).astype(np.int64)
        elif name == "on":
            t = times[k, rng.integers(0, SNAPSHOTS, count)]
        elif name == "at_ttl":
            t = last[k] + TTL_MS
        elif name == "past_ttl":
            t = last[k] + TTL_MS + 1
        else:
            t = first[k] + (rng.random(count) * (last[k] - first[k])).astype(np.int64)
        parts_key.append(k)
        parts_time.append(t)
        parts_uuid_override.append(np.full(count, name == "unknown_uuid"))
        if name == "unknown_node":
            parts_key[-1] = -1 - k  # known uuid, no such nodeId: remembered as negative
    key = np.concatenate(parts_key)
    event = np.concatenate(parts_time)
    unknown = np.concatenate(parts_uuid_override)
    shuffle = rng.permutation(n)
    key, event, unknown = key[shuffle], event[shuffle], unknown[shuffle]

    uuids = make_uuids(data.keys // len(NODES), data.seed, 2)
    strangers = make_uuids(int(unknown.sum()), data.seed, 7)
    assert not set(strangers) & set(uuids)
    real = np.where(key >= 0, key, -1 - key)
    uuid_col = np.array(uuids, dtype=object)[real // len(NODES)]
    uuid_col[unknown] = strangers
    node_col = np.array(NODES, dtype=object)[real % len(NODES)]
    node_col[key < 0] = MISSING_NODE
    table = pa.table(
        {
            "uuid": pa.array(uuid_col, pa.string()),
            "nodeId": pa.array(node_col, pa.string()),
            "event_timestamp": pa.array(event, pa.timestamp("ms", tz="UTC")),
            "label": rng.integers(0, 2, n),
        }
    )
    pq.write_table(table, data.entities)

    # The oracle: each known key's rows, key-major, are sorted by (key, time), so the latest
    # row at or before t is one binary search in (key << 36 | t - base) (t - base < 2^36).
    base = T0_MS - 60 * DAY_MS
    keys_km = np.repeat(np.arange(data.keys, dtype=np.int64), SNAPSHOTS)
    times_km = times.ravel()
    mean_lf = np.empty(data.feature_rows, np.float32)
    mean_lf[order] = scalars[0]
    known = (key >= 0) & ~unknown
    k, t = key[known], event[known]
    at = np.searchsorted((keys_km << 36) | (times_km - base), (k << 36) | (t - base), "right") - 1
    hit = (at >= 0) & (keys_km[at] == k) & (times_km[at] >= t - TTL_MS)
    lengths, sums = lists.figures()
    expected = {
        "rows": n,
        "meanLf_non_null": int(hit.sum()),
        "meanLf_sum": float(mean_lf[at[hit]].astype(np.float64).sum()),
        f"{LIST_CHECKED}_values": int(lengths[at[hit]].sum()),
        f"{LIST_CHECKED}_sum": float(sums[at[hit]].sum()),
        "mix": counts,
    }
    expected.update(online_expectation(data, times, order, scalars, lookups, lists))
    data.expected_path.write_text(json.dumps(expected))


def online_expectation(
    data: Data,
    times: np.ndarray,
    order: np.ndarray,
    scalars: np.ndarray,
    lookups: int,
    lists: ListOracle,
) -> dict[str, Any]:
    """Each looked-up key's latest snapshot, since materialization covers every snapshot."""
    mean_lf = np.empty(data.feature_rows, np.float32)
    mean_lf[order] = scalars[0]
    picks = np.random.default_rng([data.seed, 3]).integers(0, data.keys, lookups)
    latest = picks * SNAPSHOTS + SNAPSHOTS - 1
    lengths, sums = lists.figures()
    return {
        "lookups": lookups,
        "online_meanLf_sum": float(mean_lf[latest].astype(np.float64).sum()),
        f"online_{LIST_CHECKED}_values": int(lengths[latest].sum()),
        f"online_{LIST_CHECKED}_sum": float(sums[latest].sum()),
    }


def materialize_window() -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(T0_MS / 1000 - 86_400, timezone.utc)
    return start, start + timedelta(days=125)


# ---------------------------------------------------------------------------------------------
# The sides, each run in a child process


def feast_store(data: Data, offline: str, repo: Path) -> Any:
    os.environ.setdefault("FEAST_USAGE", "False")  # no usage telemetry from the timed process
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"offline_store:\n  type: {offline}\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    device = Entity(name="device", join_keys=["uuid"], value_type=ValueType.STRING)
    node = Entity(name="node", join_keys=["nodeId"], value_type=ValueType.STRING)
    view = FeatureView(
        name="snapshots",
        entities=[device, node],
        ttl=timedelta(days=30),
        schema=[
            Field(name="uuid", dtype=String),
            Field(name="nodeId", dtype=String),
            *[Field(name=n, dtype=Float32) for n in NUMBERS],
            *[Field(name=n, dtype=Array(Float32)) for n in ARRAYS],
        ],
        source=FileSource(path=str(data.features), timestamp_field="time"),
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([device, node, view])
    return store


def trainstore_workspace(data: Data, location: Path) -> Any:
    import trainstore as ts

    ws = ts.Workspace.open(location)
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    view = ts.FeatureView(
        "snapshots",
        entities=[device],
        source=str(data.features),
        ttl=timedelta(days=30),
        timestamp_field="time",
        schema=[
            *[ts.Field(n, ts.Float32) for n in NUMBERS],
            *[ts.Field(n, ts.Array(ts.Float32)) for n in ARRAYS],
        ],
    )
    ws.features.apply([device, view])
    return ws


def duckdb_retrieval(data: Data, entities: pa.Table) -> Callable[[], pa.Table]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # so INTERVAL 30 DAY is 30 x 24 h
    con.register("entity", entities)
    # ASOF picks the latest feature time at or before the entity time per key (Feast's
    # winner; the data has no ties within a key); values older than the TTL become null.
    fresh = 'f."time" >= e.event_timestamp - INTERVAL 30 DAY'
    values = ",\n  ".join(f'CASE WHEN {fresh} THEN f."{n}" END AS "{n}"' for n in FEATURES)
    path = str(data.features).replace("'", "''")
    sql = f"""
SELECT e.*,
  {values}
FROM entity e ASOF LEFT JOIN read_parquet('{path}') f
  ON e."uuid" = f."uuid" AND e."nodeId" = f."nodeId" AND e.event_timestamp >= f."time"
"""

    def run() -> pa.Table:
        return con.sql(sql).to_arrow_table()

    return run


def duckdb_keys_retrieval(data: Data, entities: pa.Table) -> Callable[[], pa.Table]:
    """DuckDB as its best users write it: the ASOF join carries only keys and times (the list
    columns would ride through it otherwise), then the winners' values come from a join back
    on keys and time (the data has no ties within a key)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # so INTERVAL 30 DAY is 30 x 24 h
    con.register("entity", entities)
    path = str(data.features).replace("'", "''")
    fresh = "w.won >= w.event_timestamp - INTERVAL 30 DAY"
    values = ",\n  ".join(f'CASE WHEN {fresh} THEN v."{n}" END AS "{n}"' for n in FEATURES)
    sql = f"""
WITH w AS (
  SELECT e.*, f."time" AS won
  FROM entity e ASOF LEFT JOIN
    (SELECT "uuid", "nodeId", "time" FROM read_parquet('{path}')) f
    ON e."uuid" = f."uuid" AND e."nodeId" = f."nodeId" AND e.event_timestamp >= f."time"
)
SELECT w.* EXCLUDE (won),
  {values}
FROM w LEFT JOIN read_parquet('{path}') v
  ON v."uuid" = w."uuid" AND v."nodeId" = w."nodeId" AND v."time" = w.won
"""

    def run() -> pa.Table:
        return con.sql(sql).to_arrow_table()

    return run


def historical_side(peer: str, data: Data, work: Path) -> Callable[[], pa.Table]:
    entities = pq.read_table(data.entities)
    if peer in ("feast-duckdb", "feast-dask"):
        store = feast_store(data, "duckdb" if peer == "feast-duckdb" else "dask", work)
        frame = entities.to_pandas()
        return lambda: store.get_historical_features(entity_df=frame, features=REFS).to_arrow()
    if peer == "duckdb":
        return duckdb_retrieval(data, entities)
    if peer == "duckdb-keys":
        return duckdb_keys_retrieval(data, entities)
    # For trainstore-ingested, the workspace already holds the ingested store (see side()).
    ws = trainstore_workspace(data, work / "ws")
    return lambda: ws.features.get_historical_features(entities, REFS)


def online_side(peer: str, data: Data, work: Path) -> Callable[[dict[str, str]], pa.Table]:
    start, end = materialize_window()
    if peer == "feast-online":
        # The DuckDB offline store only reads the latest row per key for materialization.
        store = feast_store(data, "duckdb", work)
        store.materialize(start_date=start, end_date=end)
        return lambda key: store.get_online_features(features=REFS, entity_rows=[key]).to_arrow()
    ws = trainstore_workspace(data, work / "ws")
    ws.features.materialize(start, end)
    # Feast's online reads ignore the TTL; the data is from 2025, so ours must too to match.
    return lambda key: ws.features.get_online_features(REFS, [key], ignore_ttl=True)


def rust_online(args: argparse.Namespace, data: Data, work: Path) -> dict[str, Any]:
    """Materializes from Python, then times the lookups in the Rust bench binary."""
    ws = trainstore_workspace(data, work / "ws")
    ws.features.materialize(*materialize_window())
    del ws  # the embedded store serves one process at a time: let go of it
    gc.collect()
    keys = work / "keys.json"
    warmup = data.warmup_keys(args.warmup)
    keys.write_text(json.dumps(warmup + data.lookup_keys(args.lookups)))
    command = [
        "cargo", "bench", "--quiet", "--bench", "online_lookups", "--",
        "--workspace", str(work / "ws"), "--keys", str(keys),
        "--features", ",".join(REFS), "--warmup", str(args.warmup),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    # The bench names the first feature's figures generically; the first is meanLf.
    result["meanLf_non_null"] = result.pop("first_feature_non_null")
    result["meanLf_sum"] = result.pop("first_feature_sum")
    return result


def summary(table: pa.Table) -> dict[str, Any]:
    """The figures every side's answer is compared on: rows, and for each feature its non-null
    count and the sum of its values (lists: flattened, with the number of values) and of their
    magnitudes (which sets the tolerance)."""
    out: dict[str, Any] = {
        "rows": table.num_rows,
        "missing_columns": [n for n in FEATURES if n not in table.column_names],
    }
    for name in FEATURES:
        if name in table.column_names:
            out.update(column_figures(name, table.column(name)))
    return out


def column_figures(name: str, column: pa.ChunkedArray) -> dict[str, Any]:
    out: dict[str, Any] = {f"{name}_non_null": len(column) - column.null_count}
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = pc.list_flatten(column)
        out[f"{name}_values"] = len(column) - column.null_count
    total = magnitude = 0.0
    # A slice at a time: a 10M x 1M answer's lists as float64 would be 2 GB, in the peak.
    for chunk in column.chunks:
        for lo in range(0, len(chunk), 1 << 20):
            part = chunk.slice(lo, 1 << 20).cast(pa.float64())
            total += pc.sum(part).as_py() or 0.0
            magnitude += pc.sum(pc.abs(part)).as_py() or 0.0
    out[f"{name}_sum"] = total
    out[f"{name}_abs_sum"] = magnitude
    return out


def lookup_figures(out: pa.Table) -> dict[str, Any]:
    """One online answer's meanLf and LIST_CHECKED figures."""
    value = out.column("meanLf")[0].as_py()
    values = out.column(LIST_CHECKED)[0].as_py() or []
    return {
        "meanLf_non_null": int(value is not None),
        "meanLf_sum": value or 0.0,
        f"{LIST_CHECKED}_values": len(values),
        f"{LIST_CHECKED}_sum": math.fsum(values),
    }


def child(args: argparse.Namespace, data: Data) -> dict[str, Any]:
    work = Path(args.work)
    started = time.perf_counter()
    if args.child == INGEST:
        ws = trainstore_workspace(data, work / "ws")
        applied = time.perf_counter()
        ingested = ws.features.ingest("snapshots")
        return {
            "setup_seconds": time.perf_counter() - applied,
            "rows": ingested.rows,
            "segments": ingested.segments,
        }
    if args.child == "trainstore-online-rust":
        return rust_online(args, data, work)
    if args.child in ONLINE:
        lookup = online_side(args.child, data, work)
        result: dict[str, Any] = {"setup_seconds": time.perf_counter() - started}
        keys = data.lookup_keys(args.lookups)
        for key in data.warmup_keys(args.warmup):
            lookup(key)
        latencies = []
        figures: dict[str, Any] = {}
        for key in keys:
            begin = time.perf_counter_ns()
            out = lookup(key)
            latencies.append(time.perf_counter_ns() - begin)
            for name, value in lookup_figures(out).items():
                figures[name] = figures.get(name, 0) + value
        micros = np.array(latencies) / 1000
        result.update(
            p50_us=float(np.percentile(micros, 50)),
            p99_us=float(np.percentile(micros, 99)),
            lookups=len(keys),
            **figures,
        )
        return result
    retrieve = historical_side(args.child, data, work)
    result = {"setup_seconds": time.perf_counter() - started, "seconds": []}
    for _ in range(args.child_repeat):
        begin = time.perf_counter()
        out = retrieve()
        result["seconds"].append(time.perf_counter() - begin)
        result.update(summary(out))
        # Dropped before the next call, so peak RSS is one answer's, not two.
        del out
        # After each call, so a side stopped by --timeout keeps the calls it finished.
        write_result(work, result)
    return result


def write_result(work: Path, result: dict[str, Any]) -> None:
    # The child's own peak so far, unless it reports another (the Rust bench binary's).
    result = {"peak_mb": own_peak_mb(), **result}
    partial = work / f"{RESULT}.partial"
    partial.write_text(json.dumps(result))
    partial.replace(work / RESULT)


def own_peak_mb() -> float:
    """This process's peak resident memory (VmHWM). Not wait4's ru_maxrss: Linux carries the
    forking parent's peak into the child across exec, so a parent that generated gigabytes of
    data would be counted in every side."""
    status = Path("/proc/self/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / 1e6


# ---------------------------------------------------------------------------------------------
# The parent: spawn, measure, compare, print


def side(
    args: argparse.Namespace, peer: str, repeat: int, warmup: int | None = None
) -> dict[str, Any]:
    # The work folder is made here, not in the child, so a killed child's files go too.
    warmup = args.warmup if warmup is None else warmup
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix=f"{peer}-") as work:
        if peer != "trainstore-ingested":
            return spawn(args, peer, repeat, work, warmup)
        # Ingested by a process of its own: a one-off, whose peak is not the reads'.
        ingest = spawn(args, INGEST, 1, work, warmup)
        if "error" in ingest:
            return ingest
        return {**spawn(args, peer, repeat, work, warmup), "ingest": ingest}


def spawn(
    args: argparse.Namespace, peer: str, repeat: int, work: str, warmup: int
) -> dict[str, Any]:
    """Runs one side in a fresh process, which reports its own peak RSS (see own_peak_mb);
    wait4's figure stands in only for a side stopped before it reported."""
    log = Path(args.data_dir) / f"{peer}.log"
    result_file = Path(work) / RESULT
    result_file.unlink(missing_ok=True)
    with log.open("w") as out:
        command = [
            sys.executable, os.path.abspath(__file__), "--child", peer, "--work", work,
            "--data-dir", args.data_dir, "--feature-rows", str(args.feature_rows),
            "--entity-rows", str(args.entity_rows), "--seed", str(args.seed),
            "--child-repeat", str(repeat), "--lookups", str(args.lookups),
            "--warmup", str(warmup),
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        stopped = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > args.timeout:
                stopped = f"timed out after {args.timeout:.0f} s"
            elif resident_gb(proc.pid) > args.memory_limit:
                stopped = f"stopped at {args.memory_limit:.1f} GB resident (--memory-limit)"
            if stopped:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        outcome: dict[str, Any] = {"peak_mb": usage.ru_maxrss * 1024 / 1e6}  # from KiB
        if stopped and result_file.exists():
            outcome.update(json.loads(result_file.read_text()), stopped=stopped)
        elif stopped:
            outcome["error"] = stopped
        elif proc.returncode != 0 or not result_file.exists():
            out.flush()
            tail = log.read_text().strip().splitlines()[-15:]
            outcome["error"] = f"exit {proc.returncode}; see {log}:\n    " + "\n    ".join(tail)
        else:
            outcome.update(json.loads(result_file.read_text()))
    return outcome


def resident_gb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) * 1024 / 1e9


def disagreements(name: str, got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """`got` against the oracle's figures in `want` (those it computed: rows, meanLf's non-null
    count and sum, LIST_CHECKED's number of values and sum)."""
    problems = []
    if got.get("missing_columns"):
        problems.append(f"{name}: missing columns {got['missing_columns']}")
    checked = [
        "rows",
        "meanLf_non_null",
        "meanLf_sum",
        f"{LIST_CHECKED}_values",
        f"{LIST_CHECKED}_sum",
    ]
    # The Rust online side reports meanLf only.
    oracle = {k: want[k] for k in checked if k in want and (k in got or k.startswith("meanLf"))}
    return problems + bars.agree("oracle", name, got, "the numpy oracle", oracle)


def cross_check(name: str, got: dict[str, Any], reference: str, want: dict[str, Any]) -> list[str]:
    """Every figure of `summary` (each feature's non-null count, values and sum) against
    another side's, float sums within 1e-9 of their values' magnitudes."""
    figures = {
        k: v
        for k, v in want.items()
        if (k == "rows" or k.split("_")[0] in FEATURES) and not k.endswith("_abs_sum")
    }
    tolerance = bars.Tolerance(
        per_key={
            k.removesuffix("_abs_sum") + "_sum": 1e-9 * v
            for k, v in want.items()
            if k.endswith("_abs_sum")
        }
    )
    return bars.agree("answers", name, got, reference, figures, tolerance)


def ratio(theirs: float, ours: float, more: str, less: str) -> str:
    if ours <= 0 or theirs <= 0:
        return ""
    return f"{theirs / ours:.1f}x {more}" if theirs >= ours else f"{ours / theirs:.1f}x {less}"


def short(n: int) -> str:
    """1_000_000 -> 1M, 100_000 -> 100k."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


def historical_section(args: argparse.Namespace, data: Data, peers: list[str]) -> list[str]:
    expected = data.expected()
    size_gb = data.features.stat().st_size / 1e9
    print(
        f"\nPoint-in-time retrieval of {len(FEATURES)} features: {data.feature_rows:,} feature "
        f"rows ({size_gb:.2f} GB Parquet, {ROW_GROUPS} row groups), {data.entity_rows:,} entity "
        f"rows; oracle: {expected['meanLf_non_null']:,} rows with values"
    )
    results, problems = {}, []
    for peer in peers:
        repeat = args.feast_repeat if peer.startswith("feast") else args.repeat
        results[peer] = got = side(args, peer, repeat)
        if "error" in got:
            print(f"  {HISTORICAL[peer]}: {got['error']}")
            problems.append(f"{peer}: {got['error'].splitlines()[0]}")
            continue
        times = ", ".join(f"{s:.3f}" for s in got["seconds"])
        stopped = f" ({got['stopped']}; best of those done)" if "stopped" in got else ""
        print(f"  {HISTORICAL[peer]}: {times} s, peak {got['peak_mb']:,.0f} MB{stopped}")
        if "ingest" in got:
            ingest = got["ingest"]
            print(
                f"    after ingesting {ingest['rows']:,} rows (segments: {ingest['segments']}) "
                f"in {ingest['setup_seconds']:.1f} s, peak {ingest['peak_mb']:,.0f} MB, "
                "in a process of its own"
            )
        problems += disagreements(peer, got, expected)
    # Every side's whole answer against the first side's (trainstore's, in the usual order).
    answered = [p for p, got in results.items() if "error" not in got]
    for peer in answered[1:]:
        problems += cross_check(peer, results[peer], answered[0], results[answered[0]])
    # Every peer reads the Parquet file, so they are compared with trainstore doing the same.
    ours = results.get("trainstore", {})
    print(f"\n{'side':<{LABEL_WIDTH}}{'seconds':>10}{'peak MB':>10}{'setup s':>9}  trainstore is")
    for peer, got in results.items():
        if "error" in got:
            error = got["error"].splitlines()[0]
            label = f"{HISTORICAL[peer]:<{LABEL_WIDTH}}"
            print(f"{label}{'n/a':>10}{got['peak_mb']:>10,.0f}{'':>9}  {error}")
            continue
        best = min(got["seconds"])
        note = ""
        if not peer.startswith("trainstore") and "seconds" in ours:
            faster = ratio(best, min(ours["seconds"]), "faster", "slower")
            leaner = ratio(got["peak_mb"], ours["peak_mb"], "less memory", "more memory")
            note = f"{faster}, {leaner}"
        label = f"{HISTORICAL[peer]} (best of {len(got['seconds'])})"
        setup = got["setup_seconds"]
        print(f"{label:<{LABEL_WIDTH}}{best:>10.3f}{got['peak_mb']:>10,.0f}{setup:>9.1f}  {note}")
    historical_bars(args, data, {p: results[p] for p in answered})
    return problems


def historical_bars(args: argparse.Namespace, data: Data, results: dict[str, Any]) -> None:
    """The bars of the point-in-time build: cold (from the Parquet file) >= 1.25x DuckDB's
    better SQL; warm (from the ingested store) >= 50x Feast and >= 10x DuckDB (20x at 10M x
    1M); trainstore's rows identical to Feast's. Each judged on the best of --repeat calls, a
    fresh process's first call beside."""
    scale = f"{short(data.feature_rows)} \u00d7 {short(data.entity_rows)}"
    duckdbs = [p for p in ("duckdb-keys", "duckdb") if p in results]
    duck = min(duckdbs, key=lambda p: min(results[p]["seconds"])) if duckdbs else None
    feasts = [p for p in ("feast-duckdb", "feast-dask") if p in results]
    feast = min(feasts, key=lambda p: min(results[p]["seconds"])) if feasts else None

    def peak_note(ours: str, peer: str) -> str:
        return (
            f"peak MB: {ours} {results[ours]['peak_mb']:,.0f}, "
            f"{peer} {results[peer]['peak_mb']:,.0f}"
        )

    def compare(ours: str, peer: str, comparison: str, threshold: float, named: str) -> None:
        mine, theirs = results[ours]["seconds"], results[peer]["seconds"]
        bars.faster(
            f"{comparison} ({scale})",
            peer,
            min(mine),
            min(theirs),
            threshold,
            note=peak_note(ours, peer),
            beside=("first call", mine[0], theirs[0]),
            named=named,
        )

    cold, warm = "point-in-time build, cold", "point-in-time build, warm"
    if "trainstore" in results and duck:
        compare("trainstore", duck, cold, 1.25, "DuckDB")
    if "trainstore-ingested" in results:
        if feast:
            compare("trainstore-ingested", feast, warm, 50.0, "Feast")
        if duck:
            big = data.feature_rows >= SCALES["10m"][0]
            compare("trainstore-ingested", duck, warm, 20.0 if big else 10.0, "DuckDB")
    if feast:
        sides = [p for p in ("trainstore", "trainstore-ingested") if p in results]
        differ = [p for p in sides if cross_check(p, results[p], feast, results[feast])]
        figures = sum(1 for k in results[feast] if k == "rows" or k.split("_")[0] in FEATURES)
        bars.matches(
            f"point-in-time build ({scale})",
            "Feast",
            bool(sides) and not differ,
            note=f"{', '.join(sides)} against {feast}: rows and each feature's non-null count, "
            f"values and sum ({figures} figures)" + (f"; differ: {differ}" if differ else ""),
        )


def online_section(args: argparse.Namespace, data: Data, peers: list[str]) -> list[str]:
    """Each side once per pass: cold (a fresh serving process, no warm-up: first touches
    included) and warm (after --warmup calls). The bars are judged cold, warm beside."""
    expected = data.expected()
    want = {
        "rows": args.lookups,
        "meanLf_non_null": args.lookups,
        "meanLf_sum": expected["online_meanLf_sum"],
        f"{LIST_CHECKED}_values": expected[f"online_{LIST_CHECKED}_values"],
        f"{LIST_CHECKED}_sum": expected[f"online_{LIST_CHECKED}_sum"],
    }
    passes = {"cold": 0, "warm": args.warmup}
    chosen = [p for p in args.online_passes.split(",") if p in passes]
    if args.warmup == 0 and "cold" in chosen:
        chosen = ["cold"]  # a warm pass without warm-up would be the cold one again
    problems: list[str] = []
    p99: dict[tuple[str, str], float] = {}
    for name in chosen:
        warmup = passes[name]
        print(
            f"\nOnline lookups, one entity per call, {name}: {args.lookups:,} calls over "
            f"{data.keys:,} materialized keys ({data.feature_rows:,} feature rows), "
            f"after {warmup} warm-up calls"
        )
        print(f"{'side':<{LABEL_WIDTH}}{'p50 us':>10}{'p99 us':>10}{'peak MB':>10}{'setup s':>9}")
        feast_p99 = 0.0
        for peer in peers:
            got = side(args, peer, 1, warmup)
            if "error" in got:
                print(f"{ONLINE[peer]:<{LABEL_WIDTH}}  {got['error']}")
                problems.append(f"{peer} ({name}): {got['error'].splitlines()[0]}")
                continue
            got["rows"] = got["lookups"]
            problems += disagreements(f"{peer} ({name})", got, want)
            p99[(peer, name)] = got["p99_us"]
            if peer == "feast-online":
                feast_p99 = got["p99_us"]
            note = ratio(feast_p99, got["p99_us"], "faster", "slower") if feast_p99 else ""
            print(
                f"{ONLINE[peer]:<{LABEL_WIDTH}}{got['p50_us']:>10,.1f}{got['p99_us']:>10,.1f}"
                f"{got['peak_mb']:>10,.0f}{got['setup_seconds']:>9.1f}"
                + (f"  p99 {note} than Feast" if peer != "feast-online" and note else "")
            )
    judged = "cold" if "cold" in chosen else "warm"
    for peer, where, threshold in (
        ("trainstore-online-rust", "from Rust", 100.0),
        ("trainstore-online", "from Python", 20.0),
    ):
        if (peer, judged) not in p99 or ("feast-online", judged) not in p99:
            continue
        other = "warm" if judged == "cold" else ""
        beside = None
        if other and (peer, other) in p99 and ("feast-online", other) in p99:
            beside = (
                f"warm, after {args.warmup:,} calls",
                p99[(peer, other)],
                p99[("feast-online", other)],
            )
        bars.faster(
            f"online lookup p99, one entity, {where}, {judged}",
            "Feast (SQLite)",
            p99[(peer, judged)],
            p99[("feast-online", judged)],
            threshold,
            unit="µs",
            note=f"{args.lookups:,} calls over {data.keys:,} keys, 12 features",
            beside=beside,
        )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=SCALES, default="1m", help="feature x entity rows")
    parser.add_argument("--feature-rows", type=int, help="overrides --scale; a multiple of 200")
    parser.add_argument("--entity-rows", type=int, help="overrides --scale")
    parser.add_argument("--peers", help=f"comma-separated, of {', '.join(HISTORICAL)}")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--feast-repeat", type=int, help="repeats for Feast (default --repeat)")
    parser.add_argument("--skip-feast-default", action="store_true", help="no dask store")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per side")
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=0.75 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
        help="GB resident at which a side is stopped (default: 3/4 of RAM)",
    )
    parser.add_argument("--online", action="store_true", help="also time online lookups")
    parser.add_argument("--online-only", action="store_true")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument(
        "--warmup",
        type=int,
        help="the warm online pass's warm-up calls (default: one per materialized key; 0 "
        "leaves only the cold pass)",
    )
    parser.add_argument(
        "--online-passes",
        default="cold,warm",
        help="online passes, of cold (no warm-up, first touches included: the bars) and warm",
    )
    parser.add_argument(
        "--no-rust",
        action="store_true",
        help="leave out the Rust online side (it runs `cargo bench`)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data-dir",
        default=os.path.join(tempfile.gettempdir(), "trainstore_feature_join"),
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    default_rows, default_entities = SCALES[args.scale]
    args.feature_rows = args.feature_rows or default_rows
    args.entity_rows = args.entity_rows or default_entities
    args.data_dir = os.path.abspath(args.data_dir)
    if args.feature_rows % (SNAPSHOTS * len(NODES)):
        parser.error("--feature-rows must be a multiple of 200 (uuids x 2 nodeIds x 100)")
    data = Data(Path(args.data_dir), args.feature_rows, args.entity_rows, args.seed)
    if args.warmup is None:
        args.warmup = data.keys

    if args.child:
        write_result(Path(args.work), child(args, data))
        return

    feast_allowed = args.feature_rows <= SCALES["1m"][0]
    if args.peers:
        peers = args.peers.split(",")
        unknown = [p for p in peers if p not in HISTORICAL]
        if unknown:
            parser.error(f"unknown peers {unknown}; known: {', '.join(HISTORICAL)}")
        if not feast_allowed and any(p.startswith("feast") for p in peers):
            parser.error("Feast is not run above 1M feature rows")
    else:
        peers = [p for p in HISTORICAL if feast_allowed or not p.startswith("feast")]
    if args.skip_feast_default:
        peers = [p for p in peers if p != "feast-dask"]
    args.feast_repeat = args.feast_repeat or args.repeat

    ensure_data(data, args.lookups)
    problems = [] if args.online_only else historical_section(args, data, peers)
    if args.online or args.online_only:
        ours = any(p.startswith("trainstore") for p in peers)
        online = [
            name
            for name, wanted in [
                ("feast-online", any(p.startswith("feast") for p in peers)),
                ("trainstore-online", ours),
                ("trainstore-online-rust", ours and not args.no_rust),
            ]
            if wanted
        ]
        problems += online_section(args, data, online)
    if not problems:
        print(
            "\nagreement: every side matches the oracle (rows, meanLf's non-null count and sum, "
            f"{LIST_CHECKED}'s values and sum) and every other side (each feature's non-null "
            "count, values and sum)"
        )
    bars.finish(problems)


if __name__ == "__main__":
    main()
