"""`rnnkit lab`: the vanishing and exploding gradient, measured, and its cures compared.

* ``lab gradients``: train one cell on a long-range problem and draw dL/dh_t
  against the distance to the loss, at initialisation and during training.
* ``lab power``: the power method, h_t = W^T h_{t-1}, for chosen spectral radii.
* ``lab explode``: an Elman network started with a spectral radius above one,
  trained by plain SGD with and without gradient clipping.
* ``lab compare``: cells (and dilated stacks) under one budget, several seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..cells import cell_options, resolve
from ..diagnostics import linear_recurrence
from ..distributed import World, pick_device
from ..ownership import check_claim, claim
from ..plots import compare_curves, explode_plot, gradient_flow_grid, power_method_plot
from ..runs import GRADIENT_FLOW, RunDir, register_run_files, save_json
from ..spec import RNNSpec
from ..training import Trainer, TrainingDiverged
from . import longrange, options
from .common import (
    Prepared,
    TaskRecipe,
    add_train_options,
    add_training_options,
    number_list,
    register_task,
    task_verbs,
    train_config,
    train_task,
)
from .diagnose import write_diagnosis
from .synthetic import PROBLEMS

TASK = "lab"
RESULT = "result.json"
register_run_files(RESULT)
# Sequences longer than this would hold T x batch x units of activations for BPTT.
MAX_LENGTH = 100_000
MAX_RADIUS = 100.0  # a spectral radius past this overflows float32 within a few dozen steps


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(
        subparsers, TASK, "vanishing and exploding gradients, measured; their cures compared"
    )

    p = verbs.add_parser(
        "gradients",
        help="train one cell on a long-range problem; plot dL/dh_t at initialisation and during training",
        description="Train one cell on a generated long-range problem and write the norm of dL/dh_t "
        "for every step (the loss taken at the last step) at initialisation and at every evaluation: "
        "a heat map, a line plot and JSON in the run directory. --steps 0 measures the initialisation only.",
    )
    _problem_options(p)
    add_train_options(p, zero_steps=True, **GRADIENTS_DEFAULTS)
    _model_options(p, cells=False)
    _evaluation_options(p)
    p.set_defaults(run=gradients)

    p = verbs.add_parser(
        "compare",
        help="train several cells under the same budget and seeds; table, plots, JSON",
        description="Train every cell (and every dilated stack) on the same problem, budget and seeds. "
        "Each run stops when solved or when its budget is spent; the test metric is measured on a "
        "separate test set with the best weights. The last line of stdout is one JSON object.",
    )
    _problem_options(p)
    _model_options(p, cells=True)
    g = p.add_argument_group("training (shared by every task)")
    add_training_options(g, resume=False, out_text="folder of the run directories (default runs/lab-compare-<task><length>)",
                         **COMPARE_DEFAULTS)  # fmt: skip
    _evaluation_options(p)
    p.add_argument(
        "--seeds",
        type=options.count(1, 1000),
        default=3,
        help="seeds SEED..SEED+N-1 per configuration (default 3)",
    )
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    p.set_defaults(run=compare)

    p = verbs.add_parser(
        "power",
        help="the power method: norms along h_t = W^T h_{t-1} for spectral radii around one",
        description="Run the linear recurrence h_t = W^T h_{t-1} with random matrices W rescaled to "
        "each spectral radius, back-propagate L = v.h_T, and compare the measured slope of log-norm "
        "against t with log of the radius.",
    )
    p.add_argument(
        "--radii", default="0.9,1.0,1.1", help="comma-separated radii (default 0.9,1.0,1.1)"
    )
    p.add_argument("--size", type=options.units, default=64, help="state size (default 64)")
    p.add_argument("--length", type=options.count(4, MAX_LENGTH), default=100,
                   help="steps (default 100)")  # fmt: skip
    options.add_seed(p)
    options.add_device(p)
    p.add_argument(
        "--out", type=options.path, default="runs/lab-power", help="folder for the plot and JSON"
    )
    p.set_defaults(run=power)

    p = verbs.add_parser(
        "explode",
        help="an Elman network with spectral radius > 1, trained with and without clipping",
        description="Start an Elman network with recurrent spectral radius --radius (> 1) and train it "
        "on the adding problem by plain SGD (Adam would rescale the very updates we want to see), "
        "once without clipping and once with --clip. Counts the steps whose gradient was not finite "
        "or huge (over 100 times the median norm of the first ten steps) and reports the final test MSE.",
    )
    p.add_argument(
        "--radius", type=options.positive(MAX_RADIUS), default=1.5,
        help="initial spectral radius (default 1.5; above 1 for the gradient to explode)",
    )  # fmt: skip
    p.add_argument("--length", type=options.count(2, MAX_LENGTH), default=50,
                   help="sequence length (default 50)")  # fmt: skip
    p.add_argument("--hidden", type=options.units, default=64, help="units (default 64)")
    p.add_argument(
        "--steps", type=options.count(1, 10**8), default=300, help="SGD steps (default 300)"
    )
    p.add_argument("--batch-size", type=options.batch, default=32, help="(default 32)")
    p.add_argument("--lr", type=options.positive(options.MAX_LR), default=0.05,
                   help="SGD learning rate (default 0.05)")  # fmt: skip
    p.add_argument(
        "--clip", type=options.positive(), default=1.0,
        help="the clipped run's max norm (default 1.0)",
    )  # fmt: skip
    p.add_argument(
        "--nonlinearity", default="tanh", choices=("tanh", "relu"), help="(default tanh)"
    )
    options.add_seed(p)
    options.add_device(p)
    p.add_argument(
        "--out", type=options.path, default="runs/lab-explode", help="folder for the plot and JSON"
    )
    p.set_defaults(run=explode)


def _problem_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem")
    g.add_argument("--task", default="adding", choices=sorted(PROBLEMS), help="(default adding)")
    g.add_argument(
        "--length", type=options.count(1, MAX_LENGTH), default=100,
        help="T, the memory span the problem needs (default 100)",
    )  # fmt: skip


# the lab's defaults where they differ from the other tasks': a small Elman network, no
# weight decay (it would shrink the very matrices whose spectral radius is studied), and a
# warm-up of a tenth of the steps (at most 50) unless --warmup is given
GRADIENTS_DEFAULTS = dict(cell="elman", hidden=128, batch_size=64, lr=2e-3, eval_every=25,
                          weight_decay=0.0, steps=300, warmup=None)  # fmt: skip
COMPARE_DEFAULTS = dict(batch_size=64, lr=2e-3, eval_every=100, weight_decay=0.0, warmup=None)


def _model_options(p: argparse.ArgumentParser, cells: bool) -> None:
    g = p.add_argument_group("model")
    if cells:
        g.add_argument(
            "--cells",
            default="elman,leaky,lstm,gru",
            help="comma-separated (default elman,leaky,lstm,gru)",
        )
        g.add_argument(
            "--dilations",
            nargs="*",
            default=[],
            metavar="D1,D2,...",
            help="each list adds a stack of dilated layers (one dilation per layer), e.g. 1,2,4,8, "
            "for every cell of --dilated-cells",
        )
        g.add_argument("--dilated-cells", default="elman", help="(default elman)")
        g.add_argument(
            "--hidden", type=options.units, default=128, help="units per layer (default 128)"
        )
        g.add_argument("--layers", type=options.layers, default=1,
                       help="layers without dilations (default 1)")  # fmt: skip
    g.add_argument(
        "--init",
        default="default",
        choices=("default", "chrono"),
        help="chrono: the forget (or update) gate biases spread the memory time scales up to T "
        "(default: uniform weights, LSTM forget bias 1)",
    )
    g.add_argument(
        "--radius",
        type=options.positive(MAX_RADIUS),
        help="rescale the recurrent weights to this spectral radius",
    )
    g.add_argument("--nonlinearity", default="tanh", choices=("tanh", "relu"))
    g.add_argument(
        "--fixed-alpha",
        action="store_true",
        help="leaky units keep their time scales (default: learned)",
    )
    g.add_argument(
        "--max-timescale",
        type=options.real(2.0, 1e6, low_open=True),
        help="leaky and chrono time scales up to this (default T)",
    )


def _evaluation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("--val-size", type=options.count(1, 10**6), default=1000,
                   help="validation sequences (default 1000)")  # fmt: skip
    g.add_argument("--test-size", type=options.count(1, 10**6), default=2000,
                   help="test sequences (default 2000)")  # fmt: skip
    g.add_argument(
        "--threads", type=options.count(1, 1024), help="torch threads (default: torch's choice)"
    )


# -- building runs ---------------------------------------------------------------------
def _check(args: argparse.Namespace) -> None:
    """What the option types cannot see alone (ranges and finiteness are theirs)."""
    if args.task == "adding" and args.length < 2:
        raise ValueError("--length must be >= 2 for the adding problem")
    if args.epochs is not None:
        raise ValueError(
            "--epochs: the lab's problems are generated afresh at every step; "
            "give --steps or --minutes"
        )
    if args.warmup is None:
        args.warmup = min(50, max(1, (args.steps or 1000) // 10))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if "nonlinearity" in getattr(args, "given", ()):
        names = [args.cell] if hasattr(args, "cell") else [c for c, _ in _configurations(args)]
        for name in names:
            if "nonlinearity" not in cell_options(resolve(name)):
                raise ValueError(f"--nonlinearity: cell {name} has no nonlinearity to choose")


def run_config(args: argparse.Namespace, spec: RNNSpec, seed: int) -> dict:
    """A lab run's config.json: the problem, the stack, the lab's initialisation, the seed."""
    return {
        "task": TASK,
        "problem": args.task,
        "length": args.length,
        **spec.to_config(),
        "init": args.init,
        "radius": args.radius,
        "nonlinearity": args.nonlinearity,
        "learn_alpha": not args.fixed_alpha,
        "max_timescale": float(args.max_timescale or max(args.length, 3)),
        "batch_size": args.batch_size,
        "lr": args.lr,
        "clip": args.clip,
        "val_size": args.val_size,
        "seed": seed,
    }


def make_task(config: dict) -> longrange.LongRangeTask:
    return longrange.LongRangeTask(
        PROBLEMS[config["problem"]],
        config["length"],
        config["batch_size"],
        config["seed"],
        config["val_size"],
    )


def diagnosis(config: dict) -> tuple[Callable[[], torch.nn.Module], longrange.LongRangeTask]:
    """What ``rnnkit diagnose`` needs to measure a lab run afresh: a model builder and the task."""
    return (lambda: longrange.build_model(config)), make_task(config)


def result_row(config: dict, run: RunDir, model, task, test_size: int, trained: dict) -> dict:
    """A finished run's row (``trained``: its step, seconds and stop), its test measured now;
    written to the run's result.json."""
    test = task.test(model, test_size, config["seed"])
    row = {
        "cell": config["cell"],
        "dilations": config["dilations"],
        "seed": config["seed"],
        "test_metric": test["metric"],
        "solved": longrange.solved_within(test["metric"], task.solved_below),
        "steps": trained["step"],
        "seconds": round(trained["seconds"], 1),
        "stopped_by": trained["stopped_by"],
        "parameters": longrange.parameter_count(model),
        "baseline": task.baseline,
        "run": str(run.path),
    }
    if "accuracy" in test:
        row["test_accuracy"] = test["accuracy"]
    if trained.get("diverged"):
        row["diverged"] = True
    save_json(run.file(RESULT), row)
    return row


