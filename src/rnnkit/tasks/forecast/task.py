"""A forecasting run's data, assembled once from its config, and its training task.

Channels are the targets first, then the features, then the calendar
features of the time column. The whole matrix is standardised with the
training part's statistics; windows are cut inside each part
(``windows``) and presented in the model's units (``prepare``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...diagnostics import GradientFlow, gradient_flow
from ...spec import RNNSpec
from ...training import Monitor, SeededSource
from . import metrics, prepare, windows
from .calibration import apply_shifts
from .data import Table, calendar_features, infer_season, read_csv
from .model import Forecaster, pinball_loss
from .sources import load_builtin


@dataclass
class Series:
    """The scaled series of a run, its split and its scaler."""

    values: np.ndarray  # (N, C) globally standardised
    raw_targets: np.ndarray  # (N, K) in the data's own units
    names: list[str]  # channel names, targets first
    targets: int  # K
    times: np.ndarray | None
    split: windows.Split
    scaler: windows.Scaler
    season: int
    raw: np.ndarray  # (N, C) the channels as read, before scaling

    def origins(self, part: str, window: int, horizon: int) -> np.ndarray:
        return windows.window_origins(self.split.part(part), window, horizon)

    def unscale_targets(self, values: np.ndarray) -> np.ndarray:
        """(..., K) or (n, H, K, Q) from the scaled units back to the data's own."""
        return self.scaler.inverse_targets(values, self.targets)


def load_table(config: dict) -> Table:
    columns = config["targets"] + config["features"]
    if config["source"]["kind"] == "csv":
        return read_csv(
            config["source"]["path"], columns, config.get("time_col"), config.get("fill")
        )
    return load_builtin(config["source"]["name"], columns, config.get("fill"))


def build_series(config: dict, table: Table | None = None) -> Series:
    table = table if table is not None else load_table(config)
    names = config["targets"] + config["features"]
    matrix = table.matrix(names)
    if table.times is not None and config.get("calendar", True):
        extra, extra_names = calendar_features(table.times)
        matrix, names = np.concatenate([matrix, extra], 1), names + extra_names
    split = windows.chronological_split(
        len(matrix),
        config["window"],
        config["horizon"],
        config["val_fraction"],
        config["test_fraction"],
    )
    k = len(config["targets"])
    train = matrix[slice(*split.train)]
    check_targets(train, config["targets"])
    with np.errstate(over="ignore", invalid="ignore"):
        scaler = windows.Scaler.fit(train)
        scaled = scaler.transform(matrix)
    bad = [
        n
        for n, ok in zip(names, np.isfinite(scaled).all(0) & np.isfinite(scaler.std), strict=True)
        if not ok
    ]
    if bad:
        raise ValueError(
            f"column {bad[0]!r} holds values too large to standardise (up to "
            f"{np.abs(matrix[:, names.index(bad[0])]).max():.3g}): divide it by a power of ten first"
        )
    season = config.get("season") or infer_season(table.times)
    return Series(
        scaled, matrix[:, :k].copy(), names, k, table.times, split, scaler, season, matrix
    )


def check_targets(train: np.ndarray, targets: list[str]) -> None:
    """A target that never changes over the training part is refused: there is nothing to
    learn, and MASE would divide by a seasonal naive error of zero."""
    for i, name in enumerate(targets):
        column = train[:, i]
        if np.ptp(column) <= 1e-12 * max(1.0, float(np.abs(column).max())):
            raise ValueError(
                f"target {name!r} is constant over the training part (every value {column[0]:g}): "
                "there is nothing to forecast, and every error would be scaled by zero; "
                "give a target that varies"
            )


def build_model(config: dict, input_size: int) -> Forecaster:
    return Forecaster(
        RNNSpec.from_config(config),
        input_size,
        list(range(len(config["targets"]))),
        config["horizon"],
        strategy=config["strategy"],
        quantiles=config.get("quantiles") or (),
        highway_window=config["window"] if config.get("highway") else None,
    )


def part_windows(series: Series, part: str, config: dict) -> tuple[np.ndarray, prepare.Windows]:
    origins = series.origins(part, config["window"], config["horizon"])
    k = series.targets
    x, y = windows.gather_windows(
        series.values, series.values[:, :k], origins, config["window"], config["horizon"]
    )
    return origins, prepare.encode(x, y, list(range(k)), config["normalise"])


def median_index(config: dict) -> int | None:
    """Where the median sits among a quantile model's outputs (None for a point model)."""
    quantiles = config.get("quantiles") or []
    return quantiles.index(0.5) if quantiles else None


