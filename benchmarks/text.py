"""Next-character prediction on tiny Shakespeare: quality under a time budget, and sampling speed.

For each budget it runs `rnnkit text train` as a user would (first 90% of the
text for training, the last 111,540 characters for validation, read whole at
every evaluation), then reports the best validation loss in nats and bits
per character, the wall time at which the validation loss first reached 1.6
and 1.5, and sampling speed in characters per second at batch 1 and 64.

    python benchmarks/text.py [--budgets 1,5] [--json benchmarks/results/text.json] [-- extra train options]

It needs ../shared/data/tinyshakespeare.txt and says so, without failing, when that is absent.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
VAL_FRACTION = "0.100001"  # int(1,115,394 x 0.100001) = 111,540: the usual 90/10 split
REFERENCES = {  # measured on this machine by the author, for the README
    1: {"GPT 0.8M (65 s)": 1.886, "plain 1-layer LSTM 512 (60 s)": 1.813},
    5: {"plain 2-layer LSTM 512 (300 s)": 1.467},
}


def train(minutes: float, out: Path, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "rnnkit",
        "text",
        "train",
        "--data",
        str(DATA),
        "--val-fraction",
        VAL_FRACTION,
        "--minutes",
        str(minutes),
        "--out",
        str(out),
        *extra,
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    started = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - started
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    def first_time(threshold: float) -> float | None:
        hit = [r["time"] for r in records if r["val_loss"] <= threshold]
        return min(hit) if hit else None

    best = min(r["val_loss"] for r in records)
    return {
        "minutes": minutes,
        "command": "rnnkit " + " ".join(cmd[3:]),
        "best_val_loss": best,
        "best_val_bpc": best / math.log(2),
        "final_val_loss": records[-1]["val_loss"],
        "steps": records[-1]["step"],
        "val_characters": records[-1]["val_characters"],
        "seconds_to_1.6": first_time(1.6),
        "seconds_to_1.5": first_time(1.5),
        "wall_seconds": wall,
    }


def sampling_speed(run: Path, batch: int, length: int = 2000) -> float:
    from rnnkit.tasks.text import load_run

    _, model, vocab, device = load_run(str(run), "cpu")
    tokens = torch.zeros(batch, dtype=torch.long)
    with torch.no_grad():
        logits, state = model(tokens[:, None])
        start = time.perf_counter()
        for _ in range(length):
            tokens = torch.multinomial(
                torch.softmax(logits[:, -1] if logits.dim() == 3 else logits, -1), 1
            )[:, 0]
            logits, state = model.step(tokens, state)
        elapsed = time.perf_counter() - start
    return batch * length / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budgets", default="1,5", help="comma-separated training budgets in minutes"
    )
    parser.add_argument("--json", default=str(HERE / "results" / "text.json"))
    parser.add_argument("--keep", help="keep the run directories under this folder")
    parser.add_argument("extra", nargs="*", help="extra `rnnkit text train` options (after --)")
    args = parser.parse_args()
    if not DATA.exists():
        print(
            f"skipped: {DATA} is not here (the benchmark data lives beside the project, not in it)"
        )
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rnnkit-text-"))
    results = []
    for minutes in [float(b) for b in args.budgets.split(",")]:
        out = root / f"budget-{minutes:g}min"
        row = train(minutes, out, args.extra)
        row["chars_per_second_batch1"] = sampling_speed(out, 1)
        row["chars_per_second_batch64"] = sampling_speed(out, 64)
        row["references"] = REFERENCES.get(int(minutes), {})
        results.append(row)
        print(json.dumps(row, indent=1), flush=True)
    print(
        "\n| budget | best val loss (nats) | bpc | steps | to 1.6 | to 1.5 | chars/s b=1 | chars/s b=64 | references |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        fmt = lambda v: f"{v:.0f} s" if v is not None else "not reached"  # noqa: E731
        refs = ", ".join(f"{k}: {v}" for k, v in r["references"].items())
        print(
            f"| {r['minutes']:g} min | {r['best_val_loss']:.3f} | {r['best_val_bpc']:.3f} | {r['steps']} | "
            f"{fmt(r['seconds_to_1.6'])} | {fmt(r['seconds_to_1.5'])} | {r['chars_per_second_batch1']:.0f} | "
            f"{r['chars_per_second_batch64']:.0f} | {refs} |"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"torch": torch.__version__, "results": results}, f, indent=1)
    os.replace(tmp, args.json)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
