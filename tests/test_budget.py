"""--minutes bounds the whole command: training leaves time for what follows it.

The margins are wide (seconds on budgets of seconds) so that a loaded machine
cannot fail them; the figures of how close each task comes to its budget are
measured by ``benchmarks/budgets.py``.
"""

import time

import torch
from conftest import run_cli
from test_training import CountingTask, model

from rnnkit.training import TrainConfig, Trainer


class SlowAfterwards(CountingTask):
    """A task whose work after training takes 2 seconds, and says so."""

    def after_training_seconds(self, eval_seconds: float) -> float:
        return 2.0


def test_training_stops_early_enough_for_the_work_after_it():
    trainer = Trainer(model(), SlowAfterwards(), TrainConfig(steps=10**9, eval_every=10**6))
    began = time.monotonic()
    trainer.deadline = began + 3.0
    result = trainer.fit()
    spent = time.monotonic() - began
    assert result["stopped_by"] == "time budget"
    assert 0.5 < spent < 2.5, spent  # about 1 s of training: 3 s less the 2 s reserved
    assert trainer.step >= 1


def test_the_schedule_anneals_over_the_time_there_is():
    trainer = Trainer(
        model(), CountingTask(), TrainConfig(minutes=10.0, eval_every=10**6, warmup=0)
    )
    trainer.deadline = time.monotonic() + 1.0
    trainer.fit()
    lr, peak = trainer.optimizer.param_groups[0]["lr"], trainer.config.lr
    assert lr < 0.2 * peak  # near the floor after one second, not at 10 minutes' first percent


def test_classify_with_refits_ends_within_its_minutes(tmp_path, capsys):
    from pathlib import Path

    corpus = Path(__file__).parent / "fuzz"
    torch.manual_seed(0)
    began = time.monotonic()
    code, out, err = run_cli(
        capsys, "classify", "train", "--train", corpus / "classify_train.csv", "--test",
        corpus / "classify_test.csv", "--steps", 10**9, "--minutes", 0.2, "--hidden", 8,
        "--eval-every", 20, "--ensemble", 3, "--out", tmp_path / "run",
    )  # fmt: skip
    spent = time.monotonic() - began
    assert code == 0, err
    assert "refit 3/3" in out
    assert spent < 12 + 6, spent  # 12 s of budget; phase one took 40%, the refits the rest