@torch.no_grad()
def forecast(
    model: nn.Module, encoded: prepare.Windows, series: Series, chunk: int = 1024
) -> np.ndarray:
    """Forecasts (n, H, K) in the data's own units; (n, H, K, Q) for a quantile model."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    outs = []
    for start in range(0, len(encoded.inputs), chunk):
        x = torch.as_tensor(encoded.inputs[start : start + chunk], device=device)
        outs.append(model(x).double().cpu().numpy())
    model.train(was)
    pred = np.concatenate(outs)
    return series.unscale_targets(prepare.decode(pred, encoded))


class WindowBatches(SeededSource):
    """Random minibatches of training windows, resumable."""

    def __init__(self, encoded: prepare.Windows, batch: int, seed: int) -> None:
        super().__init__(seed)
        self.x = torch.from_numpy(encoded.inputs)
        self.y = torch.from_numpy(encoded.targets)
        self.batch = min(batch, len(self.x))

    def __next__(self) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(self.x), (self.batch,), generator=self.generator)
        return self.x[index], self.y[index]


class ForecastTask:
    """Trains on the training windows; validates by the MAE in the data's units on the validation part."""

    def __init__(self, series: Series, config: dict) -> None:
        self.series, self.config = series, config
        loss = "pinball loss" if config.get("quantiles") else "MSE"
        self.monitor = Monitor(
            "val_mae",
            f"validation MAE ({', '.join(config['targets'])}, in the data's units)",
            train_label=f"training {loss} (standardised targets)",
        )
        _, train = part_windows(series, "train", config)
        self.batches = WindowBatches(train, config["batch_size"], config["seed"])
        _, self.val = part_windows(series, "val", config)
        self.val_actual = series.unscale_targets(
            prepare.decode(self.val.targets.astype(np.float64), self.val)
        )

    def loss(self, model: nn.Module, batch, carry):
        x, y = batch
        quantiles = self.config.get("quantiles")
        if quantiles:
            return pinball_loss(model(x, y), y, quantiles), None
        return F.mse_loss(model(x, y), y), None

    def evaluate(self, model: nn.Module) -> dict:
        predicted = forecast(model, self.val, self.series)
        median = median_index(self.config)
        if median is not None:
            predicted = predicted[..., median]
        return {"val_mae": float(np.abs(predicted - self.val_actual).mean())}

    def gradient_flow(self, model: nn.Module) -> GradientFlow:
        x = torch.from_numpy(self.val.inputs[:32]).to(next(model.parameters()).device)
        return gradient_flow(model, lambda m: m(x)[:, 0].square().mean())


def evaluate_test(
    model: nn.Module, series: Series, config: dict, shifts: np.ndarray | None = None
) -> dict:
    """Model and baselines on the test part, by rolling origin: the JSON of ``forecast eval``.

    ``shifts`` calibrate a quantile model's intervals (``calibration``); the
    coverage before calibration is reported beside the calibrated one.
    """
    origins, encoded = part_windows(series, "test", config)
    horizon = config["horizon"]
    actual = np.stack([series.raw_targets[o : o + horizon] for o in origins])
    raw = series.raw_targets
    scale = metrics.seasonal_naive_scale(raw[slice(*series.split.train)], series.season)
    baselines = {
        "persistence": metrics.persistence(raw, origins, horizon),
        "seasonal_naive": metrics.seasonal_naive(raw, origins, horizon, series.season),
        "mean": metrics.training_mean(raw[slice(*series.split.train)], origins, horizon),
    }
    uncalibrated = forecast(model, encoded, series)
    predicted = apply_shifts(uncalibrated, shifts)
    median = median_index(config)
    result = {
        "model": metrics.errors(
            predicted if median is None else predicted[..., median], actual, scale
        ),
        "baselines": {k: metrics.errors(v, actual, scale) for k, v in baselines.items()},
        "horizon": horizon,
        "origins": int(len(origins)),
        "season": series.season,
    }
    if median is not None:
        quantiles = config["quantiles"]
        result["interval"] = metrics.coverage(predicted[..., 0], predicted[..., -1], actual)
        result["interval"].update(
            lower=quantiles[0],
            upper=quantiles[-1],
            nominal=quantiles[-1] - quantiles[0],
            calibrated=shifts is not None,
            uncalibrated_coverage=metrics.coverage(
                uncalibrated[..., 0], uncalibrated[..., -1], actual
            )["coverage"],
        )
    return result