class LabRecipe(TaskRecipe):
    """``lab gradients``: one cell trained on a long-range problem, its gradient flow recorded."""

    name = TASK
    forward_only = (
        "is not offered by the lab: it measures how the gradient travels back through time"
    )
    diagnosis = staticmethod(diagnosis)

    def default_run(self, args: argparse.Namespace) -> str:
        return f"runs/lab-gradients-{longrange.label(args.cell, args.dilations)}-{args.task}{args.length}"

    def resumed_options(self, saved: dict) -> dict:
        return {"task": saved["problem"], "fixed_alpha": not saved.get("learn_alpha", True)}

    def check_options(self, args: argparse.Namespace) -> None:
        _check(args)

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        config = run_config(args, spec, args.seed)
        problem = PROBLEMS[args.task]
        headline = (
            f"{longrange.label(spec.cell, spec.dilations)} on {args.task}, T={args.length} "
            f"({problem.metric}; memoryless baseline {problem.baseline(args.length):.4f})"
        )
        return Prepared(config, make_task(config), steps_per_epoch=1, headline=headline)

    def build_model(self, config: dict) -> torch.nn.Module:
        return longrange.build_model(config)

    def best_line(self, run: RunDir, result: dict) -> str:
        return f"best {result['monitor']} {result['best']:.4f}; stopped by {result['stopped_by']}"

    def after_training(self, run, model, prepared: Prepared, args, result: dict) -> None:
        trained = {
            "step": result["step"],
            "seconds": result["time"],
            "stopped_by": result["stopped_by"],
        }
        row = result_row(prepared.config, run, model, prepared.task, args.test_size, trained)
        print(
            f"after {row['steps']} steps ({row['seconds']:.0f}s): test {row['test_metric']:.4f} "
            f"(baseline {row['baseline']:.4f}); solved: {row['solved']}"
        )
        write_diagnosis(run)


