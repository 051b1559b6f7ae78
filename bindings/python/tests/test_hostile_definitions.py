"""Hostile definitions from Python: whatever names, keys, TTLs and expressions are given,
``apply`` either applies them or raises a :class:`trainstore.TrainstoreError` (or Python's own
``ValueError`` for a negative TTL), and the registry stays readable afterwards."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainstore as ts

NAMES = st.text(alphabet="abcXYZ019_-. é/:\x00\n", max_size=140)
PIECES = st.sampled_from(
    [
        "basic:x",
        "basic:arr",
        "other:y",
        "1",
        "2.5",
        "1e309",
        "-",
        "+",
        "*",
        "/",
        "(",
        ")",
        ",",
        "mean(",
        "len(",
        "band_ratio(",
        "median(",
        ":",
        "x",
        " ",
        "é",
        ";",
    ]
)
EXPRESSIONS = st.lists(PIECES, max_size=200).map("".join) | st.sampled_from(
    [
        "basic:x * 2",
        "mean(basic:arr) - basic:x",
        " + ".join(["basic:x"] * 3000),
        "-" * 3000 + "basic:x",
        "(" * 3000 + "basic:x" + ")" * 3000,
    ]
)


@pytest.fixture
def store(tmp_path: Path) -> ts.FeatureStore:
    table = pa.table(
        {
            "uuid": ["A"],
            "nodeId": ["1"],
            "time": pa.array([0], pa.timestamp("ms", tz="UTC")),
            "x": [1.0],
            "arr": pa.array([[1.0, 2.0]], pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, tmp_path / "basic.parquet")
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    ws.features.apply([device, ts.FeatureView("basic", [device], str(tmp_path / "basic.parquet"))])
    return ws.features


def applied_or_refused(store: ts.FeatureStore, definitions: list[ts.features.Definition]) -> None:
    before = store.list()
    try:
        store.apply(definitions)
    except (ts.TrainstoreError, ValueError):
        assert store.list() == before, "a refused apply changed nothing"
    assert store.list() is not None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=NAMES, keys=st.lists(NAMES, max_size=3), ttl_days=st.integers(-(10**6), 10**7))
def test_any_entity_and_view_is_applied_or_refused(
    store: ts.FeatureStore, name: str, keys: list[str], ttl_days: int
) -> None:
    entity = ts.Entity(name, join_keys=keys)
    view = ts.FeatureView(name, [entity], "./nowhere", ttl=timedelta(days=ttl_days))
    applied_or_refused(store, [entity, view])


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=NAMES, expression=EXPRESSIONS)
def test_any_expression_is_applied_or_refused(
    store: ts.FeatureStore, name: str, expression: str
) -> None:
    applied_or_refused(store, [ts.OnDemandFeatureView(name, features={"f": expression})])
