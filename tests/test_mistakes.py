"""What a user's mistakes meet, each case found by trying rnnkit as a new user would."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

CORPUS = Path(__file__).parent / "fuzz"
TINY_TEXT = ["--hidden", "8", "--embed", "4", "--batch-size", "4", "--bptt", "16"]


def rnnkit(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rnnkit", *map(str, args)], capture_output=True,
                          text=True, timeout=300, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def forecast_runs(tmp_path_factory):
    """Two forecast runs: one on the airline series, one on a CSV given by a relative path."""
    root = tmp_path_factory.mktemp("forecast")
    (root / "load.csv").write_bytes((CORPUS / "forecast.csv").read_bytes())
    here = os.getcwd()
    os.chdir(root)
    try:
        common = ["--steps", "2", "--eval-every", "2", "--hidden", "8"]
        assert (
            rnnkit("forecast", "train", "--data", "airline", *common, "--out", "air").returncode
            == 0
        )
        csv = rnnkit("forecast", "train", "--csv", "load.csv", "--target", "load", "--time-col",
                     "day", "--window", "7", "--horizon", "2", *common, "--out", "mine")  # fmt: skip
        assert csv.returncode == 0, csv.stderr
    finally:
        os.chdir(here)
    return root


def test_predict_never_writes_into_another_run(forecast_runs, capsys):
    air, mine = forecast_runs / "air", forecast_runs / "mine"
    for name in ("config.json", "metrics.jsonl", "curves.csv"):
        before = (mine / "config.json").read_bytes()
        code, _, err = run_cli(capsys, "forecast", "predict", air, "--out", mine / name)
        assert code == 2 and f"{mine}'s" in err, err
        assert (mine / "config.json").read_bytes() == before


def test_predict_never_overwrites_the_data_the_run_read(forecast_runs, capsys, monkeypatch):
    monkeypatch.chdir(forecast_runs)
    data = (forecast_runs / "load.csv").read_bytes()
    code, _, err = run_cli(capsys, "forecast", "predict", "mine", "--out", "load.csv")
    assert code == 2 and "which this command or the run reads" in err
    assert (forecast_runs / "load.csv").read_bytes() == data
    code, _, err = run_cli(capsys, "forecast", "predict", "mine", "--out", "x.png")
    assert code == 2 and "give a .csv name" in err


def test_runs_find_their_data_from_any_folder(forecast_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run was trained on a relative path
    assert run_cli(capsys, "forecast", "eval", forecast_runs / "mine")[0] == 0


def test_predict_writes_through_a_link_and_into_a_pipe(forecast_runs, tmp_path, capsys):
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old")
    link.symlink_to(real)
    assert run_cli(capsys, "forecast", "predict", forecast_runs / "air", "--out", link)[0] == 0
    assert link.is_symlink() and real.read_text().startswith("time,passengers")
    done = rnnkit("forecast", "predict", forecast_runs / "air", "--out", "/dev/stdout")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("time,passengers\n1961-01-01T00:00:00,")
    assert "not a regular file: no plots" in done.stderr


def test_devices_rnnkit_cannot_run_on_are_one_line(capsys):
    for device in ("meta", "xpu", "mps", "cuda:9"):
        code, _, err = run_cli(capsys, "text", "sample", "RUN", "--device", device)
        assert code == 2 and "--device" in err and len(err.strip().splitlines()) == 1, err


def test_times_with_an_offset_are_forecast_in_that_offset(tmp_path, capsys):
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    start = datetime(2024, 3, 1, tzinfo=timezone.utc)  # across the change to summer time
    rows = [((start + timedelta(hours=i)).astimezone(ZoneInfo("Europe/Berlin")), np.sin(i / 4))
            for i in range(24 * 35)]  # fmt: skip
    path = tmp_path / "berlin.csv"
    path.write_text("time,y\n" + "".join(f"{t.isoformat()},{v:.3f}\n" for t, v in rows))
    out = tmp_path / "run"
    assert run_cli(capsys, "forecast", "train", "--csv", path, "--target", "y", "--time-col",
                   "time", "--window", "24", "--horizon", "3", "--steps", "2", "--hidden", "4",
                   "--out", out)[0] == 0  # fmt: skip
    assert run_cli(capsys, "forecast", "predict", out)[0] == 0
    times = [r.split(",")[0] for r in (out / "forecast.csv").read_text().splitlines()[1:]]
    last = rows[-1][0]  # 2024-04-05T01:00:00+02:00
    assert times == [(last + timedelta(hours=h)).isoformat() for h in (1, 2, 3)]


def test_resume_takes_the_runs_options_and_refuses_changed_data(tmp_path, capsys):
    from rnnkit.runs import RunDir

    text = tmp_path / "text.txt"
    text.write_bytes((CORPUS / "text.txt").read_bytes())
    out = tmp_path / "run"
    assert run_cli(capsys, "text", "train", "--data", text, *TINY_TEXT, "--steps", 4,
                   "--eval-every", 2, "--out", out)[0] == 0  # fmt: skip
    code, _, err = run_cli(capsys, "text", "train", "--steps", 6, "--out", out, "--resume")
    assert code == 0, err  # the data, the model and its sizes: from the run
    assert [r["step"] for r in RunDir(out).read_metrics()] == [2, 4, 6]
    code, _, err = run_cli(capsys, "text", "train", "--steps", 8, "--hidden", 16, "--out", out,
                           "--resume")  # fmt: skip
    assert code == 2 and "hidden=16 (the run has 8)" in err
    text.write_text(text.read_text().replace("best", "BEST"))  # same characters, other text
    text.write_text(text.read_text().replace("BEST", "tseb"))
    code, _, err = run_cli(capsys, "text", "train", "--steps", 8, "--out", out, "--resume")
    assert code == 2 and "the data differ from the run's" in err, err


def test_a_diverged_run_keeps_a_checkpoint_that_can_resume(tmp_path, capsys):
    from rnnkit.runs import RunDir

    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "text", "train", "--data", CORPUS / "text.txt", *TINY_TEXT,
                           "--cell", "elman", "--lr", 1000, "--clip", 0, "--warmup", 0,
                           "--steps", 60, "--eval-every", 2, "--out", out)  # fmt: skip
    assert code == 2 and "training diverged" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    model_file = out / "model.safetensors"
    if model_file.exists():  # best weights are kept only from a finite validation loss
        assert min(r["val_nll"] for r in RunDir(out).read_metrics()) < float("inf")
    code, _, err = run_cli(capsys, "text", "train", "--lr", 1e-3, "--steps", 70, "--out", out,
                           "--resume")  # fmt: skip
    assert code == 0, err


def test_non_finite_weights_are_refused_when_loaded(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    assert run_cli(capsys, "text", "train", "--data", CORPUS / "text.txt", *TINY_TEXT,
                   "--steps", 2, "--eval-every", 2, "--out", out)[0] == 0  # fmt: skip
    state = load_file(out / "model.safetensors")
    first = next(iter(state))
    state[first] = state[first] * float("nan")
    save_file(state, out / "model.safetensors")
    for verb in ("sample", "eval"):
        code, _, err = run_cli(capsys, "text", verb, out)
        assert code == 2 and "non-finite weights" in err and "diverged" in err


def test_a_bare_command_is_one_line(capsys):
    for argv in ([], ["text"], ["forecast"], ["lab"], ["classify"]):
        code, out, err = run_cli(capsys, *argv)
        assert (
            code == 2 and err.startswith("rnnkit: error: ") and len(err.strip().splitlines()) == 1
        )


def test_sigterm_unwinds_like_ctrl_c_and_exits_143(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "text", "train", "--data",
                             str(CORPUS / "text.txt"), *TINY_TEXT, "--steps", "100000",
                             "--eval-every", "100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    for _ in range(600):  # until it trains
        time.sleep(0.1)
        if (out / "config.json").exists():
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "removed: it had no checkpoint yet" in err and not out.exists()


def test_a_closed_pipe_does_not_stop_training(tmp_path):
    out = tmp_path / "run"
    command = (f"{sys.executable} -m rnnkit text train --data {CORPUS / 'text.txt'} "
               f"{' '.join(TINY_TEXT)} --steps 30 --eval-every 10 --out {out} | head -1")  # fmt: skip
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("text: ") and (out / "checkpoint.pt").exists()


def test_words_may_follow_the_options_of_transcribe_run(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "transcribe", "train", "--pairs", CORPUS / "transcribe.tsv",
                              "--steps", 2, "--eval-every", 2, "--hidden", 8, "--embed", 4,
                              "--out", out)  # fmt: skip
    assert code == 0 and "step 1/2" in stdout  # the first line comes after the first step
    assert "decoding 3 test words, greedy ..." in stdout and "beam 5: 3/3" in stdout
    code, stdout, err = run_cli(capsys, "transcribe", "run", out, "--beam", 2, "--nbest", 1,
                                "cat", "dog")  # fmt: skip
    assert code == 0, err
    assert [line.split("\t")[0] for line in stdout.strip().splitlines()] == ["cat", "dog"]


def test_sample_and_eval_of_text_with_characters_only_in_the_tail(tmp_path, capsys):
    text = tmp_path / "tail.txt"
    text.write_text("abcabc abc " * 60 + "\n")  # the newline: in the validation tail only
    out = tmp_path / "run"
    assert run_cli(capsys, "text", "train", "--data", text, *TINY_TEXT, "--steps", 2,
                   "--eval-every", 2, "--out", out)[0] == 0  # fmt: skip
    code, stdout, err = run_cli(capsys, "text", "sample", out, "--length", 5)
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "text", "eval", out, "--json")
    tail = int(len(text.read_text()) * 0.1)  # the validation tail
    assert json.loads(stdout.strip().splitlines()[-1])["characters"] == tail - 1  # every one
    other = tmp_path / "other.txt"
    other.write_text("xyz abc " * 30)
    code, _, err = run_cli(capsys, "text", "eval", out, "--data", other)
    assert code == 0 and "rnnkit: warning: 3 characters the model never saw" in err


@pytest.mark.parametrize("argv, message", [
    (["forecast", "train", "--data", "airline", "--target", "passengers,passengers"], "twice"),
    (["forecast", "train", "--data", "airline", "--quantiles", "0.5,0.5"], "besides the median"),
    (["lab", "compare", "--cells", "elman,elman", "--steps", "2"], "--cells names 'elman' twice"),
    (["lab", "power", "--radii", "1,,2"], "has an empty item"),
    (["lab", "gradients", "--radius", "1e300"], "--radius: must be in (0, 100]"),
])  # fmt: skip
def test_duplicates_and_absurd_lists_are_refused(tmp_path, capsys, argv, message):
    code, _, err = run_cli(capsys, *argv, "--out", tmp_path / "x")
    assert code == 2 and message in err, err


def test_a_csv_that_names_a_column_twice(tmp_path, capsys):
    path = tmp_path / "twice.csv"
    path.write_text("day,y,y\n" + "".join(f"2024-01-{d:02d},{d},{d * 2}\n" for d in range(1, 29)))
    code, _, err = run_cli(capsys, "forecast", "train", "--csv", path, "--target", "y",
                           "--steps", 1, "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and "names column 'y' 2 times" in err


def test_classify_files_that_are_not_what_they_say(tmp_path, capsys):
    fake = tmp_path / "fake.npz"
    fake.write_text("label,t0\na,1\n")
    code, _, err = run_cli(capsys, "classify", "train", "--train", fake, "--test", fake,
                           "--steps", 1, "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and "is not a .npz archive" in err
    np.savez(tmp_path / "complex.npz", x=np.ones((4, 5)) * 1j, y=np.array(["a", "b", "a", "b"]))
    code, _, err = run_cli(capsys, "classify", "train", "--train", tmp_path / "complex.npz",
                           "--test", tmp_path / "complex.npz", "--steps", 1, "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "complex numbers" in err


def test_predict_warns_of_labels_the_model_does_not_know(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "classify", "train", "--train", CORPUS / "classify_train.csv",
                   "--test", CORPUS / "classify_test.csv", "--steps", 2, "--eval-every", 2,
                   "--hidden", 4, "--ensemble", 1, "--out", out)[0] == 0  # fmt: skip
    other = tmp_path / "sideways.csv"
    lines = (CORPUS / "classify_test.csv").read_text().splitlines()
    other.write_text(
        "\n".join([lines[0]] + [line.replace("up,", "sideways,", 1) for line in lines[1:]])
    )
    code, stdout, err = run_cli(capsys, "classify", "predict", out, "--input", other)
    assert code == 0 and "rnnkit: warning:" in err and "'sideways'" in err
    assert "accuracy on the 4 labelled" in stdout  # the 'down' series only


def test_a_run_path_that_is_a_file_is_named_so(capsys):
    code, _, err = run_cli(capsys, "text", "eval", CORPUS / "text.txt")
    assert code == 2 and "is a file, not a run directory" in err


def test_long_generation_is_bounded_and_shows_progress(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert run_cli(capsys, "music", "train", "--data", CORPUS / "music.mat", "--steps", 2,
                   "--eval-every", 2, "--hidden", 8, "--joint-hidden", 8, "--out", out)[0] == 0  # fmt: skip
    code, _, err = run_cli(capsys, "music", "generate", out, "--steps", 100_000_000)
    assert code == 2 and "above the bound of 20,000 steps; give --max-steps N to raise it" in err
    from rnnkit.tasks.music import cli as music

    clock = iter(range(0, 10**6, 4))  # every step takes 4 seconds on this clock
    monkeypatch.setattr(music.time, "monotonic", lambda: next(clock))
    code, stdout, err = run_cli(capsys, "music", "generate", out, "--steps", 30, "--max-steps", 30,
                                "--out", tmp_path / "long.mid")  # fmt: skip
    assert code == 0, err
    assert "generated 3/30 steps" in stdout and "generated 30/30 steps" in stdout
