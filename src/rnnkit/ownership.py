"""Who may write a run directory, and what a run that stops early leaves behind.

* One owner at a time: ``train`` holds an exclusive ``flock`` on ``RUN/.lock``
  for as long as it runs; the file names the owner (process id, host, command).
  The kernel drops the lock when the process dies, however it dies, so a lock
  file left by a crash is recognised as stale and taken over.
* A fresh run that stops before its first checkpoint, for any reason (bad
  input found late, an error, Ctrl-C, SIGTERM), removes what it created: the
  files it wrote and the folders it made. From its first checkpoint on, the
  directory stays and ``--resume`` continues it.
* A run killed outright (SIGKILL, power loss) before its first checkpoint
  leaves its config and a stale lock; the next fresh run into that directory
  clears those remains and starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .runs import CHECKPOINT, CONFIG, LOCK, RunDir, run_files

try:
    import fcntl
except ImportError:  # not POSIX: no locking, the rest still holds
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """An exclusive, non-blocking lock on ``directory/.lock`` that names its holder."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK
        self.fd: int | None = None
        self.found_stale = False  # a lock file was there, held by nobody: its owner died

    def acquire(self) -> RunLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise ValueError(f"{self.path.parent} is in use by {holder}") from None
            try:  # the holder before us may have unlinked the file we opened: then try again
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.found_stale = os.fstat(fd).st_size > 0
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["rnnkit", *sys.argv[1:]])[:200],
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(owner) + "\n").encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):  # held still: nobody takes it meanwhile
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    @staticmethod
    def holder(directory: str | Path) -> str | None:
        """Who holds the lock of ``directory`` now, or None when nobody does."""
        path = Path(directory) / LOCK
        if fcntl is None or not path.exists():
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        finally:
            os.close(fd)  # closing drops a shared lock we may have got
        return None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = json.loads(os.read(fd, 4096).decode() or "{}")
        return (
            f"process {owner['pid']} on {owner['host']} since {owner['since']} "
            f"({owner['command']}); wait for it to end or stop it"
        )
    except (ValueError, KeyError, OSError):
        return "another process (it is writing the lock file now); try again in a moment"


def describe(run: RunDir) -> str:
    """What a directory holds, in words, for the messages about it."""
    if not run.path.exists():
        return "it does not exist"
    if not run.path.is_dir():
        return "it is a file, not a directory"
    held = sorted(p.name for p in run.path.iterdir() if p.name in run_files())
    return f"it holds {', '.join(held)}" if held else "it holds no run files"


def _is_remains(run: RunDir, stale_lock: bool) -> bool:
    """A fresh run's config without a checkpoint, its lock left by a dead process."""
    return stale_lock and run.file(CONFIG).exists() and not run.file(CHECKPOINT).exists()


def check_claim(run: RunDir, resume: bool, task: str, stale_lock: bool | None = None) -> None:
    """The checks of ``claim``, also done before any data is read.

    Raises a one-line ValueError for a directory that is in use, one that
    already holds a run (fresh), or one that holds nothing to resume.
    ``stale_lock`` is given by the lock's holder (who must not test the lock
    it holds); otherwise the lock file is tested here.
    """
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--out {run.path} is a file, not a directory")
    if stale_lock is None:
        holder = RunLock.holder(run.path)
        if holder:
            raise ValueError(f"{run.path} is in use by {holder}")
        stale_lock = (run.path / LOCK).exists()
    if resume:
        if not run.file(CHECKPOINT).exists() or not run.file(CONFIG).exists():
            hint = (
                "; the run stopped before its first checkpoint: start it afresh without --resume"
                if run.file(CONFIG).exists()
                else ""
            )
            raise ValueError(
                f"nothing to resume in {run.path}: {describe(run)}, and --resume needs "
                f"{CONFIG} and {CHECKPOINT}{hint}"
            )
        saved = run.read_config()
        if saved.get("task") != task:
            raise ValueError(f"{run.path} holds a {saved.get('task')!r} run, not a {task!r} run")
    elif run.file(CONFIG).exists() and not _is_remains(run, stale_lock):
        raise ValueError(
            f"{run.path} already holds a run ({describe(run)}); "
            "use --resume to continue it or another --out"
        )


@contextmanager
def claim(run: RunDir, resume: bool, task: str) -> Iterator[RunDir]:
    """Own ``run`` while the block runs; see the module docstring for what a failure leaves."""
    check_claim(run, resume, task)
    made = _folders_to_make(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run.path)
    try:
        lock.acquire()
        # again under the lock: another process may have started or ended in between
        check_claim(run, resume, task, stale_lock=lock.found_stale)
        if not resume and _is_remains(run, lock.found_stale):
            _clear_remains(run)
        before = {p.name for p in run.path.iterdir()}
    except BaseException:
        lock.release()
        _remove_folders(made)
        raise
    try:
        yield run
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt)
        if not resume and not run.file(CHECKPOINT).exists():
            for p in run.path.iterdir():
                if p.name not in before and p.name != LOCK:
                    _remove(p)
            lock.release()
            _remove_folders(made)
            if interrupted:
                print(f"rnnkit: {run.path} removed: it had no checkpoint yet", file=sys.stderr)
        elif interrupted:
            print(f"rnnkit: {run.path} kept at its last checkpoint; --resume continues it",
                  file=sys.stderr)  # fmt: skip
        raise
    finally:
        lock.release()


def _clear_remains(run: RunDir) -> None:
    kept = describe(run)
    for name in run_files() - {LOCK}:
        _remove(run.file(name))
    for p in run.path.glob(".*.tmp"):
        _remove(p)
    print(
        f"{run.path}: cleared the remains of a run killed before its first checkpoint ({kept})",
        flush=True,
    )


def _folders_to_make(path: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` will create, deepest first."""
    made = []
    for p in [path, *path.parents]:
        if p.exists():
            break
        made.append(p)
    return made


def _remove_folders(made: list[Path]) -> None:
    for p in made:  # deepest first; a folder someone else filled meanwhile stays
        try:
            p.rmdir()
        except OSError:
            break


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                _remove(child)
            path.rmdir()
        else:
            path.unlink()
    except FileNotFoundError:
        pass
