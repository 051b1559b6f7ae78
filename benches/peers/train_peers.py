"""Training a Transformer forecaster on the CPU, side by side on the same model and data in
one run: trainstore (its trainer on burn's `flex` backend, the bench binary
`benches/training.rs`) and PyTorch (in this process).

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install -r benches/requirements-train.txt
    /tmp/torchvenv/bin/python benches/peers/train_peers.py --quick   # a minute: checks it runs
    /tmp/torchvenv/bin/python benches/peers/train_peers.py           # the bars' sizes

The model is the same on both sides, its parameter count checked equal: Linear(12 -> 64), burn's
sinusoidal positional encoding (no parameters; here a buffer built by burn's formula), 2
pre-norm Transformer encoder layers (4 heads, feed-forward 128, GELU, dropout 0.1, no final
norm, as burn's `TransformerEncoder` has none), the last step's encoding -> Linear(64 -> 12).
Adam (learning rate 1e-3; epsilon 1e-5, burn's default), MSE, batches of 32. The data: 8
entities x (N/8 + 64) rows of 12 channels, each a sum of two sines (the bench's
`channel_value`, computed here in numpy alike), normalised by the training rows' mean and
standard deviation as `Dataset` does, cut into N windows of 64 steps, each forecasting all 12
channels one step ahead. The value checks compare the sides' data (the sum of every target and
of the first window) and parameter counts; the script exits 1 naming the figure otherwise.

Training: one warm-up epoch, not counted, then --epochs timed ones, the windows shuffled each
epoch, each batch's loss read back (as trainstore's trainer does); windows/s is epochs x N over
the timed epochs' wall time. Forecast latency: the trained model in inference mode (PyTorch:
`eval()` under `torch.inference_mode()`, which takes its fused encoder fast path; trainstore:
the inner backend, no autodiff) forecasts one window per call (batch 1), input built from the
window's values and the forecast read back, --forward-warmup calls and then --forward-calls
timed ones: p50 and p99.

Threads: PyTorch runs with `torch.set_num_threads(--threads)` (2). trainstore's trainer runs each
batch's two shards forward and backward on two threads of its own; its flex backend, as this
workspace builds it, has no thread pool at all: burn's `flex` feature leaves burn-flex's
`rayon` feature off (burn forwards it only through its default features, which the workspace
turns off), so every op runs on the calling thread; with `rayon` on, flex would use rayon's
global pool, sized by RAYON_NUM_THREADS, which the script sets to --threads for the bench so
that it stays pinned. Each side's CPU time over wall time in the timed epochs shows what it
used. PyTorch is measured again at 1 thread (unless --threads is 1 or --no-single-thread), and
that figure is reported beside the bar.

Real-time forecasts: the bench (Rust) and this script (Python, when trainstore is installed in
this Python: `pip install` the wheel) each build a workspace of the same rows (8 entities x 192
rows as a typed Parquet table), a feature view keeping 64 rows per entity online
(`online_rows`), materialized into the embedded online store, and a model of the same size
trained for one epoch, then time `predict_online` for one entity per call: the online store's
recent rows, the window cut and scaled, the forward pass, the forecast scaled back.

Bars (bars.py): training throughput >= 1x PyTorch's; forecast p50 <= PyTorch's (p99 beside);
real-time forecast p50, from Rust and from Python, <= PyTorch's forward p50 alone.
--no-rust leaves out trainstore's side (it runs `cargo bench`): PyTorch's figures only, no bar.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import bars
import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
ENTITIES = 8
CHANNELS = 12
LENGTH = 64
HORIZON = 1
D_MODEL, HEADS, LAYERS, D_FF, DROPOUT = 64, 4, 2, 128, 0.1
LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-5  # burn's AdamConfig default (PyTorch's is 1e-8)
MAX_TIMESCALE = 10_000  # burn's PositionalEncodingConfig default
FORWARD_WINDOWS = 64  # the windows the latency loop cycles through, as the bench does


# ---------------------------------------------------------------------------------------------
# The data, as the bench makes it


def raw_series(rows: int) -> np.ndarray:
    """[entity, row, channel], float64: the bench's `rows`, in their units."""
    e = np.arange(ENTITIES, dtype=np.float64)[:, None, None]
    t = np.arange(rows, dtype=np.float64)[None, :, None]
    c = np.arange(CHANNELS, dtype=np.float64)[None, None, :]
    tau = 2 * math.pi
    raw: np.ndarray = (
        np.sin(tau * t / (16.0 + 4.0 * c) + 0.37 * e + 0.11 * c)
        + 0.5 * np.sin(tau * t / (64.0 + 8.0 * c) + 0.7 * e)
        + 0.1 * c
    )
    return raw


