"""The trainer every task uses: BPTT and truncated BPTT, AdamW, clipping, schedules,
early stopping, time budgets, non-finite steps, checkpoints and exact resume, DDP.

A task describes its training through three things (``TrainingTask``):

* ``batches``: a resumable source of training batches (its position is part
  of the checkpoint);
* ``loss(model, batch, carry) -> (loss, carry)``: the mean loss of one batch.
  ``carry`` is the recurrent state passed from one batch to the next for
  truncated BPTT over a stream (None for whole sequences); the trainer
  detaches it after every step, which is where backpropagation is truncated;
* ``evaluate(model) -> dict``: validation metrics; the one the task's
  ``monitor`` names (lower is better; ``val_loss`` when the task names none)
  drives best weights and early stopping, each metric under its own name
  (``val_error``, ``val_wer``, ``val_nll``, ...); ``"solved": True`` ends
  training (a task with a success criterion, such as the lab's).

A task may give ``after_training_seconds(eval_seconds)``: how long its own
work after training (a test, a refit) will take, judged from the measured
evaluation time, so that a ``deadline`` bounds the whole command.

A task may also define ``gradient_flow(model) -> rnnkit.diagnostics.GradientFlow``;
the trainer then records the norms of dL/dh_t at initialisation and at every
evaluation in the run's ``gradient_flow.jsonl`` (read by ``rnnkit diagnose``).

Resume is exact on the CPU: the checkpoint holds the model, AdamW's moments,
the step (the schedule is a function of it), the random generators, the data
position and the carried state, so a run killed and resumed ends with the
very weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from . import distributed
from .distributed import World
from .plots import training_curves
from .runs import CURVES, GRADIENT_FLOW, RunDir

# the curves are redrawn at most this often during training (drawing takes ~0.2 s), and
# always once at the end
CURVES_INTERVAL = 10.0


@dataclass
class TrainConfig:
    steps: int | None = None  # stop after this many optimizer steps (0: evaluate only) ...
    minutes: float | None = None  # ... or when this much wall time is spent, whichever first
    lr: float = 3e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01
    warmup: int = 50  # steps of linear warm-up
    min_lr_ratio: float = 0.05  # the cosine decays to this fraction of lr
    clip: float = 1.0  # gradient clipping by global norm; 0 turns it off
    eval_every: int = 200  # steps between evaluations (and at the end)
    patience: int = 0  # evaluations without improvement before stopping early; 0: never
    checkpoint_every: int = 0  # steps between checkpoints; 0: at every evaluation
    max_bad_steps: int = 5  # consecutive non-finite steps that stop training
    log_every: int = 50  # steps between plain progress lines when not on a terminal

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("give --steps, --epochs or --minutes: training needs an end")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"--steps must be >= 0, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"--minutes must be > 0, got {self.minutes}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not (self.clip >= 0 and math.isfinite(self.clip)):
            raise ValueError(f"--clip must be >= 0 (0 turns it off), got {self.clip}")
        for name in ("eval_every", "max_bad_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_flag(name)} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "patience", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_flag(name)} must be >= 0, got {getattr(self, name)}")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


@dataclass(frozen=True)
class Monitor:
    """The validation metric that selects the weights, named and labelled for what it is."""

    name: str = "val_loss"  # its key in ``evaluate``'s dict and in metrics.jsonl
    label: str = "validation loss"  # the plot's axis label, unit included
    tie_break: str | None = None  # a second metric (lower better) between equal first ones
    train_label: str = "training loss"  # what the training loss is, unit included
    same_axis: bool = False  # the training loss and the metric share a unit: one axis


def best_record(records: list[dict], monitor: Monitor | None = None) -> dict | None:
    """The evaluation with the lowest monitored metric (the earliest of equals), or None.

    Older runs recorded every task's metric as ``val_loss``; they are read too.
    """
    name = (monitor or Monitor()).name
    scored = [(r.get(name, r.get("val_loss")), r) for r in records]
    scored = [(v, r) for v, r in scored if isinstance(v, (int, float)) and math.isfinite(v)]
    if not scored:
        return None
    tie = monitor.tie_break if monitor else None
    return min(scored, key=lambda vr: (vr[0], vr[1].get(tie, 0.0) if tie else 0.0))[1]


class BatchSource(Protocol):
    def __next__(self) -> Any: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class SeededSource:
    """Base of batch sources drawn from their own random generator: the generator is the position."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class TrainingTask(Protocol):
    batches: BatchSource

    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any]: ...
    def evaluate(self, model: nn.Module) -> dict: ...


