"""Models: a Transformer trained on a training-set version to forecast the next steps of its
scalar features, kept as versions of the workspace's model registry (``ws.models``), with
aliases such as ``champion`` that can be promoted and rolled back."""

from __future__ import annotations

import builtins
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from . import _native
from .training_sets import TrainingSetVersion


@dataclass(frozen=True)
class ListFeature:
    """A list feature (``peakPowers``, ``bandSpectrum``...) as ``length`` channels: its first
    values, padded when shorter (``fit="truncate"``), or ``length`` bins of consecutive
    values, each their mean (``fit="pool"``)."""

    name: str
    length: int
    fit: Literal["truncate", "pool"] = "truncate"


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how.

    ``features`` are the columns the model reads (names of numeric columns, or
    :class:`ListFeature` for list columns); it forecasts the next ``horizon`` steps of the
    numeric ones. Each entity's rows (``keys``), in ``time`` order, are cut into windows of
    ``window`` steps every ``stride`` steps; no window spans a gap longer than ``max_gap``.
    The last ``test`` of the time range is held out for testing and the ``validation`` before
    it for validation: never random rows. ``d_model``, ``heads``, ``layers``, ``d_ff`` and
    ``dropout`` size the Transformer; ``epochs``, ``batch_size``, ``learning_rate`` and
    ``seed`` drive Adam (the same seed gives the same model on the CPU).
    """

    features: Sequence[str | ListFeature]
    keys: Sequence[str] = ("uuid", "nodeId")
    time: str = "event_timestamp"
    task: Literal["forecast"] = "forecast"
    window: int = 64
    stride: int = 8
    horizon: int = 1
    max_gap: timedelta = timedelta(hours=1)
    validation: float = 0.1
    test: float = 0.1
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.features, str) or isinstance(self.keys, str):
            raise TypeError("features and keys are sequences of names; wrap a single name")
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "keys", tuple(self.keys))
        if self.task != "forecast":
            raise ValueError(f"task {self.task!r} is not supported: forecast is")

    def _request(self) -> dict[str, Any]:
        def feature(f: str | ListFeature) -> dict[str, Any]:
            if isinstance(f, ListFeature):
                fit = {"truncate": "TruncateOrPad", "pool": "MeanPool"}.get(f.fit)
                if fit is None:
                    raise ValueError(f"fit {f.fit!r} of {f.name!r} is not truncate or pool")
                return {"name": f.name, "shape": {"List": {"len": f.length, "fit": fit}}}
            return {"name": f, "shape": "Scalar"}

        return {
            "layout": {
                "keys": list(self.keys),
                "time": self.time,
                "features": [feature(f) for f in self.features],
            },
            "windows": {
                "length": self.window,
                "stride": self.stride,
                "horizon": self.horizon,
                "max_gap_ms": int(self.max_gap / timedelta(milliseconds=1)),
            },
            "split": {"validation": self.validation, "test": self.test},
            "model": {
                "d_model": self.d_model,
                "heads": self.heads,
                "layers": self.layers,
                "d_ff": self.d_ff,
                "dropout": self.dropout,
            },
            "training": {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "learning_rate": self.learning_rate,
                "seed": self.seed,
            },
        }


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's mean squared errors, in normalised units."""

    epoch: int
    train_loss: float
    validation_loss: float | None


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version."""

    name: str
    version: int
    author: str
    created_at: datetime
    card: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"

    @property
    def metrics(self) -> builtins.list[EpochMetrics]:
        """What each epoch of its training measured."""
        return [EpochMetrics(**m) for m in self.card["metrics"]]

    @property
    def validation_loss(self) -> float | None:
        """The last epoch's validation loss, by which versions are compared."""
        metrics = self.metrics
        return metrics[-1].validation_loss if metrics else None

    @property
    def lineage(self) -> dict[str, Any]:
        """The training-set versions it was trained on, its base model, the library."""
        lineage: dict[str, Any] = self.card["lineage"]
        return lineage

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{m.epoch}</td><td>{m.train_loss:.4g}</td>"
            f"<td>{'' if m.validation_loss is None else f'{m.validation_loss:.4g}'}</td></tr>"
            for m in self.metrics
        )
        sets = ", ".join(self.lineage["training_sets"])
        return (
            f"<b>{html.escape(self.id)}</b> by {html.escape(self.author)}, trained on "
            f"{html.escape(sets)}<table><tr><th>epoch</th><th>train loss</th>"
            f"<th>validation loss</th></tr>{rows}</table>"
        )


