"""Which audio files a folder holds and what is said in each: three layouts.

* ``manifest``: ``manifest.tsv`` in the folder, lines ``path<TAB>transcript[<TAB>speaker]``
  (paths relative to the folder);
* ``librispeech``: ``*.trans.txt`` files beside the audio, lines ``ID words...``, the
  audio ``ID.flac`` (or .wav), the speaker the ID's first field;
* ``fsdd``: the Free Spoken Digit Dataset, files ``{digit}_{speaker}_{take}.wav``; the
  word is the digit's English name, takes 0-4 are the official test set.

Transcripts are lower-cased with their runs of white space made one space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LAYOUTS = ("manifest", "librispeech", "fsdd")
MANIFEST = "manifest.tsv"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^([0-9])_([A-Za-z0-9]+)_([0-9]+)\.wav$")
FSDD_TEST_TAKES = 5  # takes 0-4 of every speaker and digit: the official test set


@dataclass(frozen=True)
class Clip:
    """One recording: where it is, what is said, who says it (and FSDD's take number)."""

    path: str
    text: str
    speaker: str
    take: int | None = None


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def detect_layout(folder: Path) -> str:
    """The folder's layout: a manifest, LibriSpeech transcripts, or FSDD's file names."""
    if (folder / MANIFEST).is_file():
        return "manifest"
    if next(folder.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    names = [p.name for p in folder.rglob("*.wav")]
    if names and all(FSDD_NAME.match(n) for n in names):
        return "fsdd"
    raise ValueError(
        f"{folder}: no {MANIFEST}, no LibriSpeech *.trans.txt and no FSDD-named WAV files "
        "({digit}_{speaker}_{take}.wav); write a manifest.tsv (path<TAB>transcript"
        "[<TAB>speaker]) or give --layout"
    )


def read_clips(folder: str | Path, layout: str | None = None) -> tuple[str, list[Clip]]:
    """The layout (detected unless given) and the folder's clips, sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--data {folder}: not a folder")
    layout = layout or detect_layout(root)
    clips = {"manifest": _manifest, "librispeech": _librispeech, "fsdd": _fsdd}[layout](root)
    if not clips:
        raise ValueError(f"--data {folder}: no recordings in the {layout} layout")
    return layout, sorted(clips, key=lambda c: c.path)


def _manifest(root: Path) -> list[Clip]:
    path = root / MANIFEST
    if not path.is_file():
        raise ValueError(f"--layout manifest: {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
    clips = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) not in (2, 3):
            raise ValueError(
                f"{path} line {number}: {len(fields)} tab-separated fields; want "
                "path<TAB>transcript[<TAB>speaker]"
            )
        audio = (root / fields[0].strip()).resolve()
        if not audio.is_file():
            raise ValueError(f"{path} line {number}: {fields[0].strip()!r} does not exist")
        text = normalise_text(fields[1])
        if not text:
            raise ValueError(f"{path} line {number}: the transcript is empty")
        speaker = fields[2].strip() if len(fields) == 3 and fields[2].strip() else "unknown"
        clips.append(Clip(str(audio), text, speaker))
    return clips


def _librispeech(root: Path) -> list[Clip]:
    clips = []
    for trans in sorted(root.rglob("*.trans.txt")):
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise ValueError(f"{trans}: not UTF-8 text (byte {error.start})") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            key, _, words = line.strip().partition(" ")
            audio = next(
                (
                    trans.parent / f"{key}{s}"
                    for s in AUDIO_SUFFIXES
                    if (trans.parent / f"{key}{s}").is_file()
                ),
                None,
            )
            if audio is None:
                raise ValueError(f"{trans} line {number}: no audio file {key}.flac (or .wav, .ogg)")
            text = normalise_text(words)
            if not text:
                raise ValueError(f"{trans} line {number}: the transcript of {key} is empty")
            clips.append(Clip(str(audio.resolve()), text, key.split("-")[0]))
    return clips


def _fsdd(root: Path) -> list[Clip]:
    clips = []
    for path in root.rglob("*.wav"):
        match = FSDD_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: not an FSDD name ({{digit}}_{{speaker}}_{{take}}.wav)")
        digit, speaker, take = match.groups()
        clips.append(Clip(str(path.resolve()), DIGITS[int(digit)], speaker, int(take)))
    return clips


def speakers_of(clips: list[Clip]) -> list[str]:
    return sorted({c.speaker for c in clips})
