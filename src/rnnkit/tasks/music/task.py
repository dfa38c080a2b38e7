"""A music run's batches of pieces and its training task: next-step NLL, per step, in nats."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ...training import SeededSource
from .model import next_step_nll
from .rolls import KEYS, Rolls


def padded_rolls(pieces: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """(B, T, 88) float32 padded with zeros, and the lengths (B,)."""
    lengths = torch.tensor([len(p) for p in pieces])
    x = torch.zeros(len(pieces), int(lengths.max()), KEYS)
    for i, p in enumerate(pieces):
        x[i, : len(p)] = torch.from_numpy(np.asarray(p, dtype=np.float32))
    return x, lengths


class RollBatches(SeededSource):
    """Random minibatches of whole pieces, resumable."""

    def __init__(self, rolls: Rolls, batch: int, seed: int) -> None:
        super().__init__(seed)
        self.rolls, self.batch = rolls, min(batch, len(rolls))

    def __next__(self) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(self.rolls), (self.batch,), generator=self.generator)
        return padded_rolls([self.rolls.pieces[i] for i in index.tolist()])


@torch.no_grad()
def mean_nll(model: nn.Module, rolls: Rolls, chunk: int = 64) -> tuple[float, int]:
    """NLL per predicted step (nats, summed over the keys) over every piece, and the step count."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(rolls), chunk):
            x, lengths = padded_rolls(rolls.pieces[start : start + chunk])
            t, n = next_step_nll(model, x.to(device), lengths)
            total, count = total + float(t), count + int(n)
    finally:
        model.train(was)
    return total / count, count


class MusicTask:
    """Next-step NLL on the training pieces; the validation pieces' NLL selects."""

    def __init__(self, train: Rolls, valid: Rolls, batch: int, seed: int) -> None:
        self.valid = valid
        self.batches = RollBatches(train, batch, seed)

    def loss(self, model: nn.Module, batch, carry):
        x, lengths = batch
        total, count = next_step_nll(model, x, lengths)
        return total / count, None

    def evaluate(self, model: nn.Module) -> dict:
        nll, _ = mean_nll(model, self.valid)
        return {"val_loss": nll, "val_nll": nll}
