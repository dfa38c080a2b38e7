"""Scores to piano rolls: mido reads MIDI files; music21 reads MusicXML, Humdrum kern and ABC.

A parsed piece is kept as its notes (MIDI pitch, start and end in quarter
notes), so one parse serves every time step; ``NoteCache`` keeps them on
disk, so a second run starts in seconds. ``to_roll`` quantises the notes
to a step (a sixteenth is 0.25 quarter notes) and ``common_key_shift``
finds the transposition to C (major or minor) from the pitch classes.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...runs import atomic_write
from ..common import warn
from .rolls import KEYS, LOWEST_MIDI

SUFFIXES = (".mid", ".midi", ".xml", ".mxl", ".musicxml", ".krn", ".abc")
STEPS = {"sixteenth": 0.25, "eighth": 0.5, "quarter": 1.0}
CACHE_FORMAT = 2  # 2: MIDI read through mido
# Krumhansl and Kessler's key profiles (1982): how well each pitch class
# above the tonic fits a major and a minor key.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class Notes:
    """One piece's notes: MIDI pitches and their start and end in quarter notes."""

    name: str
    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray


def music21_module():
    try:
        import music21
    except ImportError:
        raise ValueError("reading scores needs music21: pip install 'rnnkit[music]'") from None
    return music21


def notes_of(score, name: str) -> Notes:
    """Every pitched note and chord of a music21 stream, with absolute offsets."""
    pitch, start, end = [], [], []
    for n in score.flatten().notes:
        length = float(n.quarterLength)
        if length <= 0:  # grace notes take no time
            continue
        begin = float(n.offset)
        for p in getattr(n, "pitches", ()):  # unpitched percussion has none
            pitch.append(p.midi)
            start.append(begin)
            end.append(begin + length)
    return Notes(name, np.array(pitch, np.int16), np.array(start), np.array(end))


def read_midi(path: Path) -> Notes:
    """A MIDI file's notes at their exact times (through mido), drums (channel 10) left out.

    Read here rather than through music21, whose import snaps notes to a grid
    and gives the notes of a chord one common length.
    """
    try:
        import mido
    except ImportError:
        raise ValueError("reading MIDI needs mido: pip install 'rnnkit[music]'") from None
    try:
        midi = mido.MidiFile(str(path))
    except Exception as error:  # mido raises several kinds for a damaged file
        raise ValueError(f"{path}: cannot be parsed as MIDI ({_first_line(error)})") from None
    per_quarter = midi.ticks_per_beat
    pitch, start, end = [], [], []

    def add(note: int, begin: int, finish: int) -> None:
        if finish > begin:
            pitch.append(note)
            start.append(begin / per_quarter)
            end.append(finish / per_quarter)

    for track in midi.tracks:  # in types 0 and 1 every track starts at tick 0
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type not in ("note_on", "note_off") or message.channel == 9:
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault(key, []).append(tick)
            elif sounding.get(key):  # a release ends the earliest sounding note of its key
                add(message.note, sounding[key].pop(0), tick)
        for (_, note), begins in sounding.items():  # never released: to the track's end
            for begin in begins:
                add(note, begin, tick)
    return Notes(path.name, np.array(pitch, np.int16), np.array(start), np.array(end))


