"""`rnnkit <task> <verb>`: a thin layer over the tasks.

Bad input ends with one line on stderr, ``rnnkit: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from . import __version__
from .cpu import keep_freed_memory
from .tasks import demo, diagnose, lab, text
from .tasks.classify import cli as classify
from .tasks.forecast import cli as forecast
from .tasks.music import cli as music
from .tasks.speech import cli as speech
from .tasks.transcribe import cli as transcribe


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, allow_abbrev: bool = False, **kwargs) -> None:
        # no abbreviations: --hid for --hidden would break as soon as a --hide came along,
        # and --resume must know which options a command line gives (see given_options)
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)

    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"rnnkit: error: {message} (see {self.prog} --help)\n")


TASKS = [demo, text, forecast, classify, transcribe, music, speech, lab, diagnose]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnkit", description="Recurrent neural networks, from the lecture to trained models."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="<task>", parser_class=_Parser, required=True
    )
    for task in TASKS:
        task.register(sub)
    return parser


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """Run one command; ``started`` (``time.monotonic()``) is when the command began, from which
    a --minutes budget counts (default: now)."""
    started = time.monotonic() if started is None else started
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # words after options (`transcribe run RUN --beam 3 cat dog`) are still words
        if hasattr(args, "words") and not any(e.startswith("-") and e != "-" for e in extra):
            args.words = [*args.words, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.command_started = started
    args.given = given_options(parser, argv)
    keep_freed_memory()  # rnnkit's own process: large buffers are reused, see rnnkit.cpu
    handler = _on_sigterm()
    try:
        return int(args.run(args) or 0)
    except ValueError as error:
        print(f"rnnkit: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # no such file, permission, a name too long, a full disk, ...
        where = f"{error.filename}: " if error.filename else ""
        print(
            f"rnnkit: error: {_one_line(where + (error.strerror or str(error)))}", file=sys.stderr
        )
        return 2
    except (MemoryError, torch.OutOfMemoryError) as error:
        print(f"rnnkit: error: {_out_of_memory(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if not _is_allocation_failure(error):
            raise
        print(f"rnnkit: error: {_out_of_memory(error)}", file=sys.stderr)
        return 2
    except Terminated:
        print("rnnkit: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def _is_allocation_failure(error: RuntimeError) -> bool:
    text = str(error).lower()
    return "can't allocate memory" in text or "out of memory" in text


def _out_of_memory(error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return f"out of memory ({first}); lower --batch-size or --hidden, or give shorter sequences"


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding as Ctrl-C does (exit status 143 rather than 130)."""


def _on_sigterm():
    """SIGTERM unwinds like Ctrl-C, so that a run is left as after Ctrl-C (rnnkit.ownership)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise Terminated

    return signal.signal(signal.SIGTERM, stop)


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options ``argv`` spells out (abbreviations are off, see _Parser)."""
    dests: dict[str, str] = {}
    todo = [parser]
    while todo:
        p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
            for flag in action.option_strings:
                dests[flag] = action.dest
    return {dests[t.split("=", 1)[0]] for t in argv if t.split("=", 1)[0] in dests}


def process_started() -> float:
    """When this process began, on the ``time.monotonic()`` clock (Linux; else: now).

    The Python interpreter and torch take a second or two to import; a time
    budget of the whole command counts them.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime, field 22 of proc(5), after pid and comm
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


class _PipeSafe:
    """stdout that outlives its reader: once a pipe closes (``rnnkit ... | head``), further output
    goes nowhere and the command goes on, so a training is not lost to a closed pipe."""

    def __init__(self, stream) -> None:
        self.stream, self.broken = stream, False

    def _guard(self, call, *args):
        if self.broken:
            return None
        try:
            return call(*args)
        except BrokenPipeError:
            self.broken = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            return None

    def write(self, text: str) -> int:
        self._guard(self.stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def run() -> None:
    """Entry point: ``main`` and its exit status."""
    sys.stdout = _PipeSafe(sys.stdout)
    code = main(started=process_started())
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, gloo's worker threads can still hold tensors when the
        # interpreter finalises, which aborts the process after a good run; every
        # file is written and closed by now, so leave without finalising.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