RECIPE = register_task(LabRecipe())


def train_run(config: dict, run: RunDir, args: argparse.Namespace, device: torch.device) -> dict:
    """Train one of ``lab compare``'s configurations into ``run``, owned while it trains, under
    the shared training options (--minutes bounds each run, its test included); returns its row."""
    torch.manual_seed(config["seed"])
    model = longrange.build_model(config)
    task = make_task(config)
    train_cfg = train_config(args, steps_per_epoch=1)
    title = f"{config['problem']} T={config['length']}: {longrange.label(config['cell'], config['dilations'])}"
    began = time.perf_counter()
    deadline = None if args.minutes is None else time.monotonic() + 60.0 * args.minutes
    with claim(run, resume=False, task=TASK):
        run.write_config({**config, "train": vars(train_cfg)})
        trainer = Trainer(model, task, train_cfg, run, device=device, title=title, quiet=True,
                          deadline=deadline)  # fmt: skip
        try:
            result = trainer.fit()
        except TrainingDiverged:
            result = {"stopped_by": "diverged", "diverged": True}
        trained = {**result, "step": trainer.step, "seconds": time.perf_counter() - began}
        run.load_weights(model)
        return result_row(config, run, model, task, args.test_size, trained)


def _fresh_run(path: str) -> RunDir:
    run = RunDir(path)
    check_claim(run, resume=False, task=TASK)
    return run