def recurrent_plans(model: nn.Module) -> list[str]:
    """One line per distinct way the model's RNNs run (``rnnkit.plan``), for the training log."""
    from .recurrent import RNN  # the trainer serves any model; only RNNs have a plan

    plans = [m.plan for m in model.modules() if isinstance(m, RNN)]
    return [f"recurrent path: {p}" for p in dict.fromkeys(plans)]


class TrainingDiverged(RuntimeError):
    """Several consecutive steps had a non-finite loss or gradient."""


def learning_rate(
    config: TrainConfig, step: int, elapsed: float, seconds: float | None = None
) -> float:
    """Linear warm-up, then cosine decay over the steps or the time budget.

    ``seconds`` is the training time there is (a deadline's share); by default
    the config's minutes.
    """
    warm = min(1.0, (step + 1) / config.warmup) if config.warmup else 1.0
    progress = 0.0
    if config.steps:
        progress = step / config.steps
    if seconds is None and config.minutes:
        seconds = 60.0 * config.minutes
    if seconds:
        progress = max(progress, elapsed / max(seconds, 1e-9))
    progress = min(1.0, progress)
    floor = config.min_lr_ratio
    return config.lr * warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def detach_carry(carry: Any) -> Any:
    """Cut the graph at a chunk boundary: the state goes on, its history does not."""
    if carry is None:
        return None
    if isinstance(carry, Tensor):
        return carry.detach()
    return type(carry)(detach_carry(c) for c in carry)


def _finite(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all())


