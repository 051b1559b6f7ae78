"""Models: a Transformer trained on a training-set version to forecast the next steps of its
scalar features, kept as versions of the workspace's model registry (``ws.models``), with
aliases such as ``champion`` that can be promoted and rolled back, compared on the same data
(:meth:`Models.compare`, :meth:`Models.promote_if_better`) and asked for forecasts
(:meth:`Models.predict`)."""

from __future__ import annotations

import builtins
import json
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from . import _html, _native
from .exceptions import InvalidInputError
from .features import _to_batch
from .sources import _utc
from .training_sets import TrainingSetVersion, _reader

if TYPE_CHECKING:
    import pandas


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
    :class:`ListFeature` for list columns). With ``task="forecast"`` it forecasts the next
    ``horizon`` steps of the numeric ones; with ``task="classify"`` it learns the class of the
    ``label`` column (booleans, integers or text) at each window's last row; with
    ``task="regress"`` the value of the numeric ``label`` column there. The label is not one
    of the features. Each entity's rows (``keys``), in ``time`` order, are cut into windows of
    ``window`` steps every ``stride`` steps; no window spans a gap longer than ``max_gap``.
    The last ``test`` of the time range is held out for testing and the ``validation`` before
    it for validation: never random rows. ``d_model``, ``heads``, ``layers``, ``d_ff`` and
    ``dropout`` size the Transformer; ``epochs``, ``batch_size``, ``learning_rate`` and
    ``seed`` drive Adam (the same seed gives the same model on the CPU).

    ``patience`` stops training early, once the validation loss has not improved for that
    many epochs in a row (``None``: every epoch runs; it needs a ``validation`` share).
    ``warmup`` shapes the learning rate: ``None`` keeps it constant; a share of the steps in
    ``[0, 1)`` raises it linearly over that share, then lowers it along a half cosine to zero
    at the last step.
    """

    features: Sequence[str | ListFeature]
    keys: Sequence[str] = ("uuid", "nodeId")
    time: str = "event_timestamp"
    task: Literal["forecast", "classify", "regress"] = "forecast"
    label: str | None = None
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
    patience: int | None = None
    warmup: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, str) or isinstance(self.keys, str):
            raise TypeError("features and keys are sequences of names; wrap a single name")
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "keys", tuple(self.keys))
        if self.task not in ("forecast", "classify", "regress"):
            raise InvalidInputError(f"invalid task {self.task!r}: forecast, classify or regress")
        if (self.task == "forecast") != (self.label is None):
            raise InvalidInputError(
                f"task {self.task!r} with label {self.label!r}: classify and regress name "
                "their label column, a forecast has none"
            )
        if self.patience is not None and (
            isinstance(self.patience, bool)
            or not isinstance(self.patience, numbers.Integral)
            or self.patience < 1
        ):
            raise InvalidInputError(
                f"invalid patience {self.patience!r}: epochs without improvement before "
                "stopping, at least 1 (or None to run every epoch)"
            )
        if self.warmup is not None and (
            isinstance(self.warmup, bool)
            or not isinstance(self.warmup, numbers.Real)
            or not 0.0 <= self.warmup < 1.0
        ):
            raise InvalidInputError(
                f"invalid warm-up {self.warmup!r}: the share of steps spent warming up, a "
                "number in [0, 1) (or None for a constant learning rate)"
            )

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
                **(
                    {} if self.label is None else {"task": {"kind": self.task, "label": self.label}}
                ),
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
                "patience": None if self.patience is None else int(self.patience),
                "schedule": (
                    {"kind": "constant"}
                    if self.warmup is None
                    else {"kind": "warmup_cosine", "warmup": float(self.warmup)}
                ),
            },
        }


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's mean squared errors, in normalised units."""

    epoch: int
    train_loss: float
    validation_loss: float | None

    def _repr_html_(self) -> str:
        return _html.title(f"epoch {self.epoch}") + _html.fields(
            [("train loss", self.train_loss), ("validation loss", self.validation_loss)]
        )


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
        rows = [[m.epoch, m.train_loss, m.validation_loss] for m in self.metrics]
        return _html.title(
            f"model {self.id}",
            f"by {self.author}",
            f"trained on {', '.join(self.lineage['training_sets'])}",
        ) + _html.table(["epoch", "train loss", "validation loss"], rows, limit=None)


@dataclass(frozen=True)
class FeatureErrors:
    """One forecast feature's errors over every forecast step, in the feature's units;
    ``mape`` in percent, over the steps whose actual value is not 0 (``None`` when none)."""

    feature: str
    mae: float
    rmse: float
    mape: float | None

    def _repr_html_(self) -> str:
        return _html.title(f"errors of {self.feature}") + self._table([self])

    @staticmethod
    def _table(errors: Sequence[FeatureErrors]) -> _html.Html:
        rows = [
            [e.feature, e.mae, e.rmse, None if e.mape is None else f"{e.mape:.3g} %"]
            for e in errors
        ]
        return _html.table(["feature", "MAE", "RMSE", "MAPE"], rows, limit=None)


