"""Snapshot sources from Python: files and Doris (MariaDB on loopback), typed pyarrow out."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest

import trainstore as ts


@pytest.fixture
def raw() -> pa.Table:
    return ts.synthetic_snapshots(devices=4, snapshots=30, malformed_rate=0.05)


@pytest.fixture
def snapshot_dir(tmp_path: Path, raw: pa.Table) -> Path:
    pq.write_table(raw, tmp_path / "part-0.parquet")
    return tmp_path


def test_a_query_shows_progress_once_it_takes_a_while(
    snapshot_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ts.FileSource(snapshot_dir)
    source.query()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(ts.progress, "QUICK_CALL_DELAY", 0.0)
    source.query()
    source.query(progress=False)
    assert capsys.readouterr().err.splitlines() == [
        "query: snapshots read: 0 done",
        "query: snapshots read: 240 done",
    ]


def test_files_parse_to_typed_arrow_with_a_report(snapshot_dir: Path, raw: pa.Table) -> None:
    source = ts.FileSource(snapshot_dir)
    assert source.files == ["part-0.parquet"]
    table = source.query()
    assert table.num_rows == raw.num_rows == 240
    assert table.schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("peakPowers").type.value_type == pa.float32()
    report = source.parse_report
    assert report.rows == 240
    assert report.malformed > 0
    assert "parse report" in report._repr_html_()
    # A malformed value is null, never 0.0 or an empty list.
    for name, column in report.columns.items():
        if column.malformed and name in table.column_names and name != "feature":
            assert table[name].null_count >= column.malformed


def test_ranges_filters_columns_limit_and_streaming(snapshot_dir: Path) -> None:
    source = ts.FileSource(snapshot_dir / "part-0.parquet")
    start = datetime(2022, 12, 7, 1, tzinfo=timezone.utc)
    table = source.query(
        start=start,
        end="2022-12-07T03:00:00Z",
        filters={"nodeId": "1466"},
        columns=["time", "nodeId"],
    )
    assert table.column_names == ["time", "nodeId"]
    assert table.num_rows > 0
    assert set(table["nodeId"].to_pylist()) == {"1466"}
    times = table["time"].to_pylist()
    assert min(times) >= start and max(times) < datetime(2022, 12, 7, 3, tzinfo=timezone.utc)
    assert source.query(filters={"nodeId": ["1465", "1466"]}, limit=7).num_rows == 7
    batches = list(source.stream(limit=100))
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert sum(b.num_rows for b in batches) == 100
    with pytest.raises(ts.InvalidInputError, match="start must be before end"):
        source.query(start="2022-12-08", end="2022-12-07")
    with pytest.raises(ts.InvalidInputError, match="nope"):
        source.query(filters={"nope": 1})


def test_strict_mode_names_the_row(snapshot_dir: Path) -> None:
    with pytest.raises(ts.MalformedDataError, match="uuid=") as info:
        ts.FileSource(snapshot_dir, strict=True).query()
    assert isinstance(info.value, ValueError)


def test_flat_schema_from_python(tmp_path: Path) -> None:
    (tmp_path / "flat.csv").write_text("device,ts,rms\nA,1670387400000,1.5\nB,1670387400001,x\n")
    schema = ts.SnapshotSchema(
        keys=["device"], time="ts", features={"rms": "number"}, document_column=None
    )
    table = ts.FileSource(tmp_path / "flat.csv", schema=schema).query()
    assert table["rms"].to_pylist() == [1.5, None]
    assert ts.SnapshotSchema.from_yaml(schema.to_yaml()).output_schema == schema.output_schema
    with pytest.raises(ts.InvalidInputError):
        ts.SnapshotSchema(keys=[], time="ts")


def test_doris_source_reads_what_was_loaded(
    mysql_db: str, mysql_server: str, raw: pa.Table, snapshot_dir: Path
) -> None:
    assert ts.load_snapshots(mysql_db, "feature_snapshots", raw).rows_written == raw.num_rows
    # The same rows again: nothing written, and said so.
    again = ts.load_snapshots(mysql_db, "feature_snapshots", raw)
    assert (again.rows_written, again.already_written) == (0, True)
    source = ts.DorisSource(mysql_db, table="feature_snapshots", partitions=3)
    remote = source.query()
    local = ts.FileSource(snapshot_dir).query()
    key = [("uuid", "ascending"), ("nodeId", "ascending"), ("time", "ascending")]
    assert (
        remote.sort_by(key)
        .select(["uuid", "nodeId", "time", "meanLf"])
        .equals(local.sort_by(key).select(["uuid", "nodeId", "time", "meanLf"]))
    )
    assert source.parse_report.malformed > 0
    hostile = source.query(filters={"nodeId": "1465' OR '1'='1"})
    assert hostile.num_rows == 0
    assert sum(b.num_rows for b in source.stream(filters={"nodeId": "1465"})) == raw.num_rows // 2
    server = urllib.parse.urlsplit(mysql_server)
    assert f"doris mysql://{server.hostname}:{server.port or 3306}" in repr(source)
    # Filters mean the same on both: the same time forms, exact text, bad values refused.
    first = local["time"][0].as_py()
    millis = local["time"].cast(pa.int64())[0].as_py()
    for either in (source, ts.FileSource(snapshot_dir)):
        rows = {
            either.query(filters={"time": value}).num_rows
            for value in (millis, str(millis), first.isoformat())
        }
        assert len(rows) == 1 and rows.pop() >= 1
        assert either.query(filters={"nodeId": "1465 "}).num_rows == 0
        with pytest.raises(ts.InvalidInputError, match=f"time={millis}abc"):
            either.query(filters={"time": f"{millis}abc"})


def test_doris_errors_are_typed_and_keep_the_password_out(mysql_db: str) -> None:
    with pytest.raises(ts.NotFoundError):
        ts.DorisSource(mysql_db, table="missing")
    with pytest.raises(ts.InvalidInputError):
        ts.DorisSource(mysql_db, table="bad`name")
    with pytest.raises(ts.InvalidInputError) as info:
        ts.DorisSource("mysql://root:hunter2secret@[bad", table="t")
    assert "hunter2secret" not in str(info.value)
    bad_password = mysql_db.replace("mysql://root@", "mysql://root:hunter2secret@")
    # A refused login is the server's answer, not a missing table: a RemoteError that says so.
    with pytest.raises(ts.RemoteError, match="Access denied") as failure:
        ts.DorisSource(bad_password, table="t")
    assert not isinstance(failure.value, ts.NotFoundError)
    assert "hunter2secret" not in str(failure.value)


def test_a_password_reference_is_read_from_the_environment_by_every_doris_entry_point(
    mysql_db: str,
    raw: pa.Table,
    mysql_connection: Callable[[str], pymysql.connections.Connection],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``mysql://user:${VARIABLE}@host/db`` works in the constructors and functions as it does
    in a definitions file: the registry keeps the reference, each opening reads the value."""
    user = f"ts_ref_{uuid.uuid4().hex[:8]}"
    database = urllib.parse.urlsplit(mysql_db).path.lstrip("/")
    with mysql_connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-from-the-env'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    try:
        monkeypatch.setenv("TS_TEST_DB_PASSWORD", "pw-from-the-env")
        url = mysql_db.replace("mysql://root@", f"mysql://{user}:${{TS_TEST_DB_PASSWORD}}@")
        assert ts.load_snapshots(url, "snaps", raw).rows_written == raw.num_rows
        source = ts.DorisSource(url, table="snaps")
        assert source.query().num_rows == raw.num_rows
        scores = pa.table({"uuid": ["a"], "score": [0.5]})
        assert ts.write_back(url, "scores", scores, label="job/part-0").rows_written == 1
        ws = ts.Workspace.open(str(tmp_path / "ws"))
        device = ts.Entity("device", join_keys=["uuid", "nodeId"])
        view = ts.FeatureView(
            "basic", entities=[device], source=source, schema=[ts.Field("meanLf", ts.Float64)]
        )
        ws.features.apply([device, view])
        assert "${TS_TEST_DB_PASSWORD}" in json.dumps(ws.features.list())
        key = ts.parse_snapshots(raw.slice(0, 1))[0].to_pylist()[0]
        rows = [{"uuid": key["uuid"], "nodeId": key["nodeId"], "event_timestamp": key["time"]}]
        answer = ws.features.get_historical_features(rows, ["basic:meanLf"])
        assert answer.num_rows == 1
        monkeypatch.setenv("TS_TEST_DB_PASSWORD", "a-wrong-one")
        with pytest.raises(ts.RemoteError, match="Access denied") as refused:
            ts.DorisSource(url, table="snaps")
        assert "a-wrong-one" not in str(refused.value)
        monkeypatch.delenv("TS_TEST_DB_PASSWORD")
        with pytest.raises(ts.ConfigError, match="TS_TEST_DB_PASSWORD"):
            ts.DorisSource(url, table="snaps")
    finally:
        with mysql_connection(mysql_db) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def test_parse_snapshots_in_memory_matches_the_file_source(
    raw: pa.Table, snapshot_dir: Path
) -> None:
    table, report = ts.parse_snapshots(raw)
    assert table.equals(ts.FileSource(snapshot_dir).query())
    assert report.rows == raw.num_rows and report.malformed > 0
    with pytest.raises(ts.MalformedDataError):
        ts.parse_snapshots(raw, strict=True)