def series(windows: int) -> np.ndarray:
    """[entity, row, channel], float32, normalised: the bench's `rows` and `Dataset::build`."""
    values = raw_series(windows // ENTITIES + LENGTH).astype(np.float32)
    # Normaliser::fit: float64 sums of the float32 values, population variance.
    flat = values.reshape(-1, CHANNELS).astype(np.float64)
    mean = flat.sum(axis=0) / len(flat)
    variance = np.maximum((flat * flat).sum(axis=0) / len(flat) - mean * mean, 0.0)
    std = np.where(variance > 0, np.sqrt(variance), 1.0)
    return (values - mean.astype(np.float32)) / std.astype(np.float32)


def windows_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every window (stride 1) and its target, entity by entity in time order, as the bench's
    `Dataset::train`: inputs [N, LENGTH, CHANNELS], targets [N, HORIZON, CHANNELS]."""
    starts = values.shape[1] - LENGTH - HORIZON + 1
    view = np.lib.stride_tricks.sliding_window_view(values, LENGTH, axis=1)[:, :starts]
    inputs = np.ascontiguousarray(view.transpose(0, 1, 3, 2)).reshape(-1, LENGTH, CHANNELS)
    targets = np.ascontiguousarray(values[:, LENGTH : LENGTH + starts]).reshape(-1, 1, CHANNELS)
    return inputs, targets


def data_figures(inputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    return {
        "windows": len(inputs),
        "targets_sum": float(targets.sum(dtype=np.float64)),
        "first_window_sum": float(inputs[0].sum(dtype=np.float64)),
    }


# ---------------------------------------------------------------------------------------------
# The model, as trainstore's SeriesTransformer


def burn_sinusoids(length: int, d_model: int, max_timescale: int) -> torch.Tensor:
    """burn's `generate_sinusoids`: sine at even, cosine at odd features, float32."""
    increment = -math.log(max_timescale) / d_model
    k = torch.arange(0, d_model, 2, dtype=torch.float32)
    div = torch.exp(k * increment)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * div[None, :]
    out = torch.empty(length, d_model)
    out[:, 0::2] = torch.sin(angles)
    out[:, 1::2] = torch.cos(angles)
    return out


class SeriesTransformer(nn.Module):
    def __init__(
        self, d_model: int = D_MODEL, heads: int = HEADS, layers: int = LAYERS, d_ff: int = D_FF
    ) -> None:
        super().__init__()
        self.input = nn.Linear(CHANNELS, d_model)
        self.register_buffer("sinusoids", burn_sinusoids(LENGTH, d_model, MAX_TIMESCALE))
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=d_ff,
            dropout=DROPOUT,
            activation="gelu",
            layer_norm_eps=1e-5,
            batch_first=True,
            norm_first=True,
        )
        # No final norm (burn's encoder has none); nested tensors only serve padding masks.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, HORIZON * CHANNELS)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch, length, _ = windows.shape
        encoded = self.encoder(self.input(windows) + self.sinusoids[:length])
        return self.head(encoded[:, -1]).reshape(batch, HORIZON, CHANNELS)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# The PyTorch side


def percentile(micros: list[float], q: float) -> float:
    return float(np.percentile(np.array(micros), q))


