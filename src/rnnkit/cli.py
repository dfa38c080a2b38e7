"""`rnnkit <task> <verb>`: a thin layer over the tasks.

Bad input ends with one line on stderr, ``rnnkit: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .cpu import keep_freed_memory
from .tasks import demo


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"rnnkit: error: {message} (see {self.prog} --help)\n")


TASKS = [demo]


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


if __name__ == "__main__":
    sys.exit(main())
