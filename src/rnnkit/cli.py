"""`rnnkit <task> <verb>`: a thin layer over the tasks.

Bad input ends with one line on stderr, ``rnnkit: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .cpu import keep_freed_memory
from .tasks import demo, diagnose, lab, text
from .tasks.classify import cli as classify
from .tasks.forecast import cli as forecast
from .tasks.music import cli as music
from .tasks.transcribe import cli as transcribe


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"rnnkit: error: {message} (see {self.prog} --help)\n")


TASKS = [demo, text, forecast, classify, transcribe, music, lab, diagnose]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnkit", description="Recurrent neural networks, from the lecture to trained models."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<task>", parser_class=_Parser)
    for task in TASKS:
        task.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    keep_freed_memory()  # rnnkit's own process: large buffers are reused, see rnnkit.cpu
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        print(f"rnnkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Entry point: ``main`` and its exit status."""
    code = main()
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
