"""Where a music run's pieces come from, and their split.

Three sources, each a list of pieces with a genre:
- the music21 corpus (the music extra) by genre: ``--genres bach,folk``;
- a folder of MIDI, MusicXML, kern or ABC files; its subfolders, if any, are
  the genres (``DATA/jazz/*.mid``, ``DATA/blues/*.mid``);
- the JSB Chorales benchmark file (MATLAB, already split and quantised).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import warn
from .rolls import Rolls, read_jsb
from .scores import (
    SUFFIXES,
    NoteCache,
    Notes,
    common_key_shift,
    music21_module,
    read_files,
    to_roll,
)


@dataclass(frozen=True)
class Genre:
    description: str
    folders: tuple[str, ...]  # music21 corpus composer folders
    pattern: str = "*"  # file names to take there


GENRES = {
    "bach": Genre("Bach's four-part chorales", ("bach",), "bwv*.mxl"),
    "folk": Genre("German folk songs (the Essen collection)", ("essenFolksong",)),
    "fiddle": Genre("fiddle tunes (Ryan's Mammoth Collection, 1883)", ("ryansMammoth",)),
    "renaissance": Genre("Renaissance sacred polyphony (Palestrina)", ("palestrina",)),
    "madrigal": Genre("Monteverdi's madrigals", ("monteverdi",)),
    "trecento": Genre("Italian songs of the fourteenth century", ("trecento",)),
    "quartet": Genre(
        "string quartets (Haydn, Mozart, Beethoven)", ("haydn", "mozart", "beethoven")
    ),
}


def known_genres() -> str:
    return ", ".join(f"{name} ({g.description})" for name, g in GENRES.items())


def parse_genres(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--genres: no genre named (known: {', '.join(GENRES)})")
    unknown = [n for n in names if n not in GENRES]
    if unknown:
        raise ValueError(f"unknown genre {unknown[0]!r} (known: {', '.join(GENRES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"--genres names a genre twice: {text}")
    return names


def corpus_files(genre: str) -> list[Path]:
    music21 = music21_module()
    g = GENRES[genre]
    paths = []
    for folder in g.folders:
        paths += [
            Path(p)
            for p in music21.corpus.getComposer(folder)
            if Path(p).suffix.lower() in SUFFIXES and fnmatch.fnmatch(Path(p).name, g.pattern)
        ]
    if not paths:
        raise ValueError(f"the installed music21 corpus has no files for genre {genre!r}")
    return sorted(paths)


@dataclass
class Piece:
    notes: Notes
    genre: str


def corpus_pieces(
    genres: list[str], max_pieces: int | None, cache: NoteCache | None, jobs: int
) -> list[Piece]:
    """Up to ``max_pieces`` pieces of each genre, files in sorted order (an ABC file holds many)."""
    pieces = []
    for genre in genres:
        files, taken, read = corpus_files(genre), [], 0
        chunk = jobs  # a first look, to see how many pieces a file holds
        while files and (max_pieces is None or len(taken) < max_pieces):
            batch, files = files[:chunk], files[chunk:]
            for notes in read_files(batch, cache, True, jobs, genre).values():
                taken += notes
            read += len(batch)
            if max_pieces is None:
                chunk = 64
            else:  # enough files for the pieces still wanted, at the rate seen so far
                per_file = max(len(taken), 1) / read
                chunk = min(64, max(1, math.ceil((max_pieces - len(taken)) / per_file)))
        pieces += [Piece(n, genre) for n in taken[:max_pieces]]
    return pieces


def _hidden(relative: Path) -> bool:
    """Dot files and folders (.ipynb_checkpoints, ._x.mid) and macOS archive debris."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def folder_pieces(
    folder: Path, cache: NoteCache | None, skip_bad: bool, jobs: int, max_pieces: int | None
) -> list[Piece]:
    """Every score under ``folder``; the first-level subfolder a file is in names its genre."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not _hidden(p.relative_to(folder))
    )
    if not files:
        raise ValueError(
            f"{folder} holds no music files ({', '.join(SUFFIXES)}), in it or its subfolders"
        )
    genre_of = {p: p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else ""
                for p in files}  # fmt: skip
    named = {g for g in genre_of.values() if g}
    loose = [p.name for p in files if not genre_of[p]]
    if named and loose:
        raise ValueError(
            f"{folder}: {loose[0]} lies beside the genre subfolders ({', '.join(sorted(named))}); "
            "move it into one"
        )
    parsed = read_files(files, cache, skip_bad, jobs, folder.name)
    pieces, per_genre = [], {}
    for path, notes in parsed.items():
        for n in notes:
            g = genre_of[path]
            if max_pieces is None or per_genre.get(g, 0) < max_pieces:
                per_genre[g] = per_genre.get(g, 0) + 1
                pieces.append(Piece(Notes(str(path.relative_to(folder)) + n.name[len(path.name):],
                                          n.pitch, n.start, n.end), g))  # fmt: skip
    if not pieces:
        raise ValueError(f"{folder}: none of its {len(files)} files could be parsed")
    return pieces


def to_rolls(pieces: list[Piece], step: float, transpose: bool) -> Rolls:
    """Quantised pieces; those shorter than two steps are left out (and counted on stderr)."""
    rolls, genres, names, short = [], [], [], 0
    for p in pieces:
        roll = to_roll(p.notes, step, common_key_shift(p.notes) if transpose else 0)
        if len(roll) < 2:
            short += 1
            continue
        rolls.append(roll)
        genres.append(p.genre)
        names.append(p.notes.name)
    if short:
        warn(f"left out {short} pieces shorter than two steps")
    if not rolls:
        raise ValueError("no piece is at least two steps long")
    return Rolls(rolls, genres, names)


def split_rolls(rolls: Rolls, fraction: float, seed: int) -> dict[str, Rolls]:
    """{"train", "valid", "test"}: ``fraction`` of each genre's pieces for test and for validation."""
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    rng = np.random.default_rng(seed)
    for genre in sorted(set(rolls.genres)):
        index = [i for i, g in enumerate(rolls.genres) if g == genre]
        if len(index) < 3:
            label = f"genre {genre!r}" if genre else "the data"
            raise ValueError(
                f"{label} has {len(index)} pieces: at least 3 are needed (train, validation, test)"
            )
        index = [index[i] for i in rng.permutation(len(index))]
        held = max(1, round(fraction * len(index)))
        if len(index) - 2 * held < 1:
            label = f"genre {genre!r}" if genre else "the data"
            raise ValueError(
                f"{label} has {len(index)} pieces: --held-out {fraction:g} for test and again "
                "for validation leaves none for training"
            )
        parts["test"] += index[:held]
        parts["valid"] += index[held : 2 * held]
        parts["train"] += index[2 * held :]
    return {name: rolls.subset(sorted(ix)) for name, ix in parts.items()}


def load_source(source: dict, cache: NoteCache | None = None, jobs: int = 1) -> dict[str, Rolls]:
    """The run's pieces from its ``source`` config, split into train, valid and test; parsed
    scores are read from and kept in ``cache``."""
    if source["kind"] == "jsb":
        return read_jsb(source["path"])
    if source["kind"] == "corpus":
        pieces = corpus_pieces(source["genres"], source["max_pieces"], cache, jobs)
    else:
        pieces = folder_pieces(
            Path(source["path"]), cache, source["skip_bad"], jobs, source["max_pieces"]
        )
    rolls = to_rolls(pieces, source["step"], source["transpose"])
    return split_rolls(rolls, source["held_out"], source["split_seed"])
