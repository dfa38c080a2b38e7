"""`rnnkit demo`: a recurrent network learns the adding problem, and beats the baseline."""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ..cells import CELLS, check_positive_int
from ..models import SequenceRegressor
from ..recurrent import RNN
from .synthetic import ADDING_BASELINE_MSE, adding_problem


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train a small RNN on the adding problem and print the loss falling",
        description="Train a small RNN on the adding problem (sum two marked values among T steps) "
        "and compare its test MSE with the baseline of always predicting the mean (1/6).",
    )
    p.add_argument("--cell", default="lstm", choices=sorted(CELLS))
    p.add_argument(
        "--compare",
        default="elman",
        help="comma-separated cells trained next with the same budget ('' for none; default elman)",
    )
    p.add_argument("--length", type=int, default=50, help="sequence length T (default 50)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=2000, help="training steps per cell (default 2000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in ("length", "hidden", "steps", "batch_size"):
        check_positive_int("--" + name.replace("_", "-"), getattr(args, name))
    if not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    cells = [args.cell] + [c.strip() for c in args.compare.split(",") if c.strip()]
    for cell in cells:
        if cell not in CELLS:
            raise ValueError(
                f"--compare: unknown cell {cell!r}; choose from {', '.join(sorted(CELLS))}"
            )
    test_x, test_y = adding_problem(
        2000, args.length, torch.Generator().manual_seed(args.seed + 10_000)
    )
    print(
        f"The adding problem, T={args.length}: sum the two marked values; predicting the mean scores MSE 1/6."
    )
    results = [(cell, train_one(cell, args, test_x, test_y)) for cell in cells]
    print(f"\n{'cell':8s} {'test MSE':>9s}  vs baseline {ADDING_BASELINE_MSE:.4f}")
    for cell, test in results:
        ratio = ADDING_BASELINE_MSE / max(test, 1e-12)
        verdict = f"{ratio:.1f}x lower error" if ratio >= 1.5 else "no real gain over the baseline"
        print(f"{cell:8s} {test:9.4f}  {verdict}")
    return 0


def train_one(
    cell: str, args: argparse.Namespace, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    torch.manual_seed(args.seed)
    data = torch.Generator().manual_seed(args.seed)
    model = SequenceRegressor(RNN(cell, 2, args.hidden), 1)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"\n{cell}: {args.hidden} units, {params} parameters, {args.steps} steps of {args.batch_size} sequences"
    )
    start, running = time.time(), None
    every = max(1, args.steps // 8)
    for step in range(1, args.steps + 1):
        x, y = adding_problem(args.batch_size, args.length, data)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step % every == 0 or step == args.steps:
            print(
                f"  step {step:5d}  train MSE {running:.4f}  ({time.time() - start:.0f}s)",
                flush=True,
            )
    model.eval()
    with torch.no_grad():
        return F.mse_loss(model(test_x), test_y).item()
