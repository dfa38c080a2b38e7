"""The run directory: everything a trained model needs, written so that a kill at any moment
leaves the last good state intact.

    RUN/
      config.json        how to rebuild the model and its pre-processing (vocabulary,
                         scalers, hyper-parameters, rnnkit and Python versions)
      model.safetensors  the best weights (no pickle: loading runs no code)
      checkpoint.pt      the training state for --resume: model, optimizer, schedule,
                         random generators, data position; tensors and plain containers
                         only, loaded with torch.load(weights_only=True)
      metrics.jsonl      one JSON object per evaluation
      curves.png         training and validation loss
      gradient_flow.jsonl  norms of dL/dh_t per step, at initialisation and at every
                         evaluation (tasks that define ``gradient_flow``)
      .lock              while a process trains the run: its id (rnnkit.ownership)

Every file is written to a temporary name in the same folder and renamed over
the old one, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__

CONFIG, WEIGHTS, CHECKPOINT, METRICS, CURVES, GRADIENT_FLOW, LOCK = (
    "config.json",
    "model.safetensors",
    "checkpoint.pt",
    "metrics.jsonl",
    "curves.png",
    "gradient_flow.jsonl",
    ".lock",  # held by the process that trains the run; see rnnkit.ownership
)
_RUN_FILES = {CONFIG, WEIGHTS, CHECKPOINT, METRICS, CURVES, GRADIENT_FLOW, LOCK}


def register_run_files(*names: str) -> None:
    """Names a task's ``train`` (or ``diagnose``) writes into a run: no other verb overwrites them."""
    _RUN_FILES.update(names)


def run_files() -> set[str]:
    return set(_RUN_FILES)


def check_output(
    run: RunDir,
    path: str | Path,
    flag: str = "--out",
    given: str | Path | None = None,
    inputs: tuple[str | Path, ...] = (),
) -> Path:
    """``path`` as given, unless writing it would lose something already saved.

    Refused: a file that ``train`` (or ``diagnose``) wrote into this run or any
    other run directory, one of ``inputs`` (the files the command or the run
    reads, or a file already inside a folder it reads), and a folder. ``given`` is the user's ``flag`` value when ``path``
    is a file written beside it. A link is judged by what it points to.
    """
    path = Path(path)
    target = path.resolve()
    shown = f"{flag} {given if given is not None else path}"
    beside = f" (it writes {path.name} beside it)" if given is not None else ""
    if target.name in _RUN_FILES and (target.parent / CONFIG).exists():
        whose = "the run's own" if target.parent == run.path.resolve() else f"{target.parent}'s"
        raise ValueError(
            f"{shown} would overwrite {whose} {target.name}{beside}; choose another name"
        )
    for source in inputs:
        if not source:
            continue
        read = Path(source).resolve()
        if target == read or (read.is_dir() and read in target.parents and target.exists()):
            raise ValueError(
                f"{shown} would overwrite {source}{beside}, which this command or the run reads; "
                "choose another name"
            )
    if target == run.path.resolve() or target.is_dir():
        raise ValueError(f"{shown} is a folder; give a file name")
    return path


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then rename the result over ``path``.

    A link is followed (its target is replaced, the link stays); a path that
    is not a regular file (a pipe, a device such as /dev/stdout) is written
    directly, since renaming over it would replace it.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a pipe or a device, perhaps behind a link
        write(str(path))
        return
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the run from its group
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(path: str | Path, data: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")

    atomic_write(path, write)


class RunDir:
    """A run directory on disk; see the module docstring for its files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- config -------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        config = {
            **config,
            "rnnkit_version": __version__,
            "python_version": platform.python_version(),
            "torch_version": torch.__version__,
        }
        save_json(self.file(CONFIG), config)

    def read_config(self) -> dict:
        path = self.file(CONFIG)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not a run directory")
        if not self.path.is_dir():
            raise ValueError(f"run directory {self.path} does not exist")
        if not path.exists():
            raise ValueError(f"{self.path} is not a run directory: it has no {CONFIG}")
        try:
            config = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is corrupt: {error}") from None
        if not isinstance(config, dict) or "task" not in config:
            raise ValueError(f"{path} is not an rnnkit config (no 'task' key)")
        return config

    # -- weights --------------------------------------------------------------------
    def save_weights(self, model: nn.Module) -> None:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        atomic_write(self.file(WEIGHTS), lambda tmp: save_file(state, tmp))

    def load_weights(self, model: nn.Module) -> None:
        path = self.file(WEIGHTS)
        if not path.exists():
            raise ValueError(
                f"{self.path} has no {WEIGHTS}: training did not get to its first evaluation"
            )
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path} is corrupt: {error}") from None
        missing, unexpected = _mismatch(model, state)
        if missing or unexpected:
            raise ValueError(
                f"{path} does not fit the model in {CONFIG}: missing {missing}, unexpected {unexpected}"
            )
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(
                f"{path} holds non-finite weights ({bad[0]}): the training diverged; "
                "train again with a lower --lr (and --clip on)"
            )
        model.load_state_dict(state)

    # -- training state ---------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write(self.file(CHECKPOINT), lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self) -> dict[str, Any]:
        path = self.file(CHECKPOINT)
        if not path.exists():
            raise ValueError(f"nothing to resume: {self.path} has no {CHECKPOINT}")
        try:
            # weights_only: tensors and plain containers; any other object is refused
            # before it is built, so a crafted file cannot run code.
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, AttributeError) as error:
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise ValueError(
                f"{path} was refused: not a plain tensor checkpoint ({first})"
            ) from None

    # -- metrics ----------------------------------------------------------------------
    def append_metrics(self, record: dict, name: str = METRICS) -> None:
        with open(self.file(name), "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self, name: str = METRICS) -> list[dict]:
        path = self.file(name)
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is good
        return out

    def truncate_metrics(self, last_step: int, name: str = METRICS) -> None:
        """Keep the records up to ``last_step`` (those a resumed run has not redone)."""
        if not self.file(name).exists():
            return
        kept = [r for r in self.read_metrics(name) if r.get("step", 0) <= last_step]
        atomic_write(
            self.file(name),
            lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)),
        )


def _mismatch(model: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    own = set(model.state_dict())
    return sorted(own - set(state)), sorted(set(state) - own)
