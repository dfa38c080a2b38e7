import os

import pytest
import torch


def pytest_configure(config):
    # pytest-xdist's workers (make test runs one per core) share the cores: each gets its
    # share of threads, and so do the rnnkit commands the tests start as subprocesses
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def parts(state):
    """A final state as a tuple, whatever its layout."""
    return state if isinstance(state, tuple) else (state,)


def run_cli(capsys, *args):
    """``rnnkit ARGS`` in this process: (exit status, stdout, stderr); argparse's exits included."""
    from rnnkit.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _repository_root_untouched():
    """A test writes in its own temporary folder: nothing new may appear beside the README."""
    before = set(os.listdir(ROOT))
    yield
    new = set(os.listdir(ROOT)) - before - {".pytest_cache", ".ruff_cache"}
    assert not new, f"the test left {sorted(new)} in the repository root"
