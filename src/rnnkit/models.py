"""The lecture's architectures, each built on any ``rnnkit.RNN``.

* ``SequenceTagger``: an output at every step (next-character prediction).
* ``SequenceClassifier`` / ``SequenceRegressor``: read the whole sequence,
  then one output (time-series classification, forecasting).
* ``ConditionedGenerator``: a context vector conditions generation, as the
  initial state, as an extra input at every step, or both.
* ``EncoderDecoder`` (in ``rnnkit.seq2seq``, re-exported here).

Inputs are token ids (give ``vocab_size``) or real vectors. The lecture's
deep input-to-hidden and hidden-to-output are the optional MLPs
``input_hidden`` and ``output_hidden`` (lists of hidden widths).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import decoding
from .checks import check_choice, check_positive_int
from .layers import InputStage, mlp, state_from_vector
from .padding import check_lengths, last_valid, step_mask
from .recurrent import RNN
from .seq2seq import EncoderDecoder

__all__ = [
    "ConditionedGenerator",
    "EncoderDecoder",
    "InputStage",
    "SequenceClassifier",
    "SequenceRegressor",
    "SequenceTagger",
    "mlp",
]

RNNState = Tensor | tuple[Tensor, ...]


def _check_rnn(rnn: object) -> RNN:
    if not isinstance(rnn, RNN):
        raise ValueError(f"rnn must be an rnnkit.RNN, got {type(rnn).__name__}")
    return rnn


class SequenceTagger(nn.Module):
    """An output at every time step: y_t = g(s_t), e.g. the next character's logits.

    ``forward(x, lengths=None, state=None) -> (out, final)`` with out of shape
    (B, T, output_size); ``step(x_t, state)`` advances one step for generation.

    Example::

        model = SequenceTagger(RNN("lstm", 32, 128), output_size=65, vocab_size=65)
        logits, state = model(torch.randint(65, (8, 100)))
    """

    def __init__(
        self,
        rnn: RNN,
        output_size: int,
        *,
        vocab_size: int | None = None,
        input_size: int | None = None,
        input_hidden: Sequence[int] = (),
        output_hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.rnn = _check_rnn(rnn)
        self.inputs = InputStage(rnn.input_size, input_size, vocab_size, input_hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = mlp(
            [rnn.output_size, *output_hidden, check_positive_int("output_size", output_size)]
        )

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: RNNState | None = None
    ) -> tuple[Tensor, RNNState]:
        y, final = self.rnn(self.inputs(x), state, lengths)
        return self.head(self.dropout(y)), final

    def step(self, x_t: Tensor, state: RNNState | None = None) -> tuple[Tensor, RNNState]:
        """One step: x_t is (B,) token ids or (B, input_size); returns (B, output_size)."""
        out, state = self(x_t.unsqueeze(1), state=state)
        return out[:, 0], state

    @torch.no_grad()
    def generate(
        self,
        start: Tensor,
        steps: int,
        state: RNNState | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue from ``start`` tokens (B, T0), sampling ``steps`` new ones; returns (B, steps)."""
        logits, state = self(start, state=state)
        first = decoding.sample(
            lambda t, s: (logits[:, -1], s),
            state,
            start[:, -1],
            1,
            temperature,
            top_k,
            generator=generator,
        )
        if steps == 1:
            return first.tokens
        rest = decoding.sample(
            self.step, state, first.tokens[:, 0], steps - 1, temperature, top_k, generator=generator
        )
        return torch.cat([first.tokens, rest.tokens], 1)


class Pooling(nn.Module):
    """Summarise (B, T, F) outputs into (B, F): ``last``, ``mean``, ``max`` or ``attention``.

    ``last`` takes the forward direction at each sequence's last step and the
    backward direction at step 0, where each has read the whole sequence.
    """

    KINDS = ("last", "mean", "max", "attention")

    def __init__(self, kind: str, width: int, directions: int = 1) -> None:
        super().__init__()
        self.kind = check_choice("pooling", kind, self.KINDS)
        self.directions = directions
        if kind == "attention":
            self.score = nn.Sequential(
                nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False)
            )

    def forward(self, y: Tensor, lengths: Tensor | None) -> Tensor:
        if self.kind == "last":
            if self.directions == 1:
                return last_valid(y, lengths)
            half = y.shape[-1] // 2
            return torch.cat([last_valid(y[..., :half], lengths), y[:, 0, half:]], -1)
        mask = None if lengths is None else step_mask(lengths, y.shape[1], y.device).unsqueeze(-1)
        if self.kind == "mean":
            if mask is None:
                return y.mean(1)
            return (y * mask).sum(1) / lengths.to(y.device, y.dtype).unsqueeze(-1)
        if self.kind == "max":
            return (y if mask is None else y.masked_fill(~mask, float("-inf"))).amax(1)
        scores = self.score(y)  # (B, T, 1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, 1) * y).sum(1)


