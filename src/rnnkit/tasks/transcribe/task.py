"""A transcription run's model, batches, training task and decoding.

Words are grouped by key: a word with several reference transcriptions
trains on each of them and is scored once, right when the output equals any.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...decoding import Hypothesis
from ...diagnostics import GradientFlow, gradient_flow
from ...seq2seq import EncoderDecoder
from ...spec import RNNSpec
from ...training import Monitor, SeededSource
from .data import BOS, EOS, PAD, Pair, Vocabulary
from .metrics import error_rates

BEAM_SAMPLE = 48  # validation words decoded by the beam at each evaluation, to time it


@dataclass
class Words:
    """Distinct sources, each with every reference target (as symbols)."""

    sources: list[tuple[str, ...]]
    references: list[list[tuple[str, ...]]]

    @classmethod
    def of(cls, pairs: Sequence[Pair]) -> Words:
        grouped: dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]] = {}
        for p in pairs:
            grouped.setdefault(p.key, (p.source, []))[1].append(p.target)
        return cls([s for s, _ in grouped.values()], [r for _, r in grouped.values()])

    def __len__(self) -> int:
        return len(self.sources)


def padded(rows: Sequence[Sequence[int]]) -> Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return out


@dataclass
class Encoded:
    """Pairs as ids: sources and targets, each a list of id lists (targets end with EOS)."""

    sources: list[list[int]]
    targets: list[list[int]]

    @classmethod
    def of(cls, pairs: Sequence[Pair], source: Vocabulary, target: Vocabulary) -> Encoded:
        return cls(
            [source.encode(p.source, "source symbol") for p in pairs],
            [target.encode(p.target, "target symbol") + [EOS] for p in pairs],
        )

    def batch(self, index) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """src (B, S), src_lengths (B,), decoder inputs (B, T) starting with BOS, outputs (B, T)."""
        src = [self.sources[i] for i in index]
        tgt = [self.targets[i] for i in index]
        return (
            padded(src),
            torch.tensor([len(s) for s in src]),
            padded([[BOS] + t[:-1] for t in tgt]),
            padded(tgt),
        )


class PairBatches(SeededSource):
    """Random minibatches of pairs, with the teacher-forcing ratio of each step.

    The ratio falls linearly from 1 to ``final_ratio`` over ``span`` steps
    (scheduled sampling); the count of batches drawn is part of the state, so
    a resumed run continues the schedule.
    """

    def __init__(
        self, encoded: Encoded, batch: int, seed: int, final_ratio: float = 1.0, span: int = 1
    ) -> None:
        super().__init__(seed)
        self.encoded, self.batch = encoded, min(batch, len(encoded.sources))
        self.final_ratio, self.span, self.drawn = final_ratio, max(1, span), 0

    def ratio(self) -> float:
        return 1.0 - (1.0 - self.final_ratio) * min(1.0, self.drawn / self.span)

    def __next__(self):
        index = torch.randint(len(self.encoded.sources), (self.batch,), generator=self.generator)
        ratio = self.ratio()
        self.drawn += 1
        return (*self.encoded.batch(index.tolist()), torch.tensor(ratio))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.drawn = int(state["drawn"])


def build_model(config: dict) -> EncoderDecoder:
    """Embeddings of ``embed`` units; an encoder (bidirectional as asked) and a decoder of ``hidden``."""
    embed, spec = config["embed"], RNNSpec.from_config(config)
    encoder = spec.build(embed)
    feeding = config["attention"] and config.get("input_feeding", True)
    context = encoder.output_size if feeding else 0
    decoder = spec.build(embed + context, bidirectional=False)
    return EncoderDecoder(
        encoder,
        decoder,
        source_vocab=len(config["source_symbols"]) + 3,
        target_vocab=len(config["target_symbols"]) + 3,
        attention=config["attention"],
        input_feeding=feeding,
    )


def sequence_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy per target symbol (the end included), padding ignored."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)


def max_steps(lengths: Tensor, longest: int = 0) -> int:
    """Room for the longest output a source of this length plausibly has, and its end.

    ``longest`` is the longest target seen in training: never cut below it.
    """
    return max(2 * int(lengths.max()), longest) + 10


@torch.no_grad()
def transcribe(
    model: EncoderDecoder,
    sources: Sequence[Sequence[int]],
    beam: int = 1,
    longest: int = 0,
    chunk: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[Hypothesis]]:
    """The n-best hypotheses (``beam`` of them; one for greedy decoding) of every source, best first.

    ``progress(done, total)`` is called after every chunk of sources.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out: list[list[Hypothesis]] = []
    try:
        for start in range(0, len(sources), chunk):
            part = sources[start : start + chunk]
            src = padded(part).to(device)
            lengths = torch.tensor([len(s) for s in part])
            steps = max_steps(lengths, longest)
            if beam == 1:
                decoded = model.decode(src, BOS, steps, src_lengths=lengths, eos=EOS)
                for tokens, n, lp in zip(
                    decoded.tokens, decoded.lengths, decoded.log_prob, strict=True
                ):
                    out.append([Hypothesis(tokens[: int(n)].tolist(), float(lp), float(lp))])
            else:
                out.extend(
                    model.decode(src, BOS, steps, src_lengths=lengths, eos=EOS, beam_size=beam)
                )
            if progress is not None:
                progress(len(out), len(sources))
    finally:
        model.train(was)
    return out


