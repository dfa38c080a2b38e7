"""What every task's command line shares: the train options, the run directory's life cycle."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..cells import CELLS
from ..distributed import pick_device, setup, teardown
from ..runs import CHECKPOINT, CONFIG, RunDir
from ..training import TrainConfig, Trainer, TrainingDiverged


def add_train_options(p: argparse.ArgumentParser, **defaults) -> None:
    """The options every ``train`` verb has; ``defaults`` sets each task's own values."""
    d = {
        "cell": "lstm",
        "hidden": 256,
        "layers": 1,
        "dropout": 0.0,
        "batch_size": 32,
        "lr": 3e-3,
        "eval_every": 200,
        **defaults,
    }

    def shown(key: str) -> str:
        return "set by the task, see above" if d[key] is None else str(d[key])

    g = p.add_argument_group("model and training (shared by every task)")
    g.add_argument(
        "--cell",
        default=d["cell"],
        choices=sorted(CELLS),
        help=f"recurrent cell (default {d['cell']})",
    )
    for flag, kind, key, text in (
        ("--hidden", int, "hidden", "units per layer"),
        ("--layers", int, "layers", "stacked layers"),
        ("--dropout", float, "dropout", "dropout between layers and before the output"),
        ("--batch-size", int, "batch_size", "global batch size"),
        ("--lr", float, "lr", "peak learning rate of AdamW"),
    ):
        g.add_argument(flag, type=kind, default=d[key], help=f"{text} (default {shown(key)})")
    g.add_argument("--bidirectional", action="store_true", help="read sequences in both directions")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--warmup", type=int, default=50, help="warm-up steps (default 50)")
    g.add_argument(
        "--clip",
        type=float,
        default=1.0,
        help="gradient clipping by global norm; 0 turns it off (default 1.0)",
    )
    g.add_argument("--steps", type=int, help="optimizer steps")
    g.add_argument("--epochs", type=float, help="passes over the training data (turned into steps)")
    g.add_argument(
        "--minutes", type=float, help="time budget in minutes (with --steps: whichever ends first)"
    )
    g.add_argument(
        "--eval-every",
        type=int,
        default=d["eval_every"],
        help=f"steps between evaluations (default {d['eval_every']})",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=0,
        help="evaluations without improvement before stopping; 0: never",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="steps between checkpoints (default: at every evaluation)",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")
    g.add_argument("--out", help="run directory to write (default runs/<task>)")
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )


def task_verbs(subparsers: argparse._SubParsersAction, task: str, text: str):
    """``rnnkit TASK``'s parser; returns the subparsers its verbs are added to."""
    parser = subparsers.add_parser(task, help=text)
    return parser.add_subparsers(dest="verb", metavar="<verb>", required=True)


def run_verb(
    verbs, name: str, text: str, handler, json_flag: bool = False
) -> argparse.ArgumentParser:
    """A verb that reads a run directory (RUN), with --json when it prints a JSON last line."""
    p = verbs.add_parser(name, help=text)
    p.add_argument("run_dir", metavar="RUN")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(run=handler)
    return p


def add_switch(
    group, name: str, default: bool, on: str, off: str, negation_only: bool = False
) -> None:
    """--NAME and --no-NAME, the default marked in the help.

    ``negation_only`` adds just --no-NAME, for a flag the shared train options
    already have (--bidirectional); the parser's default must then be set too.
    """
    mark, dest = " (the default)", name.replace("-", "_")
    both = group.add_mutually_exclusive_group()
    if not negation_only:
        both.add_argument(f"--{name}", dest=dest, action="store_true", default=default,
                          help=on + (mark if default else ""))  # fmt: skip
    both.add_argument(f"--no-{name}", dest=dest, action="store_false",
                      help=off + ("" if default else mark))  # fmt: skip


def number_list(flag: str, text: str, kind: type = float) -> list:
    """'1,2,4' -> [1, 2, 4] as ``kind``, or a one-line error naming ``flag``."""
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{flag}: {text!r} is not a comma-separated list of {what}") from None


def train_config(args: argparse.Namespace, steps_per_epoch: int) -> TrainConfig:
    steps = args.steps
    if args.epochs is not None:
        if not args.epochs > 0:
            raise ValueError(f"--epochs must be > 0, got {args.epochs}")
        from_epochs = max(1, math.ceil(args.epochs * steps_per_epoch))
        steps = from_epochs if steps is None else min(steps, from_epochs)
    return TrainConfig(
        steps=steps,
        minutes=args.minutes,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        clip=args.clip,
        eval_every=args.eval_every,
        patience=args.patience,
        checkpoint_every=args.checkpoint_every,
    )


def check_model_options(args: argparse.Namespace) -> None:
    for name in ("hidden", "layers", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not 0.0 <= args.dropout < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}")


def open_run(
    args: argparse.Namespace, task: str, config: dict, comparable: tuple[str, ...]
) -> RunDir:
    """The run directory for ``train``: a fresh one, or the one to resume.

    A new run refuses a directory that already holds a run (nothing is
    overwritten); ``--resume`` refuses options that contradict the run's config.
    """
    run = RunDir(args.out or f"runs/{task}")
    has_config = run.file(CONFIG).exists()
    if args.resume:
        if not has_config or not run.file(CHECKPOINT).exists():
            raise ValueError(
                f"nothing to resume in {run.path}: it holds no {CONFIG} and {CHECKPOINT}"
            )
        saved = run.read_config()
        if saved.get("task") != task:
            raise ValueError(f"{run.path} holds a {saved.get('task')!r} run, not a {task!r} run")
        clashes = [
            f"{k}={config.get(k)!r} (the run has {saved.get(k)!r})"
            for k in comparable
            if json.loads(json.dumps(config.get(k))) != saved.get(k)
        ]
        if clashes:
            raise ValueError(
                "--resume with options that contradict the run's config: " + ", ".join(clashes)
            )
        return run
    if has_config:
        raise ValueError(
            f"{run.path} already holds a run; use --resume to continue it or another --out"
        )
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--out {run.path} is a file, not a directory")
    return run


def read_run(path: str, task: str) -> tuple[RunDir, dict]:
    """A finished or stopped run of ``task`` and its config, or a one-line error."""
    run = RunDir(path)
    config = run.read_config()
    if config.get("task") != task:
        raise ValueError(f"{path} holds a {config.get('task')!r} run, not a {task} run")
    return run, config


def run_training(
    model, task, args, run: RunDir, config: dict, steps_per_epoch: int, title: str
) -> dict:
    """Set up devices and processes, train, and return the final evaluation."""
    train_cfg = train_config(args, steps_per_epoch)
    world = setup(args.device)
    try:
        device = pick_device(args.device, world)
        if world.is_main and not args.resume:
            Path(run.path).mkdir(parents=True, exist_ok=True)
            run.write_config({**config, "train": vars(train_cfg)})
        trainer = Trainer(model, task, train_cfg, run, world, device, title)
        if args.resume:
            trainer.resume()
        try:
            return trainer.fit()
        except TrainingDiverged as error:
            raise SystemExit(f"rnnkit: error: {error}") from None
    finally:
        teardown(world)
