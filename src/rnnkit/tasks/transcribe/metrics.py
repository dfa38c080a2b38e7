"""Word and phone error rates against one or more reference transcriptions per word."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def error_rates(outputs: Sequence[Sequence], references: Sequence[Sequence[Sequence]]) -> dict:
    """``wer``: the share of words whose output equals none of their references.

    ``per``: the edit distance to the closest reference, summed over words,
    over the summed lengths of those references (ties go to the shorter one).
    """
    if len(outputs) != len(references) or not outputs:
        raise ValueError("one output per word, and at least one word")
    wrong = distance = length = 0
    for out, refs in zip(outputs, references, strict=True):
        out = tuple(out)
        best = min((edit_distance(out, r), len(r)) for r in refs)
        wrong += best[0] > 0
        distance += best[0]
        length += best[1]
    return {"wer": wrong / len(outputs), "per": distance / length, "words": len(outputs)}
