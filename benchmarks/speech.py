"""Speech recognition targets (issue 17), as a benchmark: the Free Spoken Digit Dataset.

    python benchmarks/speech.py --part isolated          # official split, isolated digits
    python benchmarks/speech.py --part connected         # official split, 1-7 digits per utterance
    python benchmarks/speech.py --part loso              # connected, each speaker held out in turn
    python benchmarks/speech.py --part all --minutes 14 -- --time-masks 2 --freq-masks 2

Each run is `rnnkit speech train --data FSDD --minutes M` with every other
option at its default unless given after ``--``; the test set is scored
once, at the end of the run, beside the baselines the run measures itself
(the most frequent word; for isolated digits the 1-NN DTW template
recogniser on the same features). Each run goes into
benchmarks/results/speech_PART.json (or --name), replacing the run of the same
label there, and the file's table is printed. Not a test: up to 15 minutes a run.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import tempfile
import time
from pathlib import Path

import torch
from harness import RESULTS, rnnkit, write_result

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
COMPOSE = ["--compose", "7"]


def one_run(out: Path, minutes: float, argv: list[str], label: str) -> dict:
    began = time.perf_counter()
    rnnkit("speech", "train", "--data", DATA, "--minutes", minutes, *argv, "--out", out, echo=True)
    seconds = time.perf_counter() - began
    result = json.loads((out / "test.json").read_text())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    row = {"run": label, "options": argv, "seconds": round(seconds, 1), "steps": metrics[-1]["step"],
           "wer": result["wer"], "cer": result["cer"], "beam": result["beam"],
           "baselines": result["baselines"], "by_speaker": result["by_speaker"],
           "threads": torch.get_num_threads()}  # fmt: skip
    print(f"== {label}: WER {row['wer']:.4f} (beam {row['beam']['wer']:.4f}), CER {row['cer']:.4f}, "
          f"{row['steps']} steps in {seconds:.0f} s", flush=True)  # fmt: skip
    return row


def merge_row(name: str, minutes: float, row: dict) -> list[dict]:
    """Put one run into benchmarks/results/NAME, replacing an earlier run of the same label;
    the file's runs after it.

    Runs may go on in separate processes side by side (``--speakers a,b`` in one, ``c,d``
    in another): the file is locked while it is read and rewritten.
    """
    path = RESULTS / name
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = json.loads(path.read_text())["runs"] if path.exists() else []
        runs = [r for r in runs if r["run"] != row["run"]] + [{**row, "minutes": minutes}]
        order = {f"held out: {s}": i for i, s in enumerate(SPEAKERS)}
        runs.sort(key=lambda r: order.get(r["run"], len(order)))
        write_result(name, {"runs": runs})
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("isolated", "connected", "loso", "all"), default="all")
    parser.add_argument("--minutes", type=float, default=14.0, help="budget of every run")
    parser.add_argument("--speakers", default=",".join(SPEAKERS), help="loso: the folds")
    parser.add_argument("--keep", help="keep the run directories under this folder")
    parser.add_argument("--threads", type=int, help="torch threads (1: two folds side by side)")
    parser.add_argument(
        "--name",
        help="results file (default speech_PART.json); a run replaces "
        "the one of the same label there",
    )
    parser.add_argument("extra", nargs="*", help="extra `rnnkit speech train` options (after --)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not DATA.exists():
        print(f"skipped: {DATA} is not here (the benchmark data lives beside the project)")
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rnnkit-speech-"))
    parts = ["isolated", "connected", "loso"] if args.part == "all" else [args.part]
    suffix = f" ({' '.join(args.extra)})" if args.extra else ""
    for part in parts:
        name = args.name or f"speech_{part}.json"
        if part == "isolated":
            row = one_run(root / "isolated", args.minutes, args.extra, "isolated digits" + suffix)
            runs = merge_row(name, args.minutes, row)
        elif part == "connected":
            argv = COMPOSE + args.extra
            row = one_run(root / "connected", args.minutes, argv, "connected digits" + suffix)
            runs = merge_row(name, args.minutes, row)
        else:
            for speaker in args.speakers.split(","):
                argv = [*COMPOSE, "--test-speakers", speaker, *args.extra]
                row = one_run(root / f"loso-{speaker}", args.minutes, argv, f"held out: {speaker}")
                runs = merge_row(name, args.minutes, row)
        print(
            f"\n{'run':24s} {'WER':>7s} {'beam WER':>9s} {'CER':>7s} {'most freq':>9s} {'1-NN DTW':>9s} {'s':>6s}"
        )
        for r in runs:
            b = r["baselines"]
            dtw = f"{b['dtw_1nn']['wer']:9.4f}" if "dtw_1nn" in b else f"{'-':>9s}"
            print(f"{r['run']:24s} {r['wer']:7.4f} {r['beam']['wer']:9.4f} {r['cer']:7.4f} "
                  f"{b['most_frequent']['wer']:9.4f} {dtw} {r['seconds']:6.0f}")  # fmt: skip
        if part == "loso":
            mean = sum(r["beam"]["wer"] for r in runs) / len(runs)
            best = sum(r["wer"] for r in runs) / len(runs)
            print(f"mean over the {len(runs)} folds: WER {best:.4f} (beam {mean:.4f})")
        print(f"results: {RESULTS / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
