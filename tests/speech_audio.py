"""Synthetic speech for the tests: every letter is a tone of its own, a word its letters' tones
in a row, a speaker a small shift of every pitch; written as WAV files through soundfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 8000
LETTER_SECONDS, GAP_SECONDS = 0.06, 0.015
DIGITS = ("zero", "one", "two", "three")


def pitch(letter: str) -> float:
    return 300.0 + 110.0 * (ord(letter) - ord("a"))


def word_wave(word: str, shift: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    parts = [np.zeros(int(0.03 * rate))]
    for letter in word:
        n = int(LETTER_SECONDS * rate * rng.uniform(0.85, 1.15))
        t = np.arange(n) / rate
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
        parts.append(0.5 * envelope * np.sin(2 * np.pi * pitch(letter) * shift * t))
        parts.append(np.zeros(int(GAP_SECONDS * rate)))
    parts.append(np.zeros(int(0.03 * rate)))
    wave = np.concatenate(parts)
    return (wave + 0.003 * rng.standard_normal(wave.size)).astype(np.float32)


SPEAKERS = {"ann": 1.0, "bob": 0.97, "cy": 1.03}


def write_manifest(folder: Path, words, takes: int = 6, speakers=SPEAKERS, seed: int = 0,
                   rate: int = RATE) -> Path:  # fmt: skip
    import soundfile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for speaker, shift in speakers.items():
        for word in words:
            for take in range(takes):
                name = f"{speaker}_{word.replace(' ', '-')}_{take}.wav"
                wave = np.concatenate([word_wave(w, shift, rng, rate) for w in word.split()])
                soundfile.write(folder / name, wave, rate)
                lines.append(f"{name}\t{word}\t{speaker}")
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_fsdd(folder: Path, takes: int = 8, speakers=SPEAKERS, seed: int = 0) -> Path:
    import soundfile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for speaker, shift in speakers.items():
        for digit, word in enumerate(DIGITS):
            for take in range(takes):
                soundfile.write(
                    folder / f"{digit}_{speaker}_{take}.wav", word_wave(word, shift, rng), RATE
                )
    return folder
