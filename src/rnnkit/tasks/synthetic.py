"""Generated long-range problems, reproducible from a seed."""

from __future__ import annotations

import torch
from torch import Tensor

#: test MSE of always predicting the target's mean (the sum of two U(0, 1) values: variance 1/6)
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(
    batch: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter and Schmidhuber, 1997).

    Input (B, T, 2): a value in [0, 1) and a marker; exactly two steps are
    marked, one in each half of the sequence. Target (B, 1): the sum of the two
    marked values. Predicting the mean scores MSE 1/6, whatever T.
    """
    if length < 2:
        raise ValueError(f"length must be >= 2 for the adding problem, got {length}")
    values = torch.rand(batch, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(batch, length)
    rows = torch.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return torch.stack([values, markers], -1), target
