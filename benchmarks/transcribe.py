"""Transcription targets (issue 7), as a benchmark: grapheme to phoneme on CMUdict without stress.

    python benchmarks/transcribe.py --minutes 30     # the defaults (attention) and the plain model

Trains each configuration for the same time budget on the same split (5% of
the words held out for test, 2% for validation, split seed 0), then reports
word and phone error rates on the test words with greedy decoding and with
beam search, beside the training time. Configurations: ``attention`` (the
CLI defaults) and ``context`` (the lecture's plain encoder-decoder: the
encoder's final state is all the decoder sees). Writes
benchmarks/results/transcribe.json. Not a test: about an hour at --minutes 30.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path

from harness import rnnkit, write_result

CONFIGS = {"attention": [], "context": ["--no-attention"]}
PUBLISHED = {
    "LSTM encoder-decoder, 2 x 512 (recent CMUdict, no stress)": {"wer": 0.31},
    "Phonetisaurus WFST (recent CMUdict, no stress)": {"wer": 0.339},
    "Yao and Zweig 2015, bidirectional LSTM (CMUdict 2007 split)": {"wer": 0.236},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per run")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help="which of " + ", ".join(CONFIGS)
    )
    parser.add_argument("--try", dest="trials", default="",
                        help="own configurations: 'label:options|label:options'")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="transcribe.json")
    args = parser.parse_args()
    configs = {name: CONFIGS[name] for name in args.configs.split(",") if name}
    for trial in filter(None, args.trials.split("|")):
        label, _, options = trial.partition(":")
        configs[label] = shlex.split(options)
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for name, options in configs.items():
            out = Path(work) / name
            started = time.perf_counter()
            rnnkit("transcribe", "train", "--minutes", args.minutes, "--seed", args.seed,
                   *options, "--out", out, echo=True)  # fmt: skip
            seconds = time.perf_counter() - started
            result = json.loads((out / "test.json").read_text())
            metrics = [
                json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
            ]
            runs.append({"config": name, "options": options, "seconds": round(seconds, 1),
                         "train_seconds": metrics[-1]["time"], "steps": metrics[-1]["step"],
                         "best_val_wer": min(m["val_wer"] for m in metrics), **result})  # fmt: skip
            path = write_result(
                args.out, {"minutes": args.minutes, "published": PUBLISHED, "runs": runs}
            )
    print(f"\n{'configuration':14s} {'greedy WER':>10s} {'PER':>7s} {'beam WER':>9s} {'PER':>7s} "
          f"{'train min':>9s} {'steps':>7s}")  # fmt: skip
    for r in runs:
        print(f"{r['config']:14s} {r['wer']:10.4f} {r['per']:7.4f} {r['beam']['wer']:9.4f} "
              f"{r['beam']['per']:7.4f} {r['train_seconds'] / 60:9.1f} {r['steps']:7d}")  # fmt: skip
    for name, figures in PUBLISHED.items():
        print(f"  published: {name}: WER {figures['wer']:.3f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