class Trainer:
    """Runs ``task`` on ``model`` until the steps, the time budget or the patience run out.

    ``deadline`` (a ``time.monotonic()`` value) ends training early enough that
    the final evaluation and the task's own work after training
    (``after_training_seconds``) end by then; the schedule's cosine is fitted
    to the training time that leaves.
    """

    def __init__(
        self,
        model: nn.Module,
        task: TrainingTask,
        config: TrainConfig,
        run: RunDir | None = None,
        world: World | None = None,
        device: torch.device | str = "cpu",
        title: str = "",
        quiet: bool = False,
        deadline: float | None = None,
    ) -> None:
        self.world = world or World()
        self.quiet = quiet  # no progress bar or evaluation lines (a caller that reports itself)
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.task, self.config, self.title = task, config, title
        self.monitor: Monitor = getattr(task, "monitor", None) or Monitor()
        self.deadline = deadline
        self.run = run  # every rank reads it on resume; only the main process writes
        self.writer = run if self.world.is_main else None
        self.trained = self.model
        if self.world.distributed:
            self.trained = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.model, config.weight_decay), lr=config.lr
        )
        self.step = 0
        self.elapsed = 0.0
        self.carry: Any = None
        self.best = (math.inf, math.inf)  # the monitored metric and its tie-break
        self.stale_evals = 0
        self.bad_in_a_row = 0
        self.skipped = 0
        self.window: list[float] = []  # training losses since the last evaluation
        self.last_eval_finite = True  # the last evaluation's metric was finite
        self.step_seconds = 0.0  # a running mean of one training step's wall time
        self.eval_seconds = 0.0  # the last evaluation's wall time
        self.curves_drawn_at = -math.inf
        self.curves_stale = False  # metrics were appended since the curves were drawn
        self.flow_recorded_at: int | None = None  # the step of the last gradient-flow record

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "carry": self.carry,
            "best": self.best[0],
            "best_tie": self.best[1],
            "stale_evals": self.stale_evals,
            "bad_in_a_row": self.bad_in_a_row,
            "skipped": self.skipped,
            "window": list(self.window),
            "data": self.task.batches.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            _load_optimizer(self.optimizer, self.model, state["optimizer"])
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
            self.carry = _to_device(state["carry"], self.device)
            self.best = (float(state["best"]), float(state.get("best_tie", math.inf)))
            self.stale_evals = int(state["stale_evals"])
            self.bad_in_a_row, self.skipped = int(state["bad_in_a_row"]), int(state["skipped"])
            self.window = [float(v) for v in state["window"]]
            self.task.batches.load_state_dict(state["data"])
            torch.set_rng_state(state["rng_cpu"])
            if torch.cuda.is_available() and state["rng_cuda"]:
                torch.cuda.set_rng_state_all(state["rng_cuda"])
        except (KeyError, TypeError, RuntimeError) as error:
            raise ValueError(f"the checkpoint does not fit this run: {error}") from None

    def resume(self) -> None:
        if self.run is None:
            raise ValueError("resume needs a run directory")
        state = self.run.load_checkpoint()
        carries = state.get("carry")
        if self.world.distributed:  # each rank continues its own rows of the stream
            state["carry"] = carries[self.world.rank] if carries else None
        self.load_state_dict(state)
        if self.writer is not None:
            self.writer.truncate_metrics(self.step)
            self.writer.truncate_metrics(self.step, GRADIENT_FLOW)

    def save_checkpoint(self) -> None:
        finite = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        if not (finite and self.last_eval_finite):
            return  # weights gone bad: the last good checkpoint stays the one to resume
        state = self.state_dict()
        if self.world.distributed:
            state["carry"] = distributed.gather_carry(self.carry, self.world)
        if self.writer is not None:
            self.writer.save_checkpoint(state)

    # -- the clock --------------------------------------------------------------------
    def reserve_seconds(self) -> float:
        """The time to keep after the last training step: a final evaluation and the task's own."""
        after = getattr(self.task, "after_training_seconds", None)
        return self.eval_seconds + (float(after(self.eval_seconds)) if after else 0.0)

    def training_seconds(self) -> float | None:
        """Training time in all (resumed runs included), from the minutes and the deadline."""
        seconds = 60.0 * self.config.minutes if self.config.minutes else None
        if self.deadline is not None:
            by_deadline = self.elapsed + self.deadline - time.monotonic() - self.reserve_seconds()
            seconds = by_deadline if seconds is None else min(seconds, by_deadline)
        return seconds

    def _out_of_time(self) -> bool:
        seconds = self.training_seconds()
        return seconds is not None and self.elapsed + self.step_seconds >= seconds

    # -- the loop ---------------------------------------------------------------------
    def fit(self) -> dict:
        config = self.config
        progress = _Progress(self.world.is_main and not self.quiet, config, self.step)
        if progress.active:
            for line in recurrent_plans(self.model):
                print(line, flush=True)
        started = time.perf_counter() - self.elapsed
        last_eval: dict = {}
        reason = "steps"
        if self.step == 0:
            self._record_gradient_flow()
        try:
            while True:
                self.elapsed = time.perf_counter() - started
                if config.steps is not None and self.step >= config.steps:
                    break
                out_of_time = self._out_of_time()
                if distributed.any_rank(out_of_time, self.world, self.device):
                    reason = "time budget"
                    break
                before = time.perf_counter()
                loss = self._train_step(self.training_seconds())
                took = time.perf_counter() - before
                mean = self.step_seconds
                self.step_seconds = took if not mean else 0.9 * mean + 0.1 * took
                progress.update(self.step, loss, self.optimizer.param_groups[0]["lr"], self.elapsed)
                # under a deadline the first evaluation comes after the first step: its time
                # tells how long the final one (and the task's work after training) will take
                first = self.deadline is not None and self.step == 1 and not last_eval
                if self.step % config.eval_every == 0 or first:
                    last_eval = self._evaluate()
                    if last_eval.get("solved"):
                        reason = "solved"
                        break
                    if config.patience and self.stale_evals >= config.patience:
                        reason = "early stopping"
                        break
                every = config.checkpoint_every or config.eval_every
                if self.step % every == 0:
                    self.save_checkpoint()
                _fault_injection(self.step)
            if not last_eval or last_eval.get("step") != self.step:
                last_eval = self._evaluate()
            self._draw_curves()
            self.save_checkpoint()
        finally:
            progress.close()
        return {
            **last_eval,
            "best": self.best[0],
            "monitor": self.monitor.name,
            "stopped_by": reason,
            "skipped_steps": self.skipped,
        }

    def _train_step(self, seconds: float | None = None) -> float:
        self.trained.train()
        self.optimizer.zero_grad(set_to_none=True)
        batch = _to_device(next(self.task.batches), self.device)
        loss, carry = self.task.loss(self.trained, batch, self.carry)
        bad = not _finite(loss.detach())
        if not bad:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.config.clip or math.inf
            )
            bad = not _finite(norm)
        if distributed.any_rank(bad, self.world, self.device):
            # skip the update; a state that went non-finite starts afresh
            self.skipped += 1
            self.bad_in_a_row += 1
            self.carry = None
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            if self.bad_in_a_row >= self.config.max_bad_steps:
                raise TrainingDiverged(
                    f"training diverged: {self.bad_in_a_row} steps in a row had a non-finite loss or gradient "
                    f"(at step {self.step}); the last good checkpoint is kept. Lower --lr or keep clipping on"
                )
            return math.nan
        self.bad_in_a_row = 0
        lr = learning_rate(self.config, self.step, self.elapsed, seconds)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.carry = detach_carry(carry)
        self.step += 1
        value = float(loss.detach())
        self.window.append(value)
        return value

    def _evaluate(self) -> dict:
        began = time.perf_counter()
        self.model.eval()
        with torch.no_grad():
            metrics = self.task.evaluate(self.model)
        name, tie = self.monitor.name, self.monitor.tie_break
        if name not in metrics:
            raise KeyError(f"the task's evaluate() gave no {name!r} (its monitor)")
        score = (float(metrics[name]), float(metrics[tie]) if tie else 0.0)
        self.last_eval_finite = math.isfinite(score[0])
        score = tuple(v if math.isfinite(v) else math.inf for v in score)
        train = sum(self.window) / len(self.window) if self.window else None
        self.window = []
        record = {
            "step": self.step,
            "time": round(self.elapsed, 3),
            "train_loss": train,
            **metrics,
            "lr": self.optimizer.param_groups[0]["lr"],
            "skipped_steps": self.skipped,
        }
        if score < self.best:
            self.best, self.stale_evals = score, 0
            if self.writer is not None:
                self.writer.save_weights(self.model)
        else:
            self.stale_evals += 1
        if self.writer is not None:
            self.writer.append_metrics(record)
            self.curves_stale = True
            if time.perf_counter() - self.curves_drawn_at >= CURVES_INTERVAL:
                self._draw_curves()
        self._record_gradient_flow()
        if self.world.is_main and not self.quiet:
            shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            _Progress.message(f"step {self.step}: {shown}")
        self.eval_seconds = time.perf_counter() - began
        return record

    def _draw_curves(self) -> None:
        if self.writer is None or not self.curves_stale:
            return
        training_curves(
            self.writer.read_metrics(), self.writer.file(CURVES), self.title, self.monitor
        )
        self.curves_drawn_at, self.curves_stale = time.perf_counter(), False

    def _record_gradient_flow(self) -> None:
        probe = getattr(self.task, "gradient_flow", None)
        if probe is None or self.writer is None or self.flow_recorded_at == self.step:
            return
        self.flow_recorded_at = self.step
        flow = probe(self.model)
        record = {"step": self.step, "time": round(self.elapsed, 3), **flow.as_dict()}
        self.writer.append_metrics(record, GRADIENT_FLOW)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two groups: the matrices decay; biases, normalisation gains and time constants do not.

    A parameter decays when it has two or more dimensions (a weight matrix, an
    embedding, a convolution kernel) and its module does not name it in a
    ``no_weight_decay`` attribute (as ``GateNorm``'s per-gate gains do), so a
    vector of gains or leaky time constants is never pulled towards zero.
    """
    decay: list[nn.Parameter] = []
    keep: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        exempt = set(getattr(module, "no_weight_decay", ()))
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            (decay if param.ndim >= 2 and name not in exempt else keep).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]


def _load_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module, saved: dict) -> None:
    """Load AdamW's state, also from a checkpoint written before the two groups (one group)."""
    if len(saved["param_groups"]) == len(optimizer.param_groups):
        optimizer.load_state_dict(saved)
        return
    # the old layout held every parameter, in model.parameters() order, in one group:
    # read it into such an optimizer and hand each parameter's moments over
    old = torch.optim.AdamW(model.parameters())
    old.load_state_dict(saved)
    for param, moments in old.state.items():
        optimizer.state[param] = moments


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _fault_injection(step: int) -> None:
    # For the resume test only: RNNKIT_KILL_AFTER_STEP=N makes the process SIGKILL
    # itself after step N (a real, unclean death), deterministically.
    target = os.environ.get("RNNKIT_KILL_AFTER_STEP")
    if target is not None and step == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


class _Progress:
    """A tqdm bar on a terminal, plain periodic lines otherwise (only on the main process)."""

    LINE_SECONDS = 30.0  # at least one line this often, whatever log_every says

    def __init__(self, active: bool, config: TrainConfig, start: int) -> None:
        self.active, self.config, self.start = active, config, start
        self.last_line = time.monotonic()
        self.bar = None
        if active and sys.stdout.isatty():
            from tqdm import tqdm

            size = shutil.get_terminal_size(
                (80, 24)
            )  # a terminal that reports no size gets 80 x 24
            self.bar = tqdm(
                total=config.steps,
                initial=start,
                unit="step",
                ncols=size.columns,
                nrows=size.lines,
                file=sys.stdout,
            )
        self.smooth: float | None = None

    def update(self, step: int, loss: float, lr: float, elapsed: float) -> None:
        if not self.active:
            return
        if math.isfinite(loss):
            self.smooth = loss if self.smooth is None else 0.95 * self.smooth + 0.05 * loss
        shown = f"{self.smooth:.4f}" if self.smooth is not None else "nan"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {shown} lr {lr:.2e}")
        elif (
            step % self.config.log_every == 0
            or step == self.start + 1  # the first line comes at once, however slow a step is
            or time.monotonic() - self.last_line >= self.LINE_SECONDS
        ):
            budget = f"/{self.config.steps}" if self.config.steps else ""
            print(f"step {step}{budget}  loss {shown}  lr {lr:.2e}  {elapsed:.0f}s", flush=True)
            self.last_line = time.monotonic()

    @staticmethod
    def message(text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
