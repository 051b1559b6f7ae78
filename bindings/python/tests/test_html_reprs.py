"""Every result object a notebook shows has an HTML repr: a bold title with its kind and name,
small tables, every value escaped, times as ISO-8601 UTC, long tables cut short."""

from __future__ import annotations

import dataclasses
import html
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import trainstore as ts
from trainstore import _html

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOSTILE = '<script>alert("1 & 2")</script>'
ESCAPED = html.escape(HOSTILE)

# Public dataclasses that are only ever inputs, never a result to look at: their plain repr
# already reads as the code that makes them, and a notebook shows them inside the objects
# they configure (a view's features, a model card).
INPUTS = {
    "Field",  # a view's typed column: shown in the FeatureView's repr
    "ValueType",  # ts.Float64, ts.Array(...): its repr is how to write it
    "ListFeature",  # part of a TrainConfig
    "TrainConfig",  # what to train; the trained ModelVersion is what is looked at
    "ArgoVolume",  # an option of a pipeline's export
    "SecretRef",  # an option of a pipeline's export
}


def page_of(shown: Any, *facts: str) -> str:
    """``shown``'s HTML repr, checked to hold every fact and no unescaped markup of ours."""
    page: str = shown._repr_html_()
    assert "<script>" not in page
    for fact in facts:
        assert fact in page, f"{fact!r} not in {page}"
    return page


def test_every_public_result_dataclass_has_an_html_repr() -> None:
    classes = {
        name: value
        for name in ts.__all__
        if isinstance(value := getattr(ts, name), type) and dataclasses.is_dataclass(value)
    }
    assert {"Entity", "GcReport", "Lease", "ModelVersion", "SetDiff"} <= classes.keys()
    assert INPUTS <= classes.keys(), "an excluded input is no longer a public dataclass"
    results = {n: c for n, c in classes.items() if n not in INPUTS}
    assert sorted(n for n, c in results.items() if not hasattr(c, "_repr_html_")) == []
    # Result objects that are not dataclasses have one too.
    others = [ts.Workspace, ts.FeatureStore, ts.Quality, ts.TrainingSetVersion, ts.VersionList]
    assert all(hasattr(c, "_repr_html_") for c in [*others, ts.Draft])


def test_the_helpers_escape_every_value_and_cut_long_tables() -> None:
    assert _html.text(HOSTILE) == ESCAPED
    assert _html.text(_html.Html("<i>kept</i>")) == "<i>kept</i>"
    assert _html.text(None) == "" and _html.text(2 / 3) == "0.6667"
    assert _html.text(["a<", "b"]) == "a&lt;, b"
    assert _html.text({"k": "<v>"}) == "{&quot;k&quot;: &quot;&lt;v&gt;&quot;}"
    assert _html.iso(datetime(2026, 11, 1, 8)) == "2026-11-01T08:00:00Z"  # naive means UTC
    later = datetime(2026, 11, 1, 9, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=1)))
    assert _html.text(later) == "2026-11-01T08:30:00.250Z"
    assert (_html.size(512), _html.size(1536), _html.size(3 * 2**30)) == (
        "512 bytes",
        "1.5 KiB",
        "3.0 GiB",
    )
    assert (_html.count(1, "row"), _html.count(2, "entity", "entities")) == ("1 row", "2 entities")
    assert _html.title(HOSTILE, None, "", "3 rows") == f"<div><b>{ESCAPED}</b>: 3 rows</div>"
    assert _html.fields([("a", None), ("b", ""), ("c", []), ("d", 0)]) == (
        "<table><tr><th>d</th><td>0</td></tr></table>"
    )
    assert _html.fields([("a", None)]) == "" and _html.table(["x"], []) == ""
    rows = [[i, HOSTILE] for i in range(_html.ROW_LIMIT + 5)]
    cut = _html.table(["n", "<th>"], rows)
    assert cut.count("<tr>") == _html.ROW_LIMIT + 1 and "… 5 more rows" in cut
    assert "&lt;th&gt;" in cut and ESCAPED in cut
    assert "more rows" not in _html.table(["n"], rows, limit=None)


