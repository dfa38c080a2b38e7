"""`rnnkit forecast train | predict | eval`: a CSV of measurements to a trained forecaster, set beside its baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ...runs import RunDir, check_output, register_run_files, save_json
from ...spec import RNNSpec
from .. import options
from ..common import (
    Prepared,
    TaskRecipe,
    add_train_options,
    budget_given,
    fingerprint,
    number_list,
    read_run,
    register_task,
    report_result,
    task_verbs,
    train_task,
    warn,
)
from . import calibration, prepare
from .calibration import apply_shifts, fit_shifts
from .data import FILLS
from .files import forecast_after_end, plot_error_by_horizon, plot_forecast, write_forecast_csv
from .model import STRATEGIES, check_quantiles
from .sources import BUILTIN
from .task import ForecastTask, build_model, build_series, evaluate_test, forecast, load_table

TASK = "forecast"
PREDICTIONS = "forecast.csv"  # predict's default output, beside the run's own files
register_run_files(calibration.FILE)
# The best of benchmarks/forecast.py's grid on Seattle (chosen on validation; see the README).
DEFAULTS = {
    "cell": "gru",
    "hidden": 64,
    "layers": 1,
    "batch_size": 64,
    "lr": 1e-3,
    "eval_every": 100,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(subparsers, TASK, "forecast time series from a CSV, against baselines")
    p = verbs.add_parser(
        "train",
        help="train a forecaster on a CSV (or a built-in data set)",
        description="Train on the past --window steps to forecast the next --horizon steps of the targets. "
        "The series is split in time order (train, validation, test); scaling is fitted on the training "
        "part only and no window crosses a split. Without --steps, --epochs or --minutes it trains for 2 minutes.",
    )
    g = p.add_argument_group("data")
    g.add_argument("--csv", type=options.path, help="a CSV file with a header row")
    g.add_argument(
        "--data",
        choices=sorted(BUILTIN),
        help="a built-in data set when no --csv is given (default seattle-weather)",
    )
    g.add_argument("--target", help="comma-separated target columns (default: the data set's)")
    g.add_argument("--features", help="comma-separated input columns besides the targets")
    g.add_argument("--time-col", help="the time column (gives calendar features and the season)")
    g.add_argument("--unit", help="the targets' unit, for the plots (built-in sets: their own)")
    g.add_argument(
        "--fill", choices=FILLS, help="what to do with missing values (default: refuse them)"
    )
    g.add_argument(
        "--window",
        type=options.count(1),
        help="past steps the model reads (default 30; built-in sets: their own)",
    )
    g.add_argument(
        "--horizon",
        type=options.count(1),
        help="future steps it forecasts (default 7; built-in sets: their own)",
    )
    g.add_argument(
        "--season",
        type=options.count(1),
        help="season length for seasonal naive and MASE (default: from the time column)",
    )
    g.add_argument(
        "--val-fraction", type=options.fraction(), help="(default 0.1; built-in sets: their own)"
    )
    g.add_argument("--test-fraction", type=options.fraction(), default=0.2,
                   help="the last share of the series, for test (default 0.2)")  # fmt: skip
    g.add_argument(
        "--no-calendar", action="store_true", help="no calendar features from the time column"
    )
    g = p.add_argument_group("forecaster")
    g.add_argument("--strategy", choices=STRATEGIES, default="seq2seq", help="(default seq2seq)")
    g.add_argument(
        "--normalise",
        choices=prepare.NORMALISATIONS,
        default="window",
        help="per-window normalisation or differencing for series with a trend (default window)",
    )
    g.add_argument(
        "--quantiles",
        help="e.g. 0.1,0.5,0.9: forecast these quantiles (pinball loss; the median is the point "
        "forecast) and report the interval's coverage",
    )
    g.add_argument(
        "--highway",
        action="store_true",
        help="add a linear autoregression on the whole window to the RNN's output (LSTNet's highway)",
    )
    add_train_options(p, **DEFAULTS)
    p.set_defaults(run=train)

    p = verbs.add_parser(
        "predict",
        help="forecast the steps after the end of a CSV (default: the run's own data); CSV and plots",
    )
    p.add_argument("run_dir", metavar="RUN", type=options.path)
    p.add_argument(
        "--csv",
        type=options.path,
        help="a CSV with the run's columns (default: the data the run was trained on)",
    )
    p.add_argument(
        "--fill", choices=FILLS, help="what to do with missing values (default: the run's)"
    )
    p.add_argument(
        "--out",
        type=options.path,
        help="CSV of forecasts to write (default RUN/forecast.csv); PNGs beside it",
    )
    options.add_device(p)
    p.set_defaults(run=predict)

    p = verbs.add_parser(
        "eval", help="MAE, RMSE, sMAPE, MASE on the test part, model and baselines"
    )
    p.add_argument("run_dir", metavar="RUN", type=options.path)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    options.add_device(p)
    p.set_defaults(run=evaluate)


def parse_quantiles(text: str | None) -> list[float]:
    if not text:
        return []
    return check_quantiles(number_list("--quantiles", text))


def _names(text: str | None, flag: str = "--target") -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()] if text else []
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{flag} names {', '.join(map(repr, twice))} twice")
    return names


def data_config(args: argparse.Namespace) -> dict:
    if args.csv and args.data:
        raise ValueError("give --csv or --data, not both")
    own = {"window": 30, "horizon": 7, "val_fraction": 0.1}
    if not args.csv:
        own = {k: BUILTIN[args.data or "seattle-weather"][k] for k in own}
    for key, value in own.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.csv:
        if not args.target:
            raise ValueError("--csv needs --target: the column(s) to forecast")
        # resolved: eval and predict find it from any folder, and --resume compares it as one
        source, time_col = {"kind": "csv", "path": str(Path(args.csv).resolve())}, args.time_col
        targets, features = _names(args.target), _names(args.features, "--features")
    else:
        name = args.data or "seattle-weather"
        known = BUILTIN[name]
        source, time_col = {"kind": "builtin", "name": name}, known["time"]
        targets = _names(args.target) or known["target"]
        features = (
            _names(args.features, "--features") if args.features is not None else known["features"]
        )
    overlap = set(targets) & set(features)
    if overlap:
        raise ValueError(f"{', '.join(sorted(overlap))} is both a target and a feature")
    unit = args.unit if args.unit is not None else (None if args.csv else known.get("unit"))
    return {
        "source": source,
        "unit": unit,
        "targets": targets,
        "features": features,
        "time_col": time_col,
        "fill": args.fill,
        "calendar": not args.no_calendar,
        "season": args.season,
    }


def resumed_options(saved: dict) -> dict:
    """A forecast run's data options, as --resume takes them from its config."""
    source, quantiles = saved["source"], saved.get("quantiles") or []
    return {
        "csv": source.get("path") if source["kind"] == "csv" else None,
        "data": source.get("name") if source["kind"] == "builtin" else None,
        "target": ",".join(saved["targets"]),
        "features": ",".join(saved["features"]),
        "quantiles": ",".join(f"{q:g}" for q in quantiles) or None,
        "no_calendar": not saved.get("calendar", True),
    }


