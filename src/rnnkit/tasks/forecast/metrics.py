"""Forecast errors and the baselines every forecaster must beat.

Shapes: forecasts and actuals are (origins, H, K): one forecast of H steps
for K targets at every origin. Metrics are returned per horizon step
(``by_step``, length H, averaged over origins and targets) and as the mean
of those H values.
"""

from __future__ import annotations

import numpy as np


def seasonal_naive_scale(train: np.ndarray, season: int) -> np.ndarray:
    """MASE's denominator: the in-sample mean |y_t - y_(t-m)| on the training part, per target (K,)."""
    m = max(1, season)
    if len(train) <= m:
        raise ValueError(
            f"the training part ({len(train)} steps) is not longer than the season ({m})"
        )
    scale = np.abs(train[m:] - train[:-m]).mean(0)
    return np.where(scale > 1e-12, scale, 1.0)


def errors(forecast: np.ndarray, actual: np.ndarray, mase_scale: np.ndarray) -> dict:
    """MAE, RMSE, sMAPE (in %, 0 to 200) and MASE, averaged and ``by_step``."""
    diff = forecast - actual
    denom = np.abs(forecast) + np.abs(actual)
    smape = np.where(denom > 0, 200.0 * np.abs(diff) / np.where(denom > 0, denom, 1.0), 0.0)
    by_step = {
        "mae": np.abs(diff).mean((0, 2)),
        "rmse": np.sqrt((diff**2).mean((0, 2))),
        "smape": smape.mean((0, 2)),
        "mase": (np.abs(diff) / mase_scale).mean((0, 2)),
    }
    out: dict = {
        k: float(v.mean()) if k != "rmse" else float(np.sqrt((diff**2).mean()))
        for k, v in by_step.items()
    }
    out["by_step"] = {k: [float(x) for x in v] for k, v in by_step.items()}
    return out


def persistence(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed value, repeated: ŷ_(t+h) = y_(t-1). (origins, H, K)."""
    return np.repeat(series[origins - 1][:, None, :], horizon, axis=1)


def seasonal_naive(
    series: np.ndarray, origins: np.ndarray, horizon: int, season: int
) -> np.ndarray:
    """The value one season earlier: ŷ_(t+h) = y_(t+h-m·k), k the fewest seasons that reach the past."""
    m = max(1, season)
    h = np.arange(horizon)
    back = m * ((h // m) + 1)  # h < m: one season back; longer horizons go back whole seasons more
    index = origins[:, None] + h[None, :] - back[None, :]
    if index.min() < 0:
        raise ValueError(
            f"the season ({m}) reaches before the start of the series at the first origin"
        )
    return series[index]


def training_mean(train: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The mean of the training part, whatever the origin."""
    return np.broadcast_to(train.mean(0), (len(origins), horizon, train.shape[1])).copy()


def coverage(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray) -> dict:
    """Share of actual values inside [lower, upper], overall and ``by_step``; and the mean width."""
    inside = (actual >= lower) & (actual <= upper)
    return {
        "coverage": float(inside.mean()),
        "width": float((upper - lower).mean()),
        "by_step": [float(v) for v in inside.mean((0, 2))],
    }
