"""Classification targets (issue 6), as a benchmark: rnnkit beside published results on UCR/UEA sets.

    python benchmarks/classify.py                          # every set, both configurations, 3 seeds
    python benchmarks/classify.py --sets GunPoint --seeds 1 --configs rnn
    python benchmarks/classify.py --grid                   # the search that chose the defaults
    python benchmarks/classify.py --export DIR             # the sets as NPZ files, for a machine
    python benchmarks/classify.py --grid --data-dir DIR --jobs 16 --device cuda   # ... without sktime

Each run is `rnnkit classify train --dataset NAME` (or its NPZ export) with
the standard train/test split; the test set is scored once, at the end.
Configurations: ``default`` (what `classify train` does when given only the
data set) and ``rnn`` (the purely recurrent classifier, ``--no-conv``).
Runs are separate processes, ``--jobs`` at a time. Writes
benchmarks/results/classify.json (or classify_grid.json) and prints the
table beside the published figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from harness import write_result

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
GRID = {  # the search behind the defaults: options added to `classify train`
    "lstm+conv": ["--cell", "lstm"],
    "gru+conv": ["--cell", "gru"],
    "lstm+conv, 64 units": ["--cell", "lstm", "--hidden", "64"],
    "lstm+conv, lr 3e-3": ["--cell", "lstm", "--lr", "3e-3"],
    "lstm": ["--cell", "lstm", "--no-conv"],
    "gru": ["--cell", "gru", "--no-conv"],
    "bi-gru, mean": ["--cell", "gru", "--no-conv", "--bidirectional", "--pooling", "mean"],
    "bi-lstm, attention": ["--cell", "lstm", "--no-conv", "--bidirectional", "--pooling", "attention"],
    "gru, lr 3e-3": ["--cell", "gru", "--no-conv", "--lr", "3e-3"],
}  # fmt: skip


def data_options(name: str, data_dir: str | None) -> list[str]:
    if data_dir is None:
        return ["--dataset", name]
    return ["--train", f"{data_dir}/{name}_TRAIN.npz", "--test", f"{data_dir}/{name}_TEST.npz"]


def rnnkit_process(*argv) -> str:
    """``python -m rnnkit ARGV`` in its own process, one thread; its stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run([sys.executable, "-m", "rnnkit", *map(str, argv)], capture_output=True,
                          text=True, env=env)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"rnnkit {' '.join(map(str, argv))}: {done.stderr.strip()}")
    return done.stdout


def one_run(job: tuple) -> dict:
    work, name, seed, options, data_dir, device = job
    out = Path(work) / f"{name}-{seed}-{'_'.join(options).replace('-', '') or 'default'}"
    extra = ["--device", device] if device else []
    started = time.perf_counter()
    text = rnnkit_process("classify", "train", *data_options(name, data_dir), "--seed", seed,
                          *options, *extra, "--out", out)  # fmt: skip
    seconds = time.perf_counter() - started
    result = json.loads(rnnkit_process("classify", "eval", out, "--json").strip().splitlines()[-1])
    return {
        "set": name,
        "seed": seed,
        "options": options,
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "val_error": float(text.split("best validation error ")[1].split(";")[0]),
        "seconds": round(seconds, 1),
        "nn1": result["baselines"]["nn1"]["accuracy"],
        "majority": result["baselines"]["majority"]["accuracy"],
    }


def run_all(jobs: list[tuple], parallel: int) -> list[dict]:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = []
        for r in pool.map(one_run, jobs):
            print(f"{r['set']:18s} seed {r['seed']} {' '.join(r['options']) or '(defaults)':45s} "
                  f"accuracy {r['accuracy']:.4f}  val error {r['val_error']:.4f}  {r['seconds']:.0f} s", flush=True)  # fmt: skip
            results.append(r)
    return results


def export(folder: str, sets: list[str]) -> None:
    """Each named set's two splits as NPZ (x padded, y, lengths), read back by --data-dir."""
    from rnnkit.tasks.classify import data

    Path(folder).mkdir(parents=True, exist_ok=True)
    for name in sets:
        for split in ("train", "test"):
            series = data.load_named(name, split)
            x, lengths = series.padded()
            np.savez(Path(folder) / f"{name}_{split.upper()}.npz", x=x, y=series.labels, lengths=lengths)  # fmt: skip
        print(f"{name}: {folder}/{name}_TRAIN.npz, _TEST.npz")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(PUBLISHED))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--grid", action="store_true", help="run the search behind the defaults")
    parser.add_argument(
        "--try",
        dest="trials",
        help="own configurations: 'label:options|label:options', e.g. 'long:--steps 4000|plain:'",
    )
    parser.add_argument("--export", metavar="DIR", help="write the sets as NPZ files and stop")
    parser.add_argument("--data-dir", help="read the NPZ files of --export instead of sktime")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--device", help="passed to every run (default: CUDA when present)")
    parser.add_argument(
        "--out", help="results file name (default classify.json or classify_grid.json)"
    )
    args = parser.parse_args()
    sets = args.sets.split(",")
    if args.export:
        export(args.export, sets)
        return
    rows = GRID if args.grid else {c: CONFIGS[c] for c in args.configs.split(",")}
    if args.trials:
        rows = {}
        for item in args.trials.split("|"):
            label, _, options = item.partition(":")
            rows[label.strip()] = options.split()
    with tempfile.TemporaryDirectory() as work:
        jobs = [(work, name, seed, options, args.data_dir, args.device)
                for options in rows.values() for name in sets for seed in range(args.seeds)]  # fmt: skip
        runs = run_all(jobs, args.jobs)
    summary: dict[str, dict] = {}
    for label, options in rows.items():
        mine = [r for r in runs if r["options"] == options]
        summary[label] = {
            "val_error": float(np.mean([r["val_error"] for r in mine])),
            "accuracy": {n: float(np.mean([r["accuracy"] for r in mine if r["set"] == n])) for n in sets},
            "seconds_max": max(r["seconds"] for r in mine),
        }  # fmt: skip
    print(f"\n{'configuration':24s} {'val error':>9s}  " + " ".join(f"{n[:14]:>14s}" for n in sets))
    for label, s in summary.items():
        print(
            f"{label:24s} {s['val_error']:9.4f}  "
            + " ".join(f"{s['accuracy'][n]:14.4f}" for n in sets)
        )
    nn1 = {n: next(r["nn1"] for r in runs if r["set"] == n) for n in sets}
    print(f"{'1-NN (Euclidean)':24s} {'':9s}  " + " ".join(f"{nn1[n]:14.4f}" for n in sets))
    best = {n: max(PUBLISHED.get(n, {}).values(), default=float("nan")) for n in sets}
    print(f"{'best published':24s} {'':9s}  " + " ".join(f"{best[n]:14.4f}" for n in sets))
    if args.grid:
        print(f"chosen on validation (mean error over sets and seeds): {min(summary, key=lambda k: summary[k]['val_error'])}")  # fmt: skip
    name = args.out or ("classify_grid.json" if args.grid else "classify.json")
    write_result(name, {"seeds": args.seeds, "device": args.device or "default", "published": PUBLISHED,
                        "summary": summary, "runs": runs})  # fmt: skip


if __name__ == "__main__":
    run()
