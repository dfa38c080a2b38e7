"""The next step's 88 keys from the steps so far: an RNN with independent Bernoulli outputs.

    h_t = RNN(x_1..x_t),   P(x_{t+1, k} = 1 | x_1..x_t) = sigmoid(W h_t + b)_k

each key independent of the others given h_t (the benchmark's usual model).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...padding import check_lengths, step_mask
from ...recurrent import RNN
from .rolls import KEYS


class BernoulliRollModel(nn.Module):
    """``forward(x, lengths=None) -> (B, T, 88)`` logits of the step after each input step."""

    def __init__(
        self, cell: str = "lstm", hidden: int = 256, layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.rnn = RNN(cell, KEYS, hidden, num_layers=layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.rnn.output_size, KEYS)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        y, _ = self.rnn(x, lengths=check_lengths(lengths, x.shape[0], x.shape[1]))
        return self.head(self.dropout(y))


def next_step_nll(model: nn.Module, rolls: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Summed NLL (nats) of every step after the first, predicted from those before, and the count.

    ``rolls`` (B, T, 88) padded with anything past each piece's ``lengths``.
    """
    logits = model(rolls[:, :-1], lengths - 1)
    mask = step_mask(lengths - 1, rolls.shape[1] - 1, rolls.device)
    per_step = F.binary_cross_entropy_with_logits(logits, rolls[:, 1:], reduction="none").sum(-1)
    return (per_step * mask).sum(), mask.sum()
