"""The feature store from Python: definitions, apply/plan/history/rollback, point-in-time
training data from pyarrow, pandas-like and list inputs, materialize and online reads."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import trainstore as ts

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def write_features(path: Path) -> str:
    table = pa.table(
        {
            "uuid": ["A", "A", "B", "A"],
            "nodeId": ["1", "1", "1", "2"],
            "ts": pa.array(
                [T0, T0 + timedelta(days=10), T0, T0 + timedelta(days=1)],
                pa.timestamp("ms", tz="UTC"),
            ),
            "x": [1.0, 2.0, 3.0, 4.0],
            "arr": pa.array([[1.0], [2.0, 2.5], [], None], pa.list_(pa.float32())),
        }
    )
    location = str(path / "basic.parquet")
    pq.write_table(table, location)
    return location


@pytest.fixture
def store(tmp_path: Path) -> ts.FeatureStore:
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    basic = ts.FeatureView(
        "basic",
        entities=[device],
        source=write_features(tmp_path),
        ttl=timedelta(days=30),
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Float64), ts.Field("arr", ts.Array(ts.Float32))],
    )
    applied = ws.features.apply([device, basic])
    assert applied.version == 1
    assert [str(c) for c in applied.changes] == ["+ entity device", "+ feature view basic"]
    return ws.features


def test_point_in_time_rows_keep_order_labels_and_nulls(store: ts.FeatureStore) -> None:
    entity_rows = [
        {"uuid": "A", "nodeId": "1", "event_timestamp": T0 - timedelta(seconds=1), "label": 0},
        {"uuid": "A", "nodeId": "1", "event_timestamp": T0 + timedelta(days=5), "label": 1},
        {"uuid": "A", "nodeId": "1", "event_timestamp": T0 + timedelta(days=40), "label": 2},
        {"uuid": "A", "nodeId": "1", "event_timestamp": T0 + timedelta(days=41), "label": 3},
        {"uuid": "A", "nodeId": "2", "event_timestamp": T0 + timedelta(days=2), "label": 4},
        {"uuid": "Z", "nodeId": "1", "event_timestamp": T0, "label": 5},
    ]
    out = store.get_historical_features(entity_rows, ["basic:x", "basic:arr"])
    assert isinstance(out, pa.Table)
    assert out.column_names == ["uuid", "nodeId", "event_timestamp", "label", "x", "arr"]
    assert out["x"].to_pylist() == [None, 1.0, 2.0, None, 4.0, None]
    assert out["label"].to_pylist() == [0, 1, 2, 3, 4, 5]
    assert out["arr"].to_pylist()[1:3] == [[1.0], [2.0, 2.5]]
    full = store.get_historical_features(
        pa.Table.from_pylist(entity_rows), ["basic:x"], full_feature_names=True
    )
    assert full.column_names[-1] == "basic__x"


def test_pandas_entity_rows(store: ts.FeatureStore) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "uuid": ["B"],
            "nodeId": ["1"],
            "event_timestamp": [pd.Timestamp("2026-11-02")],  # naive means UTC
        }
    )
    assert store.get_historical_features(frame, ["basic:x"])["x"].to_pylist() == [3.0]
    # A join key in the index, as pandas users keep keys, is a key all the same.
    store.materialize_incremental(T0 + timedelta(days=30))
    for indexed in (frame.set_index("uuid"), frame.set_index(["uuid", "nodeId"])):
        assert store.get_historical_features(indexed, ["basic:x"])["x"].to_pylist() == [3.0]
        online = store.get_online_features(["basic:x"], indexed, ignore_ttl=True)
        assert online["x"].to_pylist() == [3.0]


def test_online_answers_read_like_feasts_and_compare_keys_by_value(
    store: ts.FeatureStore,
) -> None:
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=5))
    # Snapshots hold nodeId as text; an integer (a CSV's, a JSON number) finds it by value.
    out = store.get_online_features(["basic:x"], [{"uuid": "A", "nodeId": 1}], ignore_ttl=True)
    assert isinstance(out, ts.OnlineResponse)
    assert out.to_dict() == {"uuid": ["A"], "nodeId": [1], "x": [1.0]}
    assert out.to_df()["x"].tolist() == [1.0]
    assert out.to_arrow().column_names == out.column_names == ["uuid", "nodeId", "x"]
    assert len(out) == out.num_rows == 1
    assert "OnlineResponse" in repr(out) and "1 row" in out._repr_html_()
    padded = store.get_online_features(
        ["basic:x"], [{"uuid": "A", "nodeId": "01"}], ignore_ttl=True, include_status=True
    )
    assert padded.to_dict()["basic__status"] == ["unknown key"]


def test_long_calls_show_progress_once_they_take_a_while(
    store: ts.FeatureStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"uuid": "A", "nodeId": "1", "event_timestamp": T0 + timedelta(days=1)}]
    store.get_historical_features(rows, ["basic:x"])
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=5))
    assert capsys.readouterr().err == "", "quick calls stay silent"
    monkeypatch.setattr(ts.progress, "QUICK_CALL_DELAY", 0.0)
    store.get_historical_features(rows, ["basic:x"])
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=5))
    store.ingest("basic", T0 - timedelta(days=1), T0 + timedelta(days=20))
    store.get_historical_features(rows, ["basic:x"], progress=False)
    lines = capsys.readouterr().err.splitlines()
    # Plain lines when not on a terminal: one when an operation begins, one when it ends.
    assert lines == [
        "join 1 views: source rows: 0 done",
        "join 1 views: source rows: 3 done",  # those within the entity rows' reach
        "materialize basic: source rows: 0 done",
        "materialize basic: source rows: 3 done",  # those in the window
        "ingest basic: rows: 0% (0/4)",
        "ingest basic: rows: 100% (4/4)",
    ]


def test_bad_requests_raise_the_mapped_exceptions(store: ts.FeatureStore) -> None:
    rows = [{"uuid": "A", "event_timestamp": T0}]
    with pytest.raises(ts.InvalidInputError, match="nodeId"):
        store.get_historical_features(rows, ["basic:x"])
    with pytest.raises(ts.NotFoundError):
        store.get_historical_features(rows, ["nope:x"])
    with pytest.raises(ts.NotFoundError, match="view:feature"):
        store.get_historical_features(rows, ["x"])
    with pytest.raises(TypeError):
        store.get_historical_features(42, ["basic:x"])


def test_plan_history_and_rollback(store: ts.FeatureStore, tmp_path: Path) -> None:
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    shorter = ts.FeatureView(
        "basic",
        entities=[device],
        source=str(tmp_path / "basic.parquet"),
        ttl=timedelta(days=7),
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Float64), ts.Field("arr", ts.Array(ts.Float32))],
    )
    assert [c.change for c in store.plan([shorter])] == ["unchanged", "update"]
    assert store.apply([shorter]).version == 2
    assert store.list()["feature_views"][0]["ttl"] == "7d"
    history = store.history()
    assert [h.summary for h in history] == [
        "+ entity device, + feature view basic",
        "~ feature view basic",
    ]
    # When each version was made, as a datetime (not epoch milliseconds typed as text).
    assert all(isinstance(h.created_at, datetime) for h in history)
    assert history[0].created_at.tzinfo is not None
    assert history[0].created_at <= history[1].created_at <= datetime.now(timezone.utc)
    assert store.rollback(1) == 3
    assert store.list()["feature_views"][0]["ttl"] == "30d"
    wrong = ts.FeatureView(
        "basic",
        entities=[device],
        source=str(tmp_path / "basic.parquet"),
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Int64)],
    )
    with pytest.raises(ts.InvalidInputError, match="declares x as int64"):
        store.apply([wrong])
    assert len(store.history()) == 3


def test_inputs_of_the_wrong_shape_raise_typed_errors(store: ts.FeatureStore) -> None:
    # A bare string is a sequence of its letters: join keys "u", "u", "i", "d".
    with pytest.raises(TypeError, match="join_keys is a list of names"):
        store.plan([ts.Entity("device2", join_keys="uuid")])
    with pytest.raises(TypeError, match="features is a list of names"):
        store.plan([ts.FeatureService("svc", "basic:x")])
    refs = ["basic:x"]
    with pytest.raises(ts.InvalidInputError, match="no join keys"):
        store.get_online_features(refs, [{}])
    mixed = [{"uuid": "A", "nodeId": "1"}, {"uuid": 1, "nodeId": "1"}]
    with pytest.raises(ts.InvalidInputError, match="entity rows"):
        store.get_online_features(refs, mixed)
    with pytest.raises(ts.InvalidInputError, match="entity rows"):
        store.get_online_features(refs, [{"uuid": 2**70, "nodeId": "1"}])
    twice = pa.table(
        [pa.array(["A"]), pa.array(["B"]), pa.array(["1"]), pa.array([T0], pa.timestamp("ms"))],
        names=["uuid", "uuid", "nodeId", "event_timestamp"],
    )
    with pytest.raises(ts.InvalidInputError, match="two columns"):
        store.get_historical_features(twice, refs)
    with pytest.raises(ts.InvalidInputError, match="last representable"):
        store.materialize(0, 2**63 - 1)


def test_entity_times_nanoseconds_cannot_hold_name_the_column_and_row(
    store: ts.FeatureStore,
) -> None:
    far = datetime(9999, 1, 1, tzinfo=timezone.utc)
    rows = [
        {"uuid": "A", "nodeId": "1", "event_timestamp": T0},
        {"uuid": "A", "nodeId": "1", "event_timestamp": far},
    ]
    with pytest.raises(ts.InvalidInputError, match=r"event_timestamp.*row 1"):
        store.get_historical_features(rows, ["basic:x"])


def test_materialize_and_read_online(store: ts.FeatureStore) -> None:
    keys = [{"uuid": "A", "nodeId": "1"}, {"uuid": "Z", "nodeId": "1"}]
    before = store.get_online_features(["basic:x"], keys, include_status=True)
    assert before["basic__status"].to_pylist() == ["not materialized"] * 2
    done = store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=5))
    # Why each value is missing: A's row is older than the TTL, Z has none.
    status = store.get_online_features(["basic:x"], keys, include_status=True)
    assert status.column_names == ["uuid", "nodeId", "x", "basic__status"]
    assert status["basic__status"].to_pylist() == ["expired", "unknown key"]
    assert [(m.view, m.entities) for m in done] == [("basic", 3)]
    keys = [{"uuid": "A", "nodeId": "1"}, {"uuid": "Z", "nodeId": "1"}]
    # The rows are from 2026-11; TTL (30 days) applies at read time unless ignored.
    out = store.get_online_features(["basic:x", "basic:arr"], keys, ignore_ttl=True)
    assert out.column_names == ["uuid", "nodeId", "x", "arr"]
    assert out["x"].to_pylist() == [1.0, None]
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=20))
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    out = store.get_online_features(["basic:x"], keys, ignore_ttl=True)
    assert out["x"].to_pylist() == [2.0, None], "an older window never overwrites"
    assert "online.redb" in store.online_store


def test_materialize_takes_feasts_spellings(store: ts.FeatureStore) -> None:
    done = store.materialize(
        start_date=T0 - timedelta(days=1), end_date=T0 + timedelta(days=5), feature_views=["basic"]
    )
    assert [(m.view, m.entities) for m in done] == [("basic", 3)]
    with pytest.raises(TypeError, match="start or start_date"):
        store.materialize(T0, T0 + timedelta(days=1), start_date=T0)
    with pytest.raises(TypeError, match="a time is required"):
        store.materialize(end=T0)


def test_online_entity_rows_in_every_shape_read_the_same(store: ts.FeatureStore) -> None:
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=5))
    refs = ["basic:x", "basic:arr"]
    keys: list[dict[str, object]] = [
        {"uuid": "A", "nodeId": "1"},
        {"uuid": "Z", "nodeId": "1"},
        {"uuid": None, "nodeId": "1"},
        {"uuid": "A"},  # a missing key reads as null, as pyarrow's from_pylist has it
    ]
    expected = store.get_online_features(refs, pa.Table.from_pylist(keys), ignore_ttl=True)
    assert expected["x"].to_pylist() == [1.0, None, None, None]
    assert store.get_online_features(refs, keys, ignore_ttl=True) == expected
    # Values the native reader does not take (a float label) go through pyarrow.
    labelled = [{**k, "label": 0.5} for k in keys]
    out = store.get_online_features(refs, labelled, ignore_ttl=True)
    assert out == expected
    with pytest.raises(ts.InvalidInputError, match="lack join key"):
        store.get_online_features(refs, [], ignore_ttl=True)


def test_redis_online_store_and_doris_password_refusal(tmp_path: Path) -> None:
    redis_url = __import__("os").environ.get("TRAINSTORE_TEST_REDIS_URL")
    if not redis_url:
        pytest.fail('TRAINSTORE_TEST_REDIS_URL is not set: run eval "$(scripts/test-services)"')
    ws = ts.Workspace.open(tmp_path / f"ws-{uuid.uuid4().hex[:8]}", online_store=redis_url)
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    view = ts.FeatureView(
        "basic", entities=[device], source=write_features(tmp_path), timestamp_field="ts"
    )
    ws.features.apply([view])
    assert [f["name"] for f in ws.features.list()["feature_views"][0]["schema"]] == ["x", "arr"]
    ws.features.materialize_incremental(T0 + timedelta(days=30))
    out = ws.features.get_online_features(
        ["basic:x"], {"uuid": ["A"], "nodeId": ["2"]}, ignore_ttl=True
    )
    assert out["x"].to_pylist() == [4.0]
    assert "Redis" in ws.features.online_store

    secret = ts.FeatureView(
        "doris",
        entities=[device],
        source={"type": "doris", "url": "mysql://root:hunter2@127.0.0.1:3306/db", "table": "t"},
    )
    with pytest.raises(ts.InvalidInputError) as error:
        ws.features.apply([secret])
    assert "hunter2" not in str(error.value)


def test_pushdown_engine_answers_like_the_in_process_one(tmp_path: Path, mysql_db: str) -> None:
    raw = ts.synthetic_snapshots(devices=3, snapshots=20, interval_ms=3_600_000, seed=3)
    ts.load_snapshots(mysql_db, "snapshots", raw)
    source = ts.DorisSource(mysql_db, table="snapshots")
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    view = ts.FeatureView(
        "basic",
        entities=[device],
        source=source,
        ttl=timedelta(hours=5),
        schema=[ts.Field("meanLf", ts.Float64), ts.Field("peakPowers", ts.Array(ts.Float32))],
    )
    ws.features.apply([device, view])
    read = source.query().select(["uuid", "nodeId", "time"])
    times = read["time"].cast(pa.int64()).to_pylist()
    # On each snapshot, half an hour after, and past the TTL; plus an unknown device.
    entity_rows = {
        "uuid": read["uuid"].to_pylist() * 3 + ["nobody"],
        "nodeId": read["nodeId"].to_pylist() * 3 + ["1465"],
        "event_timestamp": pa.array(
            times + [t + 1_800_000 for t in times] + [t + 18_000_001 for t in times] + [0],
            pa.timestamp("ms", tz="UTC"),
        ),
    }
    features = ["basic:meanLf", "basic:peakPowers"]
    here = ws.features.get_historical_features(entity_rows, features)
    pushed = ws.features.get_historical_features(entity_rows, features, engine="pushdown")
    assert pushed.equals(here)
    assert 0 < here["meanLf"].null_count < here.num_rows
    # Integer node ids (as a CSV reader or pandas would type them) find the text keys'
    # rows on both engines (rule 7.3).
    numbered = dict(entity_rows, nodeId=[int(n) for n in entity_rows["nodeId"]])
    for answer in (
        ws.features.get_historical_features(numbered, features),
        ws.features.get_historical_features(numbered, features, engine="pushdown"),
    ):
        assert answer.select(["meanLf", "peakPowers"]).equals(here.select(["meanLf", "peakPowers"]))

    files = ts.FeatureView(
        "files", entities=[device], source=write_features(tmp_path), timestamp_field="ts"
    )
    ws.features.apply([files])
    with pytest.raises(ts.NotSupportedError, match="pushdown"):
        ws.features.get_historical_features(entity_rows, ["files:x"], engine="pushdown")


def test_on_demand_features_and_services_by_name(store: ts.FeatureStore) -> None:
    stats = ts.OnDemandFeatureView(
        "stats", features={"arr_max": "max(basic:arr)", "twice": "2 * basic:x"}
    )
    service = ts.FeatureService("model", features=["stats:twice", "basic:arr"])
    applied = store.apply([stats, service])
    assert [str(c) for c in applied.changes] == [
        "+ on-demand feature view stats",
        "+ feature service model",
    ]
    rows = {"uuid": ["A", "B"], "nodeId": ["1", "1"], "event_timestamp": [T0, T0]}
    out = store.get_historical_features(rows, ["stats:arr_max", "basic:x"])
    assert out.column_names == ["uuid", "nodeId", "event_timestamp", "x", "arr_max"]
    assert out["arr_max"].to_pylist() == [1.0, None]
    by_object = store.get_historical_features(rows, service)
    assert by_object.equals(store.get_historical_features(rows, ["model"]))
    assert by_object.column_names[-2:] == ["arr", "twice"]
    assert by_object["twice"].to_pylist() == [2.0, 6.0]

    with pytest.raises(ts.InvalidInputError, match="statistics need a list"):
        store.apply([ts.OnDemandFeatureView("bad", features={"m": "mean(basic:x)"})])
    with pytest.raises(ts.NotFoundError, match="feature service"):
        store.get_historical_features(rows, ["nope"])


def test_hostile_expressions_are_refused_and_the_registry_stays_readable(
    store: ts.FeatureStore,
) -> None:
    before = store.list()
    for text in [" + ".join(["basic:x"] * 2000), "-" * 500 + "basic:x"]:
        with pytest.raises(ts.InvalidInputError) as info:
            store.apply([ts.OnDemandFeatureView("huge", features={"h": text})])
        assert len(str(info.value)) < 400
    assert store.list() == before


def test_verify_finds_an_edited_segment(store: ts.FeatureStore, tmp_path: Path) -> None:
    store.ingest("basic", T0 - timedelta(days=60), T0 + timedelta(days=30))
    ws = ts.Workspace.open(tmp_path / "ws", create=False)
    report = ws.verify(progress=False)
    assert report.ok and report.files == 1 and report.versions >= 2, report
    segment = next((tmp_path / "ws" / "catalog" / "items" / "offline-basic" / "data").iterdir())
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    report = ws.verify(progress=False)
    assert not report.ok
    assert "offline-basic@v1" in report.problems[0] and segment.name in report.problems[0]
    rows = {"uuid": ["A"], "nodeId": ["1"], "event_timestamp": [T0]}
    with pytest.raises(ts.CorruptDataError, match=segment.name):
        store.get_historical_features(rows, ["basic:x"])


def test_ingested_rows_answer_historical_requests(store: ts.FeatureStore, tmp_path: Path) -> None:
    rows = {
        "uuid": ["A", "A"],
        "nodeId": ["1", "1"],
        "event_timestamp": [T0, T0 + timedelta(days=12)],
    }
    before = store.get_historical_features(rows, ["basic:x", "basic:arr"])
    done = store.ingest("basic", T0 - timedelta(days=60), T0 + timedelta(days=30))
    assert (done.view, done.version, done.rows, done.segments) == ("basic", 1, 4, 1)
    # The source changes; the ingested span still answers as before.
    (tmp_path / "basic.parquet").unlink()
    write_features(tmp_path)
    pq.write_table(
        pq.read_table(tmp_path / "basic.parquet").slice(0, 1), tmp_path / "basic.parquet"
    )
    after = store.get_historical_features(rows, ["basic:x", "basic:arr"])
    assert after.equals(before)
    read_from = json.loads(after.schema.metadata[b"trainstore.sources"])
    assert read_from == {"basic": "offline store offline-basic@v1"}
    assert json.loads(before.schema.metadata[b"trainstore.sources"])["basic"].startswith(
        "Parquet files at"
    )
    with pytest.raises(ts.InvalidInputError, match="overlaps"):
        store.ingest("basic", T0, T0 + timedelta(days=1))


def test_value_types_repr_as_they_are_written() -> None:
    assert repr(ts.Float64) == "ts.Float64"
    assert repr(ts.String) == "ts.String"
    assert repr(ts.Array(ts.Float32)) == "ts.Array(ts.Float32)"
    assert eval(repr(ts.Array(ts.Int64)), {"ts": ts}) == ts.Array(ts.Int64)


def test_raw_snapshot_files_given_as_a_typed_table_say_how_to_declare_them(
    tmp_path: Path,
) -> None:
    """A bare path means a typed Parquet table; raw snapshot files there (a JSON document per
    row) fail naming the missing column and saying how to have them parsed."""
    pq.write_table(ts.synthetic_snapshots(devices=2, snapshots=3), tmp_path / "snaps.parquet")
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    typed = ts.FeatureView(
        "basic",
        entities=[device],
        source=str(tmp_path / "snaps.parquet"),
        timestamp_field="time",
        schema=[ts.Field("meanLf", ts.Float64)],
    )
    with pytest.raises(ts.InvalidInputError) as refused:
        ws.features.apply([device, typed])
        ws.features.get_historical_features(
            [{"uuid": "A", "nodeId": "1465", "event_timestamp": T0}], ["basic:meanLf"]
        )
    assert "raw snapshot files" in str(refused.value)
    assert "snapshots:" in str(refused.value) and "ts.FileSource" in str(refused.value)
    # Declared as snapshot files, the same files are parsed.
    parsed = ts.FeatureView(
        "basic",
        entities=[device],
        source=ts.FileSource(tmp_path / "snaps.parquet"),
        schema=[ts.Field("meanLf", ts.Float64)],
    )
    ws.features.apply([device, parsed])


def test_the_catalog_lists_reads_and_deletes_versions(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    basic = ts.FeatureView(
        "basic",
        entities=[device],
        source=write_features(tmp_path),
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Float64)],
    )
    ws.features.apply([device, basic])
    ws.features.ingest("basic", T0, T0 + timedelta(days=30))
    assert ws.catalog.items() == {"feature-registry": 1, "offline-basic": 1}
    [segments] = ws.catalog.versions("offline-basic")
    assert (segments.id, segments.author, segments.files) == ("offline-basic@v1", ws.user, 1)
    assert segments.bytes > 0 and segments.created_at.tzinfo is not None
    assert ws.catalog.get("offline-basic@latest") == segments
    rows = ws.catalog.read("offline-basic")
    assert rows.num_rows == 4 and sorted(rows["x"].to_pylist()) == [1.0, 2.0, 3.0, 4.0]
    assert "offline-basic@v1" in segments._repr_html_()
    # A version without data files has no rows; the feature store's own items stay.
    with pytest.raises(ts.InvalidInputError, match="no data files"):
        ws.catalog.read("feature-registry@v1")
    for own in ("feature-registry@1", "offline-basic"):
        with pytest.raises(ts.InvalidInputError, match="feature store's own"):
            ws.catalog.delete(own)
    with pytest.raises(ts.NotFoundError):
        ws.catalog.get("nothing@v1")


def test_definitions_are_deleted_by_name_unless_something_left_uses_them(
    store: ts.FeatureStore,
) -> None:
    store.apply([ts.FeatureService("svc", ["basic:x"])])
    before = len(store.history())
    with pytest.raises(ts.InvalidInputError, match="basic"):
        store.delete(["basic"])  # the service still reads it
    with pytest.raises(ts.NotFoundError, match="nothing"):
        store.delete(["nothing"])
    with pytest.raises(TypeError, match="list of names"):
        store.delete("basic")
    assert len(store.history()) == before
    version = store.delete(["basic", "svc"])
    assert version == before + 1
    assert store.list()["feature_views"] == [] and store.list()["feature_services"] == []
    assert [e["name"] for e in store.list()["entities"]] == ["device"]
    with pytest.raises(ts.NotFoundError, match="feature view not found: basic"):
        store.get_historical_features(
            [{"uuid": "A", "nodeId": "1", "event_timestamp": T0}], ["basic:x"]
        )


def test_a_relative_source_path_is_stored_absolute_and_read_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_features(tmp_path)
    monkeypatch.chdir(tmp_path)
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    view = ts.FeatureView(
        "basic",
        entities=[device],
        source="basic.parquet",
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Float64)],
    )
    ws.features.apply([device, view])
    stored = ws.features.list()["feature_views"][0]["source"]["location"]
    assert stored == str(tmp_path / "basic.parquet")
    assert ws.features.plan([device, view])[1].change == "unchanged"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rows = [{"uuid": "B", "nodeId": "1", "event_timestamp": T0}]
    answer = ts.Workspace.open(tmp_path / "ws").features.get_historical_features(rows, ["basic:x"])
    assert answer["x"].to_pylist() == [3.0]


def test_feasts_file_source_names_a_typed_table_and_snapshot_files_have_their_own(
    tmp_path: Path,
) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    path = write_features(tmp_path)
    typed = ts.FileSource(path=path, timestamp_field="ts")
    view = ts.FeatureView("basic", entities=["device"], source=typed, ttl=timedelta(days=30))
    assert view.to_dict()["timestamp_field"] == "ts"
    ws.features.apply([ts.Entity("device", join_keys=["uuid", "nodeId"]), view])
    rows = [{"uuid": "A", "nodeId": "1", "event_timestamp": T0 + timedelta(days=1)}]
    assert ws.features.get_historical_features(rows, ["basic:x"])["x"].to_pylist() == [1.0]
    assert "typed" not in repr(typed) and "timestamp_field='ts'" in repr(typed)

    # Each shape says which one was meant when used as the other.
    with pytest.raises(ts.InvalidInputError, match=r"typed table.*ts\.SnapshotFiles"):
        typed.query()
    with pytest.raises(ts.InvalidInputError, match="schema, format and strict describe raw"):
        ts.FileSource(path, timestamp_field="ts", strict=True)
    with pytest.raises(ts.InvalidInputError, match="timestamp_field='time' but its FileSource"):
        ts.FeatureView("v", entities=["device"], source=typed, timestamp_field="time").to_dict()
    with pytest.raises(ts.InvalidInputError, match=r"typed table.*timestamp_field"):
        ts.FileSource(path).query()

    # Raw snapshot files: SnapshotFiles, or FileSource without a timestamp field, as before.
    snapshots = tmp_path / "snaps.parquet"
    pq.write_table(ts.synthetic_snapshots(devices=1, snapshots=3), snapshots)
    assert ts.SnapshotFiles(snapshots).query().num_rows == 6
    assert ts.FileSource(snapshots).query().num_rows == 6


def test_a_memory_workspace_serves_online_features_from_memory(tmp_path: Path) -> None:
    name = f"memory://online-{uuid.uuid4().hex[:8]}"
    ws = ts.Workspace.open(name)
    assert ws.features.online_store.startswith("embedded online store memory://")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    source = ts.FileSource(path=write_features(tmp_path), timestamp_field="ts")
    ws.features.apply([device, ts.FeatureView("basic", entities=[device], source=source)])
    ws.features.materialize(T0 - timedelta(days=1), T0 + timedelta(days=20))
    key = [{"uuid": "A", "nodeId": "1"}]
    assert ws.features.get_online_features(["basic:x"], key).to_dict()["x"] == [2.0]
    # The same workspace opened again in this process sees the same store; another does not.
    again = ts.Workspace.open(name).features.get_online_features(["basic:x"], key)
    assert again.to_dict()["x"] == [2.0]
    other = ts.Workspace.open(name + "-other")
    other.features.apply([device, ts.FeatureView("basic", entities=[device], source=source)])
    assert other.features.get_online_features(["basic:x"], key).to_dict()["x"] == [None]
