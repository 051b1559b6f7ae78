"""Training on an NVIDIA GPU, side by side on the same models and data in one run: PyTorch on
CUDA (in this process) and trainstore's bench binary (`benches/training.rs`, burn's CUDA
backend), at batch 2048, for a small and a medium model, in fp32 and bf16.

The binary is built where the Rust toolchain is, with the CUDA backend compiled in (no GPU
needed to build), and copied beside the repository on the GPU machine:

    scripts/gpu-bench-build                                  # -> target/gpu/training.xz
    python3 benches/peers/train_gpu_peers.py --rust-binary target/gpu/training.xz

(A binary ending in `.xz` is decompressed into a temporary directory first.)

The data and the model are `train_peers.py`'s (the same sines, windows of 64 steps of 12
channels, forecasting all 12 one step ahead; Linear -> sinusoidal positions -> pre-norm
encoder layers, GELU, dropout 0.1 -> the last step -> Linear), at two sizes: small (d_model 64,
4 heads, 2 layers, feed-forward 128) and medium (d_model 256, 8 heads, 4 layers, feed-forward
1024). Adam 1e-3, MSE, --windows windows (65,536 by default: 32 batches of 2,048), one warm-up
epoch and then --epochs timed ones; windows/s is epochs x windows over the timed epochs.

PyTorch: the windows are put on the GPU once; each batch is picked there by a shuffled index,
its loss read back (as trainstore's trainer does); bf16 runs under `torch.autocast`. trainstore:
`--device cuda --precision f32|bf16`, the whole batch on the device. The warm-up epoch is
reported beside the timed ones: on burn's CUDA backend it is when each shape's kernels are
compiled (NVRTC) and autotuned, the first use's cost; the bench binary runs under --timeout
seconds, and a run that gives no result in that time is reported as such. It runs in
`target/gpu/`, beside a `cubecl.toml` that keeps compiled kernels (PTX) under the repository's
`target/` as CubeCL keeps autotune results there by default: run the script again on the same
machine and the first epoch shows what a warm cache leaves of that cost.

The bar: burn's CUDA training throughput >= 0.8x PyTorch's in the steady state (the timed
epochs). The figures go to stdout, and with --json PATH to a file.
"""

from __future__ import annotations

import argparse
import json
import lzma
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from train_peers import (
    ADAM_EPSILON,
    LEARNING_RATE,
    REPO,
    SeriesTransformer,
    params,
    series,
    windows_of,
)

SIZES = {
    "small": {"d_model": 64, "heads": 4, "layers": 2, "d_ff": 128},
    "medium": {"d_model": 256, "heads": 8, "layers": 4, "d_ff": 1024},
}
# Where the bench runs: CubeCL reads `cubecl.toml` from its working directory (or a parent),
# and caches under the `target/` of the Cargo project it is in.
BENCH_DIR = REPO / "target" / "gpu"
CUBECL_TOML = '[compilation]\ncache = "target"\n'


def pytorch_side(
    size: dict[str, int], precision: str, inputs: torch.Tensor, targets: torch.Tensor, args: Any
) -> dict[str, Any]:
    """Trains a fresh model on the GPU: 1 warm-up + --epochs epochs."""
    torch.manual_seed(args.seed)
    model = SeriesTransformer(**size).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON)
    mse = nn.MSELoss()
    generator = torch.Generator(device="cuda").manual_seed(args.seed)
    model.train()
    marks: list[float] = []
    started = time.perf_counter()
    for _ in range(1 + args.epochs):
        order = torch.randperm(len(inputs), device="cuda", generator=generator)
        total = 0.0
        for lo in range(0, len(order), args.batch):
            chosen = order[lo : lo + args.batch]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = mse(model(inputs[chosen]).float(), targets[chosen])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(chosen)
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
    train_seconds = marks[-1] - marks[0]
    return {
        "params": params(model),
        "warmup_seconds": marks[0] - started,
        "windows_per_s": args.epochs * len(inputs) / train_seconds,
        "final_train_loss": total / len(inputs),
    }


def trainstore_side(size: dict[str, int], precision: str, args: Any) -> dict[str, Any]:
    """The bench binary's report, or why there is none."""
    command = [
        args.rust_binary,
        *("--device", "cuda", "--precision", precision, "--no-online"),
        *("--windows", str(args.windows), "--epochs", str(args.epochs)),
        *("--batch", str(args.batch), "--seed", str(args.seed)),
        *("--d-model", str(size["d_model"]), "--heads", str(size["heads"])),
        *("--layers", str(size["layers"]), "--d-ff", str(size["d_ff"])),
    ]
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "cubecl.toml").write_text(CUBECL_TOML)
    began = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=BENCH_DIR, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {args.timeout} s"}
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-600:]}"}
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_seconds"] = time.perf_counter() - began
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rust-binary", required=True, help="benches/training.rs built with cuda")
    parser.add_argument("--windows", type=int, default=65_536, help="a multiple of 8")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after a warm-up")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds per bench run")
    parser.add_argument(
        "--runs",
        default="small-f32,small-bf16,medium-f32,medium-bf16",
        help="which size-precision pairs, comma-separated",
    )
    parser.add_argument("--json", type=Path, help="also write the figures there")
    args = parser.parse_args()
    binary = Path(args.rust_binary)
    if not binary.is_file():
        raise SystemExit(f"{binary}: no such bench binary (see scripts/gpu-bench-build)")
    if binary.suffix == ".xz":
        unpacked = Path(tempfile.mkdtemp()) / binary.stem
        unpacked.write_bytes(lzma.decompress(binary.read_bytes()))
        unpacked.chmod(0o755)
        args.rust_binary = str(unpacked)
    if not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA device")

    inputs_np, targets_np = windows_of(series(args.windows))
    inputs = torch.from_numpy(np.ascontiguousarray(inputs_np)).cuda()
    targets = torch.from_numpy(np.ascontiguousarray(targets_np)).cuda()
    print(
        f"{len(inputs):,} windows, batch {args.batch}, 1 warm-up + {args.epochs} timed epochs; "
        f"{torch.cuda.get_device_name()}, PyTorch {torch.__version__}",
        flush=True,
    )

    results = []
    for run in args.runs.split(","):
        name, precision = run.split("-")
        size = SIZES[name]
        theirs = pytorch_side(size, precision, inputs, targets, args)
        ours = trainstore_side(size, precision, args)
        ratio = ours["windows_per_s"] / theirs["windows_per_s"] if "windows_per_s" in ours else None
        results.append({"run": run, "pytorch": theirs, "trainstore": ours, "ratio": ratio})
        ours_text = (
            f"{ours['windows_per_s']:,.0f} windows/s (first epoch {ours['warmup_seconds']:.1f} s)"
            if ratio is not None
            else ours["error"]
        )
        verdict = "" if ratio is None else f": {ratio:.2f}x, {'met' if ratio >= 0.8 else 'NOT MET'}"
        print(
            f"{run:12} PyTorch {theirs['windows_per_s']:,.0f} windows/s "
            f"(first epoch {theirs['warmup_seconds']:.1f} s); trainstore {ours_text}{verdict}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
