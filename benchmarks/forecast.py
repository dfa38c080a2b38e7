"""Forecasting targets (issue 5), as a benchmark: the model beside baselines and classical peers.

    python benchmarks/forecast.py --minutes 1      # Seattle daily maximum temperature, W=30, H=7
    python benchmarks/forecast.py --part airline --minutes 0.5   # with and without normalisation, 3 seeds
    python benchmarks/forecast.py --part stocks --minutes 0.5    # against the random walk, 3 seeds

Trains a small grid of rnnkit forecasters (strategy x normalisation x cell,
then learning rate x size, then the highway), picks the one with the best validation MAE,
trains it on more seeds, and reports every configuration on the test span
(the last 20%, rolling origin) beside persistence, seasonal naive, the
training mean, a ridge regression on the 30 past values and, with
statsmodels (the bench extra), AutoReg on the target, AutoReg with the
annual cycle as known regressors, and a VAR on all four variables, each
order chosen on the validation span. Writes benchmarks/results/forecast_seattle.json.
Not a test: about 35 minutes at --minutes 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import rnnkit, write_result

from rnnkit.tasks.forecast import metrics, windows
from rnnkit.tasks.forecast.data import calendar_features
from rnnkit.tasks.forecast.sources import load_builtin

ROOT = Path(__file__).resolve().parent
WINDOW, HORIZON = 30, 7
FEATURES = ("temp_min", "precipitation", "wind")


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


def autoreg_forecast(y, split, part, lags, exog=None):
    """statsmodels AutoReg fitted on the training span; its recursion applied at every origin of ``part``.

    ``exog`` (N, E) are regressors known in advance (the calendar), read at each forecast step.
    """
    from statsmodels.tsa.ar_model import AutoReg

    train = slice(*split.train)
    fit = AutoReg(y[train], lags=lags, trend="c", exog=None if exog is None else exog[train]).fit()
    const, phi, beta = fit.params[0], fit.params[1 : lags + 1], fit.params[lags + 1 :]
    origins = windows.window_origins(split.part(part), WINDOW, HORIZON)
    out = np.empty((len(origins), HORIZON))
    for i, t in enumerate(origins):
        history = list(y[t - lags : t])
        for h in range(HORIZON):
            value = const + float(np.dot(phi, history[::-1][:lags]))
            if exog is not None:
                value += float(np.dot(beta, exog[t + h]))
            out[i, h] = value
            history.append(value)
    return origins, out[:, :, None]


def var_forecast(data, split, part, order):
    """statsmodels VAR on the target and its features, fitted on the training span, at every origin."""
    from statsmodels.tsa.api import VAR

    fit = VAR(data[slice(*split.train)]).fit(order)
    origins = windows.window_origins(split.part(part), WINDOW, HORIZON)
    out = np.stack([fit.forecast(data[t - order : t], HORIZON)[:, 0] for t in origins])
    return origins, out[:, :, None]


def chosen_on_validation(y, forecaster, orders):
    """The order with the least validation MAE, and its forecast on the test span."""
    scored = []
    for order in orders:
        origins, pred = forecaster("val", order)
        actual = np.stack([y[o : o + HORIZON] for o in origins])[:, :, None]
        scored.append((float(np.abs(pred - actual).mean()), order))
    best = min(scored)[1]
    return best, forecaster("test", best)[1]


def statsmodels_peers(table, split) -> dict[str, np.ndarray]:
    """Autoregressive peers, orders chosen on the validation span; empty without statsmodels."""
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        print("statsmodels is not installed (pip install -e '.[bench]'): no statsmodels peers")
        return {}
    y = table.columns["temp_max"]
    calendar, _ = calendar_features(table.times)
    calendar = calendar[:, -2:]  # the annual cycle (sine, cosine of the day of year)
    data = table.matrix(["temp_max", *FEATURES])
    lags = (1, 2, 3, 5, 7, 14, 30)
    peers = {}
    p, pred = chosen_on_validation(y, lambda part, k: autoreg_forecast(y, split, part, k), lags)
    peers[f"statsmodels AutoReg({p})"] = pred
    p, pred = chosen_on_validation(
        y, lambda part, k: autoreg_forecast(y, split, part, k, calendar), lags
    )
    peers[f"statsmodels AutoReg({p}) + annual cycle"] = pred
    p, pred = chosen_on_validation(
        y, lambda part, k: var_forecast(data, split, part, k), (1, 2, 3, 5, 7, 14)
    )
    peers[f"statsmodels VAR({p}), 4 variables"] = pred
    return peers


def train_and_score(out: Path, *argv) -> dict:
    """Train one forecaster (data and options in ``argv``) and score it on the test span."""
    started = time.perf_counter()
    text = rnnkit("forecast", "train", *argv, "--out", out)
    seconds = time.perf_counter() - started
    result = json.loads(rnnkit("forecast", "eval", out, "--json").strip().splitlines()[-1])
    row = {"seconds": round(seconds, 1), **result["model"]}
    if "best validation MAE " in text:
        row["val_mae"] = float(text.split("best validation MAE ")[1].split(";")[0])
    if "interval" in result:
        row["interval"] = result["interval"]
    return {"row": row, "baselines": result["baselines"], "origins": result["origins"]}


def normalisation_part(name: str, minutes: float, seeds: int = 3) -> None:
    """A built-in set's default model with each normalisation, several seeds, beside the baselines."""
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        for normalise in ("none", "window", "diff"):
            for seed in range(seeds):
                scored = train_and_score(Path(work) / f"{normalise}-{seed}", "--data", name,
                                         "--normalise", normalise, "--seed", seed, "--minutes", minutes)  # fmt: skip
                rows.setdefault(f"rnnkit, normalise {normalise}", []).append(scored["row"])
                print(
                    f"{normalise:7s} seed {seed}: test MAE {scored['row']['mae']:.3f}", flush=True
                )
    print(f"\n{name}: test MAE (mean over {seeds} seeds; per seed)")
    summary = {}
    for label, runs in rows.items():
        summary[label] = over_seeds(runs)
        print(f"{label:28s} {summary[label]['mae_mean']:9.3f}  ({', '.join(f'{m:.2f}' for m in summary[label]['mae'])})")  # fmt: skip
    for label, scores in scored["baselines"].items():
        summary[label] = {"mae_mean": scores["mae"], "mase": scores["mase"]}
        print(f"{label:28s} {scores['mae']:9.3f}")
    write_result(f"forecast_{name}.json", {"data": name, "minutes_per_model": minutes,
                                    "origins": scored["origins"], "results": summary})  # fmt: skip


