"""Classification targets (issue 6), as a benchmark: rnnkit beside published results on UCR/UEA sets.

    python benchmarks/classify.py                          # every set, both configurations, 3 seeds
    python benchmarks/classify.py --sets GunPoint --seeds 1 --configs rnn
    python benchmarks/classify.py --grid GunPoint,ArrowHead   # the search that chose the defaults

Each run is `rnnkit classify train --dataset NAME` with the standard
train/test split; the test set is scored once, at the end. Configurations:
``default`` (what `classify train` does when given only the data set: the
recurrent and the convolutional branch) and ``rnn`` (the purely recurrent
classifier, ``--no-conv``). Writes benchmarks/results/classify.json and
prints the table beside the published figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import rnnkit, write_result

ROOT = Path(__file__).resolve().parent
# Published test accuracies with the standard splits (the table):
# LSTM-FCN (Karim et al. 2017), FCN (Fawaz et al. 2019), 1-NN DTW, and the best known where given.
PUBLISHED = {
    "GunPoint": {"LSTM-FCN": 1.000, "FCN": 1.000, "1-NN DTW": 0.907},
    "ItalyPowerDemand": {"LSTM-FCN": 0.962, "FCN": 0.961, "1-NN DTW": 0.950},
    "ArrowHead": {"LSTM-FCN": 0.897, "FCN": 0.843, "1-NN DTW": 0.663},
    "BasicMotions": {"InceptionTime": 1.000},
    "JapaneseVowels": {"FCN": 0.993},
}
CONFIGS = {"default": [], "rnn": ["--no-conv"]}
GRID = {  # the search behind the defaults: each row is a set of options added to the base
    "lstm+conv": ["--cell", "lstm"],
    "gru+conv": ["--cell", "gru"],
    "lstm": ["--cell", "lstm", "--no-conv"],
    "gru": ["--cell", "gru", "--no-conv"],
    "bi-gru, mean": ["--cell", "gru", "--no-conv", "--bidirectional", "--pooling", "mean"],
    "bi-lstm, attention": [
        "--cell",
        "lstm",
        "--no-conv",
        "--bidirectional",
        "--pooling",
        "attention",
    ],
}


def one_run(work: Path, name: str, seed: int, options: list[str]) -> dict:
    out = work / f"{name}-{seed}-{abs(hash(tuple(options)))}"
    started = time.perf_counter()
    text = rnnkit("classify", "train", "--dataset", name, "--seed", seed, *options, "--out", out)
    seconds = time.perf_counter() - started
    result = json.loads(rnnkit("classify", "eval", out, "--json").strip().splitlines()[-1])
    return {
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "val_error": float(text.split("best validation error ")[1].split(";")[0]),
        "seconds": round(seconds, 1),
        "nn1": result["baselines"]["nn1"]["accuracy"],
        "majority": result["baselines"]["majority"]["accuracy"],
    }


def grid(sets: list[str], seeds: int, minutes: float | None) -> None:
    """Every GRID row on each set; the mean validation error over sets decides (never the test)."""
    budget = ["--minutes", str(minutes)] if minutes else []
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        for label, options in GRID.items():
            runs = [one_run(Path(work), name, seed, options + budget) for name in sets for seed in range(seeds)]  # fmt: skip
            rows[label] = {
                "val_error": float(np.mean([r["val_error"] for r in runs])),
                "accuracy": float(np.mean([r["accuracy"] for r in runs])),
                "seconds": float(np.mean([r["seconds"] for r in runs])),
            }
            print(f"{label:22s} val error {rows[label]['val_error']:.4f}  test accuracy "
                  f"{rows[label]['accuracy']:.4f}  ({rows[label]['seconds']:.0f} s per run)", flush=True)  # fmt: skip
    best = min(rows, key=lambda k: rows[k]["val_error"])
    print(f"chosen on validation: {best}")
    write_result("classify_grid.json", {"sets": sets, "seeds": seeds, "rows": rows, "chosen": best})


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(PUBLISHED))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--grid", help="comma-separated sets: run the search behind the defaults")
    parser.add_argument(
        "--minutes", type=float, help="budget per grid run (default: the automatic one)"
    )
    args = parser.parse_args()
    if args.grid:
        grid(args.grid.split(","), args.seeds, args.minutes)
        return
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.sets.split(","):
            for config in args.configs.split(","):
                runs = [
                    one_run(Path(work), name, seed, CONFIGS[config]) for seed in range(args.seeds)
                ]
                accuracies = [r["accuracy"] for r in runs]
                results.setdefault(name, {})[config] = {
                    "accuracy_mean": float(np.mean(accuracies)),
                    "runs": runs,
                }
                print(f"{name:18s} {config:8s} accuracy {np.mean(accuracies):.4f} "
                      f"({', '.join(f'{a:.3f}' for a in accuracies)}; "
                      f"{max(r['seconds'] for r in runs):.0f} s at most)", flush=True)  # fmt: skip
    print(
        f"\n{'data set':18s} {'rnnkit':>8s} {'rnn only':>9s} {'1-NN':>6s} {'best published':>16s}"
    )
    for name, configs in results.items():
        best_published = max(PUBLISHED.get(name, {}).values(), default=float("nan"))
        default = configs.get("default", {}).get("accuracy_mean", float("nan"))
        rnn = configs.get("rnn", {}).get("accuracy_mean", float("nan"))
        nn1 = next(iter(configs.values()))["runs"][0]["nn1"]
        print(f"{name:18s} {default:8.4f} {rnn:9.4f} {nn1:6.3f} {best_published:16.3f}")
    write_result("classify.json", {"seeds": args.seeds, "published": PUBLISHED, "results": results})


if __name__ == "__main__":
    run()
