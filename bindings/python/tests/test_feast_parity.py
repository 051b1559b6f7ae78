"""Parity with Feast itself: the same generated feature rows and entity rows go through real
Feast 0.67 (local provider, DuckDB offline store, SQLite online store) and through trainstore,
and the answers must be identical. The rules are in docs/point-in-time.md; where it says we
deliberately differ (TTL on online reads), the Feast-compatible option is used."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import feast
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import types as feast_types

import trainstore as ts

pytestmark = pytest.mark.filterwarnings(
    # ibis 12 calls a method that duckdb 2 deprecates, inside Feast's retrieval.
    "ignore:fetch_arrow_table\\(\\) is deprecated:DeprecationWarning",
)

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)
DEVICES = [("u1", "1"), ("u1", "2"), ("u2", "1"), ("u3", "7")]
ROWS_PER_DEVICE = 20
BASIC_TTL = timedelta(hours=1)
SPECTRA_TTL = timedelta(minutes=90)
# Gaps between a device's consecutive rows, some within both TTLs and some beyond: an entity row
# at ts + ttl then still sees the row at ts, and one at ts + ttl + 1 ms sees nothing.
GAPS = [timedelta(minutes=m) for m in (5, 25, 70, 100, 240)]
# Views interleaved, so that the grouping of feature columns by view is compared too.
FEATURES = ["basic:meanLf", "spectra:peakPowers", "basic:meanHf", "spectra:peakFreqs"]
ONLINE_COLUMNS = {
    False: ["uuid", "nodeId", "meanLf", "meanHf", "peakPowers", "peakFreqs"],
    True: [
        "uuid",
        "nodeId",
        "basic__meanLf",
        "basic__meanHf",
        "spectra__peakPowers",
        "spectra__peakFreqs",
    ],
}

BASIC_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("nodeId", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("meanLf", pa.float64()),
        ("meanHf", pa.float64()),
    ]
)
# Feast's Array(Float32) is a Parquet list of float32: DuckDB reads it as FLOAT[].
SPECTRA_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("nodeId", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("peakPowers", pa.list_(pa.float32())),
        ("peakFreqs", pa.list_(pa.float32())),
    ]
)
ENTITY_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("nodeId", pa.string()),
        ("event_timestamp", pa.timestamp("ms", tz="UTC")),
        ("label", pa.int64()),
        ("split", pa.string()),
    ]
)

FEAST_REPO_CONFIG = """\
project: parity
registry: registry.db
provider: local
online_store:
  type: sqlite
  path: online.db
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""


T = TypeVar("T")


def maybe_null(rng: random.Random, value: T) -> T | None:
    return None if rng.random() < 0.1 else value


def spectrum(rng: random.Random) -> list[float] | None:
    """Null, empty or a few values: Feast keeps null and empty lists apart (rule 10.2 of
    docs/point-in-time.md)."""
    return maybe_null(rng, [round(rng.uniform(0, 50), 3) for _ in range(rng.randrange(4))])


def feature_rows(rng: random.Random, view: str) -> list[dict[str, Any]]:
    rows = []
    for uuid, node in DEVICES:
        at = T0 + rng.randrange(3_600_000) * MS
        for _ in range(ROWS_PER_DEVICE):
            values: dict[str, Any]
            if view == "basic":
                # A null value is still the chosen row's value (rule 4.4 of
                # docs/point-in-time.md).
                values = {
                    "meanLf": maybe_null(rng, rng.uniform(0, 100)),
                    "meanHf": maybe_null(rng, rng.uniform(0, 100)),
                }
            else:
                values = {"peakPowers": spectrum(rng), "peakFreqs": spectrum(rng)}
            rows.append({"uuid": uuid, "nodeId": node, "ts": at, **values})
            at += rng.choice(GAPS) + rng.randrange(1, 1000) * MS
    rng.shuffle(rows)  # the answer must not depend on the source's row order
    return rows


