"""What ``forecast predict`` hands a user: the forecast after the series' end, as CSV and plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from ...plots import _pyplot, _save
from ...runs import atomic_write
from . import prepare, windows
from .data import Table, calendar_features, future_times


def forecast_after_end(model, table: Table, config: dict) -> tuple[list[str], np.ndarray]:
    """The H steps after the table's last row, with their timestamps (or step numbers)."""
    window, horizon, k = config["window"], config["horizon"], len(config["targets"])
    if len(table) < window:
        raise ValueError(f"the series has {len(table)} rows; the model reads the last {window}")
    names = config["targets"] + config["features"]
    matrix = table.matrix(names)
    if table.times is not None and config.get("calendar", True):
        extra, extra_names = calendar_features(table.times)
        if names + extra_names != config["channels"]:
            raise ValueError(
                "the time column's sampling differs from the run's: its calendar features do not match"
            )
        matrix = np.concatenate([matrix, extra], 1)
    if matrix.shape[1] != len(config["channels"]):
        raise ValueError(
            f"the run reads {len(config['channels'])} channels, the data give {matrix.shape[1]}"
        )
    scaler = windows.Scaler.from_state(config["scaler"])  # the training statistics, never refitted
    x = scaler.transform(matrix[-window:])[None]
    encoded = prepare.encode(x, np.zeros((1, horizon, k)), list(range(k)), config["normalise"])
    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        pred = model(torch.as_tensor(encoded.inputs, device=device)).double().cpu().numpy()
    values = scaler.inverse_targets(prepare.decode(pred, encoded), k)[0]  # (H, K) or (H, K, Q)
    if table.times is not None:
        times = future_times(table.times, horizon, table.offset)
    else:
        times = [str(len(table) + h) for h in range(horizon)]
    return times, values


def write_forecast_csv(
    path: Path, times: list[str], values: np.ndarray, targets: list[str], quantiles=None
) -> None:
    """time, then each target (the median of a quantile model) and its quantiles as target_qX."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["time", *targets]
    if quantiles:
        header += [f"{t}_q{q:g}" for t in targets for q in quantiles]
    writer.writerow(header)
    for t, row in zip(times, values, strict=True):
        cells = [*row[:, quantiles.index(0.5)], *row.reshape(-1)] if quantiles else list(row)
        writer.writerow([t, *(f"{v:.6g}" for v in cells)])
    atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def plot_forecast(
    path: Path, history_times, history: np.ndarray, times: list[str], values, config
) -> None:
    """The last stretch of history and the forecast after it, one panel per target."""
    plt = _pyplot()
    k = len(config["targets"])
    fig, axes = plt.subplots(k, 1, figsize=(9, 3.2 * k), dpi=100, squeeze=False)
    shown = min(len(history), 6 * config["window"])
    if history_times is not None:
        past = history_times[-shown:].astype("datetime64[s]").astype(object)
        import pandas as pd

        # the times as written may carry the input's UTC offset; the history is in UTC
        future = pd.to_datetime(times, utc=True).tz_localize(None).to_pydatetime()
    else:
        past = np.arange(len(history) - shown, len(history))
        future = np.arange(len(history), len(history) + len(times))
    quantiles = config.get("quantiles")
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(past, history[-shown:, i], color="tab:blue", label="history")
        point = values[:, i, quantiles.index(0.5)] if quantiles else values[:, i]
        if quantiles:
            ax.fill_between(future, values[:, i, 0], values[:, i, -1], color="tab:orange", alpha=0.25,
                            label=f"{quantiles[0]:g}-{quantiles[-1]:g} interval")  # fmt: skip
        ax.plot(future, point, "o-", color="tab:orange", markersize=3, label="forecast")
        ax.set_ylabel(f"{config['targets'][i]} ({unit_of(config)})")
        ax.set_xlabel("time" if history_times is not None else "step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0, 0].set_title(
        f"the last {shown} steps and the {len(times)}-step forecast after them"
        + (" (median and interval)" if quantiles else "")
    )
    fig.autofmt_xdate()
    _save(fig, path)


def unit_of(config: dict) -> str:
    return config.get("unit") or "the data's units"


def plot_error_by_horizon(path: Path, result: dict, config: dict) -> None:
    """Test MAE at each horizon step: the model against every baseline."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    steps = np.arange(1, result["horizon"] + 1)
    ax.plot(steps, result["model"]["by_step"]["mae"], "o-", linewidth=2, label="model")
    for name, scores in result["baselines"].items():
        ax.plot(steps, scores["by_step"]["mae"], "--", label=name)
    ax.set_xlabel("steps ahead")
    ax.set_ylabel(f"test MAE ({unit_of(config)})")
    ax.set_title(f"test error by horizon, {result['origins']} origins: the model and the baselines")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
