"""`rnnkit text train | sample | eval` end to end, as a user runs them."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.\n"
) * 120
SMALL = [
    "--steps",
    "12",
    "--eval-every",
    "6",
    "--hidden",
    "24",
    "--layers",
    "2",
    "--embed",
    "8",
    "--batch-size",
    "4",
    "--bptt",
    "16",
]


def rnnkit(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "austen.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = rnnkit("text", "train", "--data", corpus, *SMALL, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_train_writes_a_complete_run_directory(trained):
    out, result = trained
    for name in (
        "config.json",
        "model.safetensors",
        "checkpoint.pt",
        "metrics.jsonl",
        "curves.png",
    ):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "text" and "".join(config["vocab"]) == "".join(sorted(set(TEXT)))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [6, 12]
    assert "step 6:" in result.stdout and "best validation NLL" in result.stdout


def test_sample_streams_from_the_prime(trained):
    out, _ = trained
    a = rnnkit("text", "sample", out, "--prime", "It is", "--length", "40", "--seed", "3")
    b = rnnkit("text", "sample", out, "--prime", "It is", "--length", "40", "--seed", "3")
    assert a.returncode == 0, a.stderr
    assert (
        a.stdout == b.stdout and a.stdout.startswith("It is") and len(a.stdout) == len("It is") + 41
    )
    assert set(a.stdout) <= set(TEXT) | {"\n"}


def test_eval_json_on_the_tail_and_on_a_file(trained, corpus):
    out, _ = trained
    result = rnnkit("text", "eval", out, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / 0.6931471805599453)
    assert 0 < metrics["loss"] < 4.0 and metrics["characters"] > 1000
    saved = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["val_nll"]
    assert metrics["loss"] == pytest.approx(saved, abs=1e-5)
    other = rnnkit("text", "eval", out, "--data", corpus, "--json")
    assert json.loads(other.stdout.strip().splitlines()[-1])["characters"] > metrics["characters"]


def test_diagnose_a_text_run_recorded_and_recomputed(trained, tmp_path):
    out, _ = trained
    result = rnnkit("diagnose", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # recorded by training: initialisation and both evaluations, for both layers
    assert summary["steps_recorded"] == [0, 6, 12] and len(summary["layers"]) == 2
    assert (out / "gradient_flow.png").stat().st_size > 0
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "gradient_flow.jsonl").unlink()
    result = rnnkit("diagnose", copy, "--json")  # measured afresh from the run's own corpus
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout.strip().splitlines()[-1])["steps_recorded"]
    assert steps[0] == 0 and steps[1] in (6, 12)  # initialisation, then the best evaluation


def test_resume_after_sigkill_gives_the_uninterrupted_weights(corpus, tmp_path):
    options = "--steps 30 --eval-every 10 --checkpoint-every 5 --hidden 16 --layers 2 --dropout 0.2"
    options += " --embed 8 --batch-size 4 --bptt 8"
    args = [
        "text",
        "train",
        "--data",
        corpus,
        *options.split(),
    ]
    assert rnnkit(*args, "--out", tmp_path / "whole").returncode == 0
    killed = rnnkit(*args, "--out", tmp_path / "cut", env={"RNNKIT_KILL_AFTER_STEP": "17"})
    assert killed.returncode == -9  # SIGKILL: no clean-up ran
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 15
    resumed = rnnkit(*args, "--out", tmp_path / "cut", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    cut = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [10, 20, 30]


def test_two_processes_match_one_with_the_same_global_batch(corpus, tmp_path):
    options = "--steps 8 --eval-every 8 --hidden 16 --embed 8 --batch-size 4 --bptt 8 --device cpu"
    args = ["text", "train", "--data", corpus, *options.split()]
    single = rnnkit(*args, "--out", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29531",
            "-m",
            "rnnkit",
            *map(str, args),
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    for k in one["model"]:
        torch.testing.assert_close(one["model"][k], two["model"][k], atol=1e-5, rtol=1e-4)
    assert not (tmp_path / "two" / "config.json").with_name("rank1").exists()


def test_default_corpus_is_the_standard_library(tmp_path):
    result = rnnkit(
        "text",
        "train",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--eval-chars",
        "2000",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--embed",
        "4",
        "--batch-size",
        "2",
        "--bptt",
        "8",
        "--out",
        tmp_path / "std",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "std" / "config.json").read_text())
    assert config["data"]["kind"] == "stdlib" and config["data"]["files"] > 100
    assert config["min_count"] == 20 and "\ufffd" in config["vocab"]


def bad(*args):
    result = rnnkit(*args)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert (
        result.stderr.startswith("rnnkit: error: ") and len(result.stderr.strip().splitlines()) == 1
    ), result.stderr
    return result.stderr


def test_bad_data_is_one_line_and_status_2(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1") * 10)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00" * 10)
    short = tmp_path / "short.txt"
    short.write_text("tiny text " * 30)
    train = ["text", "train", "--steps", "2", "--out", tmp_path / "r"]
    assert "is empty" in bad(*train, "--data", empty)
    assert "is a binary file" in bad(*train, "--data", binary)
    assert "is not valid UTF-8 (byte 3" in bad(*train, "--data", latin)
    assert "holds no UTF-8 text" in bad(*train, "--data", folder)
    assert "shorter than one chunk per row" in bad(*train, "--data", short)
    assert "no such file or folder" in bad(*train, "--data", tmp_path / "missing.txt")
    assert "cannot predict the next character" in bad(*train, "--data", short, "--bidirectional")
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_bad_runs_and_primes(trained, tmp_path, corpus):
    out, _ = trained
    assert "never saw: 'Z', 'é'" in bad("text", "sample", out, "--prime", "Zé")
    assert "does not exist" in bad("text", "sample", tmp_path / "nope")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    assert "is corrupt" in bad("text", "eval", corrupt)
    assert "already holds a run" in bad("text", "train", "--data", corpus, *SMALL, "--out", out)
    assert "contradict the run's config: hidden=32 (the run has 24)" in bad(
        "text", "train", "--data", corpus, *SMALL, "--hidden", "32", "--out", out, "--resume"
    )
    assert "nothing to resume" in bad(
        "text", "train", "--data", corpus, *SMALL, "--out", tmp_path / "new", "--resume"
    )


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_refuses_a_crafted_checkpoint_without_running_it(corpus, tmp_path):
    out = tmp_path / "run"
    assert rnnkit("text", "train", "--data", corpus, *SMALL, "--out", out).returncode == 0
    marker = tmp_path / "pwned"
    torch.save({"model": Payload(str(marker))}, out / "checkpoint.pt")
    before = (out / "model.safetensors").read_bytes()
    message = bad("text", "train", "--data", corpus, *SMALL, "--out", out, "--resume")
    assert "was refused: not a plain tensor checkpoint" in message
    assert not marker.exists()
    assert (out / "model.safetensors").read_bytes() == before  # nothing saved is lost


def test_progress_bar_on_a_terminal_plain_lines_otherwise(corpus, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(
        follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0)
    )  # a real terminal's size
    args = [
        sys.executable,
        "-m",
        "rnnkit",
        "text",
        "train",
        "--data",
        str(corpus),
        *SMALL,
        "--out",
        str(tmp_path / "tty"),
    ]
    proc = subprocess.Popen(args, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "step/s" in shown or "s/step" in shown  # tqdm's bar
    piped = rnnkit("text", "train", "--data", corpus, *SMALL, "--out", tmp_path / "pipe")
    assert "step/s" not in piped.stdout and "step 6:" in piped.stdout
