"""Forecasting targets (issue 5), as a benchmark: the model beside baselines and classical peers.

    python benchmarks/forecast.py --minutes 1      # Seattle daily maximum temperature, W=30, H=7
    python benchmarks/forecast.py --part airline --minutes 0.5   # with and without normalisation, 3 seeds
    python benchmarks/forecast.py --part stocks --minutes 0.5    # against the random walk, 3 seeds

Trains a small grid of rnnkit forecasters (strategy x normalisation x cell),
picks the one with the best validation MAE, and reports every configuration
on the test span (the last 20%, rolling origin) beside persistence, seasonal
naive, the training mean, a ridge regression on the 30 past values and, when
statsmodels is installed, an AutoReg peer whose order is chosen on the
validation span. Writes benchmarks/results/forecast_seattle.json.
Not a test: about 8 minutes at --minutes 1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnkit.cli import main
from rnnkit.tasks.forecast import metrics, windows
from rnnkit.tasks.forecast.sources import load_builtin

ROOT = Path(__file__).resolve().parent
WINDOW, HORIZON = 30, 7


def rnnkit(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    if code:
        raise SystemExit(f"rnnkit {' '.join(map(str, argv))} failed with status {code}")
    return out.getvalue()


def lagged(y: np.ndarray, origins: np.ndarray, lags: int) -> np.ndarray:
    """(n, lags): y[t-1], ..., y[t-lags] for every origin t."""
    return np.stack([y[origins - k] for k in range(1, lags + 1)], 1)


def ridge_forecast(y, split, lags=WINDOW, penalty=1.0):
    """One ridge regression per horizon step on the past ``lags`` values (the issue's reference)."""
    train = windows.window_origins(split.train, lags, HORIZON)
    x = np.c_[lagged(y, train, lags), np.ones(len(train))]
    coef = [
        np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ y[train + h])
        for h in range(HORIZON)
    ]
    test = windows.window_origins(split.test, WINDOW, HORIZON)
    xt = np.c_[lagged(y, test, lags), np.ones(len(test))]
    return np.stack([xt @ c for c in coef], 1)[:, :, None]


def autoreg_forecast(y, split, part):
    """statsmodels AutoReg fitted on the training span; its recursion applied at every origin of ``part``."""
    from statsmodels.tsa.ar_model import AutoReg

    fit = AutoReg(y[slice(*split.train)], lags=part["lags"], trend="c").fit()
    const, phi = fit.params[0], fit.params[1:]
    origins = windows.window_origins(split.part(part["name"]), WINDOW, HORIZON)
    out = np.empty((len(origins), HORIZON))
    for i, t in enumerate(origins):
        history = list(y[t - len(phi) : t])
        for h in range(HORIZON):
            value = const + float(np.dot(phi, history[::-1][: len(phi)]))
            out[i, h] = value
            history.append(value)
    return origins, out[:, :, None]


