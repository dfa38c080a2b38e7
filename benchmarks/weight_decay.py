"""Weight decay on matrices only against decay on every parameter, each task's defaults.

    python benchmarks/weight_decay.py                    # text, forecast, classify, transcribe
    python benchmarks/weight_decay.py --tasks text --steps 300

rnnkit's AdamW decays weight matrices only (biases, normalisation gains and
leaky time constants are left alone, as nanoGPT's configure_optimizers does).
This runs each task's default configuration twice in this process, on the
same data, seed and number of steps: once as rnnkit trains now, once with the decay
put back on every parameter (what rnnkit did before), and prints the
validation and test figures side by side. One seed per task: a difference
within a seed's spread (see each task's section of the README) is no
difference. Writes benchmarks/results/weight_decay.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness import rnnkit, write_result

from rnnkit import training

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# task -> the train options beyond the defaults. A fixed number of steps, not minutes, so
# that the two runs of a pair see the same training however busy the machine is: text gets
# the 1-minute default model for the ~700 steps it takes in a minute on 2 cores; classify
# keeps its own budget (steps from the set's size); the others a few minutes' steps.
TASKS = {
    "text": ["--data", SHARED / "tinyshakespeare.txt", "--val-fraction", "0.100001",
             "--layers", "1", "--hidden", "512", "--lr", "6e-3", "--steps", "700",
             "--eval-every", "100"],
    "forecast": ["--data", "seattle-weather", "--steps", "1500"],
    "classify": ["--dataset", "ItalyPowerDemand"],
    "transcribe": ["--steps", "1500", "--eval-every", "250"],
}  # fmt: skip


def decay_everything(model, weight_decay: float) -> list[dict]:
    """The old grouping: one group, every parameter decayed."""
    return [{"params": [p for p in model.parameters() if p.requires_grad],
             "weight_decay": weight_decay}]  # fmt: skip


def one_run(task: str, mode: str, steps: int | None, root: Path) -> dict:
    argv = [str(a) for a in TASKS[task]]
    if steps is not None:
        argv = [a for i, a in enumerate(argv) if a != "--steps" and argv[i - 1] != "--steps"]
        argv += ["--steps", str(steps)]
    out = root / f"{task}-{mode}"
    original = training.parameter_groups
    if mode == "every parameter":
        training.parameter_groups = decay_everything
    began = time.perf_counter()
    try:
        rnnkit(task, "train", *argv, "--out", out)
    finally:
        training.parameter_groups = original
    seconds = time.perf_counter() - began
    result = json.loads(rnnkit(task, "eval", out, "--json").strip().splitlines()[-1])
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"task": task, "decay": mode, "options": argv, "seconds": round(seconds, 1),
            "steps": metrics[-1]["step"], "eval": result}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--steps", type=int, help="steps of every run (default: per task)")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    if "text" in tasks and not SHARED.exists():
        print(f"text skipped: {SHARED} is not here")
        tasks.remove("text")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-decay-") as root:
        for task in tasks:
            for mode in ("matrices only", "every parameter"):
                row = one_run(task, mode, args.steps, Path(root))
                rows.append(row)
                shown = {k: v for k, v in row["eval"].items() if isinstance(v, float)}
                print(f"{task:10s} {mode:16s} {row['steps']:6d} steps  {json.dumps(shown)}",
                      flush=True)  # fmt: skip
    path = write_result("weight_decay.json", {"runs": rows})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
