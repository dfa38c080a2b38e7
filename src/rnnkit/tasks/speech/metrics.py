"""Word and character error rates, by speaker, and the baselines of isolated words.

WER = (substitutions + deletions + insertions of words) / words of the references, summed
over the utterances; CER the same over characters (spaces included). The baselines: the
most frequent training transcript for every utterance, and the classical template
recogniser, the nearest training clip by dynamic time warping on the same features
(dtaidistance's C implementation).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from torch import Tensor

from ..transcribe.metrics import edit_distance


def error_rates(outputs: list[str], references: list[str]) -> dict:
    if len(outputs) != len(references) or not references:
        raise ValueError("one output per utterance, and at least one utterance")
    words = sum(
        edit_distance(o.split(), r.split()) for o, r in zip(outputs, references, strict=True)
    )
    chars = sum(edit_distance(o, r) for o, r in zip(outputs, references, strict=True))
    return {
        "wer": words / max(1, sum(len(r.split()) for r in references)),
        "cer": chars / max(1, sum(len(r) for r in references)),
        "utterances": len(references),
    }


def by_speaker(outputs: list[str], references: list[str], speakers: list[str]) -> dict:
    out = {}
    for speaker in sorted(set(speakers)):
        picked = [i for i, s in enumerate(speakers) if s == speaker]
        out[speaker] = error_rates([outputs[i] for i in picked], [references[i] for i in picked])
    return out


def most_frequent(train_texts: list[str], references: list[str]) -> dict:
    guess = Counter(train_texts).most_common(1)[0][0]
    return {**error_rates([guess] * len(references), references), "guess": guess}


def dtw_nearest(templates: list[Tensor], template_texts: list[str], queries: list[Tensor],
                references: list[str]) -> dict:  # fmt: skip
    """1-NN by dynamic time warping (Euclidean frame distance, no window)."""
    try:
        from dtaidistance import dtw_ndim
    except ImportError:
        raise ValueError(
            "the DTW baseline needs dtaidistance: pip install 'rnnkit[speech]'"
        ) from None
    series = [np.ascontiguousarray(t.numpy(), dtype=np.double) for t in templates + queries]
    n = len(templates)
    distances = dtw_ndim.distance_matrix_fast(series, block=((0, n), (n, len(series))),
                                              parallel=True, compact=False)  # fmt: skip
    nearest = np.nanargmin(np.asarray(distances)[:n, n:], axis=0)
    outputs = [template_texts[i] for i in nearest]
    return error_rates(outputs, references)
