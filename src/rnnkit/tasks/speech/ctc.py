"""Decoding CTC posteriors: the best path, and prefix beam search through pyctcdecode.

Best path (greedy): the most probable unit at every step, repeats merged,
blanks removed. Prefix beam search keeps the K most probable label prefixes,
summing over the paths that give each; rnnkit uses the maintained decoder
pyctcdecode for it rather than a second one of its own. ``--lexicon`` keeps
the best hypothesis whose words all occur in the training transcripts.
"""

from __future__ import annotations

import logging

import numpy as np
from torch import Tensor

from ..transcribe.metrics import edit_distance
from .model import BLANK, Labels


def best_path(log_probs: Tensor, steps: int) -> list[int]:
    """(steps, units) -> the collapsed label sequence of the most probable path."""
    best = log_probs[:steps].argmax(-1).tolist()
    out, last = [], BLANK
    for unit in best:
        if unit != last and unit != BLANK:
            out.append(unit)
        last = unit
    return out


class BeamSearch:
    """Prefix beam search over one run's labels (pyctcdecode, no language model)."""

    def __init__(self, labels: Labels) -> None:
        try:
            logging.getLogger("pyctcdecode").setLevel(logging.ERROR)  # no kenlm: not wanted here
            from pyctcdecode import build_ctcdecoder
        except ImportError:
            raise ValueError(
                "beam search needs pyctcdecode: pip install 'rnnkit[speech]'"
            ) from None
        self.labels = labels
        self.decoder = build_ctcdecoder(labels.decoder_labels())

    def nbest(
        self, log_probs: Tensor, steps: int, beam: int, n: int = 1
    ) -> list[tuple[str, float]]:
        """The ``n`` best transcriptions (at most) and their log-probabilities (the paths' sum)."""
        matrix = log_probs[:steps].detach().float().cpu().numpy().astype(np.float32)
        if steps == 0:
            return [("", 0.0)]
        beams = self.decoder.decode_beams(matrix, beam_width=beam, token_min_logp=-20.0,
                                          prune_history=False)  # fmt: skip
        out = [(" ".join(b[0].split()), float(b[3])) for b in beams[:n]]
        return out or [("", 0.0)]


def within_lexicon(hypotheses: list[tuple[str, float]], lexicon: set[str]) -> str:
    """The best hypothesis whose words are all known; failing that, the best one with each
    unknown word replaced by the nearest known word (by edit distance)."""
    for text, _ in hypotheses:
        if all(w in lexicon for w in text.split()):
            return text
    words = sorted(lexicon)
    return " ".join(w if w in lexicon else min(words, key=lambda k: (edit_distance(w, k), k))
                    for w in hypotheses[0][0].split())  # fmt: skip
