"""What the benchmark scripts share: the CLI run in-process, and results written as JSON."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

from rnnkit.cli import main

RESULTS = Path(__file__).resolve().parent / "results"


def rnnkit(*argv, echo: bool = False) -> str:
    """``rnnkit ARGV`` in this process; its stdout (echoed with ``echo``), or SystemExit on failure."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    if echo:
        sys.stdout.write(out.getvalue())
        sys.stdout.flush()
    if code:
        raise SystemExit(f"rnnkit {' '.join(map(str, argv))} failed with status {code}")
    return out.getvalue()


def write_result(name: str, payload: dict) -> Path:
    """benchmarks/results/NAME, indented JSON."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path
