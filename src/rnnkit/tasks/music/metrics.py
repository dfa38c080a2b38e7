"""A music run's test figures: NLL per step, frame accuracy, their baselines, and by genre."""

from __future__ import annotations

import numpy as np
import torch

from .model import RollModel, shifted_inputs
from .rolls import Rolls, frame_accuracy, frame_nll
from .task import genre_index, mean_nll, padded_rolls


@torch.no_grad()
def best_guesses(model: RollModel, rolls: Rolls, chunk: int = 32) -> list[np.ndarray]:
    """Each piece's steps as the model's best guess from the true steps before (T, 88)."""
    model.eval()
    out = []
    for start in range(0, len(rolls), chunk):
        pieces = rolls.pieces[start : start + chunk]
        x, lengths = padded_rolls(pieces)
        params, _ = model(
            shifted_inputs(x), lengths, genre_index(model, rolls.genres[start : start + chunk])
        )
        guesses = model.keys.best(params).numpy().astype(np.uint8)
        out += [g[: len(p)] for g, p in zip(guesses, pieces, strict=True)]
    return out


def key_marginals(rolls: Rolls) -> np.ndarray:
    """How often each key sounds in the training steps (the no-memory baseline)."""
    return np.concatenate(rolls.pieces).mean(0)


def test_result(model: RollModel, test: Rolls, marginals: np.ndarray) -> dict:
    """Test NLL and frame accuracy over the steps after each piece's first, with baselines:
    every key at its training frequency (``marginals``), and the previous step repeated."""
    model = model.cpu()
    nll, steps = mean_nll(model, test)
    guesses = best_guesses(model, test)
    truth = np.concatenate([p[1:] for p in test.pieces])
    predicted = np.concatenate([g[1:] for g in guesses])
    previous = np.concatenate([p[:-1] for p in test.pieces])
    p = np.broadcast_to(marginals, truth.shape)
    result = {
        "nll": nll,
        "frame_accuracy": frame_accuracy(predicted, truth),
        "steps": steps,
        "pieces": len(test),
        "baselines": {
            "key frequencies": {
                "nll": float(frame_nll(p, truth).mean()),
                "frame_accuracy": frame_accuracy(p > 0.5, truth),
            },
            "previous step": {"nll": None, "frame_accuracy": frame_accuracy(previous, truth)},
        },
    }
    if model.conditioned:
        result["by_genre"] = by_genre(model, test)
    return result


def by_genre(model: RollModel, test: Rolls) -> dict:
    """Each genre's test pieces scored under every genre; margin = best wrong genre's NLL
    minus the right one's (positive: the right genre explains its pieces best).

    Here every step counts, the first one included: log P(piece | genre) per
    step. (After a few steps the notes themselves tell the genre, so the
    opening is where the genre matters most.)"""
    table = {}
    for genre in model.genres:
        index = [i for i, g in enumerate(test.genres) if g == genre]
        if not index:
            continue
        pieces = test.subset(index)
        scores = {
            other: mean_nll(model, pieces, as_genre=other, include_first=True)[0]
            for other in model.genres
        }
        wrong = min(v for k, v in scores.items() if k != genre)
        table[genre] = {
            "pieces": len(index),
            "steps": pieces.steps,
            "nll": scores[genre],
            "as": scores,
            "margin": wrong - scores[genre],
        }
    return table
