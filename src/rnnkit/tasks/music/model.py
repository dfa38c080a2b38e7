"""The next step's 88 keys from the steps so far, optionally conditioned on a genre.

    h_t = RNN(x_0, x_1, ..., x_t),    P(x_{t+1} | x_<=t) = D(x_{t+1}; head(h_t))

with x_0 a silent start step, so the first step is modelled too, and D the
key distribution of ``outputs`` (independent Bernoulli keys, or NADE over
the keys). A genre model is the core ``ConditionedGenerator``: the genre's
learned embedding is the context vector, given as the initial state, as an
extra input at every step, or both (``condition``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ...layers import RNNState
from ...models import ConditionedGenerator
from ...padding import check_lengths, step_mask
from ...spec import RNNSpec
from .key_distributions import key_distribution
from .rolls import KEYS

CONDITIONS = ("none", "init", "input", "both")


class RollModel(nn.Module):
    """``forward(x, lengths, genre) -> (params, state)``: key-distribution parameters per step.

    ``x`` (B, T, 88) are the input steps (a silent step, then the piece);
    ``genre`` (B,) genre indices, required when the model has ``condition``.
    """

    def __init__(
        self,
        spec: RNNSpec | None = None,
        output: str = "bernoulli",
        joint_hidden: int = 128,
        genres: list[str] | None = None,
        condition: str = "none",
        genre_size: int = 16,
    ) -> None:
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r} (known: {', '.join(CONDITIONS)})")
        self.genres = list(genres or [])
        if condition != "none" and len(self.genres) < 2:
            raise ValueError("conditioning on the genre needs pieces of at least two genres")
        self.condition = condition
        self.keys = key_distribution(output, joint_hidden)
        extra = genre_size if condition in ("input", "both") else 0
        spec = spec or RNNSpec()
        dropout = spec.dropout
        rnn = spec.build(KEYS + extra)
        if condition == "none":
            self.rnn = rnn
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(rnn.output_size, self.keys.params_size)
        else:
            self.genre_embedding = nn.Embedding(len(self.genres), genre_size)
            self.net = ConditionedGenerator(
                rnn,
                genre_size,
                self.keys.params_size,
                condition=condition,
                input_size=KEYS,
                dropout=dropout,
            )

    @property
    def conditioned(self) -> bool:
        return self.condition != "none"

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        genre: Tensor | None = None,
        state: RNNState | None = None,
    ) -> tuple[Tensor, RNNState]:
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        if not self.conditioned:
            y, state = self.rnn(x, state, lengths)
            return self.head(self.dropout(y)), state
        if genre is None:
            raise ValueError("this model is conditioned on a genre: give one per piece")
        return self.net(x, self.genre_embedding(genre), lengths, state)

    @torch.no_grad()
    def generate(
        self,
        steps: int,
        genre: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Tensor:
        """A new piece (steps, 88) of 0/1, from the silent start step, one step at a time.

        ``progress(done, steps)`` is called after every step.
        """
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        genres = None if genre is None else torch.tensor([genre], device=device)
        x, state, out = torch.zeros(1, 1, KEYS, device=device), None, []
        try:
            for _ in range(steps):
                params, state = self(x, None, genres, state)
                x = self.keys.sample(params, temperature, generator)
                out.append(x[0, 0])
                if progress is not None:
                    progress(len(out), steps)
        finally:
            self.train(was)
        return torch.stack(out)


def shifted_inputs(rolls: Tensor) -> Tensor:
    """The inputs for predicting every step of ``rolls``: a silent step, then all but the last."""
    return torch.cat([torch.zeros_like(rolls[:, :1]), rolls[:, :-1]], 1)


def step_log_probs(
    model: RollModel, rolls: Tensor, lengths: Tensor, genre: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """log P(step t | steps before) (B, T) for every step, and the mask of real steps (B, T)."""
    params, _ = model(shifted_inputs(rolls), lengths, genre)
    mask = step_mask(lengths, rolls.shape[1], rolls.device)
    # Only the real steps go through the key distribution: a joint one costs
    # O(88 x hidden) per step, and padding can be most of a batch of pieces.
    log_p = params.new_zeros(mask.shape)
    log_p[mask] = model.keys.log_prob(params[mask], rolls[mask])
    return log_p, mask


def next_step_nll(
    model: RollModel,
    rolls: Tensor,
    lengths: Tensor,
    genre: Tensor | None = None,
    include_first: bool = False,
) -> tuple[Tensor, Tensor]:
    """Summed NLL (nats) and count of the steps predicted from those before.

    By the benchmark's convention the first step of each piece is not scored
    (T - 1 predicted steps per piece); ``include_first`` scores it too, from
    the silent start step (training does, so the model learns how pieces open).
    ``rolls`` (B, T, 88) padded with anything past each piece's ``lengths``.
    """
    log_p, mask = step_log_probs(model, rolls, lengths, genre)
    if not include_first:
        mask = mask.clone()
        mask[:, 0] = 0
    return -(log_p * mask).sum(), mask.sum()
