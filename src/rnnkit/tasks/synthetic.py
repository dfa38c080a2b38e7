"""Generated long-range problems, reproducible from a seed.

Each problem needs a memory of about ``length`` steps and has a known
baseline: the score of a model that remembers nothing.

* ``adding``: sum the two marked values among T (Hochreiter and Schmidhuber, 1997).
* ``copy``: reproduce 10 symbols after T blanks (Arjovsky et al., 2016).
* ``recall``: name the symbol shown at the marked step, within the first tenth
  of the sequence, after a stream of distracting symbols (this project's own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: test MSE of always predicting the target's mean (the sum of two U(0, 1) values: variance 1/6)
ADDING_BASELINE_MSE = 1.0 / 6.0
COPY_SYMBOLS, COPY_COUNT = 8, 10  # alphabet and number of symbols to remember
RECALL_SYMBOLS = 8


def adding_problem(
    batch: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter and Schmidhuber, 1997).

    Input (B, T, 2): a value in [0, 1) and a marker; exactly two steps are
    marked, one in each half of the sequence. Target (B, 1): the sum of the two
    marked values. Predicting the mean scores MSE 1/6, whatever T.
    """
    if length < 2:
        raise ValueError(f"length must be >= 2 for the adding problem, got {length}")
    values = torch.rand(batch, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(batch, length)
    rows = torch.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return torch.stack([values, markers], -1), target


def copy_memory(
    batch: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The copy memory task: 10 symbols, T blanks, then reproduce the symbols.

    Tokens: 0 blank, 1..8 symbols, 9 the delimiter. The input (B, T+20) is the
    10 symbols, T-1 blanks, the delimiter and 10 blanks, one-hot as (B, T+20, 10);
    the target (B, T+20) is blank everywhere but the last 10 steps, which hold
    the symbols. Predicting blank, then a uniform guess over the 8 symbols,
    scores 10 ln 8 / (T + 20) nats per step.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1 for the copy task, got {length}")
    total = length + 2 * COPY_COUNT
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (batch, COPY_COUNT), generator=generator)
    tokens = torch.zeros(batch, total, dtype=torch.long)
    tokens[:, :COPY_COUNT] = symbols
    tokens[:, length + COPY_COUNT - 1] = COPY_SYMBOLS + 1
    target = torch.zeros(batch, total, dtype=torch.long)
    target[:, -COPY_COUNT:] = symbols
    return torch.nn.functional.one_hot(tokens, COPY_SYMBOLS + 2).float(), target


def delayed_recall(
    batch: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Delayed recall: which symbol was shown at the marked step?

    Every one of the T steps shows a random symbol out of 8 (one-hot) and a
    marker channel; exactly one step within the first tenth of the sequence is
    marked. The target (B,) is the symbol at the marked step, answered after
    the last step, so the memory needed spans between 0.9 T and T steps, with
    distracting symbols all along. Guessing scores ln 8 nats (accuracy 1/8).
    """
    if length < 2:
        raise ValueError(f"length must be >= 2 for delayed recall, got {length}")
    symbols = torch.randint(0, RECALL_SYMBOLS, (batch, length), generator=generator)
    marked = torch.randint(0, max(1, length // 10), (batch,), generator=generator)
    marker = torch.zeros(batch, length, 1)
    rows = torch.arange(batch)
    marker[rows, marked] = 1.0
    x = torch.cat([torch.nn.functional.one_hot(symbols, RECALL_SYMBOLS).float(), marker], -1)
    return x, symbols[rows, marked]


@dataclass(frozen=True)
class LongRangeProblem:
    """A generated problem: its data, its model head, its metric and its baseline."""

    name: str
    generate: Callable[[int, int, torch.Generator | None], tuple[Tensor, Tensor]]
    input_size: int
    head: str  # "regressor" (one value), "tagger" (a class per step), "classifier" (one class)
    outputs: int
    metric: str  # what test_metric measures
    baseline: Callable[[int], float]  # test_metric of the memoryless baseline, given T
    solved_below: Callable[[int], float]  # test_metric under which the problem counts as solved
    solved_text: str

    def sequence_length(self, length: int) -> int:
        return length + 2 * COPY_COUNT if self.name == "copy" else length


def _copy_solved(length: int) -> float:
    # one recalled symbol in a hundred mistaken costs about ln(8)/100 per recalled step
    return 0.01 * _copy_baseline(length)


def _copy_baseline(length: int) -> float:
    return COPY_COUNT * math.log(COPY_SYMBOLS) / (length + 2 * COPY_COUNT)


PROBLEMS: dict[str, LongRangeProblem] = {
    "adding": LongRangeProblem(
        "adding",
        adding_problem,
        2,
        "regressor",
        1,
        "test MSE",
        lambda length: ADDING_BASELINE_MSE,
        lambda length: 0.01,
        "test MSE < 0.01",
    ),
    "copy": LongRangeProblem(
        "copy",
        copy_memory,
        COPY_SYMBOLS + 2,
        "tagger",
        COPY_SYMBOLS + 1,
        "test cross-entropy per step (nats)",
        _copy_baseline,
        _copy_solved,
        "cross-entropy < 1% of the baseline",
    ),
    "recall": LongRangeProblem(
        "recall",
        delayed_recall,
        RECALL_SYMBOLS + 1,
        "classifier",
        RECALL_SYMBOLS,
        "test cross-entropy (nats)",
        lambda length: math.log(RECALL_SYMBOLS),
        lambda length: 0.01 * math.log(RECALL_SYMBOLS),
        "cross-entropy < 1% of the baseline",
    ),
}