class SequenceClassifier(nn.Module):
    """Reads the entire sequence, then one output: class logits (B, num_classes).

    Example::

        model = SequenceClassifier(RNN("gru", 1, 64, bidirectional=True), 2, pooling="mean")
        logits = model(torch.randn(16, 150, 1), lengths=lengths)
    """

    def __init__(
        self,
        rnn: RNN,
        num_classes: int,
        *,
        pooling: str = "last",
        vocab_size: int | None = None,
        input_size: int | None = None,
        input_hidden: Sequence[int] = (),
        output_hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.rnn = _check_rnn(rnn)
        self.inputs = InputStage(rnn.input_size, input_size, vocab_size, input_hidden)
        self.pool = Pooling(pooling, rnn.output_size, rnn.num_directions)
        self.dropout = nn.Dropout(dropout)
        self.head = mlp(
            [rnn.output_size, *output_hidden, check_positive_int("num_classes", num_classes)]
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        y, _ = self.rnn(self.inputs(x), lengths=lengths)
        return self.head(self.dropout(self.pool(y, lengths)))


class SequenceRegressor(SequenceClassifier):
    """Reads the entire sequence, then one real-valued output (B, output_size)."""

    def __init__(self, rnn: RNN, output_size: int, **options) -> None:
        super().__init__(rnn, output_size, **options)


class ConditionedGenerator(nn.Module):
    """Generation conditioned on a context vector c (B, context_size), as in the lecture.

    ``condition="init"``: c sets the initial state, h_0 = tanh(W c + b) for
    every layer, direction and state part; ``"input"``: c is an extra input at
    every step, so ``rnn.input_size`` must be the step input's width plus
    ``context_size``; ``"both"``: both at once.

    Example::

        rnn = RNN("lstm", 16 + 4, 64)            # 16 for the token, 4 for the context
        model = ConditionedGenerator(rnn, 4, 30, condition="both", vocab_size=30)
        logits, _ = model(tokens, context)
    """

    CONDITIONS = ("init", "input", "both")

    def __init__(
        self,
        rnn: RNN,
        context_size: int,
        output_size: int,
        *,
        condition: str = "init",
        vocab_size: int | None = None,
        input_size: int | None = None,
        input_hidden: Sequence[int] = (),
        output_hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.rnn = _check_rnn(rnn)
        self.dropout = nn.Dropout(dropout)  # on the RNN's output, before the head
        self.context_size = check_positive_int("context_size", context_size)
        self.condition = check_choice("condition", condition, self.CONDITIONS)
        self.as_input = condition in ("input", "both")
        self.as_init = condition in ("init", "both")
        step_width = rnn.input_size - (context_size if self.as_input else 0)
        if step_width < 1:
            raise ValueError(
                f"rnn.input_size ({rnn.input_size}) must exceed context_size ({context_size}) with condition={condition!r}"
            )
        self.inputs = InputStage(step_width, input_size, vocab_size, input_hidden)
        if self.as_init:
            rows = rnn.num_layers * rnn.num_directions
            self.init = nn.Linear(context_size, rows * sum(rnn.state_sizes))
        self.head = mlp(
            [rnn.output_size, *output_hidden, check_positive_int("output_size", output_size)]
        )

    def _check_context(self, context: Tensor, batch: int) -> None:
        if context.dim() != 2 or context.shape != (batch, self.context_size):
            raise ValueError(
                f"context must have shape ({batch}, context_size={self.context_size}), got {tuple(context.shape)}"
            )

    def initial_state(self, context: Tensor) -> RNNState | None:
        if not self.as_init:
            return None
        return state_from_vector(torch.tanh(self.init(context)), self.rnn)

    def _rnn_input(self, x: Tensor, context: Tensor) -> Tensor:
        x = self.inputs(x)
        if self.as_input:
            x = torch.cat([x, context.unsqueeze(1).expand(-1, x.shape[1], -1)], -1)
        return x

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        lengths: Tensor | None = None,
        state: RNNState | None = None,
    ) -> tuple[Tensor, RNNState]:
        """Teacher-forced pass: out (B, T, output_size) for inputs x and context c."""
        self._check_context(context, x.shape[0])
        if state is None:
            state = self.initial_state(context)
        y, final = self.rnn(self._rnn_input(x, context), state, lengths)
        return self.head(self.dropout(y)), final

    def step(self, x_t: Tensor, state: RNNState | None, context: Tensor) -> tuple[Tensor, RNNState]:
        out, state = self(x_t.unsqueeze(1), context, state=state)
        return out[:, 0], state

    @torch.no_grad()
    def generate(
        self,
        context: Tensor,
        start: Tensor,
        steps: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos: int | None = None,
        generator: torch.Generator | None = None,
    ) -> decoding.Decoded:
        """Sample ``steps`` tokens from start tokens (B,) under context c (a token model)."""
        state = self.initial_state(context)
        return decoding.sample(
            lambda t, s: self.step(t, s, context),
            state,
            start,
            steps,
            temperature,
            top_k,
            eos,
            generator,
        )
