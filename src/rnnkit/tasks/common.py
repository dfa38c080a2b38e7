"""What every task's command line shares: the train options, the run directory's life cycle."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..cells import resolve
from ..distributed import World, pick_device, setup, teardown
from ..ownership import check_claim, claim
from ..runs import RunDir
from ..spec import RNNSpec
from ..training import TrainConfig, Trainer, TrainingDiverged
from . import options


def warn(text: str) -> None:
    """A warning on stderr, ``rnnkit: warning: ...``: the command goes on."""
    print(f"rnnkit: warning: {text}", file=sys.stderr, flush=True)


def add_train_options(p: argparse.ArgumentParser, **defaults) -> None:
    """The options every ``train`` verb has: the recurrent stack and the training.

    ``defaults`` sets each task's own values (cell, hidden, layers, dropout,
    batch_size, lr, eval_every, weight_decay, steps, warmup; None: set by the
    task) and ``zero_steps=True`` lets --steps 0 measure the initial model.
    """
    stack = {k: defaults.pop(k) for k in ("cell", "hidden", "layers", "dropout") if k in defaults}
    g = p.add_argument_group("the recurrent stack (shared by every task)")
    RNNSpec.add_arguments(g, **stack)
    add_training_options(p.add_argument_group("training (shared by every task)"), **defaults)


def add_training_options(
    g: argparse._ActionsContainer,
    resume: bool = True,
    zero_steps: bool = False,
    out_text: str = "run directory to write (default runs/<task>)",
    **defaults,
) -> None:
    """The trainer's options (budget, optimiser, schedule, checkpoints, seed, device, --out)."""
    d = {
        "batch_size": 32,
        "lr": 3e-3,
        "eval_every": 200,
        "weight_decay": 0.01,
        "steps": None,
        "warmup": 50,
        **defaults,
    }

    def shown(key: str) -> str:
        return "set by the task" if d[key] is None else str(d[key])

    for flag, kind, key, text in (
        ("--batch-size", options.batch, "batch_size", "global batch size"),
        ("--lr", options.positive(options.MAX_LR), "lr", "peak learning rate of AdamW"),
    ):
        g.add_argument(flag, type=kind, default=d[key], help=f"{text} (default {shown(key)})")
    g.add_argument("--weight-decay", type=options.real(0.0, options.MAX_LR), default=d["weight_decay"],
                   help=f"AdamW's decoupled weight decay, on weight matrices only "
                   f"(default {d['weight_decay']})")  # fmt: skip
    g.add_argument("--warmup", type=options.count(0), default=d["warmup"],
                   help=f"warm-up steps (default {shown('warmup')})")  # fmt: skip
    g.add_argument(
        "--clip",
        type=options.real(0.0),
        default=1.0,
        help="gradient clipping by global norm; 0 turns it off (default 1.0)",
    )
    steps_text = "optimizer steps" + ("; 0 measures the initial model" if zero_steps else "")
    if d["steps"] is not None:
        steps_text += f" (default {d['steps']})"
    g.add_argument("--steps", type=options.count(0 if zero_steps else 1), default=d["steps"],
                   help=steps_text)  # fmt: skip
    g.add_argument(
        "--epochs",
        type=options.positive(1e6),
        help="passes over the training data (turned into steps)",
    )
    g.add_argument(
        "--minutes",
        type=options.positive(1e6),
        help="time budget of the whole command in minutes, evaluation and test included "
        "(with --steps: whichever ends first)",
    )
    g.add_argument(
        "--eval-every",
        type=options.count(1),
        default=d["eval_every"],
        help=f"steps between evaluations (default {d['eval_every']})",
    )
    g.add_argument(
        "--patience",
        type=options.count(0),
        default=0,
        help="evaluations without improvement before stopping; 0: never",
    )
    g.add_argument(
        "--checkpoint-every",
        type=options.count(0),
        default=0,
        help="steps between checkpoints (default: at every evaluation)",
    )
    options.add_seed(g)
    options.add_device(g)
    g.add_argument("--out", type=options.path, help=out_text)
    if resume:
        g.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in --out from its last checkpoint",
        )


def task_verbs(subparsers: argparse._SubParsersAction, task: str, text: str):
    """``rnnkit TASK``'s parser; returns the subparsers its verbs are added to."""
    parser = subparsers.add_parser(task, help=text)
    return parser.add_subparsers(dest="verb", metavar="<verb>", required=True)


