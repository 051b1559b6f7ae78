"""Models from Python: trained on a training-set version, registered with it as lineage,
promoted and rolled back; bad configurations refused before anything is trained."""

from __future__ import annotations

import dataclasses
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
        ts.TrainConfig(features=["meanLf"], task="classify")  # type: ignore[arg-type]
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
