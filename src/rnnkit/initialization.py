"""Initialisations that decide whether gradients survive long sequences.

* ``chrono_init_``: gate biases drawn so that the cells' memory time scales
  spread up to ``max_timescale`` steps (Tallec and Ollivier, 2018): for the
  LSTM b_f ~ log U(1, T_max - 1) and b_i = -b_f; for the GRU the update
  gate's bias b_z ~ log U(1, T_max - 1), so z starts near 1 (keep the state).
* ``scale_recurrent_radius_``: rescale each gate block of the recurrent
  weights to a chosen spectral radius, e.g. above one to make an Elman
  network's gradients explode.
"""

from __future__ import annotations

import torch
from torch import nn

from .cells import GRUCell, LSTMCell, RecurrentCell
from .diagnostics import spectral_radius


def _cells(module: nn.Module) -> list[RecurrentCell]:
    return [m for m in module.modules() if isinstance(m, RecurrentCell)]


@torch.no_grad()
def chrono_init_(
    module: nn.Module, max_timescale: float, generator: torch.Generator | None = None
) -> int:
    """Chrono-initialise every LSTM and GRU cell in ``module``; returns how many cells changed."""
    if not max_timescale > 2:
        raise ValueError(f"the chrono initialisation needs max_timescale > 2, got {max_timescale}")
    changed = 0
    for cell in _cells(module):
        if cell.bias_ih is None or not isinstance(cell, LSTMCell | GRUCell):
            continue
        h = cell.hidden_size
        u = torch.rand(h, generator=generator) * (max_timescale - 2.0) + 1.0
        timescales = torch.log(u).to(cell.bias_ih.dtype)
        if isinstance(cell, LSTMCell):  # gates i, f, C, o
            cell.bias_ih[h : 2 * h] = timescales
            cell.bias_ih[:h] = -timescales
            cell.bias_hh[: 2 * h] = 0.0
        else:  # gates r, z, n
            cell.bias_ih[h : 2 * h] = timescales
            cell.bias_hh[h : 2 * h] = 0.0
        changed += 1
    return changed


@torch.no_grad()
def scale_recurrent_radius_(module: nn.Module, radius: float) -> int:
    """Rescale each gate block of every cell's ``weight_hh`` to spectral radius ``radius``."""
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    changed = 0
    for cell in _cells(module):
        weight = getattr(cell, "weight_hh", None)
        if weight is None:
            continue
        h = cell.hidden_size
        for k in range(weight.shape[0] // h):
            block = weight[k * h : (k + 1) * h]
            block.mul_(radius / spectral_radius(block))
        changed += 1
    return changed