def test_write_back_is_idempotent_per_label(
    mysql_db: str, mysql_connection: Callable[[str], pymysql.connections.Connection]
) -> None:
    predictions = pa.table({"uuid": ["a", "b", "c"], "score": [0.1, None, 0.3]})
    first = ts.write_back(mysql_db, "predictions", predictions, label="job-1/part-0")
    assert (first.rows_written, first.already_written) == (3, False)
    again = ts.write_back(mysql_db, "predictions", predictions, label="job-1/part-0")
    assert (again.rows_written, again.already_written) == (0, True)
    conn = mysql_connection(mysql_db)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(score) FROM predictions")
        assert cur.fetchone() == (3, 2)
    conn.close()
    with pytest.raises(ts.InvalidInputError):
        ts.write_back(mysql_db, "predictions", predictions, label="")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers; its ``host:port``."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    host, port = listener.getsockname()
    yield f"{host}:{port}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_server_that_never_answers_times_out_in_seconds_naming_it(
    silent_server: str, raw: pa.Table
) -> None:
    url = f"mysql://root:hunter2secret@{silent_server}/db"
    calls: list[Callable[[], object]] = [
        lambda: ts.DorisSource(url, "t", connect_timeout=1.0),
        lambda: ts.load_snapshots(url, "t", raw, connect_timeout=1.0),
        lambda: ts.write_back(url, "t", raw, "label", max_retries=0, connect_timeout=1.0),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(ts.exceptions.TimeoutError) as caught:
            call()
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert silent_server in message
        assert "hunter2secret" not in message
    with pytest.raises(ts.exceptions.InvalidInputError):
        ts.DorisSource(url, "t", read_timeout=0.0)
