"""`rnnkit diagnose RUN`: the gradient flow through time of any run directory.

Reads the norms of dL/dh_t that training recorded (``gradient_flow.jsonl``:
at initialisation and at every evaluation) and writes a heat map (distance to
the loss by training step), a line plot and a JSON summary into the run. A run
without records (an older run) is measured now, at a fresh initialisation and
with its best weights, when its task can rebuild its data (the best weights are those of the best evaluation).
"""

from __future__ import annotations

import argparse
import json

import torch

from ..distributed import World, pick_device
from ..plots import gradient_flow_heatmap, gradient_flow_lines
from ..runs import GRADIENT_FLOW, RunDir, register_run_files, save_json
from ..training import best_record
from . import options
from .common import RECIPES

HEATMAP, LINES, SUMMARY = "gradient_flow.png", "gradient_flow_lines.png", "gradient_flow.json"
register_run_files(HEATMAP, LINES, SUMMARY)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diagnose",
        help="gradient flow through time of a run: heat map, line plot, JSON",
        description="Plot the norm of dL/dh_t (the loss at the last step of a window) against the "
        "distance to the loss, at initialisation and during training, for any run directory; print "
        "how much it shrinks over 10 and 100 steps and the spectral radii of the recurrent weights.",
    )
    p.add_argument("run_dir", metavar="RUN", type=options.path)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line last")
    options.add_device(p, " (for a run that recorded nothing and is measured now)")
    p.set_defaults(run=run)


def _measure_now(run: RunDir, config: dict, device: torch.device) -> list[dict]:
    """For runs that recorded nothing: the flow at a fresh initialisation and with the best weights."""
    recipe = RECIPES.get(config["task"])
    if recipe is None or recipe.diagnosis is None:
        raise ValueError(
            f"{run.path} recorded no {GRADIENT_FLOW} and its task {config['task']!r} cannot rebuild its data"
        )
    build, task = recipe.diagnosis(config)
    torch.manual_seed(config.get("seed", 0))
    fresh = build().to(device)
    trained = build()
    run.load_weights(trained)
    trained.to(device)
    best = best_record(run.read_metrics(), getattr(task, "monitor", None))
    best_step = best["step"] if best else 0
    return [
        {"step": 0, **task.gradient_flow(fresh).as_dict()},
        {"step": best_step, **task.gradient_flow(trained).as_dict()},
    ]


def shrink(norms: list[float], distance: int) -> float | None:
    """||dL/dh_T|| / ||dL/dh_(T-distance)||, None where the sequence is shorter or the far norm is 0."""
    if distance >= len(norms) or norms[-1 - distance] <= 0:
        return None
    return norms[-1] / norms[-1 - distance]


def summarise(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        norms = r["norms"][0]  # the bottom layer: every path back to the inputs ends there
        out.append(
            {
                "step": r["step"],
                "loss": r["loss"],
                "shrink_10": shrink(norms, 10),
                "shrink_100": shrink(norms, 100),
                "shrink_all": shrink(norms, len(norms) - 1),
                "radii": r.get("radii", {}),
            }
        )
    return out


def write_diagnosis(run: RunDir, device: str | None = None) -> dict:
    """Write the plots and the JSON summary into the run; return the summary."""
    config = run.read_config()
    records = run.read_metrics(GRADIENT_FLOW)
    if not records:
        records = _measure_now(run, config, pick_device(device, World()))
    title = f"{config['task']}: {config.get('cell', '')}"
    gradient_flow_heatmap(records, run.file(HEATMAP), title)
    gradient_flow_lines(records, run.file(LINES), title)
    summary = {
        "run": str(run.path),
        "layers": records[0]["layers"],
        "steps_recorded": [r["step"] for r in records],
        "summary": summarise(records),
        "norms": [r["norms"] for r in records],
    }
    save_json(run.file(SUMMARY), summary)
    _print(summary, run)
    return summary


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _print(summary: dict, run: RunDir) -> None:
    layer = summary["layers"][0]
    print(
        f"gradient flow of {layer} (the loss at the last step; shrink = ||dL/dh_T|| / ||dL/dh_(T-k)||)"
    )
    print(
        f"{'step':>8s} {'loss':>9s} {'shrink k=10':>12s} {'k=100':>10s} {'whole':>10s}  spectral radii"
    )
    rows = summary["summary"]
    shown = (
        rows
        if len(rows) <= 12
        else [rows[i] for i in sorted({*range(0, len(rows), len(rows) // 10), len(rows) - 1})]
    )
    for s in shown:
        radii = next(iter(s["radii"].values()), {}) if s["radii"] else {}
        text = ", ".join(f"{k} {v:.3f}" for k, v in radii.items())
        print(
            f"{s['step']!s:>8s} {s['loss']:9.4f} {_fmt(s['shrink_10']):>12s} {_fmt(s['shrink_100']):>10s} "
            f"{_fmt(s['shrink_all']):>10s}  {text}"
        )
    print(f"plots: {run.file(HEATMAP)}, {run.file(LINES)}; numbers: {run.file(SUMMARY)}")


def run(args: argparse.Namespace) -> int:
    summary = write_diagnosis(RunDir(args.run_dir), args.device)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "norms"}))
    return 0