# -- verbs -----------------------------------------------------------------------------
def gradients(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


def _configurations(args: argparse.Namespace) -> list[tuple[str, list[int] | None]]:
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    dilated = [c.strip() for c in args.dilated_cells.split(",") if c.strip()]
    for flag, names in (("--cells", cells), ("--dilated-cells", dilated)):
        for cell in names:
            try:
                resolve(cell)
            except ValueError as error:
                raise ValueError(f"{flag}: {error}") from None
            if names.count(cell) > 1:
                raise ValueError(f"{flag} names {cell!r} twice")
    if args.dilations and not dilated:
        raise ValueError(
            "--dilations needs --dilated-cells to name the cells of the dilated stacks"
        )
    configs: list[tuple[str, list[int] | None]] = [(c, None) for c in cells]
    for text in args.dilations:
        configs += [(c, longrange.parse_dilations(text)) for c in dilated]
    if not configs:
        raise ValueError("--cells and --dilations name no configuration to train")
    return configs


def compare(args: argparse.Namespace) -> int:
    _check(args)
    if args.steps is None and args.minutes is None:
        raise ValueError("give --minutes or --steps: the budget of every run")
    configs = _configurations(args)
    root = Path(args.out or f"runs/lab-compare-{args.task}{args.length}")
    runs = {
        (cell, tuple(d or ()), seed): _fresh_run(
            str(root / f"{longrange.label(cell, d)}-seed{seed}")
        )
        for cell, d in configs
        for seed in range(args.seed, args.seed + args.seeds)
    }
    device = pick_device(args.device, World())
    problem = PROBLEMS[args.task]
    baseline = problem.baseline(args.length)
    budget = " or ".join(
        x
        for x in (args.steps and f"{args.steps} steps", args.minutes and f"{args.minutes:g} min")
        if x
    )
    print(
        f"{args.task}, T={args.length}: {problem.metric}, memoryless baseline {baseline:.4f}, "
        f"solved when {problem.solved_text}; {len(runs)} runs of {budget} each, in {root}",
        flush=True,
    )
    rows = []
    for (cell, dil, seed), run in runs.items():
        layers = len(dil) if dil else args.layers
        spec = RNNSpec(cell, hidden=args.hidden, layers=layers, dilations=dil or None).check()
        row = train_run(run_config(args, spec, seed), run, args, device)
        rows.append(row)
        print(
            f"  {longrange.label(cell, row['dilations']):18s} seed {seed}: test {row['test_metric']:.5f}  "
            f"solved {str(row['solved']):5s}  {row['steps']:6d} steps  {row['seconds']:7.1f}s  "
            f"({row['stopped_by']})",
            flush=True,
        )
    _print_table(rows, baseline)
    draw_comparison(root, rows, args.task, args.length)
    summary = {"task": args.task, "length": args.length, "results": rows}
    save_json(root / "results.json", summary)
    print(
        f"plots: {root / 'curves.png'}, {root / 'gradient_flow.png'}; results: {root / 'results.json'}"
    )
    print(json.dumps(summary))
    return 0


def draw_comparison(root: Path, rows: list[dict], task: str, length: int) -> None:
    """Learning curves of every run, and the gradient flow of each configuration's first seed."""
    baseline = PROBLEMS[task].baseline(length)
    curves = {
        longrange.label(r["cell"], r["dilations"]) + f" s{r['seed']}": RunDir(
            r["run"]
        ).read_metrics()
        for r in rows
    }
    monitor = longrange.monitor_of(PROBLEMS[task])
    compare_curves(curves, baseline, root / "curves.png", f"{task}, T={length}", monitor.name,
                   monitor.label)  # fmt: skip
    first = {}
    for r in rows:
        first.setdefault(longrange.label(r["cell"], r["dilations"]), r["run"])
    flows = {label: RunDir(run).read_metrics(GRADIENT_FLOW) for label, run in first.items()}
    gradient_flow_grid(flows, root / "gradient_flow.png", f"{task}, T={length}: ||dL/dh_t||")


def _print_table(rows: list[dict], baseline: float) -> None:
    print(
        f"\n{'configuration':18s} {'params':>8s} {'test metric per seed':>30s} {'solved':>7s} "
        f"{'steps to solve':>15s} {'s to solve':>11s}"
    )
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(longrange.label(r["cell"], r["dilations"]), []).append(r)
    for label, group in groups.items():
        metrics = " ".join(f"{r['test_metric']:.4f}" for r in group)
        solved = [r for r in group if r["solved"]]
        steps = " ".join(str(r["steps"]) for r in solved) or "-"
        secs = " ".join(f"{r['seconds']:.0f}" for r in solved) or "-"
        print(
            f"{label:18s} {group[0]['parameters']:8d} {metrics:>30s} {len(solved)}/{len(group):<5d} "
            f"{steps:>15s} {secs:>11s}"
        )
    print(f"(memoryless baseline {baseline:.4f})")


def _radii(text: str) -> list[float]:
    radii = number_list("--radii", text)
    if not radii or any(not 0 < r <= MAX_RADIUS for r in radii):
        raise ValueError(f"--radii must list numbers in (0, {MAX_RADIUS:g}], got {text!r}")
    return radii


def power(args: argparse.Namespace) -> int:
    radii = _radii(args.radii)
    device = pick_device(args.device, World())
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    print(
        f"h_t = W^T h_(t-1), {args.size} units, {args.length} steps; slopes fitted over the second half"
    )
    print(
        f"{'radius':>7s} {'log radius':>11s} {'state slope':>12s} {'gradient slope':>15s} {'rel. error':>11s}"
    )
    for i, radius in enumerate(radii):
        rec = linear_recurrence(
            radius, args.size, args.length, torch.Generator().manual_seed(args.seed + i), device
        )
        predicted, state, grad = rec.predicted_rate, rec.state_rate(), rec.gradient_rate()
        error = (
            max(abs(state - predicted), abs(grad - predicted)) / abs(predicted)
            if predicted
            else None
        )
        results.append(
            {
                "radius": radius,
                "log_radius": predicted,
                "state_slope": state,
                "gradient_slope": grad,
                "relative_error": error,
                "state_norms": rec.state_norms,
                "gradient_norms": rec.gradient_norms,
            }
        )
        shown = "-" if error is None else f"{100 * error:.1f}%"
        print(f"{radius:7.3f} {predicted:11.4f} {state:12.4f} {grad:15.4f} {shown:>11s}")
    power_method_plot(results, out / "power_method.png")
    save_json(
        out / "power_method.json", {"size": args.size, "length": args.length, "results": results}
    )
    print(f"plot: {out / 'power_method.png'}; numbers: {out / 'power_method.json'}")
    return 0


def explode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    from .explode import sgd_run

    rows = []
    print(
        f"Elman ({args.nonlinearity}, {args.hidden} units) started at spectral radius {args.radius}, "
        f"adding problem T={args.length}, SGD lr {args.lr}, {args.steps} steps"
    )
    for clip in (None, args.clip):
        rows.append(sgd_run(args, clip))
    print(
        f"\n{'clipping':>9s} {'non-finite':>11s} {'huge':>6s} {'max norm':>10s} {'initial':>9s} {'test MSE':>10s}"
    )
    for r in rows:
        shown = "off" if r["clip"] is None else f"{r['clip']:g}"
        test = "nan" if r["test_mse"] is None else f"{r['test_mse']:.4f}"
        print(
            f"{shown:>9s} {r['non_finite_steps']:11d} {r['huge_steps']:6d} {_norm(r['max_grad_norm']):>10s} "
            f"{_norm(r['initial_grad_norm']):>9s} {test:>10s}"
        )
    print(
        "(non-finite: updates skipped; huge: a gradient norm over 100 times the median of the first "
        f"ten steps; norms before clipping; the baseline's test MSE is {1 / 6:.4f})"
    )
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "explode.json", {"radius": args.radius, "length": args.length, "runs": rows})
    explode_plot(
        rows, out / "explode.png", f"Elman, spectral radius {args.radius:g} at the start, SGD"
    )
    print(f"plot: {out / 'explode.png'}; numbers: {out / 'explode.json'}")
    return 0


def _norm(value: float | None) -> str:
    return "none finite" if value is None else f"{value:.3g}"
