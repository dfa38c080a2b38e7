"""Small building blocks shared by the architectures: MLPs, the input stage, state packing."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .checks import check_positive_int

RNNState = Tensor | tuple[Tensor, ...]


def mlp(sizes: Sequence[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with tanh between them (and after the last if asked)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class InputStage(nn.Module):
    """Raw input to the RNN's input width: embedding of token ids and/or the deep input MLP.

    Token ids (B, T) with ``vocab_size``; real vectors (B, T, input_size) otherwise.
    """

    def __init__(
        self,
        out_size: int,
        input_size: int | None = None,
        vocab_size: int | None = None,
        hidden: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        hidden = list(hidden)
        chain: list[int] | None = None
        if vocab_size is not None:
            check_positive_int("vocab_size", vocab_size)
            width = hidden[0] if hidden else out_size
            self.embed: nn.Module | None = nn.Embedding(vocab_size, width)
            if hidden:
                chain = [*hidden, out_size]
        else:
            width = out_size if input_size is None else check_positive_int("input_size", input_size)
            self.embed = None
            if hidden:
                chain = [width, *hidden, out_size]
            elif width != out_size:
                raise ValueError(
                    f"input_size ({width}) differs from the RNN's input width ({out_size}); give input_hidden"
                )
        self.input_size = None if vocab_size is not None else width
        # the deep input-to-hidden MLP; tanh after its last layer too, since W_ih follows
        self.mlp = mlp(chain, final_activation=True) if chain else None

    def forward(self, x: Tensor) -> Tensor:
        if self.embed is not None:
            if x.dtype.is_floating_point:
                raise ValueError("x must hold token ids (integers) for a model with vocab_size")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
                raise ValueError(
                    f"token ids must lie in [0, {self.vocab_size}), got [{int(x.min())}, {int(x.max())}]"
                )
            x = self.embed(x)
        elif x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must have {self.input_size} features in its last dimension, got shape {tuple(x.shape)}"
            )
        return self.mlp(x) if self.mlp is not None else x


def state_from_vector(vector: Tensor, rnn) -> RNNState:
    """Split (B, rows * sum(state_sizes)) into an RNN state in torch's (rows, B, size) layout."""
    rows = rnn.num_layers * rnn.num_directions
    flat = vector.view(vector.shape[0], rows, -1).transpose(0, 1)
    parts = tuple(p.contiguous() for p in flat.split(list(rnn.state_sizes), -1))
    return parts if len(parts) > 1 else parts[0]


def state_parts(state: RNNState) -> tuple[Tensor, ...]:
    return (state,) if isinstance(state, Tensor) else tuple(state)


def last_step(state: RNNState) -> RNNState:
    """A dilated stack's state (rows, B, D, size) as its last step's (rows, B, size)."""
    parts = tuple(p[:, :, -1] if p.dim() == 4 else p for p in state_parts(state))
    return parts if len(parts) > 1 else parts[0]


def top_layer_vector(state: RNNState, directions: int) -> Tensor:
    """The top layer's state parts (at the last step), all directions, per sequence: (B, F)."""
    parts = state_parts(last_step(state))
    pieces = [p[-directions:].transpose(0, 1).reshape(p.shape[1], -1) for p in parts]
    return torch.cat(pieces, -1)
