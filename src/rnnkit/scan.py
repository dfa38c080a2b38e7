"""The time loop: one cell over a batch of sequences, one direction.

Two implementations of the same equations, chosen by ``rnnkit.plan``:

* a cell with a registered kernel and no loop-only option runs on the
  hand-written kernels of ``rnnkit.kernels`` (backpropagation through time
  written out, the recurrent weight's gradient as one product);
* every other cell, custom ones included, and every loop-only option run the
  cell's own ``step`` in a Python loop under autograd.

Either way the input projection of all steps is one matrix product before
the loop, time-major so that each step reads a contiguous slice.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cells import RecurrentCell, State
from .padding import step_mask
from .plan import Kernel, kernel_choice


def scan(
    cell: RecurrentCell,
    x: Tensor,
    state: State,
    lengths: Tensor | None = None,
    allow_empty: bool = False,
    probe: Tensor | None = None,
) -> tuple[Tensor, State]:
    """Run ``cell`` over x (B, T, D) from ``state``; returns y (B, T, O) and the final state.

    With ``lengths`` a sequence's state is frozen after its last step and its
    outputs there are zeros. ``allow_empty`` admits sequences of length 0
    (the chains of a dilated layer shorter than the dilation). ``probe``
    (B, T, S), zeros from ``rnnkit.probes``, is added to the fed-back state at
    every step, so that its gradient is dL/dh_t; it needs the autograd loop.
    """
    steps = x.shape[1]
    if lengths is not None and not allow_empty and bool((lengths == steps).all()):
        lengths = None  # nothing is padded
    if lengths is not None:
        # zero the padding so that whatever it holds (even NaN) cannot reach a gradient
        x = x.masked_fill(~step_mask(lengths, steps, x.device).unsqueeze(-1), 0.0)
    xp = cell.project_input(x.transpose(0, 1))  # (T, B, G): one product for all steps
    kernel, _ = kernel_choice(cell)
    if probe is not None:
        return _run_autograd(cell, xp, state, lengths, probe.transpose(0, 1))
    if kernel is not None:
        return _run_kernel(cell, kernel, xp, state, lengths)
    return _run_autograd(cell, xp, state, lengths)


def _run_kernel(
    cell: RecurrentCell, kernel: Kernel, xp: Tensor, state: State, lengths: Tensor | None
):
    # Padding sits at the end of every sequence, so outputs at valid steps never
    # depend on it: run all steps, then read each final state at its own last step.
    mask = None
    if lengths is not None:
        mask = step_mask(lengths, xp.shape[0], xp.device).t().unsqueeze(-1)  # (T, B, 1)
    seqs = kernel(cell, xp, state)  # each (T, B, S)
    y = cell.output(seqs)  # (T, B, O)
    if mask is None:
        return y.transpose(0, 1), tuple(s[-1] for s in seqs)
    y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
    last = (lengths - 1).clamp(min=0).to(xp.device)
    rows = torch.arange(xp.shape[1], device=xp.device)
    empty = (lengths == 0).to(xp.device).unsqueeze(-1)
    final = tuple(torch.where(empty, s0, s[last, rows]) for s, s0 in zip(seqs, state, strict=True))
    return y.transpose(0, 1), final


def _probed_step(
    cell: RecurrentCell, xp_t: Tensor, state: State, noise: Tensor | None, probe_t: Tensor | None
) -> tuple[Tensor, State]:
    y, new = cell.step(xp_t, state, noise)
    if probe_t is None:
        return y, new
    new = (new[0] + probe_t, *new[1:])
    return cell.output(new), new


def _run_autograd(
    cell: RecurrentCell,
    xp: Tensor,
    state: State,
    lengths: Tensor | None,
    probe: Tensor | None = None,
):
    steps, batch = xp.shape[:2]
    noise = cell.sample_noise(batch, xp)
    outputs: list[Tensor] = []
    if lengths is None:
        for t in range(steps):
            y, state = _probed_step(cell, xp[t], state, noise, None if probe is None else probe[t])
            outputs.append(y)
        return torch.stack(outputs, 1), state
    mask = step_mask(lengths, steps, xp.device).unsqueeze(-1)  # (B, T, 1)
    active_steps = int(lengths.max()) if lengths.numel() else 0
    zero = torch.zeros((), dtype=xp.dtype, device=xp.device)
    for t in range(active_steps):
        y, new = _probed_step(cell, xp[t], state, noise, None if probe is None else probe[t])
        valid = mask[:, t]
        state = tuple(torch.where(valid, n, o) for n, o in zip(new, state, strict=True))
        outputs.append(torch.where(valid, y, zero))
    if active_steps == 0:
        return xp.new_zeros(batch, steps, cell.output_size), state
    y = torch.stack(outputs, 1)
    if active_steps < steps:
        y = torch.cat([y, y.new_zeros(batch, steps - active_steps, y.shape[-1])], 1)
    return y, state
