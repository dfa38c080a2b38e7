"""The forecaster: the past W steps in, the next H steps of K targets out, with any cell.

Two strategies, the lecture's two ways to produce several outputs:

* ``direct``: many-to-one. The RNN reads the window; after its last step
  one linear layer emits all H x K values at once.
* ``seq2seq``: an encoder-decoder. The encoder's final state conditions a
  decoder that emits one step at a time, fed its previous output (the true
  one while training, with a teacher-forcing ratio), starting from the last
  observed values of the targets.

With ``highway_window`` a linear map from the whole input window to the H
outputs is added to the RNN's (the autoregressive "highway" of LSTNet, Lai et
al., 2018): the network then learns what a linear autoregression on the same
inputs misses, and never does worse than one for want of data.

Inputs and outputs are in the model's units; ``rnnkit.tasks.forecast.prepare``
maps data to them and back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...checks import check_choice, check_positive_int
from ...models import SequenceRegressor
from ...seq2seq import EncoderDecoder
from ...spec import RNNSpec

STRATEGIES = ("direct", "seq2seq")


class Forecaster(nn.Module):
    """``forward(x, y=None) -> (B, H, K)`` for x of shape (B, W, C); (B, H, K, Q) with ``quantiles``.

    ``target_channels`` are the positions of the K targets among the C input
    channels (the seq2seq decoder starts from their last values). ``y``, the
    true future, is only used by ``seq2seq`` while training (teacher forcing).

    Example::

        model = Forecaster(RNNSpec("lstm", hidden=64), input_size=6, target_channels=[0], horizon=7)
        forecast = model(torch.randn(32, 30, 6))     # (32, 7, 1)
    """

    def __init__(
        self,
        spec: RNNSpec,
        input_size: int,
        target_channels: list[int],
        horizon: int,
        strategy: str = "direct",
        teacher_forcing: float = 1.0,
        quantiles: Sequence[float] = (),
        highway_window: int | None = None,
    ) -> None:
        super().__init__()
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.quantiles = check_quantiles(quantiles)
        self.horizon = check_positive_int("horizon", horizon)
        if not target_channels or any(not 0 <= c < input_size for c in target_channels):
            raise ValueError(
                f"target_channels must index the {input_size} inputs, got {target_channels}"
            )
        self.register_buffer("target_channels", torch.tensor(target_channels), persistent=False)
        self.targets = len(target_channels)
        self.teacher_forcing = teacher_forcing
        dropout = spec.dropout
        encoder = spec.build(input_size)
        per_target = max(1, len(self.quantiles))
        if self.strategy == "direct":
            width = self.horizon * self.targets * per_target
            self.net = SequenceRegressor(encoder, width, dropout=dropout)
        else:
            decoder = spec.build(self.targets, bidirectional=False)
            quantile_head = {}
            if self.quantiles:  # each target's Q quantiles side by side; its median is fed back
                quantile_head = dict(
                    head_size=self.targets * per_target,
                    feedback=SortedQuantile(per_target, self.quantiles.index(0.5)),
                )
            self.net = EncoderDecoder(encoder, decoder, output_size=self.targets, **quantile_head)
        self.highway = None
        if highway_window is not None:  # starts at zero: training begins from the RNN alone
            window = check_positive_int("highway_window", highway_window)
            self.highway = nn.Linear(window * input_size, self.horizon * self.targets * per_target)
            nn.init.zeros_(self.highway.weight)
            nn.init.zeros_(self.highway.bias)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        linear = 0.0
        if self.highway is not None:
            if x.shape[1] * x.shape[2] != self.highway.in_features:
                raise ValueError(
                    f"the highway reads windows of {self.highway.in_features // x.shape[2]} steps, got {x.shape[1]}"
                )
            linear = self.highway(x.flatten(1)).view(x.shape[0], self.horizon, -1)
        if self.strategy == "direct":
            return self._shaped(self.net(x).view(x.shape[0], self.horizon, -1) + linear)
        last = x[:, -1, self.target_channels]  # (B, K): where the decoder starts
        if y is not None and self.training:
            tgt_in = torch.cat([last.unsqueeze(1), y[:, :-1]], 1)
            return self._shaped(self.net(x, tgt_in, teacher_forcing=self.teacher_forcing) + linear)
        # each step fed the previous prediction (the highway's part included, as the true values
        # were while training); under autograd when enabled (gradient diagnostics)
        enc = self.net.encode(x)
        state, previous, outs = enc["state"], last, []
        for h in range(self.horizon):
            out, state, _ = self.net.step(previous, state, enc)
            if self.highway is not None:
                out = out + linear[:, h]
            outs.append(out)
            previous = self.net.fed_back(out)
        return self._shaped(torch.stack(outs, 1))

    def _shaped(self, out: Tensor) -> Tensor:
        """(B, H, K), or (B, H, K, Q) sorted so that quantiles never cross."""
        if self.quantiles:
            return out.reshape(out.shape[0], self.horizon, self.targets, -1).sort(-1).values
        return out.reshape(out.shape[0], self.horizon, self.targets)


class SortedQuantile(nn.Module):
    """(..., K * Q) -> (..., K): each target's quantile at ``index`` once its Q values are sorted."""

    def __init__(self, per_target: int, index: int) -> None:
        super().__init__()
        self.per_target, self.index = per_target, index

    def forward(self, out: Tensor) -> Tensor:
        grouped = out.unflatten(-1, (-1, self.per_target))
        return grouped.sort(-1).values[..., self.index]


def check_quantiles(quantiles: Sequence[float]) -> list[float]:
    """Sorted, distinct, in (0, 1), and always holding the median (the point forecast)."""
    values = sorted({float(q) for q in quantiles})
    if any(not 0.0 < q < 1.0 for q in values):
        raise ValueError(f"--quantiles must lie strictly between 0 and 1, got {list(quantiles)}")
    if values and 0.5 not in values:
        values = sorted(values + [0.5])
    if values == [0.5]:
        raise ValueError(
            "--quantiles needs a quantile besides the median 0.5: an interval has two ends"
        )
    return values


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Sequence[float]) -> Tensor:
    """Mean quantile (pinball) loss of pred (..., Q) against target (...)."""
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)
    error = target.unsqueeze(-1) - pred
    return torch.maximum(q * error, (q - 1) * error).mean()
