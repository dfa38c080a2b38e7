import pytest
import torch


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