def pytorch_side(
    args: argparse.Namespace, inputs: np.ndarray, targets: np.ndarray, threads: int
) -> dict[str, Any]:
    """Trains a fresh model (1 warm-up + --epochs epochs), then times one-window forecasts."""
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    model = SeriesTransformer()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON)
    mse = nn.MSELoss()
    rng = np.random.default_rng(args.seed)
    model.train()
    marks: list[tuple[float, float, float]] = []  # (wall, mean loss, CPU seconds) per epoch
    started = time.perf_counter()
    for _ in range(1 + args.epochs):
        order = rng.permutation(len(inputs))
        total = 0.0
        for lo in range(0, len(order), args.batch):
            chosen = order[lo : lo + args.batch]
            x = torch.from_numpy(inputs[chosen])
            y = torch.from_numpy(targets[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss = mse(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(chosen)
        marks.append((time.perf_counter(), total / len(order), time.process_time()))
    train_seconds = marks[-1][0] - marks[0][0]

    model.eval()
    windows = [inputs[i] for i in range(min(FORWARD_WINDOWS, len(inputs)))]
    micros: list[float] = []
    forecast_sum = 0.0
    with torch.inference_mode():
        for i in range(args.forward_warmup):
            model(torch.from_numpy(windows[i % len(windows)])[None]).numpy()
        for i in range(args.forward_calls):
            begin = time.perf_counter()
            out = model(torch.from_numpy(windows[i % len(windows)])[None]).numpy()
            micros.append((time.perf_counter() - begin) * 1e6)
            forecast_sum += float(out.sum(dtype=np.float64))
    return {
        "backend": f"PyTorch {torch.__version__}, {threads} thread(s)",
        "params": params(model),
        "warmup_seconds": marks[0][0] - started,
        "train_seconds": train_seconds,
        "epoch_seconds": [b[0] - a[0] for a, b in itertools.pairwise(marks)],
        "windows_per_s": args.epochs * len(inputs) / train_seconds,
        "cpu_per_wall": (marks[-1][2] - marks[0][2]) / train_seconds,
        "first_train_loss": marks[0][1],
        "final_train_loss": marks[-1][1],
        "forward_p50_us": percentile(micros, 50),
        "forward_p99_us": percentile(micros, 99),
        "forward_mean_us": float(np.mean(micros)),
        "forecast_sum": forecast_sum,
    }


# ---------------------------------------------------------------------------------------------
# The trainstore side


def bench_args(args: argparse.Namespace) -> list[str]:
    return [
        *("--windows", str(args.windows), "--epochs", str(args.epochs)),
        *("--batch", str(args.batch), "--seed", str(args.seed)),
        *("--forward-calls", str(args.forward_calls)),
        *("--forward-warmup", str(args.forward_warmup)),
    ]


def trainstore_side(args: argparse.Namespace) -> dict[str, Any]:
    """Builds the bench binary (outside every clock), then runs it pinned to --threads."""
    build = ["cargo", "bench", "--quiet", "--bench", "training", "--no-run"]
    run = subprocess.run(build, cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(build)} failed:\n{run.stderr[-3000:]}")
    check_idle("trainstore")
    command = ["cargo", "bench", "--quiet", "--bench", "training", "--", *bench_args(args)]
    env = {**os.environ, "RAYON_NUM_THREADS": str(args.threads)}
    print(f"$ RAYON_NUM_THREADS={args.threads} {' '.join(command)}", flush=True)
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def python_online_side(args: argparse.Namespace) -> dict[str, Any] | None:
    """Real-time forecasts from Python: the bench's workspace built through the Python API (the
    same rows as a typed Parquet table, a feature view keeping 64 rows per entity online,
    materialized, a model trained for one epoch), then `ws.models.predict_online` for one
    entity per call. None when trainstore is not installed in this Python."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        import trainstore as ts
    except ImportError:
        print("trainstore is not installed in this Python: no real-time figure from Python")
        return None

    rows = 192  # as the bench's workspace
    raw = raw_series(rows)
    entity = [f"e{e:03}" for e in range(ENTITIES) for _ in range(rows)]
    minutes = np.tile(np.arange(rows, dtype=np.int64) * 60_000, ENTITIES)
    columns: dict[str, Any] = {
        "entity": entity,
        "time": pa.array(minutes, pa.timestamp("ms", tz="UTC")),
    }
    names = [f"c{c:02}" for c in range(CHANNELS)]
    for c, name in enumerate(names):
        columns[name] = raw[:, :, c].reshape(-1)
    table = pa.table(columns)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sensor").mkdir()
        pq.write_table(table, Path(tmp) / "sensor" / "part.parquet")
        ws = ts.Workspace.open(Path(tmp) / "ws")
        device = ts.Entity("entity", join_keys=["entity"])
        view = ts.FeatureView(
            name="sensor",
            entities=[device],
            source=str(Path(tmp) / "sensor"),
            schema=[ts.Field(n, ts.Float64) for n in names],
            timestamp_field="time",
            online_rows=LENGTH,
        )
        ws.features.apply([device, view])
        times = table.column("time")
        ws.features.materialize(times[0].as_py(), times[len(times) - 1].as_py())
        data = ws.training_sets.create("sensor", table)
        config = ts.TrainConfig(features=names, keys=["entity"], time="time", epochs=1)
        model = ws.models.train("sensor-model", data, config)
        keys = [[{"entity": f"e{e:03}"}] for e in range(ENTITIES)]
        for i in range(args.forward_warmup):
            ws.models.predict_online(model, keys[i % ENTITIES])
        micros: list[float] = []
        for i in range(args.forward_calls):
            begin = time.perf_counter()
            forecast = ws.models.predict_online(model, keys[i % ENTITIES])
            micros.append((time.perf_counter() - begin) * 1e6)
            assert forecast.table.num_rows == HORIZON
    return {
        "online_p50_us": percentile(micros, 50),
        "online_p99_us": percentile(micros, 99),
    }


# ---------------------------------------------------------------------------------------------
# Report


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores the machine kept busy over the next `seconds` (this process idle):
    from /proc/stat; 0 where it cannot be read."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    try:
        total_a, idle_a = sample()
        time.sleep(seconds)
        total_b, idle_b = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = max(total_b - total_a, 1)
    return (os.cpu_count() or 1) * (total - (idle_b - idle_a)) / total


def check_idle(side: str) -> None:
    """Says how busy the machine is before a side runs: the sides run one after another, and a
    busy machine (a build beside) skews them, PyTorch's OpenMP threads most (a CPU/wall well
    under --threads shows it)."""
    cores = busy_cores()
    busy = "  WARNING: the machine is busy, the figures are skewed" if cores > 0.3 else ""
    print(f"{side}: {cores:.2f} cores busy before it runs{busy}", flush=True)


def table(sides: dict[str, dict[str, Any]]) -> str:
    rows: list[tuple[str, str, int]] = [
        ("parameters", "params", 0),
        ("windows/s (timed epochs)", "windows_per_s", 0),
        ("timed epochs, s", "train_seconds", 2),
        ("warm-up epoch, s", "warmup_seconds", 2),
        ("CPU time / wall time", "cpu_per_wall", 2),
        ("train loss, warm-up epoch", "first_train_loss", 4),
        ("train loss, last epoch", "final_train_loss", 4),
        ("forecast p50, µs", "forward_p50_us", 1),
        ("forecast p99, µs", "forward_p99_us", 1),
        ("forecast mean, µs", "forward_mean_us", 1),
        ("real-time forecast p50, µs", "online_p50_us", 1),
        ("real-time forecast p99, µs", "online_p99_us", 1),
    ]
    names = list(sides)
    header = ["", *names]
    cells = [header]
    for label, key, digits in rows:
        line = [label]
        for name in names:
            value = sides[name].get(key)
            line.append("—" if value is None else f"{value:,.{digits}f}")
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    text = []
    for i, row in enumerate(cells):
        text.append(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, help="training windows, a multiple of 8")
    parser.add_argument("--epochs", type=int, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--forward-calls", type=int, help="timed one-window forecasts")
    parser.add_argument("--forward-warmup", type=int, help="forecasts before the timed ones")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's (and rayon's) threads")
    parser.add_argument(
        "--no-single-thread", action="store_true", help="no second PyTorch reading at 1 thread"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes (checks the script)")
    parser.add_argument(
        "--no-rust",
        action="store_true",
        help="leave out trainstore's side (it runs `cargo bench`): no bar",
    )
    args = parser.parse_args()
    # Full: 8,192 windows x 3 epochs; --quick: 512 x 1.
    sizes = (512, 1, 100, 20) if args.quick else (8192, 3, 1000, 100)
    args.windows = args.windows or sizes[0]
    args.epochs = args.epochs or sizes[1]
    args.forward_calls = args.forward_calls or sizes[2]
    args.forward_warmup = sizes[3] if args.forward_warmup is None else args.forward_warmup
    if args.windows % ENTITIES:
        parser.error(f"--windows must be a multiple of {ENTITIES} (the entities)")
    # Inter-op threads can be set only before any parallel work.
    torch.set_num_interop_threads(args.threads)

    inputs, targets = windows_of(series(args.windows))
    print(
        f"{len(inputs):,} windows of {LENGTH} steps x {CHANNELS} channels, batch {args.batch}, "
        f"1 warm-up + {args.epochs} timed epoch(s); {args.forward_calls:,} one-window forecasts; "
        f"{os.cpu_count()} cores, PyTorch {torch.__version__}"
    )
    problems: list[str] = []
    sides: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] | None = None
    if not args.no_rust:
        ours = trainstore_side(args)
        sides["trainstore (flex)"] = ours
        problems += bars.agree(
            "the data",
            "PyTorch",
            data_figures(inputs, targets),
            "trainstore",
            {k: ours[k] for k in ("windows", "targets_sum", "first_window_sum")},
            bars.Tolerance(
                relative=1e-6,
                per_key={"targets_sum": 1e-6 * ours["targets_abs_sum"], "first_window_sum": 1e-4},
            ),
        )
    torch_name = f"PyTorch ({args.threads} threads)"
    check_idle(torch_name)
    theirs = pytorch_side(args, inputs, targets, args.threads)
    sides[torch_name] = theirs
    single: dict[str, Any] | None = None
    if args.threads != 1 and not args.no_single_thread:
        check_idle("PyTorch (1 thread)")
        single = pytorch_side(args, inputs, targets, 1)
        sides["PyTorch (1 thread)"] = single

    check_idle("trainstore from Python")
    python = python_online_side(args)
    if python is not None:
        sides["trainstore from Python"] = python
    print()
    print(table(sides))
    for name, side in sides.items():
        if "threads" in side:
            print(
                f"{name}: {side['threads']} thread(s) in the process after training, "
                f"RAYON_NUM_THREADS={side['rayon_num_threads']}"
            )
    if ours is None:
        print("\n--no-rust: PyTorch's figures only, no bar")
        bars.finish(problems)
        return

    problems += bars.agree(
        "parameter count",
        "PyTorch",
        {"params": theirs["params"]},
        "trainstore",
        {"params": ours["params"]},
    )
    ratio = ours["windows_per_s"] / theirs["windows_per_s"]
    print(
        f"\ntrainstore vs PyTorch ({args.threads} threads): training {ratio:.2f}x the windows/s; "
        f"forecast p50 {ours['forward_p50_us']:.1f} µs vs {theirs['forward_p50_us']:.1f} µs"
    )
    size = f"{args.windows:,} windows x {args.epochs} epochs, batch {args.batch}"
    threads = (
        f"PyTorch at {args.threads} threads (CPU/wall {theirs['cpu_per_wall']:.2f}), trainstore's "
        f"flex single-threaded as built (CPU/wall {ours['cpu_per_wall']:.2f})"
    )
    bars.faster(
        f"CPU training, Transformer {D_MODEL}x{LAYERS} ({size})",
        "PyTorch",
        ours["train_seconds"],
        theirs["train_seconds"],
        1.0,
        unit="s",
        note=f"windows/s: trainstore {ours['windows_per_s']:,.0f}, PyTorch "
        f"{theirs['windows_per_s']:,.0f}; {threads}; {ours['params']:,} parameters",
        beside=(
            ("PyTorch at 1 thread", ours["train_seconds"], single["train_seconds"])
            if single
            else None
        ),
    )
    bars.at_most(
        "one-window forecast p50 (batch 1, inference)",
        "PyTorch's p50",
        ours["forward_p50_us"],
        theirs["forward_p50_us"],
        1.0,
        unit="µs",
        note=f"{args.forward_calls:,} calls after {args.forward_warmup} warm-up; PyTorch "
        "eval() under inference_mode (its fused encoder fast path); p99 beside",
        beside=("p99", ours["forward_p99_us"], theirs["forward_p99_us"]),
    )
    online = "the online store's 64 recent rows of one entity, cut, scaled, forward, scaled back"
    for side, figures in (("Rust", ours), ("Python", python)):
        if figures is None:
            continue
        bars.at_most(
            f"real-time forecast p50 from {side} (online lookup + window + forward)",
            "PyTorch's forward p50 alone",
            figures["online_p50_us"],
            theirs["forward_p50_us"],
            1.0,
            unit="µs",
            note=f"{args.forward_calls:,} calls after {args.forward_warmup} warm-up: {online}",
            beside=("p99", figures["online_p99_us"], theirs["forward_p99_us"]),
        )
    bars.finish(problems)


if __name__ == "__main__":
    main()
