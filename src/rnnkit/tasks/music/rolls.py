"""Piano rolls: one vector of 88 keys (MIDI 21 to 108) per time step, and their frame metrics.

A piece is a (T, 88) array of 0/1; a ``Rolls`` is a list of pieces, each
with an optional genre. The JSB Chorales benchmark file (a MATLAB file with
``traindata``, ``validdata`` and ``testdata``) reads into three of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

KEYS = 88
LOWEST_MIDI = 21  # A0, the piano's lowest key
JSB_PARTS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


@dataclass
class Rolls:
    """Pieces as (T, 88) uint8 arrays, one genre per piece ("" when none is known), and names."""

    pieces: list[np.ndarray]
    genres: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.genres:
            self.genres = [""] * len(self.pieces)
        if not self.names:
            self.names = [f"piece {i + 1}" for i in range(len(self.pieces))]
        if not len(self.genres) == len(self.names) == len(self.pieces):
            raise ValueError("one genre and one name per piece")

    def subset(self, index: list[int]) -> Rolls:
        return Rolls(
            [self.pieces[i] for i in index],
            [self.genres[i] for i in index],
            [self.names[i] for i in index],
        )

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def steps(self) -> int:
        return int(sum(len(p) for p in self.pieces))


def check_roll(roll: np.ndarray, name: str) -> np.ndarray:
    """A (T, 88) array of 0/1 as uint8, or a one-line error naming the piece."""
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        raise ValueError(
            f"{name}: a piano roll must be steps x {KEYS} keys (MIDI {LOWEST_MIDI} to "
            f"{LOWEST_MIDI + KEYS - 1}), got shape {tuple(roll.shape)}"
        )
    if len(roll) < 2:
        raise ValueError(f"{name}: a piece needs at least 2 steps to predict one from the other")
    if not np.isin(roll, (0, 1)).all():
        raise ValueError(f"{name}: a piano roll holds 0 and 1 only (a key is up or down)")
    return roll.astype(np.uint8)


def read_jsb(path: str | Path) -> dict[str, Rolls]:
    """The JSB Chorales MATLAB file: {"train", "valid", "test"} -> Rolls, each piece checked."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ValueError("reading MATLAB files needs scipy: pip install 'rnnkit[music]'") from None
    try:
        mat = loadmat(str(path))
    except Exception as error:  # scipy raises several kinds for a file that is not MATLAB's
        raise ValueError(f"{path} is not a readable MATLAB file ({error})") from None
    missing = [key for key in JSB_PARTS.values() if key not in mat]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: not a JSB-format file")
    out = {}
    for part, key in JSB_PARTS.items():
        pieces = [
            check_roll(p, f"{path.name} {key} piece {i + 1}")
            for i, p in enumerate(_pieces_of(mat[key], f"{path}: {key}"))
        ]
        if not pieces:
            raise ValueError(f"{path}: {key} holds no pieces")
        out[part] = Rolls(pieces)
    return out


def _pieces_of(value: np.ndarray, name: str) -> list[np.ndarray]:
    """A MATLAB cell array of pieces, in a row or a column; or pieces of one length
    stacked into a (pieces, steps, keys) array."""
    if value.dtype == object:
        if value.ndim > 2 or (value.ndim == 2 and min(value.shape) > 1):
            raise ValueError(f"{name} must be a row or a column of pieces, got {value.shape}")
        return list(value.ravel())
    if value.ndim == 3:
        return list(value)
    if value.size == 0:
        return []
    raise ValueError(
        f"{name} must be a cell array of pieces (each steps x {KEYS}), got an array of shape "
        f"{value.shape}"
    )


def frame_nll(probabilities: np.ndarray, rolls: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Negative log-likelihood of each step in nats: the Bernoulli loss summed over the 88 keys."""
    p = np.clip(probabilities.astype(np.float64), eps, 1 - eps)
    y = rolls.astype(np.float64)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p)).sum(-1)


def frame_accuracy(predicted: np.ndarray, rolls: np.ndarray) -> float:
    """Bay et al. (2009): true positives over true positives, false positives and false negatives,
    each summed over every step and key. A step with no key down on either side adds nothing."""
    predicted, rolls = predicted.astype(bool), rolls.astype(bool)
    hits = np.logical_and(predicted, rolls).sum()
    wrong = np.logical_xor(predicted, rolls).sum()
    total = hits + wrong
    return float(hits / total) if total else 1.0