def normalisation_part(name: str, minutes: float, seeds: int = 3) -> None:
    """A built-in set's default model with each normalisation, several seeds, beside the baselines."""
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        for normalise in ("none", "window", "diff"):
            for seed in range(seeds):
                out = Path(work) / f"{normalise}-{seed}"
                started = time.perf_counter()
                rnnkit("forecast", "train", "--data", name, "--normalise", normalise, "--seed", seed,
                       "--minutes", minutes, "--out", out)  # fmt: skip
                seconds = time.perf_counter() - started
                result = json.loads(
                    rnnkit("forecast", "eval", out, "--json").strip().splitlines()[-1]
                )
                rows.setdefault(f"rnnkit, normalise {normalise}", []).append(
                    {**result["model"], "seconds": round(seconds, 1)}
                )
                print(
                    f"{normalise:7s} seed {seed}: test MAE {result['model']['mae']:.3f}", flush=True
                )
        baselines = result["baselines"]
    print(f"\n{name}: test MAE (mean over {seeds} seeds; per seed)")
    summary = {}
    for label, runs in rows.items():
        maes = [r["mae"] for r in runs]
        summary[label] = {"mae_mean": float(np.mean(maes)), "mae": maes, "mase": [r["mase"] for r in runs],
                          "seconds": [r["seconds"] for r in runs]}  # fmt: skip
        print(f"{label:28s} {np.mean(maes):9.3f}  ({', '.join(f'{m:.2f}' for m in maes)})")
    for label, scores in baselines.items():
        summary[label] = {"mae_mean": scores["mae"], "mase": scores["mase"]}
        print(f"{label:28s} {scores['mae']:9.3f}")
    out = {
        "data": name,
        "minutes_per_model": minutes,
        "origins": result["origins"],
        "results": summary,
    }
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / f"forecast_{name}.json").write_text(json.dumps(out, indent=1) + "\n")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("seattle", "airline", "stocks"), default="seattle")
    parser.add_argument(
        "--minutes", type=float, default=1.0, help="training budget per configuration"
    )
    args = parser.parse_args()
    if args.part != "seattle":
        normalisation_part(args.part, args.minutes)
        return
    table = load_builtin("seattle-weather", ["temp_max"], None)
    y = table.columns["temp_max"]
    split = windows.chronological_split(len(y), WINDOW, HORIZON, 0.1, 0.2)
    test = windows.window_origins(split.test, WINDOW, HORIZON)
    actual = np.stack([y[o : o + HORIZON] for o in test])[:, :, None]
    scale = metrics.seasonal_naive_scale(y[slice(*split.train)][:, None], 7)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        for strategy in ("direct", "seq2seq"):
            for normalise in ("none", "window"):
                for cell in ("lstm", "gru"):
                    name = f"{cell} {strategy} {normalise}"
                    out = Path(work) / name.replace(" ", "-")
                    started = time.perf_counter()
                    text = rnnkit("forecast", "train", "--minutes", args.minutes, "--cell", cell,
                                  "--strategy", strategy, "--normalise", normalise, "--out", out)  # fmt: skip
                    seconds = time.perf_counter() - started
                    val = float(text.split("best validation MAE ")[1].split(";")[0])
                    result = json.loads(
                        rnnkit("forecast", "eval", out, "--json").strip().splitlines()[-1]
                    )
                    rows[name] = {"val_mae": val, "seconds": round(seconds, 1), **result["model"]}
                    baselines = result["baselines"]
                    print(
                        f"{name:24s} val MAE {val:.3f}  test MAE {result['model']['mae']:.3f}  ({seconds:.0f}s)",
                        flush=True,
                    )
    for name, scores in baselines.items():
        rows[name] = scores
    rows["ridge on 30 past values"] = metrics.errors(ridge_forecast(y, split), actual, scale)
    try:
        candidates = []
        for lags in (1, 2, 3, 5, 7, 14, 30):
            origins, pred = autoreg_forecast(y, split, {"lags": lags, "name": "val"})
            val_actual = np.stack([y[o : o + HORIZON] for o in origins])[:, :, None]
            candidates.append((float(np.abs(pred - val_actual).mean()), lags))
        best_lags = min(candidates)[1]
        _, pred = autoreg_forecast(y, split, {"lags": best_lags, "name": "test"})
        rows[f"statsmodels AutoReg({best_lags})"] = metrics.errors(pred, actual, scale)
    except ImportError:
        print("statsmodels is not installed: no AutoReg peer")
    models = [k for k in rows if "val_mae" in rows[k]]
    best = min(models, key=lambda k: rows[k]["val_mae"])
    persistence = rows["persistence"]["mae"]
    print(
        f"\nSeattle temp_max, W={WINDOW}, H={HORIZON}, test span {len(test)} origins; chosen on validation: {best}"
    )
    print(f"{'':28s} {'MAE':>7s} {'x persistence':>14s} {'RMSE':>7s} {'MASE':>6s}")
    for name, r in rows.items():
        mark = " <- chosen" if name == best else ""
        print(
            f"{name:28s} {r['mae']:7.3f} {r['mae'] / persistence:14.3f} {r['rmse']:7.3f} {r['mase']:6.3f}{mark}"
        )
    (ROOT / "results").mkdir(exist_ok=True)
    summary = {"data": "seattle-weather temp_max", "window": WINDOW, "horizon": HORIZON,
               "minutes_per_model": args.minutes, "chosen": best, "results": rows}  # fmt: skip
    (ROOT / "results" / "forecast_seattle.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    run()