def report_result(args: argparse.Namespace, result: dict, report: Callable[[dict], None]) -> int:
    """An ``eval`` verb's end: the table for a reader, and with --json the result as one JSON
    object on the last line, for a script."""
    report(result)
    if getattr(args, "json", False):
        print(json.dumps(result))
    return 0


def run_verb(
    verbs, name: str, text: str, handler, json_flag: bool = False
) -> argparse.ArgumentParser:
    """A verb that reads a run directory (RUN), with --json when it prints a JSON last line."""
    p = verbs.add_parser(name, help=text)
    p.add_argument("run_dir", metavar="RUN", type=options.path)
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
    what = "integers" if kind is int else "finite numbers"
    items = text.split(",")
    if len(items) > 1 and any(not v.strip() for v in items):
        raise ValueError(f"{flag}: {text!r} has an empty item")
    try:
        values = [kind(v) for v in items if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a comma-separated list of {what}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{flag}: {text!r} is not a comma-separated list of {what}")
    return values


def budget_given(args: argparse.Namespace) -> bool:
    """Whether --steps, --epochs or --minutes was given (else the task sets its own budget)."""
    return not (args.steps is None and args.epochs is None and args.minutes is None)


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


def gates_of(cell: str) -> int:
    """Weight blocks per layer of a cell (4 for the LSTM, 3 for the GRU), for memory estimates."""
    cls = resolve(cell)
    return max(1, len(getattr(cls, "gate_names", ())), getattr(cls, "gates", 1))


def machine_memory(device: str | None = None) -> int:
    """Bytes of memory where the model will run: the GPU's, or this machine's RAM."""
    if device and device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_memory(need: float, what: str, remedy: str, device: str | None = None) -> None:
    """Refuse, before anything is written, work that would take over half the machine's memory."""
    have = machine_memory(device)
    if need > 0.5 * have:
        raise ValueError(
            f"{what} needs about {need / 2**30:,.1f} GiB, more than half of the "
            f"{have / 2**30:,.1f} GiB here: {remedy}"
        )


def bptt_bytes(
    args: argparse.Namespace, batch: int, steps: int, convolution: bool = False
) -> float:
    """Activations kept for backpropagation through time over one batch (float32), roughly."""
    directions = 2 if args.bidirectional else 1
    per_unit = gates_of(args.cell) + 4  # gate values, the state, its nonlinearity, outputs
    recurrent = batch * steps * args.hidden * per_unit * args.layers * directions
    filters = (128 + 256 + 128) * 3 if convolution else 0  # the FCN branch: conv, BN, ReLU
    return 4.0 * (recurrent + batch * steps * filters)


def check_model_options(args: argparse.Namespace) -> None:
    """The model's weights, their gradients and AdamW's two moments must fit in memory."""
    directions = 2 if args.bidirectional else 1
    per_layer = gates_of(args.cell) * args.hidden * (args.hidden * (1 + directions) + 2)
    weights = args.layers * directions * per_layer
    check_memory(
        16.0 * weights,
        f"a model of {args.layers} x {args.hidden} {args.cell} units ({weights:,} weights), "
        "with its gradients and AdamW's moments,",
        "lower --hidden or --layers",
        args.device,
    )


def run_dir(args: argparse.Namespace, task: str, resumed=None) -> RunDir:
    """``train``'s run directory, checked before any data is read: a directory in use, one
    that already holds a run (unless --resume), or one with nothing to resume is refused.

    With --resume, every option the command line leaves out takes the run's
    value: the config keys named like their option, and what ``resumed(config)``
    gives (a dict of option -> value: the data, options stored otherwise).
    """
    run = RunDir(args.out or f"runs/{task}")
    if is_main_process():
        check_claim(run, args.resume, task)
    if args.resume:
        saved = run.read_config()
        given = getattr(args, "given", set())
        scalar = (int, float, str, bool, type(None))  # a list or a dict is stored otherwise
        adopted = {k: v for k, v in saved.items() if isinstance(v, scalar) and k != "task"}
        adopted.update(RNNSpec.resumed_options(saved))
        adopted.update(resumed(saved) if resumed else {})
        for key, value in adopted.items():
            if key not in given and hasattr(args, key):
                setattr(args, key, value)
    return run


def fingerprint(*parts) -> str:
    """A short digest of the data (arrays, tensors, strings): --resume on changed data is refused."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            digest.update(str(part.dtype).encode() + str(part.shape).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


@contextmanager
def owned_run(
    args: argparse.Namespace, task: str, config: dict, comparable: tuple[str, ...]
) -> Iterator[RunDir]:
    """The run directory, owned by this process for the block (see ``rnnkit.ownership``).

    A new run refuses a directory that already holds a run (nothing is
    overwritten); ``--resume`` refuses options that contradict the run's config.
    A new run that stops before its first checkpoint leaves nothing behind.
    """
    run = RunDir(args.out or f"runs/{task}")
    if not is_main_process():  # torchrun's other ranks read the run; rank 0 owns it
        yield run
        return
    with claim(run, args.resume, task):
        if args.resume:
            saved = run.read_config()
            clashes = [
                _clash(k, config.get(k), saved.get(k))
                for k in dict.fromkeys((*comparable, "data_fingerprint"))
                if (k != "data_fingerprint" or k in saved)  # older runs have none
                and json.loads(json.dumps(config.get(k))) != saved.get(k)
            ]
            if clashes:
                raise ValueError(
                    "--resume with options or data that contradict the run's config: "
                    + "; ".join(clashes)
                )
        yield run


def _clash(key: str, mine, saved) -> str:
    """One short clause: a long value (a vocabulary, a scaler) is summarised, not printed."""
    if key == "data_fingerprint":
        return "the data differ from the run's (their fingerprint changed)"
    mine = json.loads(json.dumps(mine))
    if isinstance(mine, list) and isinstance(saved, list):
        added = [v for v in mine if v not in saved]
        lost = [v for v in saved if v not in mine]
        if len(repr(mine)) > 60 and (added or lost):
            parts = [
                f"{len(vs)} {what} ({', '.join(repr(v) for v in vs[:3])}{', ...' if len(vs) > 3 else ''})"
                for vs, what in ((added, "new"), (lost, "missing"))
                if vs
            ]
            return f"{key}: {' and '.join(parts)} against the run's"
    shown = [repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..." for v in (mine, saved)]
    return f"{key}={shown[0]} (the run has {shown[1]})"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


EXIT_SECONDS = 1.0  # the last checkpoint, the last lines, and the interpreter's own exit


def command_deadline(args: argparse.Namespace, share: float = 1.0) -> float | None:
    """When ``share`` of the --minutes budget, counted from the command's start, ends (less the
    time the command takes to exit)."""
    if args.minutes is None:
        return None
    started = getattr(args, "command_started", None) or time.monotonic()
    return started + share * 60.0 * args.minutes - EXIT_SECONDS


def read_run(path: str, task: str) -> tuple[RunDir, dict]:
    """A finished or stopped run of ``task`` and its config, or a one-line error."""
    run = RunDir(path)
    config = run.read_config()
    if config.get("task") != task:
        raise ValueError(f"{path} holds a {config.get('task')!r} run, not a {task} run")
    return run, config


def run_training(
    model,
    task,
    args,
    run: RunDir,
    config: dict,
    steps_per_epoch: int,
    title: str,
    deadline: float | None = None,
) -> dict:
    """Set up devices and processes, train, and return the final evaluation.

    ``deadline`` (default: the end of the --minutes budget) is when training,
    its final evaluation and the task's work after it must be over.
    """
    train_cfg = train_config(args, steps_per_epoch)
    world = setup(args.device)
    try:
        device = pick_device(args.device, world)
        if world.is_main and not args.resume:
            run.write_config({**config, "train": vars(train_cfg)})
        trainer = Trainer(model, task, train_cfg, run, world, device, title,
                          deadline=deadline or command_deadline(args))  # fmt: skip
        if args.resume:
            trainer.resume()
        try:
            return trainer.fit()
        except TrainingDiverged as error:
            raise ValueError(str(error)) from None
    finally:
        teardown(world)


# -- the one train sequence ------------------------------------------------------------
@dataclass
class Prepared:
    """What a task's ``prepare`` hands to the shared train sequence."""

    config: dict  # the run's config.json (the spec's keys included)
    task: Any  # what the Trainer trains on (rnnkit.training.Task)
    steps_per_epoch: int
    headline: str | Callable[[Any], str]  # the run's first line (or one made from the model)
    comparable: tuple[str, ...] | None = None  # keys --resume compares; None: all but "task"
    training_share: float = 1.0  # the share of --minutes that training may take
    state: dict = field(default_factory=dict)  # what the task's own hooks share