def entity_rows(
    rng: random.Random, basic: list[dict[str, Any]], spectra: list[dict[str, Any]]
) -> pa.Table:
    keys: list[tuple[str, str, datetime]] = []
    for rows, ttl in ((basic, BASIC_TTL), (spectra, SPECTRA_TTL)):
        for r in rows:
            # On the row, on its TTL's end, just past it (rules 3.1, 3.2 of
            # docs/point-in-time.md).
            keys += [(r["uuid"], r["nodeId"], r["ts"] + d) for d in (timedelta(0), ttl, ttl + MS)]
    for uuid, node in DEVICES:
        first = min(r["ts"] for r in basic + spectra if (r["uuid"], r["nodeId"]) == (uuid, node))
        # A known key before its first row (rule 5.1 of docs/point-in-time.md).
        keys.append((uuid, node, first - MS))
    middle = T0 + timedelta(hours=10)
    # An unknown uuid, and pairs whose uuid and nodeId each exist but not together (rule 7.1 of
    # docs/point-in-time.md).
    keys += [("ghost", "1", middle), ("u2", "2", middle), ("u3", "1", middle)]
    rows = [
        {"uuid": u, "nodeId": n, "event_timestamp": t, "label": i, "split": rng.choice("AB")}
        for i, (u, n, t) in enumerate(keys)
    ]
    # Duplicates are all answered (rule 6.1 of docs/point-in-time.md): identical copies, and
    # equal keys and time with other labels.
    copies = rng.sample(rows, 10)
    rows += [dict(r) for r in copies[:5]]
    rows += [{**r, "label": r["label"] + 100_000, "split": "C"} for r in copies[5:]]
    rng.shuffle(rows)
    return pa.Table.from_pylist(rows, schema=ENTITY_SCHEMA)


class Stores:
    """One generated data set behind both Feast and trainstore."""

    def __init__(self, root: Path) -> None:
        rng = random.Random(20260301)
        self.basic = feature_rows(rng, "basic")
        self.spectra = feature_rows(rng, "spectra")
        self.entities = entity_rows(rng, self.basic, self.spectra)
        basic_path = root / "basic.parquet"
        spectra_path = root / "spectra.parquet"
        pq.write_table(pa.Table.from_pylist(self.basic, schema=BASIC_SCHEMA), basic_path)
        pq.write_table(pa.Table.from_pylist(self.spectra, schema=SPECTRA_SCHEMA), spectra_path)
        self.feast = feast_store(root / "feast", basic_path, spectra_path)
        self.ours = our_store(root / "ws", basic_path, spectra_path)


def feast_store(repo: Path, basic: Path, spectra: Path) -> feast.FeatureStore:
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(FEAST_REPO_CONFIG)
    # A Feast entity has one join key; a view over two entities joins on both keys, which is
    # what our one entity with two join keys means.
    uuid = feast.Entity(name="uuid", join_keys=["uuid"], value_type=feast.ValueType.STRING)
    node = feast.Entity(name="nodeId", join_keys=["nodeId"], value_type=feast.ValueType.STRING)
    keys = [
        feast.Field(name="uuid", dtype=feast_types.String),
        feast.Field(name="nodeId", dtype=feast_types.String),
    ]
    floats = feast_types.Array(feast_types.Float32)
    views = [
        feast.FeatureView(
            name="basic",
            entities=[uuid, node],
            ttl=BASIC_TTL,
            schema=[
                *keys,
                feast.Field(name="meanLf", dtype=feast_types.Float64),
                feast.Field(name="meanHf", dtype=feast_types.Float64),
            ],
            source=feast.FileSource(path=str(basic), timestamp_field="ts"),
        ),
        feast.FeatureView(
            name="spectra",
            entities=[uuid, node],
            ttl=SPECTRA_TTL,
            schema=[
                *keys,
                feast.Field(name="peakPowers", dtype=floats),
                feast.Field(name="peakFreqs", dtype=floats),
            ],
            source=feast.FileSource(path=str(spectra), timestamp_field="ts"),
        ),
    ]
    store = feast.FeatureStore(repo_path=str(repo))
    store.apply([uuid, node, *views])
    return store


def our_store(location: Path, basic: Path, spectra: Path) -> ts.FeatureStore:
    ws = ts.Workspace.open(location)
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    floats = ts.Array(ts.Float32)
    basic_view = ts.FeatureView(
        "basic",
        entities=[device],
        source=str(basic),
        ttl=BASIC_TTL,
        timestamp_field="ts",
        schema=[ts.Field("meanLf", ts.Float64), ts.Field("meanHf", ts.Float64)],
    )
    spectra_view = ts.FeatureView(
        "spectra",
        entities=[device],
        source=str(spectra),
        ttl=SPECTRA_TTL,
        timestamp_field="ts",
        schema=[ts.Field("peakPowers", floats), ts.Field("peakFreqs", floats)],
    )
    ws.features.apply([device, basic_view, spectra_view])
    return ws.features