@dataclass(frozen=True)
class FeatureErrors:
    """One forecast feature's errors over every forecast step, in the feature's units;
    ``mape`` in percent, over the steps whose actual value is not 0 (``None`` when none)."""

    feature: str
    mae: float
    rmse: float
    mape: float | None


@dataclass(frozen=True)
class ForecastReport:
    """How well a model forecasts the windows of a training-set version."""

    windows: int
    features: builtins.list[FeatureErrors]

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(f.feature)}</td><td>{f.mae:.4g}</td><td>{f.rmse:.4g}</td>"
            f"<td>{'' if f.mape is None else f'{f.mape:.3g} %'}</td></tr>"
            for f in self.features
        )
        return (
            f"{self.windows} windows<table><tr><th>feature</th><th>MAE</th><th>RMSE</th>"
            f"<th>MAPE</th></tr>{rows}</table>"
        )


def _version(raw: str) -> ModelVersion:
    data = json.loads(raw)
    return ModelVersion(
        name=data["name"],
        version=data["version"],
        author=data["author"],
        created_at=datetime.fromtimestamp(data["created_at"] / 1000, tz=timezone.utc),
        card=data["card"],
    )


def _model_ref(model: ModelVersion | str) -> tuple[str, str]:
    """``(name, reference)`` of a version, or of ``"name@ref"`` (``name`` alone: latest)."""
    if isinstance(model, ModelVersion):
        return model.name, str(model.version)
    name, _, reference = model.partition("@")
    return name, reference or "latest"


class Models:
    """A workspace's models (``ws.models``)."""

    def __init__(self, native: _native.Models) -> None:
        self._native = native

    def train(
        self,
        name: str,
        data: TrainingSetVersion,
        config: TrainConfig,
        base: ModelVersion | str | None = None,
        incremental_ratio: float = 0.0,
    ) -> ModelVersion:
        """Trains a model on training-set version ``data`` as ``config`` says and registers it
        as a new version of ``name``, with ``data`` as its lineage.

        With ``base`` (``"name@champion"``, or a :class:`ModelVersion`), training starts from
        that model's weights and keeps its scaling; its features, window and size must be
        ``config``'s. ``incremental_ratio`` replays that many windows, per new training
        window, from the training sets the base was trained on, so that it does not forget
        them."""
        request = config._request()
        if base is not None:
            base_name, reference = _model_ref(base)
            request["base"] = f"{base_name}@{reference}"
        request["incremental_ratio"] = incremental_ratio
        raw = self._native.train(name, data.name, str(data.version), json.dumps(request))
        return _version(raw)

    def get(self, model: str) -> ModelVersion:
        """A version: ``"name"`` (the latest), ``"name@champion"``, ``"name@v3"``."""
        return _version(self._native.get(*_model_ref(model)))

    def list(self, name: str) -> builtins.list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        return [_version(json.dumps(raw)) for raw in json.loads(self._native.list(name))]

    def promote(self, model: ModelVersion | str, alias: str = "champion") -> int:
        """Points ``alias`` at the version; returns its number."""
        name, reference = _model_ref(model)
        return self._native.promote(name, reference, alias)

    def rollback(self, name: str, alias: str = "champion") -> int:
        """Points ``alias`` back where it was before its last move; returns that number."""
        return self._native.rollback(name, alias)

    def evaluate(self, model: ModelVersion | str, data: TrainingSetVersion) -> ForecastReport:
        """How well ``model`` forecasts every window of ``data`` (cut and scaled as its own
        training rows were): MAE, RMSE and MAPE per forecast feature, in its units."""
        raw = json.loads(self._native.evaluate(*_model_ref(model), data.name, str(data.version)))
        return ForecastReport(
            windows=raw["windows"],
            features=[FeatureErrors(**f) for f in raw["features"]],
        )

    def delete(self, model: ModelVersion | str) -> None:
        """Deletes a version (not one an alias or tag names)."""
        self._native.delete(*_model_ref(model))

    def __repr__(self) -> str:
        return "Models()"