class ForecastRecipe(TaskRecipe):
    """Forecasting: what the forecast task plugs into the shared train sequence."""

    name = TASK
    forward_only = "would read the future of the window's last step: not for forecasting"
    metric_name = "validation MAE"

    resumed_options = staticmethod(resumed_options)

    def check_options(self, args: argparse.Namespace) -> None:
        if not budget_given(args):
            args.minutes = 2.0

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        quantiles = parse_quantiles(args.quantiles)
        if quantiles and args.normalise == "diff":
            raise ValueError(
                "--quantiles cannot go with --normalise diff: a sum of quantiles is not a quantile"
            )
        config = {
            "task": TASK,
            **data_config(args),
            "window": args.window,
            "horizon": args.horizon,
            "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction,
            "strategy": args.strategy,
            "normalise": args.normalise,
            "quantiles": quantiles or None,
            "highway": args.highway,
            **spec.to_config(),
            "batch_size": args.batch_size,
            "seed": args.seed,
        }
        series = build_series(config)  # every data error surfaces before a run directory is made
        config["data_fingerprint"] = fingerprint(series.raw, series.times)
        config["season"] = series.season
        config["channels"] = series.names
        config["scaler"] = series.scaler.state()
        comparable = tuple(k for k in config if k not in ("task", "scaler", "unit"))
        task = ForecastTask(series, config)
        split = series.split
        headline = (
            f"forecast {', '.join(config['targets'])}: {len(series.values)} steps "
            f"(train {split.train[1]}, validation {split.val[1] - split.val[0]}, "
            f"test {split.test[1] - split.test[0]}), {len(series.names)} input channels, "
            f"window {args.window}, horizon {args.horizon}, season {series.season}; "
            f"{spec.cell} {args.strategy}, normalise {args.normalise}"
        )
        steps_per_epoch = max(1, len(task.batches.x) // task.batches.batch)
        return Prepared(config, task, steps_per_epoch, headline, comparable,
                        state={"series": series})  # fmt: skip

    def build_model(self, config: dict) -> torch.nn.Module:
        return build_model(config, len(config["channels"]))

    def after_training(self, run: RunDir, model, prepared: Prepared, args, result: dict) -> None:
        config, series, task = prepared.config, prepared.state["series"], prepared.task
        shifts = None
        if config["quantiles"]:
            predicted = forecast(model.cpu(), task.val, series)
            shifts = fit_shifts(predicted, task.val_actual, config["quantiles"])
            save_json(run.file(calibration.FILE), {"shifts": shifts.tolist()})
        report(evaluate_test(model.cpu(), series, config, shifts), config)


RECIPE = register_task(ForecastRecipe())


def train(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


def report(result: dict, config: dict) -> None:
    rows = [("model", result["model"])] + list(result["baselines"].items())
    print(
        f"test part, {result['origins']} origins, horizon {result['horizon']} "
        f"(MASE scaled by the in-sample seasonal naive error, season {result['season']}):"
    )
    print(f"{'':16s} {'MAE':>9s} {'RMSE':>9s} {'sMAPE %':>8s} {'MASE':>7s}")
    for name, m in rows:
        print(f"{name:16s} {m['mae']:9.4f} {m['rmse']:9.4f} {m['smape']:8.2f} {m['mase']:7.3f}")
    interval = result.get("interval")
    if interval:
        before = (
            f" ({100 * interval['uncalibrated_coverage']:.1f}% before calibration on the validation span)"
            if interval["calibrated"]
            else " (not calibrated)"
        )
        print(
            f"interval {interval['lower']:g}-{interval['upper']:g} (nominal {100 * interval['nominal']:.0f}%): "
            f"covers {100 * interval['coverage']:.1f}% of the test values{before}, mean width {interval['width']:.4f}"
        )


def load_shifts(run: RunDir) -> np.ndarray | None:
    """A quantile run's calibration shifts, or None (a point run, or one stopped before calibrating)."""
    path = run.file(calibration.FILE)
    return np.array(json.loads(path.read_text())["shifts"]) if path.exists() else None


def evaluate(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    series = build_series(config)
    model = RECIPE.trained_model(run, config, args.device)
    result = evaluate_test(model, series, config, load_shifts(run))
    return report_result(args, result, lambda r: report(r, config))


def predict(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    reads = (args.csv, config["source"].get("path"))
    out = check_output(run, args.out or run.file(PREDICTIONS), inputs=reads)
    plots = (out.with_suffix(".png"), out.with_name(out.stem + "_error_by_horizon.png"))
    if out.suffix.lower() == ".png":
        raise ValueError(f"--out {out}: the forecast is a CSV, its plot goes beside it as "
                         f"{plots[0].name}; give a .csv name")  # fmt: skip
    plain = not out.exists() or out.resolve().is_file()  # not a pipe or a device
    if plain:
        for derived in plots:
            check_output(run, derived, given=out, inputs=reads)
    source = dict(config)
    if args.csv:
        source["source"] = {"kind": "csv", "path": args.csv}
    if args.fill:
        source["fill"] = args.fill
    table = load_table(source)
    model = RECIPE.trained_model(run, config, args.device)
    shifts = load_shifts(run)
    times, values = forecast_after_end(model, table, config)
    if shifts is not None:
        values = apply_shifts(values[None], shifts)[0]
    write_forecast_csv(out, times, values, config["targets"], config.get("quantiles"))
    if not plain:
        warn(f"--out {out} is not a regular file: no plots are written beside it")
        return 0
    history = table.matrix(config["targets"])
    plot_forecast(out.with_suffix(".png"), table.times, history, times, values, config)
    series = build_series(config) if not args.csv else None
    if series is not None:
        result = evaluate_test(model, series, config, shifts)
        plot_error_by_horizon(out.with_name(out.stem + "_error_by_horizon.png"), result, config)
    print(
        f"forecast of the {config['horizon']} steps after the end: {out} (plot: {out.with_suffix('.png')})"
    )
    median = config["quantiles"].index(0.5) if config.get("quantiles") else None
    for t, row in zip(times, values, strict=True):
        point = row if median is None else row[:, median]
        print(f"  {t}  " + "  ".join(f"{v:.4f}" for v in point))
    return 0