class TaskRecipe:
    """What a task plugs into ``train_task``; a new application is one module with one of these.

    ``name`` is the task (config.json's "task", the default run folder);
    ``forward_only`` is the reason the task refuses --bidirectional, when it
    does. ``diagnosis`` (optional) rebuilds a model and a probe from a run's
    config for ``rnnkit diagnose``.
    """

    name: str = ""
    forward_only: str | None = None
    metric_name: str = "validation loss"
    diagnosis: Callable[[dict], tuple] | None = None

    def default_run(self, args: argparse.Namespace) -> str:
        """The run directory when --out is not given."""
        return f"runs/{self.name}"

    def resumed_options(self, saved: dict) -> dict:
        """Options --resume takes back from a run's config that are not stored under their name."""
        return {}

    def check_options(self, args: argparse.Namespace) -> None:
        """The task's option defaults and checks that need more than one option."""

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        """Read and check the data; build the config and the training task. Writes nothing."""
        raise NotImplementedError

    def build_model(self, config: dict) -> torch.nn.Module:
        raise NotImplementedError

    def trained_model(
        self, run: RunDir, config: dict, device: str | None = None
    ) -> torch.nn.Module:
        """The run's trained model on ``device``: what every verb after ``train`` starts from."""
        model = self.build_model(config)
        run.load_weights(model)
        return model.to(pick_device(device, World()))

    def best_line(self, run: RunDir, result: dict) -> str:
        return f"best {self.metric_name} {result['best']:.4f}; stopped by {result['stopped_by']}"

    def before_training(self, run: RunDir, prepared: Prepared, args: argparse.Namespace) -> None:
        """Files a run keeps beside its weights, written once the run directory is owned."""

    def after_training(
        self, run: RunDir, model: torch.nn.Module, prepared: Prepared, args, result: dict
    ) -> None:
        """The test, the report, the files written after training (the best weights are loaded)."""


