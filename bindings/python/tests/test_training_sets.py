"""Training-set versions from Python: created from pyarrow, pandas, polars and streamed
batches, read back without loss, listed best first, selected by the design document's
criteria, tagged and aliased, built from a historical request."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import trainstore as ts

JAN = datetime(2024, 1, 1, tzinfo=timezone.utc)


def rows(
    n: int, start: datetime, missing: int = 0, step: timedelta = timedelta(minutes=1)
) -> pa.Table:
    """``n`` rows: ``x`` (the first ``missing`` null), a balanced ``label`` and event times
    ``step`` apart from ``start``."""
    return pa.table(
        {
            "x": pa.array([None if i < missing else float(i) for i in range(n)], pa.float64()),
            "label": ["ok" if i % 2 else "fault" for i in range(n)],
            "event_timestamp": pa.array(
                [start + i * step for i in range(n)], pa.timestamp("ms", tz="UTC")
            ),
        }
    )


@pytest.fixture
def ws(tmp_path: Path) -> ts.Workspace:
    return ts.Workspace.open(tmp_path / "ws")


def test_a_version_reads_back_as_arrow_pandas_polars_and_a_dataset(ws: ts.Workspace) -> None:
    table = rows(1000, JAN, missing=100)
    v = ws.training_sets.create("vibration", table, metadata={"description": "v1"}, label="label")
    assert (v.id, v.version, v.rows) == ("vibration@v1", 1, 1000)
    assert v.metadata == {"description": "v1"}
    assert v.lineage["library_version"] == ts.__version__
    assert v.quality.data_size == 1000
    assert v.quality.completeness == pytest.approx((0.9 + 1 + 1) / 3)
    assert v.quality.label_balance is not None
    assert v.quality.label_balance["classes"] == {"fault": 500, "ok": 500}
    assert 0 < v.quality.overall_score <= 1

    back = ws.training_sets.get("vibration", "latest")
    assert back.content_hash == v.content_hash
    assert back.to_arrow().equals(table)
    pd.testing.assert_frame_equal(back.to_pandas(), table.to_pandas())
    expected = pl.from_arrow(table)
    assert isinstance(expected, pl.DataFrame)
    assert back.to_polars().equals(expected)
    assert back.dataset().to_table().equals(table)
    assert pa.Table.from_batches(back.to_batches()).equals(table)
    assert back.to_reader().read_all().equals(table)

    report = back.quality.report()
    assert report.column("column").to_pylist() == ["x", "label", "event_timestamp"]
    assert report.column("nulls").to_pylist() == [100, 0, 0]
    assert report.column("min").to_pylist()[0] == 100.0
    assert "vibration@v1" in back._repr_html_()
    assert "<table>" in back.quality._repr_html_()


def test_a_version_streams_a_few_thousand_rows_at_a_time(ws: ts.Workspace, tmp_path: Path) -> None:
    # A file changed on disk before anything read it fails the streamed read, naming it.
    damaged = ws.training_sets.create("damaged", rows(5_000, JAN))
    (data,) = (tmp_path / "ws").rglob("*.parquet")
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 1
    data.chmod(0o644)
    data.write_bytes(bytes(content))
    with pytest.raises(ts.CorruptDataError, match=data.name):
        damaged.to_reader().read_all()

    table = rows(30_000, JAN)
    v = ws.training_sets.create("long", table)
    sizes = []
    streamed = []
    for batch in v.to_reader(columns=["event_timestamp", "x"]):
        sizes.append(batch.num_rows)
        streamed.append(batch)
    assert len(sizes) > 1 and max(sizes) <= 8192
    # The file's column order, only the columns asked for, every row in order.
    assert pa.Table.from_batches(streamed).equals(table.select(["x", "event_timestamp"]))
    with pytest.raises(ts.InvalidInputError, match=r"nodeId.*long@v1"):
        v.to_reader(columns=["nodeId"])


def test_frames_and_streamed_batches_become_the_same_content(ws: ts.Workspace) -> None:
    table = rows(500, JAN)
    from_pandas = ws.training_sets.create("frames", table.to_pandas())
    from_polars = ws.training_sets.create("frames", pl.from_arrow(table))
    streamed = ws.training_sets.create("frames", iter(table.to_batches(max_chunksize=64)))
    assert from_pandas.to_arrow().column("x").equals(table.column("x"))
    assert from_polars.rows == streamed.rows == 500
    assert streamed.to_arrow().equals(table)


def test_the_design_documents_selection_example(ws: ts.Workspace) -> None:
    sets = ws.training_sets
    sets.create("vibration", rows(5_000, JAN), label="label")  # too small
    sets.create("vibration", rows(20_000, JAN, missing=15_000), label="label")  # poor
    best = sets.create("vibration", rows(20_000, JAN + timedelta(days=1)), label="label")
    sets.create("vibration", rows(20_000, JAN + timedelta(days=25)), label="label")  # into Feb

    listed = sets.list("vibration")
    scores = [v.overall_score for v in listed]
    assert scores == sorted(scores, reverse=True)
    assert listed[-1].version == 2

    criteria = {
        "min_data_size": 10000,
        "min_quality_score": 0.8,
        "time_range": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-31T23:59:59Z"},
    }
    chosen = sets.select_best("vibration", criteria)
    assert chosen.version == best.version
    assert chosen.quality.overall_score >= 0.8
    assert chosen.quality.data_size >= 10000
    # The same as keywords.
    again = sets.select_best(
        "vibration",
        min_data_size=10000,
        min_quality_score=0.8,
        time_range=("2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z"),
    )
    assert again.version == best.version

    with pytest.raises(ts.NotFoundError, match="min_data_size excluded 4 of 4"):
        sets.select_best("vibration", min_data_size=1_000_000)
    with pytest.raises(ts.InvalidInputError, match="min_quality_score"):
        sets.select_best("vibration", min_quality_score=2)
    with pytest.raises(ts.InvalidInputError, match="unknown criterion"):
        sets.select_best("vibration", {"max_size": 3})


def test_tags_and_aliases_name_versions(ws: ts.Workspace) -> None:
    sets = ws.training_sets
    v1 = sets.create("vibration", rows(10, JAN))
    sets.create("vibration", rows(20, JAN))
    assert sets.tag(v1, "paper") == 1
    assert sets.alias("vibration@latest", "golden") == 2
    assert sets.get("vibration", "paper").version == 1
    assert sets.get("vibration", "golden").version == 2
    assert sets.select_best("vibration", tags=["paper"]).version == 1
    with pytest.raises(ts.AlreadyExistsError):
        sets.tag("vibration@2", "paper")
    with pytest.raises(ts.NotFoundError):
        sets.get("vibration", "v9")
    assert sets.names() == ["vibration"]


def test_bad_input_is_refused_and_leaves_nothing(ws: ts.Workspace) -> None:
    sets = ws.training_sets
    with pytest.raises(ts.InvalidInputError, match="dataset name"):
        sets.create("../escape", rows(3, JAN))
    with pytest.raises(ts.InvalidInputError, match="nope"):
        sets.create("vibration", rows(3, JAN), label="nope")
    with pytest.raises(TypeError):
        sets.create("vibration", 42)

    def failing() -> object:
        yield from rows(3, JAN).to_batches()
        raise RuntimeError("the producer broke")

    with pytest.raises(ts.TrainstoreError):
        sets.create("vibration", failing())
    assert sets.list("vibration") == []
    assert ws.gc(older_than=timedelta(0), dry_run=True).files == []


def test_a_set_from_a_historical_request_records_its_lineage(
    tmp_path: Path, ws: ts.Workspace
) -> None:
    features = pa.table(
        {
            "uuid": ["A", "A", "B"],
            "ts": pa.array([JAN, JAN + timedelta(days=2), JAN], pa.timestamp("ms", tz="UTC")),
            "x": [1.0, 2.0, 3.0],
        }
    )
    pq.write_table(features, tmp_path / "basic.parquet")
    device = ts.Entity("device", join_keys=["uuid"])
    basic = ts.FeatureView(
        "basic",
        entities=[device],
        source=str(tmp_path / "basic.parquet"),
        ttl=timedelta(days=30),
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Float64)],
    )
    ws.features.apply([device, basic])
    entity_df = pd.DataFrame(
        {
            "uuid": ["A", "B", "A"],
            "event_timestamp": [
                JAN + timedelta(days=1),
                JAN + timedelta(days=1),
                JAN + timedelta(days=3),
            ],
            "label": [0, 1, 0],
        }
    )
    v = ws.training_sets.create_from_features("vibration", entity_df, ["basic:x"], label="label")
    assert v.to_arrow().column("x").to_pylist() == [1.0, 3.0, 2.0]
    assert v.lineage["source"] == "historical_features"
    assert v.lineage["features"] == ["basic:x"]
    assert v.lineage["registry_version"] == 1
    assert v.lineage["entity_count"] == 3
    assert v.quality.label_balance is not None
    same = ws.training_sets.reproduce(v)
    assert same.matches and same.rebuilt_hash == v.content_hash and same.differences is None
    saved = ws.features.get_historical_features(
        entity_df, ["basic:x"], save_as="vibration", label="label"
    )
    assert (saved.version, saved.content_hash) == (2, v.content_hash)
    assert saved.to_arrow().equals(ws.features.get_historical_features(entity_df, ["basic:x"]))
    with pytest.raises(ts.InvalidInputError, match="save_as"):
        ws.features.get_historical_features(entity_df, ["basic:x"], label="label")

    pq.write_table(
        features.set_column(2, "x", pa.array([1.0, 5.0, 3.0])), tmp_path / "basic.parquet"
    )
    changed = ws.training_sets.reproduce("vibration@1")
    assert not changed.matches
    assert changed.differences is not None
    assert (changed.differences.rows_removed, changed.differences.rows_added) == (1, 1)
    with pytest.raises(ts.NotSupportedError):
        ws.training_sets.reproduce(ws.training_sets.create("given", rows(3, JAN)))


def test_diff_and_drift_between_versions(ws: ts.Workspace) -> None:
    sets = ws.training_sets
    a = sets.create("vibration", rows(4000, JAN))
    b = sets.create("vibration", rows(4000, JAN, missing=2000))
    d = sets.diff(a, "vibration@2")
    assert (d.rows_before, d.rows_after, d.same_content) == (4000, 4000, False)
    assert (d.rows_removed, d.rows_added) == (2000, 2000)
    drift = sets.drift(a, b)
    x = drift.filter(pa.compute.equal(drift.column("column"), "x")).to_pylist()[0]
    assert x["measure"] == "values"
    assert x["ks_statistic"] == pytest.approx(0.5, abs=1e-3)
    assert x["baseline_count"] == 4000 and x["current_count"] == 2000
    assert sets.drift(a, a).column("psi").to_pylist()[0] == 0.0


def test_fsck_finds_a_corrupt_file_and_gc_removes_only_orphans(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    v = ws.training_sets.create("vibration", rows(100, JAN))
    report = ws.training_sets.fsck(progress=False)
    assert report.ok and report.versions == 1 and report.orphans == []
    data = tmp_path / "ws" / "training-sets" / "items" / "vibration" / "data"
    orphan = data / "0001-part-00000.parquet"
    orphan.write_bytes(b"left by a killed writer")
    assert ws.training_sets.fsck(progress=False).orphans == []  # younger than the grace
    found = ws.training_sets.fsck(older_than=timedelta(0), progress=False)
    assert [o.path for o in found.orphans] == ["items/vibration/data/0001-part-00000.parquet"]
    assert ws.training_sets.gc(older_than=timedelta(0), dry_run=True) == found.orphans
    assert orphan.exists()
    assert ws.training_sets.gc(older_than=timedelta(0)) == found.orphans
    assert not orphan.exists()
    assert v.to_arrow().num_rows == 100

    (stored,) = (p for p in data.iterdir())
    stored.write_bytes(stored.read_bytes()[:-8] + b"tampered")
    bad = ws.training_sets.fsck(progress=False)
    assert not bad.ok
    assert "vibration@v1" in bad.problems[0]
