"""Every numeric option of every verb is checked for range and finiteness, naming the flag."""

import argparse

import pytest
from conftest import run_cli

from rnnkit.cli import build_parser
from rnnkit.tasks import options


def verbs(parser: argparse.ArgumentParser, path=()):
    """(command words, parser) for every verb of the command line."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from verbs(child, (*path, name))


VERBS = list(verbs(build_parser()))
NUMERIC = [
    (path, action)
    for path, parser in VERBS
    for action in parser._actions
    if isinstance(action.type, options.Number)
]


def test_no_numeric_option_goes_unchecked():
    loose = [
        f"{' '.join(path)} {action.option_strings}"
        for path, parser in VERBS
        for action in parser._actions
        if action.type in (int, float)
        or (
            action.type is None
            and isinstance(action.default, (int, float))
            and not isinstance(action.default, bool)
            and action.nargs != 0
        )
    ]
    assert not loose, loose
    assert len(NUMERIC) > 80  # the walk did find the options


@pytest.mark.parametrize(
    "path, action", NUMERIC, ids=[f"{' '.join(p)} {a.option_strings[0]}" for p, a in NUMERIC]
)
def test_absurd_values_are_one_line_naming_the_flag(capsys, path, action):
    flag = action.option_strings[-1]
    number = action.type
    bad = ["nan", "inf", "-1e400", "abc", ""] if number.kind is float else ["1.5", "abc", ""]
    if number.low is not None:
        bad.append(str(number.low - 1))
    if number.high is not None:
        bad.append(str(number.high + 1))
    if number.low is not None:
        bad.append("-99999999999999999999999" if number.kind is int else "-1e300")
    for value in bad:
        code, _, err = run_cli(capsys, *path, "RUN", f"{flag}={value}")
        assert code == 2, (path, flag, value, err)
        assert err.startswith("rnnkit: error: ") and len(err.strip().splitlines()) == 1, err
        assert flag in err, (flag, value, err)


def test_seed_bounds_and_device_checks(capsys):
    code, _, err = run_cli(capsys, "text", "sample", "RUN", "--seed", str(2**63))
    assert code == 2 and "--seed" in err and "must be in [0," in err
    code, _, err = run_cli(capsys, "text", "sample", "RUN", "--device", "banana")
    assert code == 2 and "--device" in err and "not a device" in err
    code, _, err = run_cli(capsys, "forecast", "eval", "RUN", "--device", "cuda:7")
    assert code == 2 and "--device" in err  # CUDA absent, or no 8th GPU


def test_number_type_bounds():
    fraction = options.fraction()
    assert fraction("0.5") == 0.5
    for text in ("0", "1", "nan", "-0.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            fraction(text)
    assert options.fraction(closed=True)("1") == 1.0
    assert options.count(0)("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="at most 8192 units"):
        options.units("100000")
    assert options.seed(str(2**63 - 1)) == 2**63 - 1