def write_features(path: Path) -> str:
    table = pa.table(
        {
            "uuid": ["A", "A", "B"],
            "nodeId": ["1", "1", "1"],
            "ts": pa.array([T0, T0 + timedelta(days=1), T0], pa.timestamp("ms", tz="UTC")),
            "x": [1.0, 2.0, 3.0],
        }
    )
    location = str(path / "basic.parquet")
    pq.write_table(table, location)
    return location


def test_feature_definitions_show_what_they_define() -> None:
    device = ts.Entity("device", join_keys=["uuid", "nodeId"], description=HOSTILE)
    assert ESCAPED in page_of(device, "<b>entity device</b>", "uuid, nodeId")
    view = ts.FeatureView(
        "basic",
        entities=[device, "site"],
        source={"type": "doris", "url": "mysql://me:${PW}@fe.example:9030/db", "table": "snaps"},
        schema=[ts.Field("x", ts.Float64), ts.Field("arr", ts.Array(ts.Float32))],
        ttl=timedelta(days=30),
        timestamp_field="ts",
        online_rows=8,
        tags={"team": HOSTILE},
        description="vibration",
    )
    page = page_of(
        view,
        "<b>feature view basic</b>: 2 features, vibration",
        "device, site",
        "doris table snaps on fe.example:9030",
        "x float64, arr list&lt;float32&gt;",
        "30 days",
        "latest 8 rows per entity",
    )
    assert "${PW}" not in page and "me:" not in page and html.escape('"team"') in page
    files = ts.FeatureView("raw", entities=["device"], source="./f.parquet", online=False)
    page_of(files, "features from its source", "files ./f.parquet", "<td>no</td>")
    service = ts.FeatureService("svc", features=["basic:x", HOSTILE])
    assert ESCAPED in page_of(service, "<b>feature service svc</b>: 2 features", "basic:x")
    ratios = ts.OnDemandFeatureView("ratios", features={"hf_lf": "basic:x / basic:y & 1"})
    page_of(ratios, "on-demand feature view ratios", "1 feature", "basic:x / basic:y &amp; 1")
    planned = ts.PlannedChange("feature view", HOSTILE, "add")
    assert ESCAPED in page_of(planned, "feature view", "add")


def test_feature_store_results(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws", user="alice")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    basic = ts.FeatureView(
        "basic",
        entities=[device],
        source=write_features(tmp_path),
        timestamp_field="ts",
        schema=[ts.Field("x", ts.Float64)],
        description=HOSTILE,
    )
    (planned, _) = ws.features.plan([device, basic])
    page_of(planned, "<b>entity device</b>: add")
    applied = ws.features.apply([device, basic])
    page_of(applied, "applied as registry v1", "2 added, 0 updated", "feature view", "basic")
    page_of(ws.features.apply([device]), "apply: nothing changed")
    (registry,) = ws.features.history()
    page_of(registry, "<b>registry v1</b>", "alice", "+ feature view basic")
    assert _html.iso(registry.created_at) in registry._repr_html_()
    (materialized,) = ws.features.materialize(T0, T0 + timedelta(days=2))
    page_of(materialized, "<b>materialized basic</b>", "<td>3</td>", "<td>2</td>")
    ingested = ws.features.ingest("basic")
    page_of(ingested, "<b>ingested basic</b>: offline store v1", "<td>3</td>")
    page_of(
        ws.features,
        "<b>feature store</b>: 1 feature view, 0 feature services",
        "online store <code>",
        "uuid, nodeId",
        "files " + html.escape(str(tmp_path / "basic.parquet")),
    )
    page_of(ws, "trainstore workspace", "feature-registry", "v1", "offline-basic")
    page_of(ws.gc(dry_run=True), "<b>gc</b>: 0 files, 0 bytes, dry run")
    page_of(ws.verify(progress=False), "<b>verify</b>: ok", "2 versions", "1 file")


def test_a_store_without_an_online_store_still_shows(
    s3_bucket: tuple[str, dict[str, str]],
) -> None:
    url, options = s3_bucket
    # An S3 workspace has no online store until one is set.
    page_of(ts.Workspace.open(url, storage_options=options).features, "no online store")
    ws = ts.Workspace.open("memory://html-reprs")
    page_of(ws.features, "0 feature views", "online store <code>embedded online store memory://")
    page_of(ws, "<code>memory://html-reprs</code>", "layout ")