def over_seeds(runs: list[dict]) -> dict:
    maes = [r["mae"] for r in runs]
    summary = {"mae_mean": float(np.mean(maes)), "mae": maes, "mase": [r["mase"] for r in runs],
               "val_mae": [r.get("val_mae") for r in runs], "seconds": [r["seconds"] for r in runs]}  # fmt: skip
    if "interval" in runs[0]:
        summary["coverage"] = [r["interval"]["coverage"] for r in runs]
    return summary


def seattle_part(minutes: float, seeds: int) -> None:
    """A two-stage search, a quantile run, the CLI defaults, and the peers.

    Stage 1 (screening, one seed): cell x strategy x normalisation at the
    learning rate 3e-3, 64 units. Stage 2, around stage 1's choice, each on
    ``seeds`` seeds: learning rate x units, then the linear highway on the
    best. Every choice is made on the validation span, stage 2's by the mean
    over seeds (one seed's best validation MAE is too noisy to rank close
    configurations); the test span only reports.
    """
    table = load_builtin("seattle-weather", ["temp_max", *FEATURES], None)
    y = table.columns["temp_max"]
    split = windows.chronological_split(len(y), WINDOW, HORIZON, 0.1, 0.2)
    test = windows.window_origins(split.test, WINDOW, HORIZON)
    actual = np.stack([y[o : o + HORIZON] for o in test])[:, :, None]
    scale = metrics.seasonal_naive_scale(y[slice(*split.train)][:, None], 7)
    rows: dict[str, dict] = {}
    options: dict[str, tuple] = {}
    baselines: dict[str, dict] = {}  # the same for every trial: same data, same test origins
    budget = ("--minutes", minutes)
    with tempfile.TemporaryDirectory() as work:

        def trial(name: str, *argv, seeds: int = 1) -> None:
            runs = []
            for seed in range(seeds):
                scored = train_and_score(Path(work) / f"{len(rows)}-{seed}", *budget, *argv, "--seed", seed)  # fmt: skip
                runs.append(scored["row"])
                baselines.update(scored["baselines"])
            means = {k: float(np.mean([r[k] for r in runs])) for k in ("val_mae", "mae", "rmse", "mase", "seconds")}  # fmt: skip
            rows[name] = {**means, "seeds": over_seeds(runs)}
            options[name] = argv
            each = ", ".join(f"{r['mae']:.3f}" for r in runs)
            print(f"{name:44s} val MAE {rows[name]['val_mae']:.3f}  test MAE {rows[name]['mae']:.3f}"
                  f"{f' ({each})' if seeds > 1 else ''}  ({runs[0]['seconds']:.0f}s each)", flush=True)  # fmt: skip

        for strategy in ("direct", "seq2seq"):
            for normalise in ("none", "window"):
                for cell in ("lstm", "gru"):
                    trial(f"{cell} {strategy} {normalise}", "--cell", cell, "--strategy", strategy,
                          "--normalise", normalise, "--lr", "3e-3")  # fmt: skip
        stage1 = min(rows, key=lambda k: rows[k]["val_mae"])
        searched = []
        for lr in ("1e-3", "3e-3"):
            for hidden in (32, 64, 128):
                searched.append(f"{stage1}, lr {lr}, {hidden} units")
                trial(searched[-1], *options[stage1][:-2], "--lr", lr, "--hidden", hidden, seeds=seeds)  # fmt: skip
        stage2 = min(searched, key=lambda k: rows[k]["val_mae"])
        searched.append(f"{stage2}, highway")
        trial(searched[-1], *options[stage2], "--highway", seeds=seeds)
        best = min(searched, key=lambda k: rows[k]["val_mae"])
        chosen = options[best]
        seeded = rows[best]["seeds"]
        quantile = train_and_score(Path(work) / "quantiles", *budget, *chosen, "--quantiles", "0.1,0.9")["row"]  # fmt: skip
        defaults = train_and_score(Path(work) / "defaults")["row"]  # what a user gets, 2 minutes
    for name, scores in baselines.items():
        rows[name] = scores
    rows["ridge on 30 past values"] = metrics.errors(ridge_forecast(y, split), actual, scale)
    for name, pred in statsmodels_peers(table, split).items():
        rows[name] = metrics.errors(pred, actual, scale)
    persistence = rows["persistence"]["mae"]
    print(f"\nSeattle temp_max, W={WINDOW}, H={HORIZON}, test span {len(test)} origins; "
          f"chosen on validation: {best}")  # fmt: skip
    print(f"{'':44s} {'MAE':>7s} {'x persistence':>14s} {'RMSE':>7s} {'MASE':>6s} {'seconds':>8s}")
    for name, r in rows.items():
        mark = " <- chosen" if name == best else ""
        seconds = f"{r['seconds']:8.0f}" if "seconds" in r else " " * 8
        print(f"{name:44s} {r['mae']:7.3f} {r['mae'] / persistence:14.3f} {r['rmse']:7.3f} "
              f"{r['mase']:6.3f} {seconds}{mark}")  # fmt: skip
    maes = ", ".join(f"{m:.3f}" for m in seeded["mae"])
    print(f"\n{best} over {seeds} seeds: MAE {seeded['mae_mean']:.3f} "
          f"({seeded['mae_mean'] / persistence:.3f}x persistence; {maes})")  # fmt: skip
    print(f"CLI defaults (2 minutes): MAE {defaults['mae']:.3f} "
          f"({defaults['mae'] / persistence:.3f}x persistence) in {defaults['seconds']:.0f} s")  # fmt: skip
    interval = quantile["interval"]
    print(f"{best}, quantiles 0.1/0.5/0.9: median MAE {quantile['mae']:.3f}, the 0.1-0.9 interval "
          f"covers {interval['coverage']:.1%} (nominal 80%), mean width {interval['width']:.2f}")  # fmt: skip
    write_result("forecast_seattle.json", {"data": "seattle-weather temp_max", "window": WINDOW,
          "horizon": HORIZON, "minutes_per_model": minutes, "chosen": best, "results": rows,
          "chosen_over_seeds": seeded, "cli_defaults": defaults, "quantiles": quantile})  # fmt: skip


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("seattle", "airline", "stocks"), default="seattle")
    parser.add_argument(
        "--minutes", type=float, default=1.0, help="training budget per configuration"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the chosen configuration")
    args = parser.parse_args()
    if args.part == "seattle":
        seattle_part(args.minutes, args.seeds)
    else:
        normalisation_part(args.part, args.minutes, args.seeds)


if __name__ == "__main__":
    run()