def score(
    model: EncoderDecoder,
    words: Words,
    source: Vocabulary,
    target: Vocabulary,
    beam: int = 1,
    longest: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """WER and PER of the best hypothesis of each word, and the outputs themselves.

    A word with a source symbol the training pairs lacked gets no output (it
    counts as wrong); ``unknown`` says how many there were.
    """
    ids, known = [], []
    for i, s in enumerate(words.sources):
        try:
            ids.append(source.encode(s))
            known.append(i)
        except ValueError:
            pass
    outputs: list[tuple[str, ...]] = [()] * len(words)
    decoded = transcribe(model, ids, beam, longest, progress=progress)
    for i, hyps in zip(known, decoded, strict=True):
        outputs[i] = target.decode(hyps[0].tokens)
    result = error_rates(outputs, words.references)
    return {**result, "outputs": outputs, "unknown": len(words) - len(known)}


class TranscribeTask:
    """Cross-entropy on the training pairs; greedy word error on the validation words selects."""

    monitor = Monitor(
        "val_wer",
        "validation word error rate (greedy)",
        tie_break="val_per",
        train_label="training cross-entropy (nats per symbol)",
    )

    def __init__(
        self,
        train: Encoded,
        val: Words,
        source: Vocabulary,
        target: Vocabulary,
        config: dict,
        span: int,
    ) -> None:
        self.val, self.source, self.target = val, source, target
        self.longest = config.get("longest_target", 0)
        self.batches = PairBatches(
            train, config["batch_size"], config["seed"], config["teacher_forcing_final"], span
        )

    def expect_test(self, words: int, beam: int) -> None:
        """Note the test after training (greedy, then a beam of ``beam``), to judge its time."""
        self.test_words, self.test_beam = words, beam
        self.greedy_per_word = self.beam_per_word = 0.0

    def after_training_seconds(self, eval_seconds: float) -> float:
        """The test at the validation's greedy rate per word, and the beam at its measured rate."""
        words = getattr(self, "test_words", 0)
        if not words:
            return 0.0
        return (self.greedy_per_word + self.beam_per_word) * words + 2.0

    def loss(self, model: nn.Module, batch, carry):
        src, lengths, tgt_in, tgt_out, ratio = batch
        logits = model(src, tgt_in, src_lengths=lengths, teacher_forcing=float(ratio))
        return sequence_loss(logits, tgt_out), None

    def evaluate(self, model: nn.Module) -> dict:
        began = time.perf_counter()
        result = score(model, self.val, self.source, self.target, longest=self.longest)
        self.greedy_per_word = (time.perf_counter() - began) / max(1, len(self.val))
        if getattr(self, "test_words", 0) and getattr(self, "test_beam", 1) > 1:
            few = Words(self.val.sources[:BEAM_SAMPLE], self.val.references[:BEAM_SAMPLE])
            began = time.perf_counter()  # the beam's rate, for the time the test will take
            score(model, few, self.source, self.target, self.test_beam, self.longest)
            self.beam_per_word = (time.perf_counter() - began) / max(1, len(few))
        # the word error decides; the phone error breaks ties (see monitor)
        return {"val_wer": result["wer"], "val_per": result["per"]}

    def gradient_flow(self, model: nn.Module) -> GradientFlow:
        sources = [self.source.encode(s) for s in self.val.sources[:32]]
        targets = [self.target.encode(r[0]) + [EOS] for r in self.val.references[:32]]
        encoded = Encoded(sources, targets)
        device = next(model.parameters()).device
        src, lengths, tgt_in, tgt_out = (t.to(device) for t in encoded.batch(range(len(sources))))
        return gradient_flow(
            model, lambda m: sequence_loss(m(src, tgt_in, src_lengths=lengths.cpu()), tgt_out)
        )


def sample(words: Words, count: int, seed: int = 0) -> list[int]:
    """Indices of ``count`` words drawn with a fixed seed, in order."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(words), size=min(count, len(words)), replace=False).tolist())


def examples(
    words: Words, outputs: list[tuple[str, ...]], count: int, joiner: str = " "
) -> list[dict]:
    """A few words (``sample``) with their output and references.

    ``joiner`` puts the source's symbols together ("" for characters).
    """
    return [
        {
            "source": joiner.join(words.sources[i]),
            "output": " ".join(outputs[i]),
            "references": [" ".join(r) for r in words.references[i]],
            "right": outputs[i] in [tuple(r) for r in words.references[i]],
        }
        for i in sample(words, count)
    ]