def test_workspace_reports_escape_paths_and_problems() -> None:
    gc = ts.GcReport(files=[f"a/{HOSTILE}.parquet", "b.parquet"], bytes=2048, removed=True)
    assert ESCAPED in page_of(gc, "2 files", "2.0 KiB", "removed", "b.parquet")
    verify = ts.VerifyReport(versions=3, files=1, bytes=1, problems=[HOSTILE], orphans=["o"])
    assert ESCAPED in page_of(verify, "1 problem", "3 versions", "1 byte", "1 orphan file", "o")


def test_training_set_results(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws", user="alice")
    sets = ws.training_sets
    first = sets.create("vibration", pa.table({"x": [1.0, 2.0], HOSTILE: [1, 2]}))
    second = sets.create("vibration", pa.table({"x": [1.0, 3.0, None]}))
    assert ESCAPED in page_of(first, "training set vibration@v1", "by alice", "<table>")
    assert ESCAPED in page_of(first.quality, "quality", "2 rows")
    column = first.quality.columns[0]
    page_of(column, "<b>column x</b>: Float64", "<td>1.5</td>", "completeness")
    listed = sets.list("vibration")
    page_of(listed, "versions of vibration", "2 versions", "v1", "v2", "alice")
    page_of(listed[0], "training set vibration@v", listed[0].content_hash, "bytes")
    diff = sets.diff(first, second)
    assert ESCAPED in page_of(
        diff, "diff vibration@v1 → vibration@v2", "rows 2 → 3", "removed", "Int64", "1.5 → 2"
    )
    page_of(sets.fsck(progress=False), "<b>fsck</b>: ok", "2 versions")
    orphan = ts.OrphanFile(path=f"items/{HOSTILE}.parquet", size=10)
    assert ESCAPED in page_of(orphan, "orphan file", "10 bytes")
    fsck = ts.FsckReport(versions=1, files=1, bytes=5, problems=[HOSTILE], orphans=[orphan])
    assert ESCAPED in page_of(fsck, "1 problem", "1 orphan file")
    reproduction = ts.Reproduction(
        version="vibration@v1",
        matches=False,
        recorded_hash="aaa",
        rebuilt_hash="bbb",
        differences=diff,
    )
    page_of(reproduction, "reproduction of vibration@v1", "differs", "aaa", "bbb", "rows 2 → 3")


def test_sharing_results(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws", user="alice")
    sets = ws.training_sets
    sets.create("vibration", pa.table({"x": [1.0]}))
    access = sets.grant("vibration", "bob", "read")
    page_of(access, "<b>access</b>: everyone write, set by alice", "bob", "read", "admin")
    event = sets.audit_log("vibration")[0]
    page_of(event, "<b>audit event create</b>", "alice", "v1", _html.iso(event.at))
    page_of(sets.acquire_lease("vibration", timedelta(minutes=5)), "lease of alice", "held")
    draft = sets.draft("vibration", base="v1")
    page_of(draft, "draft of vibration", "1 row", "from v1", draft.id)
    hostile = ts.Access(everyone=None, users={HOSTILE: "admin"}, set_by=None, set_at=None)
    assert ESCAPED in page_of(hostile, "everyone nothing", "implicit")
    refused = ts.AuditEvent(T0, "bob", "delete", None, False, HOSTILE)
    assert ESCAPED in page_of(refused, "audit event delete</b>: refused", "2026-11-01T00:00:00Z")
    broken = ts.Lease(HOSTILE, T0, T0 + timedelta(hours=1), "broken", "carol")
    assert ESCAPED in page_of(broken, "broken", "carol", "2026-11-01T01:00:00Z")


def test_source_results() -> None:
    raw = ts.synthetic_snapshots(devices=1, nodes_per_device=1, snapshots=50, malformed_rate=0.2)
    _, report = ts.parse_snapshots(raw)
    assert report.malformed > 0
    page_of(report, "parse report", "50 rows", f"{report.malformed} malformed value")
    hostile = ts.ParseReport(rows=1, columns={HOSTILE: ts.ColumnReport(malformed=1, missing=0)})
    assert ESCAPED in page_of(hostile, "1 row", "1 malformed value")
    page_of(ts.ColumnReport(malformed=2, missing=3), "column report", "2 malformed", "3 missing")
    page_of(ts.WriteOutcome(10, False, 2), "write", "10 rows written", "2 attempts")
    page_of(ts.WriteOutcome(0, True, 1), "already written before", "1 attempt")


def test_model_results() -> None:
    epoch = ts.EpochMetrics(epoch=3, train_loss=0.5, validation_loss=None)
    page_of(epoch, "<b>epoch 3</b>", "0.5")
    card = {
        "metrics": [{"epoch": 1, "train_loss": 0.25, "validation_loss": 0.125}],
        "lineage": {"training_sets": [f"{HOSTILE}@v1"]},
    }
    model = ts.ModelVersion(name="m", version=2, author="alice", created_at=T0, card=card)
    assert ESCAPED in page_of(model, "<b>model m@v2</b>: by alice", "0.125")
    errors = ts.FeatureErrors(feature=HOSTILE, mae=1.0, rmse=2.0, mape=None)
    assert ESCAPED in page_of(errors, "errors of", "RMSE")
    anomaly = ts.ScoreDistribution(mean=0.5, p50=0.25, p90=1.0, p99=2.0, max=3.0)
    page_of(anomaly, "anomaly scores", "p99", "<td>2</td>")
    cls = ts.ClassScore(class_=HOSTILE, precision=0.5, recall=1.0, f1=0.6667, support=4)
    assert ESCAPED in page_of(cls, "precision", "0.6667", "<td>4</td>")
    scores = ts.ClassScores(0.75, 0.5, 0.5, 0.5, None, [cls])
    assert ESCAPED in page_of(scores, "class scores</b>: accuracy 0.75")
    assert "ROC-AUC" not in scores._repr_html_()
    classified = ts.ForecastReport(windows=4, features=[], anomaly=anomaly, classification=scores)
    page_of(classified, "forecast report</b>: 4 windows", "accuracy 0.75")
    forecast_report = ts.ForecastReport(windows=1, features=[errors])
    page_of(forecast_report, "1 window", "MAE")
    comparison = ts.Comparison("m@v1", "m@v2", forecast_report, forecast_report, 0.25)
    page = page_of(comparison, "m@v2 against m@v1", "25.0 % lower")
    assert page.count("RMSE") == 2
    gate = ts.Gate(promoted=False, reason=HOSTILE, comparison=comparison)
    assert ESCAPED in page_of(gate, "not promoted", "m@v2 against m@v1")
    rows = pa.table(
        {
            "uuid": [HOSTILE] * 25,
            "as_of": pa.array([T0] * 25, pa.timestamp("ms", tz="UTC")),
            "x<y": [1.0] * 25,
        }
    )
    forecast = ts.Forecast(table=rows, skipped=1)
    page = page_of(forecast, "25 rows", "1 entity skipped", "x&lt;y", "2026-11-01T00:00:00Z")
    assert ESCAPED in page and "… 5 more rows" in page
    assert "more rows" not in forecast._repr_html_(max_rows=30)
    page_of(ts.Backtest(table=rows), "<b>backtest</b>: 25 rows", "… 5 more rows")


def test_pipeline_results() -> None:
    task = ts.TaskRun("train", "failed", 2, timedelta(seconds=3), {"model": "m@v1"}, HOSTILE)
    run = ts.PipelineRun("r-1", "nightly", "pipeline-nightly@v2", "failed", {}, T0, T0, [task])
    page_of(run, "pipeline run", "r-1", "failed", "pipeline-nightly@v2", "train", ESCAPED)
    page_of(task, "pipeline task", "train", "2 attempts", "3.0 s", "m@v1", ESCAPED)
    summary = ts.RunSummary("r-1", "nightly", "pipeline-nightly@v2", "running", T0, None, None)
    page_of(summary, "r-1", "running", "2026-11-01T00:00:00Z")
    page_of(ts.Issue("spec.tasks[0]", 7, "cycle", HOSTILE), "cycle", "line 7", ESCAPED)
    page_of(ts.AppliedPipeline("nightly", 3, False), "nightly", "v3", "unchanged")
    page_of(ts.PipelineVersion(2, "ana", T0, "1.0"), "v2", "by ana", "document 1.0")
    invocation = ts.TaskInvocation("r-1", "train", {"x": HOSTILE}, {}, {}, {}, 1)
    page_of(invocation, "python task", "train", "attempt 1", "&lt;script&gt;")
