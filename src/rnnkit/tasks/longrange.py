"""Training on the generated long-range problems: models, batches, evaluation, gradient flow."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells import cell_options, resolve
from ..diagnostics import GradientFlow, gradient_flow
from ..initialization import chrono_init_, scale_recurrent_radius_
from ..models import SequenceClassifier, SequenceRegressor, SequenceTagger
from ..spec import RNNSpec
from ..training import Monitor, SeededSource
from .common import number_list
from .synthetic import PROBLEMS, LongRangeProblem

# Offsets of the generator seeds, so that training, validation, test and probe data never meet.
VAL_SEED, TEST_SEED, PROBE_SEED = 10_000, 20_000, 30_000


LAB_CELL_OPTIONS = ("nonlinearity", "learn_alpha", "max_timescale")


def build_model(config: dict) -> nn.Module:
    """The model of a lab run's config: an RNN and the problem's head, initialised as asked."""
    problem = PROBLEMS[config["problem"]]
    dilations = config.get("dilations")
    layers = len(dilations) if dilations else config["layers"]
    # the lab's cell options go to the cells that take them (--nonlinearity given to a cell
    # without one is refused by the lab's command line)
    takes = cell_options(resolve(config["cell"]))
    options = {key: config[key] for key in LAB_CELL_OPTIONS if key in takes and key in config}
    spec = RNNSpec(
        config["cell"],
        hidden=config["hidden"],
        layers=layers,
        dilations=tuple(dilations) if dilations else None,
        cell_options={**options, **(config.get("cell_options") or {})},
    )
    rnn = spec.build(problem.input_size)
    model: nn.Module
    if problem.head == "regressor":
        model = SequenceRegressor(rnn, problem.outputs)
    elif problem.head == "classifier":
        model = SequenceClassifier(rnn, problem.outputs)
    else:
        model = SequenceTagger(rnn, problem.outputs)
    init = config.get("init", "default")
    if init == "chrono":
        chrono_init_(model, config["max_timescale"], torch.Generator().manual_seed(config["seed"]))
    if config.get("radius") is not None:
        scale_recurrent_radius_(model, config["radius"])
    return model


def model_output(model: nn.Module, problem: LongRangeProblem, x: Tensor) -> Tensor:
    out = model(x)
    return out[0] if problem.head == "tagger" else out


def problem_loss(problem: LongRangeProblem, out: Tensor, y: Tensor) -> Tensor:
    """The training loss, which is also the test metric: MSE, or cross-entropy per step."""
    if problem.head == "regressor":
        return F.mse_loss(out, y)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def accuracy(problem: LongRangeProblem, out: Tensor, y: Tensor) -> float | None:
    """Share of the remembered symbols recalled (copy: the last 10 steps); None for regression."""
    if problem.head == "regressor":
        return None
    if problem.head == "tagger":
        out, y = out[:, -10:], y[:, -10:]
    return float((out.argmax(-1) == y).float().mean())


class GeneratedBatches(SeededSource):
    """An endless, resumable stream of freshly generated training batches."""

    def __init__(self, problem: LongRangeProblem, batch: int, length: int, seed: int) -> None:
        super().__init__(seed)
        self.problem, self.batch, self.length = problem, batch, length

    def __next__(self) -> tuple[Tensor, Tensor]:
        return self.problem.generate(self.batch, self.length, self.generator)


class LongRangeTask:
    """A ``TrainingTask`` for one problem: fresh batches, a fixed validation set, gradient flow."""

    def __init__(
        self,
        problem: LongRangeProblem,
        length: int,
        batch: int,
        seed: int,
        val_size: int = 1000,
        probe_size: int = 32,
    ) -> None:
        self.problem, self.length = problem, length
        self.batches = GeneratedBatches(problem, batch, length, seed)
        self.val = problem.generate(
            val_size, length, torch.Generator().manual_seed(seed + VAL_SEED)
        )
        self.probe = problem.generate(
            probe_size, length, torch.Generator().manual_seed(seed + PROBE_SEED)
        )
        self.baseline = problem.baseline(length)
        self.solved_below = problem.solved_below(length)
        self.monitor = monitor_of(problem)

    def loss(self, model: nn.Module, batch, carry):
        x, y = batch
        return problem_loss(self.problem, model_output(model, self.problem, x), y), None

    @torch.no_grad()
    def score(self, model: nn.Module, data: tuple[Tensor, Tensor], chunk: int = 500) -> dict:
        """The metric (and accuracy) of a model on a data set, evaluated in chunks."""
        device = next(model.parameters()).device
        x, y = data
        total, hits, count = 0.0, 0.0, 0
        for start in range(0, len(x), chunk):
            xb, yb = x[start : start + chunk].to(device), y[start : start + chunk].to(device)
            out = model_output(model, self.problem, xb)
            total += float(problem_loss(self.problem, out, yb)) * len(xb)
            acc = accuracy(self.problem, out, yb)
            hits += 0.0 if acc is None else acc * len(xb)
            count += len(xb)
        result = {"metric": total / count}
        if self.problem.head != "regressor":
            result["accuracy"] = hits / count
        return result

    def evaluate(self, model: nn.Module) -> dict:
        scored = self.score(model, self.val)
        out = {self.monitor.name: scored["metric"], "baseline": self.baseline}
        if "accuracy" in scored:
            out["val_accuracy"] = scored["accuracy"]
        out["solved"] = scored["metric"] < self.solved_below
        return out

    def gradient_flow(self, model: nn.Module) -> GradientFlow:
        """dL/dh_t on a fixed probe batch, the loss taken at the last step only."""
        device = next(model.parameters()).device
        x, y = (t.to(device) for t in self.probe)

        def last_step_loss(m: nn.Module) -> Tensor:
            out = model_output(m, self.problem, x)
            if self.problem.head == "tagger":
                out, y_last = out[:, -1], y[:, -1]
                return F.cross_entropy(out, y_last)
            return problem_loss(self.problem, out, y)

        return gradient_flow(model, last_step_loss)

    def test(self, model: nn.Module, size: int, seed: int) -> dict:
        data = self.problem.generate(
            size, self.length, torch.Generator().manual_seed(seed + TEST_SEED)
        )
        was = model.training
        model.eval()
        with torch.no_grad():
            out = self.score(model, data)
        model.train(was)
        return out


def monitor_of(problem: LongRangeProblem) -> Monitor:
    """The problem's metric, validated: the very quantity trained on, so one axis."""
    what = problem.metric.removeprefix("test ")
    name = "val_mse" if problem.head == "regressor" else "val_nll"
    return Monitor(name, f"validation {what}", train_label=f"training {what}", same_axis=True)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parse_dilations(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8], with a one-line error for anything else."""
    values = number_list("--dilations", text, int)
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--dilations: {text!r} must list integers >= 1, one per layer")
    return values


def label(cell: str, dilations: Sequence[int] | None) -> str:
    return cell if not dilations else f"{cell}-d{'.'.join(map(str, dilations))}"


def solved_within(metric: float, threshold: float) -> bool:
    return math.isfinite(metric) and metric < threshold
