"""The classifier: the lecture's many-to-one RNN, optionally beside a convolutional branch.

The RNN reads the whole series; its outputs are pooled into one vector
(``last``, ``mean``, ``max`` or ``attention``) and a linear head gives the
class scores. With ``conv=True`` a fully convolutional branch (Wang et al.,
2017: three blocks of convolution, batch normalisation and ReLU with 128,
256 and 128 filters of widths 8, 5 and 3, then the average over time) reads
the same series, and the head sees both summaries side by side, as in
LSTM-FCN (Karim et al., 2017). LSTM-FCN's RNN read the series transposed
(the "dimension shuffle"); here both branches read it along time, so that
unequal lengths mean the same thing to both.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...checks import check_positive_int
from ...models import Pooling
from ...padding import check_lengths, step_mask
from ...spec import RNNSpec

FILTERS = ((128, 8), (256, 5), (128, 3))


class ConvBranch(nn.Module):
    """(B, T, C) -> (B, 128): convolution blocks over time, then the mean over each series' steps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        blocks, width = [], channels
        for filters, kernel in FILTERS:
            blocks.append(
                nn.Sequential(
                    nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0),  # output length T
                    nn.Conv1d(width, filters, kernel),
                    nn.BatchNorm1d(filters),
                    nn.ReLU(),
                )
            )
            width = filters
        self.blocks = nn.ModuleList(blocks)
        self.output_size = width

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        mask = None
        if lengths is not None:  # padded steps are zeroed after every block, so they add nothing
            mask = step_mask(lengths, x.shape[1], x.device).unsqueeze(1)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, C, T)
        if mask is not None:  # past its end a series reads as the zeros a lone one is padded with
            h = h * mask
        for block in self.blocks:
            h = block(h)
            if mask is not None:
                h = h * mask
        if mask is None:
            return h.mean(-1)
        return h.sum(-1) / lengths.to(h.device, h.dtype).unsqueeze(-1)


class Classifier(nn.Module):
    """``forward(x, lengths=None) -> (B, classes)`` logits for x of shape (B, T, C).

    Example::

        model = Classifier(RNNSpec("lstm", hidden=64), channels=1, classes=2, conv=True)
        logits = model(torch.randn(8, 150, 1))
    """

    def __init__(
        self,
        spec: RNNSpec,
        channels: int,
        classes: int,
        pooling: str = "last",
        conv: bool = False,
    ) -> None:
        super().__init__()
        self.rnn = spec.build(channels)
        self.pool = Pooling(pooling, self.rnn.output_size, self.rnn.num_directions)
        self.conv = ConvBranch(channels) if conv else None
        width = self.rnn.output_size + (self.conv.output_size if conv else 0)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(width, check_positive_int("classes", classes))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        y, _ = self.rnn(x, lengths=lengths)
        summary = self.pool(y, lengths)
        if self.conv is not None:
            summary = torch.cat([summary, self.conv(x, lengths)], -1)
        return self.head(self.dropout(summary))


class Ensemble(nn.Module):
    """Members trained alike from different seeds; ``forward`` gives log mean probabilities.

    Averaging the members' class probabilities lowers the variance one
    initialisation leaves on a small training set (the protocol of
    InceptionTime, Fawaz et al. 2020). The output is the log of that mean, so
    a softmax of it (what every caller applies) gives the mean itself.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        proba = torch.stack([torch.softmax(m(x, lengths), -1) for m in self.members]).mean(0)
        return proba.clamp_min(torch.finfo(proba.dtype).tiny).log()
