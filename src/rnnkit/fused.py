"""The fused path: torch's own RNN kernels (oneDNN on the CPU, cuDNN on GPUs).

``run`` calls the same internal functions that ``nn.RNN``, ``nn.LSTM`` and
``nn.GRU`` call, with the parameters of rnnkit's cells, so gradients reach
those very tensors. Padded batches go through a packed sequence, as in torch.
``from_torch`` / ``to_torch`` copy weights between the two layouts, which
are the same tensors under other names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

if TYPE_CHECKING:
    from .recurrent import RNN

_KERNELS = {"lstm": _VF.lstm, "gru": _VF.gru, "rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu}
_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def flat_weights(rnn: RNN) -> list[Tensor]:
    """Parameters in torch's ``_flat_weights`` order: layer by layer, direction by direction."""
    out = []
    for cell in rnn.cells:
        out += [getattr(cell, name) for name in _PARAMS if getattr(cell, name) is not None]
    return out


def flatten(rnn: RNN) -> None:
    """On cuDNN, make the weights views into one buffer, as ``nn.LSTM.flatten_parameters`` does.

    cuDNN wants every weight of the stack in one block of memory; scattered
    tensors are copied into one at every call (with a warning each time).
    The parameters stay the same objects, so optimisers keep working.
    """
    weights = flat_weights(rnn)
    if (
        not weights[0].is_cuda
        or len({(w.dtype, w.device) for w in weights}) > 1
        or not torch._use_cudnn_rnn_flatten_weight()
    ):
        return
    cell = rnn.cells[0]
    with torch.no_grad():
        torch._cudnn_rnn_flatten_weight(
            weights,
            4 if cell.bias else 2,
            rnn.input_size,
            torch.backends.cudnn.rnn.get_cudnn_mode(cell.fusable_mode.upper()),
            rnn.hidden_size,
            0,  # no projection
            rnn.num_layers,
            True,  # batch first
            rnn.bidirectional,
        )


def run(
    rnn: RNN, x: Tensor, hx: tuple[Tensor, ...] | None, lengths: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Forward through torch's fused kernel; returns y and the final state as a tuple."""
    cell = rnn.cells[0]
    mode = cell.fusable_mode
    batch, steps = x.shape[:2]
    if hx is None:
        rows = rnn.num_layers * rnn.num_directions
        hx = tuple(x.new_zeros(rows, batch, s) for s in cell.state_sizes)
    args = (
        flat_weights(rnn),
        cell.bias,
        rnn.num_layers,
        rnn.dropout,
        rnn.training,
        rnn.bidirectional,
    )
    kernel = _KERNELS[mode]
    hidden = hx if mode == "lstm" else hx[0]
    if lengths is None:
        out = kernel(x, hidden, *args, True)
        return out[0], tuple(out[1:])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    order = packed.sorted_indices.to(x.device)
    hidden = (
        tuple(h.index_select(1, order) for h in hx)
        if mode == "lstm"
        else hx[0].index_select(1, order)
    )
    out = kernel(packed.data, packed.batch_sizes, hidden, *args)
    y_packed = PackedSequence(
        out[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
    )
    y, _ = pad_packed_sequence(y_packed, batch_first=True, total_length=steps)
    restore = packed.unsorted_indices.to(x.device)
    return y, tuple(h.index_select(1, restore) for h in out[1:])


def _torch_kind(module: nn.Module) -> tuple[str, dict]:
    if isinstance(module, nn.LSTM):
        if module.proj_size:
            raise ValueError("from_torch: nn.LSTM with proj_size > 0 has no rnnkit equivalent")
        return "lstm", {}
    if isinstance(module, nn.GRU):
        return "gru", {}
    if isinstance(module, nn.RNN):
        return "elman", {"nonlinearity": module.nonlinearity}
    raise ValueError(f"from_torch takes nn.RNN, nn.LSTM or nn.GRU, got {type(module).__name__}")


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def from_torch(cls: type[RNN], module: nn.RNNBase, **options) -> RNN:
    cell, extra = _torch_kind(module)
    ref = module.weight_ih_l0
    rnn = cls(
        cell,
        module.input_size,
        module.hidden_size,
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        dropout=float(module.dropout),
        bias=module.bias,
        **{**extra, **options},
    ).to(device=ref.device, dtype=ref.dtype)
    _copy(rnn, module, to_torch=False)
    return rnn


def to_torch(rnn: RNN) -> nn.RNNBase:
    blockers = rnn.fused_blockers()
    if blockers:
        raise ValueError(f"to_torch: torch.nn has no module with {', '.join(blockers)}")
    cell = rnn.cells[0]
    mode = cell.fusable_mode
    kwargs = dict(
        num_layers=rnn.num_layers,
        bias=cell.bias,
        batch_first=True,
        dropout=rnn.dropout,
        bidirectional=rnn.bidirectional,
    )
    if mode == "lstm":
        module = nn.LSTM(rnn.input_size, rnn.hidden_size, **kwargs)
    elif mode == "gru":
        module = nn.GRU(rnn.input_size, rnn.hidden_size, **kwargs)
    else:
        module = nn.RNN(rnn.input_size, rnn.hidden_size, nonlinearity=mode[4:], **kwargs)
    ref = cell.weight_ih
    module = module.to(device=ref.device, dtype=ref.dtype)
    _copy(rnn, module, to_torch=True)
    return module


@torch.no_grad()
def _copy(rnn: RNN, module: nn.RNNBase, to_torch: bool) -> None:
    for layer, directions in enumerate(rnn.layers):
        for k, rec in enumerate(directions):
            for name in _PARAMS:
                ours = getattr(rec.cell, name)
                if ours is None:
                    continue
                theirs = getattr(module, name + _suffix(layer, k))
                (theirs if to_torch else ours).copy_(ours if to_torch else theirs)
