"""The long-term dependency lab's targets (issue 4), as a benchmark: tables and JSON.

    python benchmarks/lab.py --part adding200   # LSTM, GRU (3 seeds), Elman, leaky, dilated Elman
    python benchmarks/lab.py --part adding600   # LSTM (chrono initialisation), 30 minutes
    python benchmarks/lab.py --part adding600_default   # the same LSTM, default initialisation
    python benchmarks/lab.py --part copy        # LSTM and GRU, T = 100 and T = 1000
    python benchmarks/lab.py --part flow        # gradient flow at initialisation; the power method
    python benchmarks/lab.py --part recall      # delayed recall, T = 100: Elman, LSTM, GRU (+ chrono)

Each part writes benchmarks/results/lab_<part>.json and its plots into docs/lab/.
Every run uses one thread (--threads), so two parts can run side by side on 2 cores.
Not a test: a part takes from a minute (flow) to about an hour (adding200).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from harness import rnnkit

from rnnkit.tasks.lab import draw_comparison

ROOT = Path(__file__).resolve().parent
RESULTS, DOCS = ROOT / "results", ROOT.parent / "docs" / "lab"


def compare(work: Path, name: str, *argv: str) -> dict:
    out = work / name
    text = rnnkit("lab", "compare", "--threads", "1", "--out", str(out), *argv, echo=True)
    result = json.loads(text.strip().splitlines()[-1])
    publish_plots(out, name)
    return result


def publish_plots(out: Path, name: str) -> None:
    for plot in ("curves.png", "gradient_flow.png"):
        shutil.copy(out / plot, DOCS / f"{name}_{plot}")


def replot(work: Path) -> None:
    """Redraw the comparison plots of kept runs (--keep) with the current plotting code."""
    for results in sorted(work.glob("*/results.json")):
        summary = json.loads(results.read_text())
        draw_comparison(results.parent, summary["results"], summary["task"], summary["length"])
        publish_plots(results.parent, results.parent.name)
        print(f"redrew {results.parent.name}")


def part_adding200(work: Path) -> dict:
    common = ("--task", "adding", "--length", "200", "--minutes", "10")
    gated = compare(work, "adding200_gated", *common, "--cells", "lstm,gru", "--seeds", "3")
    others = compare(
        work,
        "adding200_others",
        *common,
        "--cells",
        "elman,leaky",
        "--dilations",
        "1,2,4,8,16,32",
        "--seeds",
        "1",
    )
    return {"task": "adding", "length": 200, "results": gated["results"] + others["results"]}


def part_adding600(work: Path) -> dict:
    return compare(
        work,
        "adding600_lstm",
        "--task", "adding", "--length", "600", "--minutes", "30", "--cells", "lstm",
        "--seeds", "1", "--init", "chrono", "--lr", "1e-3", "--eval-every", "200",
    )  # fmt: skip


def part_adding600_default(work: Path) -> dict:
    """The same LSTM without the chrono initialisation (forget bias 1), for what made the difference."""
    return compare(
        work,
        "adding600_lstm_default",
        "--task", "adding", "--length", "600", "--minutes", "30", "--cells", "lstm",
        "--seeds", "1", "--lr", "1e-3", "--eval-every", "200",
    )  # fmt: skip


def part_copy(work: Path) -> dict:
    runs = []
    for length, minutes in (("100", "10"), ("1000", "12")):
        result = compare(
            work,
            f"copy{length}",
            "--task", "copy", "--length", length, "--minutes", minutes, "--cells", "lstm,gru",
            "--seeds", "1", "--init", "chrono", "--lr", "1e-3", "--eval-every", "100",
            "--test-size", "1000",
        )  # fmt: skip
        runs += [{**r, "length": int(length)} for r in result["results"]]
    return {"task": "copy", "results": runs}


def part_recall(work: Path) -> dict:
    """The delayed-recall problem (this project's own), T = 100, 4 minutes per run."""
    common = ("--task", "recall", "--length", "100", "--minutes", "4", "--seeds", "1")
    plain = compare(work, "recall100", *common, "--cells", "elman,lstm,gru")
    chrono = compare(work, "recall100_chrono", *common, "--cells", "lstm,gru", "--init", "chrono")
    rows = plain["results"] + [{**r, "init": "chrono"} for r in chrono["results"]]
    return {"task": "recall", "length": 100, "results": rows}


def part_flow(work: Path) -> dict:
    shrink = {}
    for cell, init in (("elman", "default"), ("leaky", "default"), ("lstm", "default"),
                       ("lstm", "chrono"), ("gru", "default"), ("gru", "chrono")):  # fmt: skip
        name = cell if init == "default" else f"{cell}-chrono"
        out = work / f"flow-{name}"
        rnnkit("lab", "gradients", "--cell", cell, "--init", init, "--task", "adding",
               "--length", "101", "--steps", "0", "--out", str(out), echo=True)  # fmt: skip
        summary = json.loads((out / "gradient_flow.json").read_text())
        shrink[name] = summary["summary"][0]["shrink_100"]
        shutil.copy(out / "gradient_flow_lines.png", DOCS / f"flow_init_{name}.png")
    power_out = work / "power"
    rnnkit(
        "lab",
        "power",
        "--radii",
        "0.9,1.0,1.1",
        "--length",
        "200",
        "--out",
        str(power_out),
        echo=True,
    )
    power = json.loads((power_out / "power_method.json").read_text())
    shutil.copy(power_out / "power_method.png", DOCS / "power_method.png")
    explode_out = work / "explode"
    rnnkit("lab", "explode", "--out", str(explode_out), echo=True)
    explode = json.loads((explode_out / "explode.json").read_text())
    shutil.copy(explode_out / "explode.png", DOCS / "explode.png")
    for run in explode["runs"]:
        run.pop("grad_norms")
    return {
        "shrink_over_100_steps_at_init": shrink,
        "power": [
            {k: v for k, v in r.items() if not k.endswith("_norms")} for r in power["results"]
        ],
        "explode": explode,
    }


PARTS = {
    "adding200": part_adding200,
    "adding600": part_adding600,
    "adding600_default": part_adding600_default,
    "copy": part_copy,
    "flow": part_flow,
    "recall": part_recall,
}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS))
    parser.add_argument("--keep", help="keep the run directories in this folder")
    parser.add_argument(
        "--replot", help="only redraw the plots of the parts kept in this folder (their --keep)"
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    if args.replot:
        replot(Path(args.replot))
        return
    if not args.part:
        parser.error("give --part or --replot")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rnnkit-lab-"))
    try:
        result = PARTS[args.part](work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    (RESULTS / f"lab_{args.part}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS / f'lab_{args.part}.json'}")


if __name__ == "__main__":
    run()
