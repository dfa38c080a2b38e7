"""A run directory has one owner; a run that stops early leaves nothing that blocks the next;
no verb but train writes over a run's own files."""

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli

from rnnkit.ownership import RunLock
from rnnkit.runs import RunDir

TEXT = "the quick brown fox jumps over the lazy dog; " * 300
TINY = ["--hidden", "8", "--layers", "1", "--embed", "4", "--batch-size", "4", "--bptt", "8"]


def rnnkit(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT)
    return path


def test_the_lock_names_its_holder_and_is_cleared(tmp_path):
    lock = RunLock(tmp_path).acquire()
    holder = RunLock.holder(tmp_path)
    assert holder and f"process {os.getpid()}" in holder
    with pytest.raises(ValueError, match=f"in use by process {os.getpid()}"):
        RunLock(tmp_path).acquire()
    lock.release()
    assert not (tmp_path / ".lock").exists() and RunLock.holder(tmp_path) is None


def test_a_lock_left_by_a_dead_process_is_stale(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 999999, "host": "h", "since": "then",
                                                "command": "rnnkit x"}))  # fmt: skip
    assert RunLock.holder(tmp_path) is None  # nobody holds the kernel lock
    lock = RunLock(tmp_path).acquire()
    assert lock.found_stale
    lock.release()


def test_two_trainings_started_together_into_one_directory(corpus, tmp_path):
    out = tmp_path / "run"
    args = ["text", "train", "--data", corpus, *TINY, "--steps", "40", "--eval-every", "20",
            "--out", out]  # fmt: skip
    first, second = rnnkit(*args, "--seed", "0"), rnnkit(*args, "--seed", "1")
    results = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = next(i for i, (code, _, _) in enumerate(results) if code == 0)
    loser_err = results[1 - winner][2]
    assert loser_err.startswith("rnnkit: error: ") and len(loser_err.strip().splitlines()) == 1
    # the loser may find the lock held, the lock file half-written, or the run already there
    assert "in use by" in loser_err or "already holds a run" in loser_err, loser_err
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == winner  # the config is the winner's, and so are the metrics
    steps = [r["step"] for r in RunDir(out).read_metrics()]
    assert steps == [20, 40]
    assert not (out / ".lock").exists()


def test_train_refuses_a_directory_in_use(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out).acquire()
    try:
        code, _, err = run_cli(capsys, "text", "train", "--data", corpus, *TINY, "--steps", 2,
                               "--out", out)  # fmt: skip
    finally:
        lock.release()
    assert code == 2 and f"is in use by process {os.getpid()}" in err
    assert list(out.iterdir()) == []


def test_a_failure_before_the_first_checkpoint_leaves_nothing(corpus, tmp_path, capsys,
                                                             monkeypatch):  # fmt: skip
    from rnnkit.training import Trainer

    def broken(self):
        raise ValueError("something found late")

    monkeypatch.setattr(Trainer, "fit", broken)
    out = tmp_path / "deep" / "run"
    code, _, err = run_cli(capsys, "text", "train", "--data", corpus, *TINY, "--steps", 2,
                           "--out", out)  # fmt: skip
    assert code == 2 and "something found late" in err
    assert not (tmp_path / "deep").exists()  # the folders it made are gone too

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    code, _, err = run_cli(capsys, "text", "train", "--data", corpus, *TINY, "--steps", 2,
                           "--out", mine)  # fmt: skip
    assert code == 130 and "removed: it had no checkpoint yet" in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_run_killed_before_its_first_checkpoint_is_cleared_by_the_next(corpus, tmp_path):
    out = tmp_path / "run"
    args = ["text", "train", "--data", corpus, *TINY, "--steps", "10", "--eval-every", "5",
            "--out", out]  # fmt: skip
    killed = rnnkit(*args, env={"RNNKIT_KILL_AFTER_STEP": "2"})
    assert killed.wait(timeout=300) == -9
    assert (out / "config.json").exists() and not (out / "checkpoint.pt").exists()
    resumed = rnnkit(*args, "--resume")
    code, _, err = resumed.wait(timeout=300), *resumed.communicate()
    assert code == 2 and "stopped before its first checkpoint" in err and "config.json" in err
    again = rnnkit(*args)
    code, stdout, err = again.wait(timeout=300), *again.communicate()
    assert code == 0, err
    assert "cleared the remains of a run killed before its first checkpoint" in stdout
    assert [r["step"] for r in RunDir(out).read_metrics()] == [5, 10]


def test_resume_says_what_the_directory_holds(tmp_path, capsys):
    code, _, err = run_cli(capsys, "text", "train", "--steps", 1, "--resume",
                           "--out", tmp_path / "nothing")  # fmt: skip
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "text", "train", "--steps", 1, "--resume",
                           "--out", tmp_path / "empty")  # fmt: skip
    assert code == 2 and "holds no run files" in err


def test_resume_with_other_data_is_one_short_line(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["text", "train", *TINY, "--steps", 4, "--eval-every", 2, "--out", out]
    assert run_cli(capsys, *base, "--data", corpus)[0] == 0
    other = tmp_path / "other.txt"
    other.write_text("".join(chr(c) for c in range(0x3B1, 0x3C9)) * 200)  # Greek letters
    code, _, err = run_cli(capsys, *base, "--data", other, "--resume")
    assert code == 2 and len(err) < 600 and "new" in err and "missing" in err, err


@pytest.fixture
def forecast_run(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "forecast", "train", "--data", "airline", "--steps", 2,
                           "--eval-every", 2, "--hidden", 8, "--out", out)  # fmt: skip
    assert code == 0, err
    return out


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "checkpoint.pt",
                                  "metrics.jsonl", "curves.png", "curves.csv", "."])  # fmt: skip
def test_predict_never_overwrites_the_run(forecast_run, capsys, name):
    before = {p.name: p.read_bytes() for p in forecast_run.iterdir() if p.is_file()}
    code, _, err = run_cli(capsys, "forecast", "predict", forecast_run, "--out",
                           forecast_run / name)  # fmt: skip
    assert code == 2 and err.startswith("rnnkit: error: --out"), err
    after = {p.name: p.read_bytes() for p in forecast_run.iterdir() if p.is_file()}
    assert after == before
    assert run_cli(capsys, "forecast", "predict", forecast_run)[0] == 0  # its own file: fine
    assert run_cli(capsys, "forecast", "predict", forecast_run)[0] == 0  # and again
