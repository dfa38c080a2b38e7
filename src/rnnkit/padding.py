"""Small helpers for batches of sequences of different lengths (batch first)."""

from __future__ import annotations

import torch
from torch import Tensor


def check_lengths(lengths: Tensor | list[int] | None, batch: int, steps: int) -> Tensor | None:
    """Validate ``lengths`` against a (batch, steps, ...) input; return a CPU int64 tensor."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths).detach().to("cpu")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must hold integers, got dtype {lengths.dtype}")
    lengths = lengths.long()
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have shape ({batch},), one per sequence, got {tuple(lengths.shape)}"
        )
    if batch and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(
            f"lengths must lie in [1, {steps}] (the input's time steps), got min {int(lengths.min())} and max {int(lengths.max())}"
        )
    return lengths


def step_mask(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """(B, T) boolean mask, True at the valid steps of each sequence."""
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of (B, T, ...) within its own length; padding stays at the end."""
    if lengths is None:
        return x.flip(1)
    steps = x.shape[1]
    t = torch.arange(steps)[None, :]
    lens = lengths[:, None]
    index = torch.where(t < lens, lens - 1 - t, t).to(x.device)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def last_valid(y: Tensor, lengths: Tensor | None) -> Tensor:
    """y[b, lengths[b] - 1] for each b, from (B, T, F) to (B, F)."""
    if lengths is None:
        return y[:, -1]
    index = (lengths - 1).to(y.device).view(-1, 1, 1).expand(-1, 1, y.shape[-1])
    return y.gather(1, index).squeeze(1)