RECIPES: dict[str, TaskRecipe] = {}


def register_task(recipe: TaskRecipe) -> TaskRecipe:
    """Make a task known to ``rnnkit diagnose`` (and to anything that looks a run's task up)."""
    RECIPES[recipe.name] = recipe
    return recipe


def train_task(args: argparse.Namespace, recipe: TaskRecipe) -> int:
    """Every task's ``train``: one sequence, the task's hooks where tasks differ.

    1. the run directory is checked (in use, already a run, nothing to resume),
       before any data is read; 2. the task's and the model's options; 3. the
       data, the config and the training task (``prepare``); 4. the seed, then
       the model from the config; 5. the run directory is claimed and named;
       6. training under the time budget; 7. the best weights are reloaded and
       the task reports.
    """
    args.out = args.out or recipe.default_run(args)
    run_dir(args, recipe.name, recipe.resumed_options)
    recipe.check_options(args)
    check_model_options(args)
    spec = RNNSpec.from_args(args)
    if spec.bidirectional and recipe.forward_only:
        raise ValueError(f"--bidirectional {recipe.forward_only}")
    prepared = recipe.prepare(args, spec)
    torch.manual_seed(args.seed)
    model = recipe.build_model(prepared.config)
    comparable = prepared.comparable
    if comparable is None:
        comparable = tuple(k for k in prepared.config if k != "task")
    with owned_run(args, recipe.name, prepared.config, comparable) as run:
        if is_main_process():
            headline = prepared.headline
            headline = headline if isinstance(headline, str) else headline(model)
            print(f"{headline}; run in {run.path}", flush=True)
        recipe.before_training(run, prepared, args)
        result = run_training(model, prepared.task, args, run, prepared.config,
                              prepared.steps_per_epoch, f"{recipe.name}: {spec.cell}",
                              deadline=command_deadline(args, prepared.training_share))  # fmt: skip
        if is_main_process():
            print(recipe.best_line(run, result), flush=True)
        run.load_weights(model)
        recipe.after_training(run, model, prepared, args, result)
    return 0
