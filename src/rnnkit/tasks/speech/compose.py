"""Connected speech from isolated words: utterances joined from 1..K clips of one speaker.

The way connected-digit corpora such as TIDIGITS are built: each utterance
takes the next 1..K clips (the number drawn uniformly) of one speaker's
shuffled clips, with a pause of 50-250 ms of faint noise between them and a
little white noise over the whole (40 dB below the speech), all from one
seed. Every clip of a part is used ``passes`` times (once each for a test
part), so test utterances are made of test clips only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .corpus import Clip

PAUSE_SECONDS = (0.05, 0.25)
NOISE_DB = 40.0  # the noise's level below the speech's


@dataclass(frozen=True)
class Utterance:
    """What the model hears: samples, the transcript, the speaker, and the clips it joins."""

    wave: np.ndarray
    text: str
    speaker: str
    sources: tuple[str, ...]


def single(clips: list[Clip], waves: list[np.ndarray]) -> list[Utterance]:
    return [Utterance(w, c.text, c.speaker, (c.path,)) for c, w in zip(clips, waves, strict=True)]


def compose(clips: list[Clip], waves: list[np.ndarray], most: int, rate: int, seed: int,
            passes: int = 1) -> list[Utterance]:  # fmt: skip
    """Utterances of 1..``most`` clips each, every clip used ``passes`` times."""
    if most <= 1:
        return single(clips, waves)
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        by_speaker.setdefault(clip.speaker, []).append(i)
    out = []
    for _ in range(passes):
        for speaker in sorted(by_speaker):
            order = rng.permutation(by_speaker[speaker])
            start = 0
            while start < len(order):
                count = int(rng.integers(1, most + 1))
                group = order[start : start + count]
                start += count
                out.append(_join([clips[i] for i in group], [waves[i] for i in group], rate, rng))
    return out


def _join(clips: list[Clip], waves: list[np.ndarray], rate: int, rng) -> Utterance:
    level = max(float(np.sqrt(np.mean(np.concatenate(waves) ** 2))), 1e-4)
    noise = level * 10 ** (-NOISE_DB / 20)
    parts = []
    for i, wave in enumerate(waves):
        if i:
            pause = int(rate * rng.uniform(*PAUSE_SECONDS))
            parts.append(np.zeros(pause, dtype=np.float32))
        parts.append(wave)
    joined = np.concatenate(parts)
    joined = joined + (noise * rng.standard_normal(joined.size)).astype(np.float32)
    return Utterance(joined.astype(np.float32), " ".join(c.text for c in clips),
                     clips[0].speaker, tuple(c.path for c in clips))  # fmt: skip
