"""Checked types for numeric command-line options: a bad value stops the parser, naming the flag.

argparse calls a type with the text of the option and, when the type raises
``ArgumentTypeError``, reports ``argument --flag: <message>``; so every range
and finiteness check lives here, runs before anything is read or written, and
each message names the flag. ``tests/test_options.py`` walks every parser and
fails on a numeric option that does not use one of these types.
"""

from __future__ import annotations

import argparse
import math

from ..distributed import check_device

# Model sizes past these would exhaust a machine's memory before training starts (an LSTM
# layer of 8192 units holds 537 million weights, 8.6 GB with AdamW's moments and gradients).
MAX_UNITS = 8192
MAX_LAYERS = 64
MAX_BATCH = 65536
MAX_BEAM = 256  # hypotheses kept per source while decoding
MAX_LR = 1e3  # a learning rate (or weight decay) past this only overflows float32 weights
SEED_LIMIT = 2**63  # torch's generators take a signed 64-bit seed


class Number:
    """An int or float within ``[low, high]`` (an end left open with ``low_open``/``high_open``).

    Floats must be finite; ``nan`` and ``inf`` are refused by name.
    """

    def __init__(
        self,
        kind: type = int,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        note: str = "",
    ) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open, self.note = low_open, high_open, note
        self.__name__ = "integer" if kind is int else "number"  # argparse's 'invalid <name> value'

    def describe(self) -> str:
        show = (lambda v: str(int(v))) if self.kind is int else (lambda v: f"{v:g}")
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {show(self.low)}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {show(self.high)}"
        if lo and hi:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{show(self.low)}, {show(self.high)}{right}"
        return lo or hi or "a finite number"

    def __call__(self, text: str) -> int | float:
        if self.kind is int:
            try:
                value: int | float = int(text.strip())
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        else:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
            if not math.isfinite(value):
                raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if too_low or too_high:
            note = f" ({self.note})" if self.note else ""
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text}{note}")
        return value


def count(low: int = 1, high: int | None = None, note: str = "") -> Number:
    """An integer of at least ``low`` (1 unless said), at most ``high``."""
    return Number(int, low, high, note=note)


def real(
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> Number:
    return Number(float, low, high, low_open, high_open, note)


def positive(high: float | None = None) -> Number:
    """A finite float > 0."""
    return real(0.0, high, low_open=True)


def fraction(closed: bool = False) -> Number:
    """A share in (0, 1), or [0, 1] with ``closed``."""
    return real(0.0, 1.0, low_open=not closed, high_open=not closed)


units = count(1, MAX_UNITS, note=f"at most {MAX_UNITS} units fit a layer in memory")
layers = count(1, MAX_LAYERS)
batch = count(1, MAX_BATCH)
seed = Number(int, 0, SEED_LIMIT - 1, note="seeds are 64-bit")
dropout = real(0.0, 1.0, high_open=True)


def path(text: str) -> str:
    """A file or folder name: not empty (an empty name would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name: give a file or folder")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("a name cannot hold a NUL character")
    return text


def cell_name(text: str) -> str:
    """A registered cell or ``package.module:Class``, imported now so that a typo stops the parser."""
    from ..cells import resolve

    try:
        resolve(text.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.strip()


def key_value(text: str) -> tuple[str, object]:
    """``key=value`` of --cell-option; the value read as a number, true/false/null, or text."""
    from ..spec import parse_value

    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE with KEY an argument name")
    return key.strip(), parse_value(value.strip())


MAX_DILATION = 4096


def dilations(text: str) -> tuple[int, ...]:
    """Comma-separated dilations, one per layer, each in [1, 4096]."""
    step = count(1, MAX_DILATION)
    parts = [part.strip() for part in text.split(",")]
    if not all(parts) or len(parts) > MAX_LAYERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 1 to {MAX_LAYERS} comma-separated integers, e.g. 1,2,4"
        )
    return tuple(int(step(part)) for part in parts)


def device(text: str) -> str:
    """cpu, cuda or cuda:N, available on this machine."""
    try:
        check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix(f"--device {text}: ")) from None
    return text


def add_device(parser, what: str = "") -> None:
    """``--device`` for a verb that computes: checked like ``train``'s."""
    parser.add_argument(
        "--device",
        type=device,
        help=f"cpu, cuda or cuda:N{what} (default: CUDA when present)",
    )


def add_seed(parser, default: int = 0, text: str = "random seed") -> None:
    parser.add_argument("--seed", type=seed, default=default, help=f"{text} (default {default})")


def check_bound(flag: str, value: int, bound: int, raise_with: str, what: str) -> None:
    """A size that would exhaust memory or time: refused, saying how to raise the bound."""
    if value > bound:
        raise ValueError(
            f"{flag} {value:,} is above the bound of {bound:,} {what}; "
            f"give {raise_with} N to raise it if the machine has the memory and time"
        )