def canonical(table: pa.Table) -> pa.Table:
    """Representation only, never values: timestamps in microseconds (DuckDB's unit; ours keep
    the input's milliseconds: rule 2.3 of docs/point-in-time.md) and lists with pyarrow's
    default item field name (DuckDB names it ``l``, ours ``element``). The casts are safe
    casts, which raise rather than change a value. Rows sorted by the entity columns, since
    Feast leaves the row order open (rule 9 of docs/point-in-time.md)."""
    columns = {}
    for column in table.schema:
        kind = column.type
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("us", tz=kind.tz)
        elif pa.types.is_list(kind):
            kind = pa.list_(kind.value_type)
        columns[column.name] = table[column.name].cast(kind)
    return pa.table(columns).sort_by([(name, "ascending") for name in ENTITY_SCHEMA.names])


def assert_same_table(ours: pa.Table, theirs: pa.Table) -> None:
    ours, theirs = canonical(ours), canonical(theirs)
    assert [(f.name, f.type) for f in ours.schema] == [(f.name, f.type) for f in theirs.schema]
    assert ours.num_rows == theirs.num_rows
    differ = [
        f"\n  ours:  {o}\n  feast: {f}"
        for o, f in zip(ours.to_pylist(), theirs.to_pylist(), strict=True)
        if o != f
    ]
    assert not differ, f"{len(differ)} of {ours.num_rows} rows differ:" + "".join(differ[:10])


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_historical_features_match_feast(tmp_path: Path, full_feature_names: bool) -> None:
    stores = Stores(tmp_path)
    # Feast takes entity rows as pandas only. Its answer is read as Arrow, straight from DuckDB:
    # to_df() would turn lists into numpy arrays and null floats into NaN.
    theirs = stores.feast.get_historical_features(
        entity_df=stores.entities.to_pandas(),
        features=FEATURES,
        full_feature_names=full_feature_names,
    ).to_arrow()
    ours = stores.ours.get_historical_features(
        stores.entities, FEATURES, full_feature_names=full_feature_names
    )
    assert_same_table(ours, theirs)
    # Guards the generated data: every feature column has both values and nulls.
    for name in theirs.column_names[len(ENTITY_SCHEMA) :]:
        assert 0 < theirs[name].null_count < theirs.num_rows


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_online_features_match_feast(tmp_path: Path, full_feature_names: bool) -> None:
    stores = Stores(tmp_path)
    # The window ends on a row of one device and starts on another device's last row before
    # that end, the earliest such row of all devices: every device has a row in the window,
    # and what two of them read depends on whether each end is included (rule 11.1 of
    # docs/point-in-time.md).
    by_time = sorted(stores.basic, key=lambda r: r["ts"])
    end = by_time[3 * len(by_time) // 4]["ts"]
    start = min(
        max(r["ts"] for r in by_time if (r["uuid"], r["nodeId"]) == device and r["ts"] <= end)
        for device in DEVICES
    )
    stores.feast.materialize(start_date=start, end_date=end)
    stores.ours.materialize(start, end)

    keys = [*DEVICES, ("ghost", "1"), ("u2", "2"), DEVICES[0]]
    rows = [{"uuid": u, "nodeId": n} for u, n in keys]
    theirs = stores.feast.get_online_features(
        features=FEATURES, entity_rows=rows, full_feature_names=full_feature_names
    ).to_dict()
    # Feast applies no TTL to online reads (rule 11.2 of docs/point-in-time.md); ours does
    # unless told not to.
    ours = stores.ours.get_online_features(
        FEATURES, rows, full_feature_names=full_feature_names, ignore_ttl=True
    ).to_dict()
    # Feast keeps a view's requested features in a set, so their order within the view changes
    # from one process to the next (string hashing); the keys' and the views' order is stable.
    # Ours is the historical order (rule 8.3 of docs/point-in-time.md).
    assert list(ours) == ONLINE_COLUMNS[full_feature_names]
    by_view = [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert [set(list(theirs)[s]) for s in by_view] == [set(list(ours)[s]) for s in by_view]
    # Feast answers with Python values from its protos, not typed Arrow: compare values.
    assert ours == theirs
