"""Chronological splits, windows that never cross them, and the scalings fitted on training data only.

A series of N steps is cut into train | validation | test, in time order.
A window is W input steps followed by H target steps; every window lies
wholly inside one part, so no value of a later part ever reaches a model,
a scaler or an early-stopping decision made on an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Half-open index ranges [start, end) of the three parts."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def part(self, name: str) -> tuple[int, int]:
        return getattr(self, name)


def chronological_split(
    length: int, window: int, horizon: int, val_fraction: float = 0.1, test_fraction: float = 0.2
) -> Split:
    """The last ``test_fraction`` for testing, the ``val_fraction`` before it for validation.

    Each part must hold at least one whole window (W + H steps); otherwise
    the error says how long the series must be.
    """
    if window < 1 or horizon < 1:
        raise ValueError(f"--window and --horizon must be >= 1, got {window} and {horizon}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"the validation and test fractions must be in (0, 1) and sum below 1, got {val_fraction} and {test_fraction}"
        )
    n_test = int(round(length * test_fraction))
    n_val = int(round(length * val_fraction))
    n_train = length - n_test - n_val
    span = window + horizon
    if min(n_train, n_val, n_test) < span:
        needed = int(
            np.ceil(span / min(val_fraction, test_fraction, 1 - val_fraction - test_fraction))
        )
        raise ValueError(
            f"the series has {length} steps; with --window {window} and --horizon {horizon} every part "
            f"(train, validation {val_fraction:g}, test {test_fraction:g}) needs at least {span} steps, "
            f"so the series needs about {needed} (or shorten --window/--horizon, or change "
            f"--val-fraction/--test-fraction)"
        )
    return Split((0, n_train), (n_train, n_train + n_val), (n_train + n_val, length))


def window_origins(part: tuple[int, int], window: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Forecast origins t (first target step) whose window [t - W, t + H) lies inside ``part``."""
    start, end = part
    return np.arange(start + window, end - horizon + 1, stride)


def gather_windows(
    values: np.ndarray, targets: np.ndarray, origins: np.ndarray, window: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, W, C) from ``values`` and targets (n, H, K) from ``targets`` at every origin."""
    past = origins[:, None] + np.arange(-window, 0)[None, :]
    future = origins[:, None] + np.arange(horizon)[None, :]
    return values[past], targets[future]


@dataclass
class Scaler:
    """Per-column standardisation with statistics of the training part only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        std = values.std(0)
        return cls(values.mean(0), np.where(std > 1e-12, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def inverse_targets(self, values: np.ndarray, k: int) -> np.ndarray:
        """The first k columns back to the data's units: (..., K), or (n, H, K, Q) quantiles."""
        mean, std = self.mean[:k], self.std[:k]
        if values.ndim == 4:
            mean, std = mean[:, None], std[:, None]
        return values * std + mean

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Scaler:
        return cls(np.asarray(state["mean"]), np.asarray(state["std"]))
