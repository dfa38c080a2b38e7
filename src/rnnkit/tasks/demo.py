"""`rnnkit demo`: a recurrent network learns the adding problem, and beats the baseline."""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ..cells import resolve
from ..distributed import World, pick_device
from ..models import SequenceRegressor
from ..recurrent import RNN
from . import options
from .synthetic import ADDING_BASELINE_MSE, adding_problem


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train a small RNN on the adding problem and print the loss falling",
        description="Train a small RNN on the adding problem (sum two marked values among T steps) "
        "and compare its test MSE with the baseline of always predicting the mean (1/6).",
    )
    p.add_argument("--cell", default="lstm", type=options.cell_name,
                   help="a cell name or package.module:Class (default lstm)")  # fmt: skip
    p.add_argument(
        "--compare",
        default="elman",
        help="comma-separated cells trained next with the same budget ('' for none; default elman)",
    )
    p.add_argument("--length", type=options.count(2, 100_000), default=50,
                   help="sequence length T (default 50)")  # fmt: skip
    p.add_argument("--hidden", type=options.units, default=64, help="units (default 64)")
    p.add_argument("--steps", type=options.count(1, 10**8), default=2000,
                   help="training steps per cell (default 2000)")  # fmt: skip
    p.add_argument("--batch-size", type=options.batch, default=64, help="(default 64)")
    p.add_argument(
        "--lr", type=options.positive(options.MAX_LR), default=3e-3, help="Adam's (default 3e-3)"
    )
    options.add_seed(p)
    options.add_device(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cells = [args.cell] + [c.strip() for c in args.compare.split(",") if c.strip()]
    for cell in cells:
        try:
            resolve(cell)
        except ValueError as error:
            raise ValueError(f"--compare: {error}") from None
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
    device = pick_device(args.device, World())
    model = SequenceRegressor(RNN(cell, 2, args.hidden), 1).to(device)
    test_x, test_y = test_x.to(device), test_y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"\n{cell}: {args.hidden} units, {params} parameters, {args.steps} steps of {args.batch_size} sequences"
    )
    start, running = time.time(), None
    every = max(1, args.steps // 8)
    for step in range(1, args.steps + 1):
        x, y = adding_problem(args.batch_size, args.length, data)
        loss = F.mse_loss(model(x.to(device)), y.to(device))
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
