"""Models from Python: trained on a training-set version, registered with it as lineage,
promoted and rolled back; bad configurations refused before anything is trained."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

import trainstore as ts


def waves(rows: int = 200) -> pa.Table:
    """Two devices whose meanLf is a sine wave and whose spectrum is a short list, one row a
    minute."""
    start = datetime(2025, 1, 6, tzinfo=timezone.utc)
    uuid, node, time, mean_lf, spectrum = [], [], [], [], []
    for device, phase in [("704A0ED440F4", 0.0), ("704A0ED440F5", 2.0)]:
        for t in range(rows):
            uuid.append(device)
            node.append("1465")
            time.append(start + timedelta(minutes=t))
            mean_lf.append(math.sin(t / 5 + phase))
            spectrum.append([math.cos(t / 5 + phase)] * (1 + t % 3))
    return pa.table(
        {
            "uuid": uuid,
            "nodeId": node,
            "event_timestamp": pa.array(time, pa.timestamp("ms", tz="UTC")),
            "meanLf": mean_lf,
            "spectrum": pa.array(spectrum, pa.list_(pa.float32())),
        }
    )


SMALL = dict(d_model=16, heads=2, layers=1, d_ff=32, dropout=0.0, window=16, stride=2)


def test_a_model_is_trained_registered_promoted_and_rolled_back(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves())
    config = ts.TrainConfig(
        features=["meanLf", ts.ListFeature("spectrum", 2, fit="pool")],
        epochs=3,
        batch_size=16,
        learning_rate=3e-3,
        seed=5,
        **SMALL,  # type: ignore[arg-type]
    )
    first = ws.models.train("waves-model", data, config)
    assert first.id == "waves-model@v1"
    assert first.lineage["training_sets"] == [data.id]
    assert [m.epoch for m in first.metrics] == [1, 2, 3]
    assert first.validation_loss is not None and first.validation_loss < 0.5
    assert "waves-model@v1" in first._repr_html_()
    report = ws.models.evaluate(first, data)
    assert report.windows > 0 and [f.feature for f in report.features] == ["meanLf"]
    errors = report.features[0]
    assert errors.mae <= errors.rmse < 1.0
    assert "RMSE" in report._repr_html_()
    # The same seed trains the same model.
    second = ws.models.train("waves-model", data, config)
    assert second.metrics == first.metrics

    assert ws.models.promote(first) == 1
    assert ws.models.promote("waves-model@v2") == 2
    assert ws.models.get("waves-model@champion").version == 2
    assert ws.models.rollback("waves-model") == 1
    assert ws.models.get("waves-model@champion").version == 1
    with pytest.raises(ts.InvalidInputError):
        ws.models.delete("waves-model@v1")  # the champion
    ws.models.delete(second)
    assert [v.version for v in ws.models.list("waves-model")] == [1]
    again = ts.Workspace.open(tmp_path / "ws")
    assert again.models.get("waves-model").card == first.card


def test_bad_configurations_are_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves(40))
    with pytest.raises(ts.InvalidInputError, match="meanHf"):
        ws.models.train("m", data, ts.TrainConfig(features=["meanHf"], **SMALL))  # type: ignore[arg-type]
    with pytest.raises(ts.InvalidInputError, match="no window fits"):
        ws.models.train("m", data, ts.TrainConfig(features=["meanLf"]))  # 40 rows, windows of 64
    with pytest.raises(ts.InvalidInputError, match="heads"):
        ws.models.train("m", data, ts.TrainConfig(features=["meanLf"], heads=3))
    with pytest.raises(TypeError):
        ts.TrainConfig(features="meanLf")
    with pytest.raises(ValueError, match="classify"):
        ts.TrainConfig(features=["meanLf"], task="classify")
    with pytest.raises(ts.NotFoundError):
        ws.models.get("m")
    assert ws.models.list("m") == []


def test_a_model_trained_further_records_its_base_and_every_training_set(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    first = ws.training_sets.create("waves", waves())
    later = ws.training_sets.create("waves-later", waves())
    config = ts.TrainConfig(features=["meanLf"], keys=["uuid"], epochs=1, **SMALL)  # type: ignore[arg-type]
    base = ws.models.train("m", first, config)
    ws.models.promote(base)
    further = ws.models.train("m", later, config, base="m@champion", incremental_ratio=0.5)
    assert further.lineage["base"] == base.id
    assert further.lineage["training_sets"] == [later.id, first.id]
    assert further.card["normaliser"] == base.card["normaliser"]
    with pytest.raises(ts.InvalidInputError, match="model size"):
        ws.models.train("m", later, dataclasses.replace(config, d_ff=64), base=base)
    with pytest.raises(ts.InvalidInputError, match="incremental ratio"):
        ws.models.train("m", later, config, base=base, incremental_ratio=-1)
    with pytest.raises(ts.InvalidInputError, match="name the base model"):
        ws.models.train("m", later, config, incremental_ratio=0.5)


def test_checkpoints_are_kept_and_a_longer_run_resumes_from_them(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves())
    config = ts.TrainConfig(
        features=["meanLf"],
        epochs=2,
        batch_size=16,
        learning_rate=3e-3,
        seed=5,
        **SMALL,  # type: ignore[arg-type]
    )
    checkpoints = tmp_path / "checkpoints"
    first = ws.models.train("m", data, config, checkpoints=checkpoints)
    assert (checkpoints / "checkpoint.json").is_file()
    longer = ws.models.train(
        "m", data, dataclasses.replace(config, epochs=3), checkpoints=str(checkpoints)
    )
    assert [m.epoch for m in longer.metrics] == [1, 2, 3]
    assert longer.metrics[:2] == first.metrics


def test_patience_stops_early_and_warmup_is_recorded(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves())
    # A learning rate this large makes the validation loss jump about: some two epochs in a
    # row fail to beat the best long before the sixtieth.
    diverging = ts.TrainConfig(
        features=["meanLf"],
        epochs=60,
        batch_size=16,
        learning_rate=10.0,
        patience=2,
        **SMALL,  # type: ignore[arg-type]
    )
    stopped = ws.models.train("m", data, diverging)
    assert 0 < len(stopped.metrics) < 60
    # It stopped two epochs after its best one, not before.
    losses = [m.validation_loss for m in stopped.metrics]
    best = losses.index(min(losses))  # type: ignore[type-var]
    assert len(losses) - (best + 1) == 2, losses
    assert stopped.card["training"]["patience"] == 2
    assert stopped.card["training"]["schedule"] == {"kind": "constant"}
    warm = ts.TrainConfig(features=["meanLf"], epochs=2, batch_size=16, warmup=0.2, **SMALL)  # type: ignore[arg-type]
    schedule = ws.models.train("m", data, warm).card["training"]["schedule"]
    assert schedule == {"kind": "warmup_cosine", "warmup": 0.2}


def test_a_model_forecasts_one_row_per_entity(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    rows = waves()
    data = ws.training_sets.create("waves", rows)
    config = ts.TrainConfig(features=["meanLf"], epochs=1, batch_size=16, **SMALL)  # type: ignore[arg-type]
    model = ws.models.train("m", data, config)
    columns = ["uuid", "nodeId", "as_of", "step", "meanLf"]

    forecast = ws.models.predict(model, data)
    assert isinstance(forecast.table, pa.Table)
    assert forecast.table.column_names == columns
    assert forecast.skipped == 0
    assert sorted(forecast.table.column("uuid").to_pylist()) == ["704A0ED440F4", "704A0ED440F5"]
    assert forecast.table.column("step").to_pylist() == [1, 1]
    last = datetime(2025, 1, 6, tzinfo=timezone.utc) + timedelta(minutes=199)
    assert forecast.table.column("as_of").to_pylist() == [last, last]
    assert forecast.table.schema.field("meanLf").type == pa.float64()
    assert all(math.isfinite(v) for v in forecast.table.column("meanLf").to_pylist())
    assert "2 rows" in forecast._repr_html_() and "meanLf" in forecast._repr_html_()
    assert list(forecast.to_pandas().columns) == columns

    # A third device with fewer rows than a window has no forecast, and is counted.
    few = rows.slice(0, 5).set_column(0, "uuid", pa.array(["704A0ED440F6"] * 5))
    with_few = pa.concat_tables([rows, few])
    from_table = ws.models.predict("m@v1", with_few)
    assert from_table.skipped == 1
    assert from_table.table.equals(forecast.table)
    assert ws.models.predict("m", with_few.to_reader()).table.equals(forecast.table)
    from_pandas = ws.models.predict(model, with_few.to_pandas())
    assert from_pandas.skipped == 1 and from_pandas.table.num_rows == 2
    with pytest.raises(ts.InvalidInputError, match="meanLf"):
        ws.models.predict(model, rows.drop_columns(["meanLf"]))
    # Streamed a batch at a time, as a source's stream() yields them, its time column named
    # as snapshots name it.
    renamed = with_few.rename_columns(
        ["time" if n == "event_timestamp" else n for n in with_few.column_names]
    )
    streamed = ws.models.predict(model, iter(renamed.to_batches(max_chunksize=7)), "time")
    assert streamed.table.equals(forecast.table) and streamed.skipped == 1


def test_a_challenger_is_promoted_only_when_it_forecasts_better(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves())
    config = ts.TrainConfig(
        features=["meanLf"],
        epochs=2,
        batch_size=16,
        learning_rate=3e-3,
        seed=5,
        **SMALL,  # type: ignore[arg-type]
    )
    first = ws.models.train("m", data, config)
    gate = ws.models.promote_if_better(first, data)
    assert gate.promoted and gate.comparison is None and "nothing was champion" in gate.reason
    assert ws.models.get("m@champion").version == 1

    better = ws.models.train("m", data, dataclasses.replace(config, epochs=12))
    comparison = ws.models.compare("m@champion", better, data)
    assert (comparison.champion, comparison.challenger) == ("m@v1", "m@v2")
    assert [f.feature for f in comparison.champion_errors.features] == ["meanLf"]
    assert comparison.champion_errors.windows == comparison.challenger_errors.windows > 0
    champion_rmse = comparison.champion_errors.features[0].rmse
    challenger_rmse = comparison.challenger_errors.features[0].rmse
    assert comparison.improvement == pytest.approx(1 - challenger_rmse / champion_rmse)
    assert comparison.improvement > 0.2
    page = comparison._repr_html_()
    assert "m@v1" in page and "m@v2" in page and page.count("RMSE") == 2
    gate = ws.models.promote_if_better(better, data, min_improvement=0.2)
    assert gate.promoted and gate.comparison == comparison
    assert ws.models.get("m@champion").version == 2
    again = ws.models.promote_if_better("m@v2", data)
    assert not again.promoted and "already" in again.reason

    worse = ws.models.train("m", data, dataclasses.replace(config, epochs=1))
    gate = ws.models.promote_if_better(worse, data)
    assert not gate.promoted and "higher than" in gate.reason
    assert gate.comparison is not None and gate.comparison.improvement < 0
    assert "not promoted" in gate._repr_html_()
    assert ws.models.get("m@champion").version == 2


def test_bad_gate_and_schedule_settings_are_refused(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves())
    config = ts.TrainConfig(features=["meanLf"], epochs=1, batch_size=16, **SMALL)  # type: ignore[arg-type]
    model = ws.models.train("m", data, config)
    with pytest.raises(ts.InvalidInputError, match="minimum improvement"):
        ws.models.promote_if_better(model, data, min_improvement=1.5)
    with pytest.raises(ts.InvalidInputError, match="warm-up"):
        ts.TrainConfig(features=["meanLf"], warmup=1.0)
    with pytest.raises(ts.InvalidInputError, match="patience"):
        ts.TrainConfig(features=["meanLf"], patience=0)
    # The exceptions are ValueErrors too.
    with pytest.raises(ValueError):
        ts.TrainConfig(features=["meanLf"], warmup=-0.1)
    # Another model's windows cannot be compared against.
    other = ws.models.train("other", data, dataclasses.replace(config, window=8))
    with pytest.raises(ts.InvalidInputError, match="comparison"):
        ws.models.compare(model, other, data)
    with pytest.raises(ts.NotFoundError):
        ws.models.predict("missing", data)


def test_a_real_time_forecast_reads_the_recent_rows_the_online_store_keeps(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    rows = waves()
    (tmp_path / "waves").mkdir()
    pq.write_table(rows, tmp_path / "waves" / "part.parquet")
    ws = ts.Workspace.open(tmp_path / "ws")
    device = ts.Entity("device", join_keys=["uuid", "nodeId"])
    view = ts.FeatureView(
        name="waves",
        entities=[device],
        source=str(tmp_path / "waves"),
        schema=[ts.Field("meanLf", ts.Float64)],
        timestamp_field="event_timestamp",
        online_rows=16,
    )
    ws.features.apply([device, view])
    times = rows.column("event_timestamp")
    ws.features.materialize(times[0].as_py(), times[len(times) - 1].as_py())
    data = ws.training_sets.create("waves", rows)
    config = ts.TrainConfig(features=["meanLf"], epochs=1, seed=1, **SMALL)  # type: ignore[arg-type]
    model = ws.models.train("live", data, config)

    live = ws.models.predict_online(
        model,
        [{"uuid": "704A0ED440F4", "nodeId": "1465"}, {"uuid": "unknown", "nodeId": "1465"}],
    )
    assert (live.table.num_rows, live.skipped) == (1, 1)
    # The same forecast as from the device's rows in the training set.
    batch = ws.models.predict(model, data).table
    mine = batch.filter(pa.compute.equal(batch["uuid"], "704A0ED440F4"))
    assert live.table["meanLf"].to_pylist() == mine["meanLf"].to_pylist()

    # A view keeping fewer rows than the model's window is named in the error (seen by a
    # new handle: a serving one reads the registry every few seconds, not every call).
    ws.features.apply([device, dataclasses.replace(view, online_rows=4)])
    fresh = ts.Workspace.open(tmp_path / "ws")
    with pytest.raises(ts.InvalidInputError, match="online_rows to at least 16"):
        fresh.models.predict_online(model, [{"uuid": "704A0ED440F4", "nodeId": "1465"}])


def test_a_classifier_and_a_regressor_learn_their_labels(tmp_path: Path) -> None:
    rows = waves()
    mean_lf = rows.column("meanLf").to_pylist()
    change = [0.0] + [b - a for a, b in itertools.pairwise(mean_lf)]
    change = [0.0 if i % 200 == 0 else c for i, c in enumerate(change)]
    rows = rows.append_column("change", pa.array(change)).append_column(
        "rising", pa.array([c > 0 for c in change])
    )
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", rows)
    common = dict(SMALL, window=8, stride=1, epochs=4, learning_rate=3e-3, seed=2)
    config = ts.TrainConfig(features=["meanLf"], task="classify", label="rising", **common)  # type: ignore[arg-type]
    classifier = ws.models.train("updown", data, config)
    report = ws.models.evaluate(classifier, data)
    assert report.classification is not None and report.features == []
    assert [c.class_ for c in report.classification.classes] == ["false", "true"]
    assert report.classification.accuracy > 0.8
    assert "accuracy" in report._repr_html_()
    forecast = ws.models.predict(classifier, data).table
    assert set(forecast["rising"].to_pylist()) <= {"false", "true"}
    assert all(0.5 <= p <= 1.0 for p in forecast["rising_probability"].to_pylist())

    config = ts.TrainConfig(features=["meanLf"], task="regress", label="change", **common)  # type: ignore[arg-type]
    regressor = ws.models.train("change", data, config)
    report = ws.models.evaluate(regressor, data)
    assert [f.feature for f in report.features] == ["change"]
    assert report.anomaly is not None and report.classification is None
    assert ws.models.predict(regressor, data).table["change"].type == pa.float64()

    with pytest.raises(ts.InvalidInputError, match="label"):
        ts.TrainConfig(features=["meanLf"], task="classify")
    with pytest.raises(ts.InvalidInputError, match="a regression label is a number"):
        bad = ts.TrainConfig(features=["meanLf"], task="regress", label="spectrum", **common)  # type: ignore[arg-type]
        ws.models.train("bad", data, bad)


def test_a_backtest_puts_every_windows_forecast_beside_what_followed(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    data = ws.training_sets.create("waves", waves())
    config = ts.TrainConfig(features=["meanLf"], epochs=1, seed=3, **SMALL)  # type: ignore[arg-type]
    model = ws.models.train("waves-model", data, config)
    backtest = ws.models.backtest(model, data)
    table = backtest.table
    assert table.column_names == [
        "uuid",
        "nodeId",
        "as_of",
        "step",
        "meanLf",
        "meanLf_forecast",
        "anomaly_score",
    ]
    report = ws.models.evaluate(model, data)
    assert table.num_rows == report.windows
    assert report.anomaly is not None
    scores = table["anomaly_score"].to_pylist()
    assert math.isclose(sum(scores) / len(scores), report.anomaly.mean, rel_tol=1e-9)
    # What followed each window is the wave itself, one minute after the window's end.
    start = datetime(2025, 1, 6, tzinfo=timezone.utc)
    for row in table.slice(0, 5).to_pylist():
        phase = 0.0 if row["uuid"] == "704A0ED440F4" else 2.0
        t = (row["as_of"] - start) / timedelta(minutes=1) + 1
        assert math.isclose(row["meanLf"], math.sin(t / 5 + phase), abs_tol=1e-5)
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            backtest.plot()
    else:
        ax = backtest.plot("meanLf")
        assert len(ax.get_lines()) == 2
        with pytest.raises(ts.InvalidInputError, match="meanHf"):
            backtest.plot("meanHf")
