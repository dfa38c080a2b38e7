"""A music run's batches of pieces and its training task: next-step NLL, per step, in nats."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ...diagnostics import GradientFlow, gradient_flow
from ...training import Monitor, SeededSource
from .model import RollModel, next_step_nll
from .rolls import KEYS, Rolls


def padded_rolls(pieces: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """(B, T, 88) float32 padded with zeros, and the lengths (B,)."""
    lengths = torch.tensor([len(p) for p in pieces])
    x = torch.zeros(len(pieces), int(lengths.max()), KEYS)
    for i, p in enumerate(pieces):
        x[i, : len(p)] = torch.from_numpy(np.asarray(p, dtype=np.float32))
    return x, lengths


def genre_index(
    model: RollModel, genres: list[str], device: torch.device | None = None
) -> Tensor | None:
    """The model's index of each genre (on ``device``), or None for a model without genres."""
    if not model.conditioned:
        return None
    lookup = {g: i for i, g in enumerate(model.genres)}
    return torch.tensor([lookup[g] for g in genres], device=device)


class RollBatches(SeededSource):
    """Random minibatches of pieces, each cut to a random ``window`` of steps if longer; resumable."""

    def __init__(self, rolls: Rolls, batch: int, seed: int, window: int | None = None) -> None:
        super().__init__(seed)
        self.rolls, self.batch, self.window = rolls, min(batch, len(rolls)), window

    def _cut(self, piece: np.ndarray) -> np.ndarray:
        if self.window is None or len(piece) <= self.window:
            return piece
        start = int(torch.randint(len(piece) - self.window + 1, (1,), generator=self.generator))
        return piece[start : start + self.window]

    def __next__(self) -> tuple[Tensor, Tensor, list[str]]:
        index = torch.randint(len(self.rolls), (self.batch,), generator=self.generator).tolist()
        x, lengths = padded_rolls([self._cut(self.rolls.pieces[i]) for i in index])
        return x, lengths, [self.rolls.genres[i] for i in index]


@torch.no_grad()
def mean_nll(
    model: RollModel,
    rolls: Rolls,
    as_genre: str | None = None,
    include_first: bool = False,
    chunk: int = 32,
) -> tuple[float, int]:
    """NLL per predicted step (nats, summed over the keys) over every piece, and the step count.

    ``as_genre`` scores every piece as if it were of that genre (a genre model);
    ``include_first`` scores the first step of each piece too (see ``next_step_nll``).
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(rolls), chunk):
            x, lengths = padded_rolls(rolls.pieces[start : start + chunk])
            genres = rolls.genres[start : start + chunk]
            if as_genre is not None:
                genres = [as_genre] * len(genres)
            genre = genre_index(model, genres, device)
            t, n = next_step_nll(
                model,
                x.to(device),
                lengths,
                genre,
                include_first,
            )
            total, count = total + float(t), count + int(n)
    finally:
        model.train(was)
    return total / count, count


SAMPLE_SECONDS = 5.0  # the 128-step sample after the test, MADE on two CPU cores: about 2 s


class MusicTask:
    """NLL of every step (the first from the silent start) on training pieces; validation NLL
    by the benchmark's convention (steps after the first) selects."""

    monitor = Monitor(
        "val_nll",
        "validation NLL (nats per step)",
        train_label="training NLL (nats per step)",
        same_axis=True,
    )

    def __init__(
        self, train: Rolls, valid: Rolls, batch: int, seed: int, window: int | None = None
    ) -> None:
        self.valid = valid
        self.batches = RollBatches(train, batch, seed, window)

    def expect_test(self, test: Rolls, genres: int) -> None:
        """Note the test after training (every piece scored under each genre too, then a
        sample of 128 steps), to judge its time from the validation's."""
        self.test_steps, self.genres = test.steps, genres

    def after_training_seconds(self, eval_seconds: float) -> float:
        test_steps = getattr(self, "test_steps", 0)
        if not test_steps:
            return 0.0
        rate = eval_seconds / max(1, self.valid.steps)
        return rate * test_steps * (2 + self.genres) + SAMPLE_SECONDS

    def loss(self, model: RollModel, batch, carry):
        x, lengths, genres = batch
        genre = genre_index(model, genres, x.device)
        total, count = next_step_nll(model, x, lengths, genre, include_first=True)
        return total / count, None

    def evaluate(self, model: nn.Module) -> dict:
        nll, _ = mean_nll(model, self.valid)
        return {"val_nll": nll}

    def gradient_flow(self, model: RollModel) -> GradientFlow:
        """dL/dh_t over 16 validation pieces (recorded at every evaluation for `diagnose`)."""
        device = next(model.parameters()).device
        x, lengths = padded_rolls(self.valid.pieces[:16])
        genre = genre_index(model, self.valid.genres[:16], device)

        def loss(m: RollModel) -> Tensor:
            total, count = next_step_nll(m, x.to(device), lengths, genre, include_first=True)
            return total / count

        return gradient_flow(model, loss)
