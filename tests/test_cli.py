"""The command line, end to end, in a subprocess as a user runs it."""

import subprocess
import sys


def rnnkit(*args):
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_trains_and_reports_against_the_baseline():
    out = rnnkit("demo", "--steps", "60", "--length", "10", "--hidden", "16", "--compare", "gru")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("lstm ") for line in lines)
    assert any(line.startswith("gru ") for line in lines)
    mse = [float(line.split()[1]) for line in lines if line.startswith(("lstm ", "gru "))]
    assert all(0 < m < 1 for m in mse)


def test_bad_input_is_one_line_and_status_2():
    for args, needle in [
        (["demo", "--steps", "0"], "--steps: must be in [1, 100000000], got 0"),
        (["demo", "--compare", "foo"], "unknown cell 'foo'"),
        (["demo", "--cell", "foo"], "argument --cell: unknown cell 'foo'"),
        (["demo", "--lr", "abc"], "--lr: 'abc' is not a number"),
        (["nosuchtask"], "invalid choice"),
    ]:
        out = rnnkit(*args)
        assert out.returncode == 2, (args, out)
        assert out.stderr.startswith("rnnkit: error: "), out.stderr
        assert needle in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_version_and_help():
    out = rnnkit("--version")
    assert out.returncode == 0 and out.stdout.startswith("rnnkit ")
    out = rnnkit("demo", "--help")
    assert out.returncode == 0 and "--compare" in out.stdout
