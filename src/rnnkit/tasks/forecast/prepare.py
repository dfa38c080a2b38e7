"""From a table to the model's units and back: global scaling, per-window normalisation, differencing.

``normalise`` chooses how a window is presented to the model:

* ``none``: the series standardised with the training part's statistics.
* ``window``: also each window's target channels minus the window's own
  mean, over its own spread; the targets likewise; the forecast is mapped
  back with the same two numbers. A level the training data never reached
  looks like any other.
* ``diff``: the target channels as first differences y_t - y_(t-1) inside the
  window, the targets as the differences that follow the last observation;
  the forecast is the last observation plus their running sum. A trend
  becomes a level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMALISATIONS = ("none", "window", "diff")


@dataclass
class Windows:
    """Model-ready arrays and what is needed to map forecasts back to the scaled series."""

    inputs: np.ndarray  # (n, W, C) float32
    targets: np.ndarray  # (n, H, K) float32, in the model's units
    offset: np.ndarray  # (n, K): added back after ``scale``
    scale: np.ndarray  # (n, K)
    cumulative: bool  # diff: the forecast is a running sum of steps


def encode(x: np.ndarray, y: np.ndarray, channels: list[int], normalise: str) -> Windows:
    """Windows x (n, W, C) and their futures y (n, H, K), both globally scaled, into the model's units."""
    if normalise not in NORMALISATIONS:
        raise ValueError(
            f"--normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}"
        )
    n, k = len(x), len(channels)
    x = x.astype(np.float64).copy()
    if normalise == "none":
        return Windows(
            x.astype(np.float32), y.astype(np.float32), np.zeros((n, k)), np.ones((n, k)), False
        )
    if normalise == "window":
        part = x[:, :, channels]
        mean, spread = part.mean(1), part.std(1)
        spread = np.where(spread > 1e-6, spread, 1.0)
        x[:, :, channels] = (part - mean[:, None]) / spread[:, None]
        targets = (y - mean[:, None]) / spread[:, None]
        return Windows(x.astype(np.float32), targets.astype(np.float32), mean, spread, False)
    last = x[:, -1, channels]  # (n, K)
    part = x[:, :, channels]
    steps = np.diff(part, axis=1, prepend=part[:, :1])  # the first step has no predecessor: 0
    x[:, :, channels] = steps
    future = np.diff(np.concatenate([last[:, None], y], 1), axis=1)
    return Windows(x.astype(np.float32), future.astype(np.float32), last, np.ones((n, k)), True)


def decode(pred: np.ndarray, windows: Windows) -> np.ndarray:
    """Model outputs (n, H, K), or (n, H, K, Q) quantiles, back to the globally scaled series."""
    if pred.ndim == 4:  # each quantile maps back like a point forecast (window or none only)
        return np.stack([decode(pred[..., q], windows) for q in range(pred.shape[-1])], -1)
    values = pred * windows.scale[:, None]
    if windows.cumulative:
        values = np.cumsum(values, axis=1)
    return values + windows.offset[:, None]
