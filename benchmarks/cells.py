"""Training throughput of every cell, as a ratio to torch.nn.LSTM's rate, in one process.

Each row trains (forward and backward) one layer on random data at a fixed
shape; its rate is the matrix-product FLOPs of a training step
(3 x 2 x B x T x weight entries) over the median time. Rates are divided by
the rate of ``torch.nn.LSTM`` measured in the same run, interleaved with the
others, so that the drift of a shared machine cancels out.

    python benchmarks/cells.py [--repeats 7] [--json benchmarks/results/cells.json]
    python benchmarks/cells.py --device cuda --json benchmarks/results/cells_cuda.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

from rnnkit import RNN
from rnnkit.cpu import keep_freed_memory

CONFIGS = [
    {"B": 64, "T": 100, "D": 256, "H": 256},
    {"B": 64, "T": 200, "D": 8, "H": 64},
]


def build(row: str, d: int, h: int) -> nn.Module:
    if row.startswith("torch."):
        kind = row.split(".")[-1]
        return getattr(nn, kind)(d, h, batch_first=True)
    path, cell = row.split(" ")
    return RNN(cell, d, h, fused=(path == "fused"))


ROWS = [
    "torch.nn.LSTM",
    "torch.nn.GRU",
    "torch.nn.RNN",
    "fused lstm",
    "fused gru",
    "fused elman",
    "loop lstm",
    "loop gru",
    "loop elman",
    "loop leaky",
    "loop jordan",
]


def matmul_flops(module: nn.Module, b: int, t: int) -> float:
    """Training FLOPs of the weight products: forward 2*B*T*entries, backward twice that."""
    entries = sum(p.numel() for p in module.parameters() if p.dim() == 2)
    return 3 * 2 * b * t * entries


def time_step(module: nn.Module, x: torch.Tensor) -> float:
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    synchronize()
    start = time.perf_counter()
    y, _ = module(x)
    y.square().mean().backward()
    synchronize()  # CUDA kernels run asynchronously: time them to their end
    return time.perf_counter() - start


def measure(config: dict, repeats: int, device: torch.device) -> list[dict]:
    b, t, d, h = config["B"], config["T"], config["D"], config["H"]
    torch.manual_seed(0)
    modules = {row: build(row, d, h).to(device) for row in ROWS}
    x = torch.randn(b, t, d, device=device)
    for module in modules.values():  # warm-up: allocator, oneDNN / cuDNN primitives
        for _ in range(2):
            time_step(module, x)
    times: dict[str, list[float]] = {row: [] for row in ROWS}
    for _ in range(repeats):  # interleaved, so drift hits every row alike
        for row, module in modules.items():
            module.zero_grad(set_to_none=True)
            times[row].append(time_step(module, x))
    rates = {row: matmul_flops(modules[row], b, t) / statistics.median(times[row]) for row in ROWS}
    reference = rates["torch.nn.LSTM"]
    fused_lstm = rates["fused lstm"]
    results = []
    for row in ROWS:
        own = {
            "fused gru": "torch.nn.GRU",
            "fused elman": "torch.nn.RNN",
            "fused lstm": "torch.nn.LSTM",
        }.get(row)
        results.append(
            {
                **config,
                "row": row,
                "median_s": statistics.median(times[row]),
                "gflops": rates[row] / 1e9,
                "vs_torch_lstm": rates[row] / reference,
                "vs_fused_lstm": rates[row] / fused_lstm,
                "vs_own_torch_module": rates[row] / rates[own] if own else None,
            }
        )
    return results


def markdown(results: list[dict]) -> str:
    shapes = [c for c in CONFIGS]
    head = (
        "| path, cell | " + " | ".join(f"H={c['H']}, D={c['D']}, T={c['T']}" for c in shapes) + " |"
    )
    lines = [head, "|---" * (len(shapes) + 1) + "|"]
    for row in ROWS:
        cells = []
        for c in shapes:
            r = next(
                r for r in results if r["row"] == row and r["H"] == c["H"] and r["D"] == c["D"]
            )
            cells.append(f"{r['vs_torch_lstm']:.2f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--plain-malloc",
        action="store_true",
        help="keep glibc's default of returning large freed blocks (see rnnkit.cpu)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument(
        "--json", default=os.path.join(os.path.dirname(__file__), "results", "cells.json")
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False if args.plain_malloc else keep_freed_memory()
    results = []
    for config in CONFIGS:
        rows = measure(config, args.repeats, device)
        results += rows
        print(
            f"\nB={config['B']} T={config['T']} D={config['D']} H={config['H']}  "
            f"({device_name(device)}, threads {torch.get_num_threads()})"
        )
        print(
            f"{'row':16s} {'ms/step':>8s} {'GFLOP/s':>8s} {'vs nn.LSTM':>10s} {'vs fused LSTM':>13s} {'vs own nn':>9s}"
        )
        for r in rows:
            own = f"{r['vs_own_torch_module']:.3f}" if r["vs_own_torch_module"] is not None else ""
            print(
                f"{r['row']:16s} {r['median_s'] * 1e3:8.1f} {r['gflops']:8.1f} {r['vs_torch_lstm']:10.3f} "
                f"{r['vs_fused_lstm']:13.3f} {own:>9s}"
            )
    print("\nMarkdown (rate as a ratio to torch.nn.LSTM's, same process):\n")
    print(markdown(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    payload = {
        "torch": torch.__version__,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "freed_memory_kept": tuned,
        "results": results,
    }
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, args.json)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
