"""The time loop: one cell over a batch of sequences, one direction.

Kept apart from ``Recurrent`` so that the loop, where all the time goes, is
short enough to read at a glance: the input projection of every step is one
matrix product before the loop, and each step is the cell's recurrent product
and element-wise work, plus a select where sequences have ended.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cells import RecurrentCell, State
from .padding import step_mask


def scan(
    cell: RecurrentCell,
    x: Tensor,
    state: State,
    lengths: Tensor | None = None,
    allow_empty: bool = False,
) -> tuple[Tensor, State]:
    """Run ``cell`` over x (B, T, D) from ``state``; returns y (B, T, O) and the final state.

    With ``lengths`` a sequence's state is frozen after its last step and its
    outputs there are zeros. ``allow_empty`` admits sequences of length 0
    (the chains of a dilated layer shorter than the dilation).
    """
    batch, steps, _ = x.shape
    if lengths is not None and not allow_empty and bool((lengths == steps).all()):
        lengths = None  # nothing is padded: skip the per-step selects
    xp = cell.project_input(x)  # (B, T, G): one product for all steps
    noise = cell.sample_noise(batch, xp)
    outputs: list[Tensor] = []
    if lengths is None:
        for t in range(steps):
            y, state = cell.step(xp[:, t], state, noise)
            outputs.append(y)
        return torch.stack(outputs, 1), state
    mask = step_mask(lengths, steps, x.device).unsqueeze(-1)  # (B, T, 1)
    active_steps = int(lengths.max()) if lengths.numel() else 0
    for t in range(active_steps):
        y, new = cell.step(xp[:, t], state, noise)
        valid = mask[:, t]
        state = tuple(torch.where(valid, n, o) for n, o in zip(new, state, strict=True))
        outputs.append(torch.where(valid, y, torch.zeros((), dtype=y.dtype, device=y.device)))
    if active_steps == 0:
        return x.new_zeros(batch, steps, cell.output_size), state
    y = torch.stack(outputs, 1)
    if active_steps < steps:
        y = torch.cat([y, y.new_zeros(batch, steps - active_steps, y.shape[-1])], 1)
    return y, state