def _first_line(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def parse_file(path: str | Path) -> list[Notes]:
    """The pieces of one file (an ABC file can hold many tunes), or a one-line error naming it."""
    path = Path(path)
    if path.suffix.lower() in (".mid", ".midi"):
        return [read_midi(path)]
    music21 = music21_module()
    try:
        parsed = music21.converter.parse(str(path))
    except Exception as error:  # music21 raises many kinds for a file it cannot read
        raise ValueError(f"{path}: cannot be parsed as music ({_first_line(error)})") from None
    if isinstance(parsed, music21.stream.Opus):
        return [notes_of(s, f"{path.name}#{i + 1}") for i, s in enumerate(parsed.scores)]
    return [notes_of(parsed, path.name)]


def to_roll(notes: Notes, step: float, shift: int = 0) -> np.ndarray:
    """(T, 88) uint8 roll at ``step`` quarter notes per step, transposed by ``shift`` semitones.

    A note sounds from its start's step up to its end's (at least one step);
    pitches off the piano after the shift are dropped; silence before the
    first note is cut.
    """
    keys = notes.pitch.astype(int) + shift - LOWEST_MIDI
    on = (keys >= 0) & (keys < KEYS)
    if not on.any():
        return np.zeros((0, KEYS), np.uint8)
    begin = np.rint(notes.start[on] / step).astype(int)
    finish = np.maximum(np.rint(notes.end[on] / step).astype(int), begin + 1)
    begin, finish = begin - begin.min(), finish - begin.min()
    roll = np.zeros((int(finish.max()), KEYS), np.uint8)
    for k, a, b in zip(keys[on], begin, finish, strict=True):
        roll[a:b, k] = 1
    return roll


def common_key_shift(notes: Notes) -> int:
    """Semitones (-6..5) that move the piece's most likely key to C major or C minor.

    The key is the best correlation of the duration-weighted pitch-class
    histogram with the 24 rotations of Krumhansl and Kessler's profiles.
    """
    histogram = np.zeros(12)
    np.add.at(histogram, notes.pitch.astype(int) % 12, notes.end - notes.start)
    if np.ptp(histogram) == 0:  # no notes, or every pitch class alike: no key to find
        return 0
    best, tonic = -np.inf, 0
    for profile in (MAJOR_PROFILE, MINOR_PROFILE):
        for t in range(12):
            r = np.corrcoef(histogram, np.roll(profile, t))[0, 1]
            if r > best:
                best, tonic = r, t
    return (-tonic + 6) % 12 - 6


class NoteCache:
    """Parsed notes on disk, one file per source file, keyed by its path, size and time."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _entry(self, path: Path) -> Path:
        stat = path.stat()
        key = f"{CACHE_FORMAT}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return self.folder / (hashlib.sha1(key.encode()).hexdigest() + ".npz")

    def load(self, path: Path) -> list[Notes] | None:
        entry = self._entry(path)
        if not entry.exists():
            return None
        try:
            with np.load(entry, allow_pickle=False) as z:
                names = [str(n) for n in z["names"]]
                return [
                    Notes(n, z[f"pitch{i}"], z[f"start{i}"], z[f"end{i}"])
                    for i, n in enumerate(names)
                ]
        except (OSError, ValueError, KeyError):  # a damaged entry is parsed again
            return None

    def save(self, path: Path, pieces: list[Notes]) -> None:
        arrays = {"names": np.array([p.name for p in pieces], dtype=str)}
        for i, p in enumerate(pieces):
            arrays.update({f"pitch{i}": p.pitch, f"start{i}": p.start, f"end{i}": p.end})

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(self._entry(path), write)  # whole or not at all


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "rnnkit" / "music"


def _parse_or_error(path: Path) -> list[Notes] | str:
    try:
        return parse_file(path)
    except ValueError as error:
        return str(error)


def read_files(
    paths: list[Path], cache: NoteCache | None, skip_bad: bool, jobs: int = 1, label: str = ""
) -> dict[Path, list[Notes]]:
    """Every file's pieces, parsed in ``jobs`` processes where the cache lacks them.

    A file that cannot be parsed is a one-line error naming it, or, with
    ``skip_bad``, a warning on stderr and left out.
    """
    found = {p: cache.load(p) if cache else None for p in paths}
    todo = [p for p, notes in found.items() if notes is None]
    if todo:
        what = f" of {label}" if label else ""
        cached = " (cached for the next run)" if cache else ""
        print(f"parsing {len(todo)} files{what}{cached}", flush=True)
        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(min(jobs, len(todo))) as pool:
                results = list(pool.map(_parse_or_error, todo, chunksize=4))
        else:
            results = [_parse_or_error(p) for p in todo]
        for path, result in zip(todo, results, strict=True):
            if isinstance(result, str):
                if not skip_bad:
                    raise ValueError(result + "; --skip-bad leaves such files out")
                warn(f"skipped {result}")
                continue
            found[path] = result
            if cache:
                cache.save(path, result)
    return {p: notes for p, notes in found.items() if notes is not None}
