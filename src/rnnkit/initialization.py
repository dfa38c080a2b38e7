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

from .cells import RecurrentCell
from .diagnostics import spectral_radius


def _cells(module: nn.Module) -> list[RecurrentCell]:
    return [m for m in module.modules() if isinstance(m, RecurrentCell)]


@torch.no_grad()
def chrono_init_(
    module: nn.Module, max_timescale: float, generator: torch.Generator | None = None
) -> int:
    """Chrono-initialise every cell in ``module``; returns how many cells changed.

    Each cell says which of its gates keeps the state (``forget_gate``, its
    bias set to log T) and which overwrites it (``write_gate``, -log T); a
    cell that declares neither, or has no biases, is a ValueError naming it.
    """
    if not max_timescale > 2:
        raise ValueError(f"the chrono initialisation needs max_timescale > 2, got {max_timescale}")
    cells = _cells(module)
    for cell in cells:
        if cell.forget_gate is None and cell.write_gate is None:
            raise ValueError(
                f"the chrono initialisation sets the biases of a forget or write gate, "
                f"and {type(cell).__name__} declares neither (forget_gate, write_gate)"
            )
        if getattr(cell, "bias_ih", None) is None:
            raise ValueError(
                f"the chrono initialisation sets gate biases; this {type(cell).__name__} has none"
            )
    for cell in cells:
        u = torch.rand(cell.hidden_size, generator=generator) * (max_timescale - 2.0) + 1.0
        timescales = torch.log(u)
        for gate, sign in ((cell.forget_gate, 1.0), (cell.write_gate, -1.0)):
            if gate is not None:
                first, *rest = cell.gate_biases(gate)
                first.copy_(sign * timescales.to(first.dtype))
                for other in rest:  # the recurrent bias of the gate adds nothing
                    other.zero_()
    return len(cells)


@torch.no_grad()
def scale_recurrent_radius_(module: nn.Module, radius: float) -> int:
    """Rescale every cell's recurrent matrices (each gate block) to spectral radius ``radius``.

    The cells say which matrices those are (``recurrent_matrices``); a cell
    with none (the Jordan cell, whose loop is a product of two) is a ValueError.
    """
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    cells = _cells(module)
    for cell in cells:
        if not cell.recurrent_matrices():
            raise ValueError(
                f"{type(cell).__name__} has no recurrent matrix to rescale to a spectral radius"
            )
    for cell in cells:
        for block in cell.recurrent_matrices().values():
            block.mul_(radius / spectral_radius(block))
    return len(cells)
