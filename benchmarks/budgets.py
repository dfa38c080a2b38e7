"""How closely each task's `train --minutes M` keeps to M, measured from outside the process.

Every command is run as a user runs it (a fresh `python -m rnnkit` process,
interpreter start and imports included) with a budget far below what its
step count would take, so the clock, not the steps, must end it. The table
gives the wall time against the budget; a task passes within 5%.

    python benchmarks/budgets.py --minutes 2          # about 12 minutes
    python benchmarks/budgets.py --minutes 0.5 --tasks text,forecast
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import write_result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TOLERANCE = 0.05


def commands(out: Path) -> dict[str, list[str]]:
    """Each task's train at its defaults, given far more steps than the budget allows."""
    jsb = SHARED / "JSB_Chorales.mat"
    music = ["--data", str(jsb)] if jsb.exists() else ["--genres", "bach", "--max-pieces", "60"]
    return {
        "text": ["text", "train", "--steps", "1000000"],
        "forecast": ["forecast", "train", "--data", "seattle-weather", "--steps", "1000000"],
        "classify": ["classify", "train", "--dataset", "GunPoint", "--steps", "1000000"],
        "classify --ensemble 1": [
            "classify",
            "train",
            "--dataset",
            "GunPoint",
            "--ensemble",
            "1",
            "--steps",
            "1000000",
        ],  # fmt: skip
        "transcribe": ["transcribe", "train", "--steps", "1000000"],
        "music": ["music", "train", *music, "--steps", "1000000"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="the budget of each command")
    parser.add_argument("--tasks", help="comma-separated names from the table (default all)")
    parser.add_argument("--json", default="budgets.json", help="file name in benchmarks/results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        table = commands(Path(tmp))
        chosen = [t.strip() for t in args.tasks.split(",")] if args.tasks else list(table)
        for i, name in enumerate(chosen):
            argv = [*table[name], "--minutes", str(args.minutes), "--out", f"{tmp}/run{i}"]
            began = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True,
                                  text=True)  # fmt: skip
            wall = time.monotonic() - began
            budget = 60.0 * args.minutes
            rows.append({
                "task": name,
                "command": "rnnkit " + " ".join(argv[:-2]),
                "status": done.returncode,
                "budget_s": budget,
                "wall_s": round(wall, 2),
                "ratio": round(wall / budget, 4),
                "within": done.returncode == 0 and wall <= budget * (1 + TOLERANCE),
                "last_line": (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1][:160],
            })  # fmt: skip
            r = rows[-1]
            print(f"{name:24s} status {r['status']}  {r['wall_s']:8.1f} s of {budget:.0f} s  "
                  f"({100 * (r['ratio'] - 1):+.1f}%)  {'ok' if r['within'] else 'OVER'}",
                  flush=True)  # fmt: skip
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
    print("\n| task | budget | wall time | over or under |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['budget_s']:.0f} s | {r['wall_s']:.1f} s | "
              f"{100 * (r['ratio'] - 1):+.1f}% |")  # fmt: skip
    path = write_result(args.json, {"minutes": args.minutes, "tolerance": TOLERANCE, "runs": rows})
    print(f"results: {path}")
    return 0 if all(r["within"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
