"""The exploding gradient, made visible: SGD on an Elman network with spectral radius above one."""

from __future__ import annotations

import argparse
import math
import statistics

import torch
import torch.nn.functional as F

from ..distributed import World, pick_device
from ..initialization import scale_recurrent_radius_
from ..models import SequenceRegressor
from ..recurrent import RNN
from .synthetic import adding_problem

# A step is "huge" when its gradient norm exceeds this many times the median of the
# first ten steps' (the run's own scale before anything went wrong).
HUGE_FACTOR = 100.0


def sgd_run(args: argparse.Namespace, clip: float | None) -> dict:
    """Train by plain SGD with (``clip``) or without clipping; count the bad steps."""
    torch.manual_seed(args.seed)
    device = pick_device(getattr(args, "device", None), World())
    model = SequenceRegressor(RNN("elman", 2, args.hidden, nonlinearity=args.nonlinearity), 1)
    scale_recurrent_radius_(model, args.radius)
    model.to(device)
    data = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    norms, losses, non_finite = [], [], 0
    per_step: list[float | None] = []  # None where the gradient was not finite
    for _ in range(args.steps):
        x, y = adding_problem(args.batch_size, args.length, data)
        loss = F.mse_loss(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf))
        if not (math.isfinite(norm) and math.isfinite(float(loss.detach()))):
            non_finite += 1  # the update is skipped: it would make every weight NaN
            per_step.append(None)
            continue
        per_step.append(norm)
        norms.append(norm)
        losses.append(float(loss.detach()))
        opt.step()
    test_x, test_y = adding_problem(2000, args.length, torch.Generator().manual_seed(args.seed + 1))
    with torch.no_grad():
        test = float(F.mse_loss(model(test_x.to(device)), test_y.to(device)))
    scale = statistics.median(norms[:10]) if norms else math.inf
    return {
        "clip": clip,
        "non_finite_steps": non_finite,
        "huge_steps": sum(n > HUGE_FACTOR * scale for n in norms),
        "max_grad_norm": max(norms) if norms else None,  # None: no step had a finite gradient
        "initial_grad_norm": scale if norms else None,
        "final_train_loss": statistics.mean(losses[-20:]) if losses else None,
        "test_mse": test if math.isfinite(test) else None,
        "grad_norms": per_step,
    }