@dataclass(frozen=True)
class ScoreDistribution:
    """How the windows' anomaly scores are distributed: a window's score is its forecast's
    mean squared error in standard deviations (1: off by one standard deviation on average)."""

    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def _repr_html_(self) -> str:
        values = [self.mean, self.p50, self.p90, self.p99, self.max]
        return _html.title("anomaly scores") + _html.table(
            ["mean", "p50", "p90", "p99", "max"], [values]
        )


@dataclass(frozen=True)
class ClassScore:
    """One class's precision, recall and F1, and how many windows were of it."""

    class_: str
    precision: float
    recall: float
    f1: float
    support: int

    def _repr_html_(self) -> str:
        return _html.title(f"class {self.class_}") + _html.fields(
            [
                ("precision", self.precision),
                ("recall", self.recall),
                ("F1", self.f1),
                ("windows", self.support),
            ]
        )


@dataclass(frozen=True)
class ClassScores:
    """A classifier's scores: accuracy; precision, recall and F1 averaged over the classes;
    ROC-AUC (of the second class when there are two, else each class against the rest,
    averaged; ``None`` when it cannot be measured); and each class's figures."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    classes: builtins.list[ClassScore]

    def _repr_html_(self) -> str:
        rows = [[k.class_, k.precision, k.recall, k.f1, k.support] for k in self.classes]
        return _html.title(
            "class scores",
            f"accuracy {self.accuracy:.4g}",
            None if self.roc_auc is None else f"ROC-AUC {self.roc_auc:.4g}",
        ) + _html.table(["class", "precision", "recall", "F1", "windows"], rows, limit=None)


@dataclass(frozen=True)
class ForecastReport:
    """How well a model does on the windows of a training-set version: errors per forecast
    feature (or for the regressed label) in its units, the distribution of the windows'
    anomaly scores, or a classifier's scores (``classification``, its ``features`` then
    empty)."""

    windows: int
    features: builtins.list[FeatureErrors]
    anomaly: ScoreDistribution | None = None
    classification: ClassScores | None = None

    def _repr_html_(self) -> str:
        scores = (
            FeatureErrors._table(self.features)
            if self.classification is None
            else self.classification._repr_html_()
        )
        return _html.title("forecast report", _html.count(self.windows, "window")) + scores


def _report(raw: dict[str, Any]) -> ForecastReport:
    scores = raw.get("classification")
    classification = None
    if scores is not None:
        classes = [
            ClassScore(
                class_=k["class"],
                precision=k["precision"],
                recall=k["recall"],
                f1=k["f1"],
                support=k["support"],
            )
            for k in scores["classes"]
        ]
        classification = ClassScores(**{**scores, "classes": classes})
    return ForecastReport(
        windows=raw["windows"],
        features=[FeatureErrors(**f) for f in raw["features"]],
        anomaly=ScoreDistribution(**raw["anomaly"]),
        classification=classification,
    )


@dataclass(frozen=True)
class Forecast:
    """A model's forecast (:meth:`Models.predict`): what follows each entity's latest window.

    ``table`` has one row per entity and forecast step: the key columns, ``as_of`` (the time
    of the entity's last row), ``step`` (1 for the next row) and one float64 column per
    forecast feature, in its units. ``skipped`` counts the entities whose latest rows make
    no window (too few, or a gap longer than the model's windows allow): they have no row.
    """

    table: pa.Table
    skipped: int

    def to_pandas(self) -> pandas.DataFrame:
        """The forecast rows as a pandas DataFrame."""
        return self.table.to_pandas()

    def __repr__(self) -> str:
        return f"Forecast(rows={self.table.num_rows}, skipped={self.skipped})"

    def _repr_html_(self, max_rows: int = _html.ROW_LIMIT) -> str:
        return _html.title(
            "forecast",
            _html.count(self.table.num_rows, "row"),
            f"{_html.count(self.skipped, 'entity', 'entities')} skipped",
        ) + _html.arrow(self.table, max_rows)


@dataclass(frozen=True)
class Backtest:
    """Every window of a training-set version forecast beside what followed it
    (:meth:`Models.backtest`).

    ``table`` has one row per window and forecast step: the key columns, ``as_of`` (the time
    of the window's last row), ``step``, and per forecast feature (or the regressed label)
    ``<name>`` (what happened) and ``<name>_forecast``, in their units, then the window's
    ``anomaly_score`` (its mean squared error in standard deviations). A classifier's has
    ``<label>``, ``<label>_forecast`` and ``<label>_probability``.
    """

    table: pa.Table

    def to_pandas(self) -> pandas.DataFrame:
        """The rows as a pandas DataFrame."""
        return self.table.to_pandas()

    def plot(self, feature: str | None = None, key: Any = None, ax: Any = None) -> Any:
        """Plots ``feature`` (the first forecast one by default) against time for one
        entity (``key``: the value of the first key column; the first entity by default):
        what happened, and the one-step forecasts. Needs matplotlib; returns the Axes."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("Backtest.plot needs matplotlib: pip install matplotlib") from e
        names = self.table.column_names
        forecasts = [n.removesuffix("_forecast") for n in names if n.endswith("_forecast")]
        if not forecasts:
            raise InvalidInputError("this backtest has no forecast column to plot")
        feature = feature or forecasts[0]
        if feature not in forecasts:
            raise InvalidInputError(
                f"invalid feature {feature!r}: the backtest forecasts {', '.join(forecasts)}"
            )
        first_key = names[0]
        rows = self.table.filter(pc.equal(self.table["step"], 1))
        keys = rows[first_key]
        key = keys[0].as_py() if key is None and len(keys) else key
        rows = rows.filter(pc.equal(rows[first_key], key))
        if ax is None:
            _, ax = plt.subplots()
        times = rows["as_of"].to_pylist()
        ax.plot(times, rows[feature].to_pylist(), label=f"{feature}, actual")
        ax.plot(times, rows[f"{feature}_forecast"].to_pylist(), label=f"{feature}, forecast")
        ax.set_title(f"{first_key} {key}")
        ax.legend()
        return ax

    def __repr__(self) -> str:
        return f"Backtest(rows={self.table.num_rows})"

    def _repr_html_(self, max_rows: int = _html.ROW_LIMIT) -> str:
        return _html.title("backtest", _html.count(self.table.num_rows, "row")) + _html.arrow(
            self.table, max_rows
        )


@dataclass(frozen=True)
class Comparison:
    """Two models' forecast errors on the same windows of a training-set version
    (:meth:`Models.compare`).

    ``improvement`` is one minus the mean, over the forecast features, of the challenger's
    RMSE divided by the champion's: above 0 when the challenger's errors are lower (0.1: 10 %
    lower on average), below 0 when higher. Each feature counts alike, whatever its units.
    """

    champion: str
    """``name@vN`` of the model compared against."""
    challenger: str
    champion_errors: ForecastReport
    challenger_errors: ForecastReport
    improvement: float

    def _repr_html_(self) -> str:
        verdict = "lower" if self.improvement >= 0 else "higher"
        side = '<td style="vertical-align:top">'
        return (
            _html.title(
                f"{self.challenger} against {self.champion}",
                f"errors {abs(self.improvement) * 100:.1f} % {verdict}",
            )
            + f"<table><tr><th>champion {_html.text(self.champion)}</th>"
            + f"<th>challenger {_html.text(self.challenger)}</th></tr>"
            + f"<tr>{side}{self.champion_errors._repr_html_()}</td>"
            + f"{side}{self.challenger_errors._repr_html_()}</td></tr></table>"
        )


def _comparison(raw: dict[str, Any]) -> Comparison:
    return Comparison(
        champion=raw["champion"],
        challenger=raw["challenger"],
        champion_errors=_report(raw["champion_errors"]),
        challenger_errors=_report(raw["challenger_errors"]),
        improvement=raw["improvement"],
    )


@dataclass(frozen=True)
class Gate:
    """What :meth:`Models.promote_if_better` decided, and why."""

    promoted: bool
    reason: str
    comparison: Comparison | None
    """The comparison it decided by (``None`` when nothing held the alias, or the challenger
    did already)."""

    def _repr_html_(self) -> str:
        decision = "promoted" if self.promoted else "not promoted"
        compared = "" if self.comparison is None else self.comparison._repr_html_()
        return _html.title(decision, self.reason) + compared


def _version(raw: str) -> ModelVersion:
    data = json.loads(raw)
    return ModelVersion(
        name=data["name"],
        version=data["version"],
        author=data["author"],
        created_at=_utc(data["created_at"]),
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
        checkpoints: str | os.PathLike[str] | None = None,
    ) -> ModelVersion:
        """Trains a model on training-set version ``data`` as ``config`` says and registers it
        as a new version of ``name``, with ``data`` as its lineage.

        With ``base`` (``"name@champion"``, or a :class:`ModelVersion`), training starts from
        that model's weights and keeps its scaling; its features, window and size must be
        ``config``'s. ``incremental_ratio`` replays that many windows, per new training
        window, from the training sets the base was trained on, so that it does not forget
        them.

        With ``checkpoints`` (a directory, created if missing), the run saves a checkpoint
        after every epoch there; the same call run again (after a crash, or with more
        epochs) resumes from the last one and ends as an uninterrupted run would."""
        request = config._request()
        if base is not None:
            base_name, reference = _model_ref(base)
            request["base"] = f"{base_name}@{reference}"
        request["incremental_ratio"] = incremental_ratio
        if checkpoints is not None:
            request["checkpoints"] = os.fspath(checkpoints)
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
        return _report(raw)

    def predict(
        self, model: ModelVersion | str, data: Any, time_column: str | None = None
    ) -> Forecast:
        """``model``'s forecast of what follows each entity's latest window in ``data``: a
        :class:`TrainingSetVersion`, or rows holding the model's key, time and feature
        columns (in any order) as a pyarrow Table, RecordBatch or RecordBatchReader, a
        pandas or polars DataFrame, or an iterator of RecordBatches such as a source's
        ``stream(start, end)``. Rows are streamed: only each entity's latest window is held,
        so they may be more than memory holds. ``time_column`` names the rows' time column
        when it is not the model's (a snapshot source's ``"time"`` for a model trained on a
        training set's ``event_timestamp``). One row per entity and forecast step, in the
        features' units. The model is loaded once and kept for the next calls (the last few
        used)."""
        name, reference = _model_ref(model)
        if isinstance(data, TrainingSetVersion):
            if time_column is not None:
                raise InvalidInputError("time_column is for rows; a training set has its own")
            batch, skipped = self._native.predict_version(
                name, reference, data.name, str(data.version)
            )
        else:
            batch, skipped = self._native.predict(name, reference, _reader(data), time_column)
        return Forecast(table=pa.Table.from_batches([batch]), skipped=skipped)

    def predict_online(self, model: ModelVersion | str, entity_rows: Any) -> Forecast:
        """``model``'s real-time forecast for each entity of ``entity_rows`` (its join keys,
        as pyarrow, pandas, polars, a dict of columns or a list of dicts): what follows the
        entity's latest rows as the online store keeps them. They come from the one feature
        view with the model's keys and features whose ``online_rows`` is at least the model's
        window; entity rows without a forecast (no or too few recent rows) are counted in
        ``skipped``. For a serving loop, ``model`` (``"name@champion"``) is resolved from the
        registry at most every 10 seconds, as are the feature views: a promotion is seen
        within that time."""
        name, reference = _model_ref(model)
        rows = entity_rows if isinstance(entity_rows, list) else _to_batch(entity_rows)
        batch, skipped = self._native.predict_online(name, reference, rows)
        return Forecast(table=pa.Table.from_batches([batch]), skipped=skipped)

    def backtest(self, model: ModelVersion | str, data: TrainingSetVersion) -> Backtest:
        """Every window of ``data``, cut and scaled as ``model``'s training rows were,
        forecast beside what followed it, with each window's anomaly score; ``.plot()`` draws
        a feature's forecasts against what happened."""
        name, reference = _model_ref(model)
        batch = self._native.backtest(name, reference, data.name, str(data.version))
        return Backtest(table=pa.Table.from_batches([batch]))

    def compare(
        self,
        champion: ModelVersion | str,
        challenger: ModelVersion | str,
        data: TrainingSetVersion,
    ) -> Comparison:
        """``champion`` and ``challenger`` forecasting the same windows of ``data`` (cut as
        the champion's were): both must forecast the same features from windows of the same
        length. Their errors per feature, and the challenger's ``improvement``."""
        raw = self._native.compare(
            _model_ref(champion), _model_ref(challenger), data.name, str(data.version)
        )
        return _comparison(json.loads(raw))

    def promote_if_better(
        self,
        challenger: ModelVersion | str,
        data: TrainingSetVersion,
        alias: str = "champion",
        min_improvement: float = 0.0,
    ) -> Gate:
        """Points ``alias`` of ``challenger``'s model at ``challenger`` if nothing holds the
        alias yet, or if it forecasts ``data`` better than the version the alias names, by
        more than ``min_improvement`` (a share of the champion's error below 1; see
        :attr:`Comparison.improvement`). Returns the decision, its reason and the comparison
        it was made by."""
        name, reference = _model_ref(challenger)
        raw = json.loads(
            self._native.promote_if_better(
                name, reference, (data.name, str(data.version)), alias, min_improvement
            )
        )
        comparison = raw["comparison"]
        return Gate(
            promoted=raw["promoted"],
            reason=raw["reason"],
            comparison=None if comparison is None else _comparison(comparison),
        )

    def delete(self, model: ModelVersion | str) -> None:
        """Deletes a version (not one an alias or tag names)."""
        self._native.delete(*_model_ref(model))

    def __repr__(self) -> str:
        return "Models()"
