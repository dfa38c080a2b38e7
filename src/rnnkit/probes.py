"""Handles on the hidden state at every step, so that dL/dh_t can be read for any model.

Inside ``with state_probes() as probes:`` every ``Recurrent`` layer that runs
adds a zero tensor p (B, T, S), created with ``requires_grad``, to the
fed-back state at every step: h_t' = h_t + p_t. The forward pass is unchanged,
and the gradient of a loss with respect to p_t is the total derivative
dL/dh_t, through the output at t and through every later step. Recording
forces the time loop (torch's fused kernels hide the states).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

_recording: list[Probe] | None = None


@dataclass
class Probe:
    layer: nn.Module  # the Recurrent layer that created it
    tensor: Tensor  # (B, T, S) zeros, in the sequence's own time order


@contextlib.contextmanager
def state_probes() -> Iterator[list[Probe]]:
    """Record one ``Probe`` per ``Recurrent`` call within the block (in call order)."""
    global _recording
    saved, _recording = _recording, []
    try:
        yield _recording
    finally:
        _recording = saved


def recording() -> bool:
    return _recording is not None


def new_probe(layer: nn.Module, x: Tensor, size: int) -> Tensor | None:
    """A zero probe for a layer about to read x (B, T, D); None when nothing records."""
    if _recording is None:
        return None
    probe = torch.zeros(x.shape[0], x.shape[1], size, dtype=x.dtype, device=x.device)
    probe.requires_grad_(True)
    _recording.append(Probe(layer, probe))
    return probe
