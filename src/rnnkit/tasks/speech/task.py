"""Features of every utterance, the batches, the CTC loss and the evaluation by error rates."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...training import Monitor, SeededSource
from .compose import Utterance
from .ctc import BeamSearch, best_path
from .features import LogMel, Normaliser, SpecAugment
from .metrics import error_rates
from .model import Labels

EVAL_BATCH = 64
BEAM_SAMPLE = 8  # validation utterances the beam is timed on


@dataclass
class Encoded:
    """Utterances as the model reads them: normalised features, and what is said."""

    features: list[Tensor]  # (frames, bands) each
    texts: list[str]
    speakers: list[str]

    @classmethod
    def of(
        cls, utterances: list[Utterance], logmel: LogMel, normaliser: Normaliser | None
    ) -> Encoded:
        feats = [logmel(torch.from_numpy(u.wave)) for u in utterances]
        if normaliser is not None:
            feats = [normaliser(f) for f in feats]
        return cls(feats, [u.text for u in utterances], [u.speaker for u in utterances])

    def __len__(self) -> int:
        return len(self.texts)


def pad(features: list[Tensor]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(f) for f in features])
    x = torch.zeros(len(features), int(lengths.max()), features[0].shape[1])
    for i, f in enumerate(features):
        x[i, : len(f)] = f
    return x, lengths


class SpeechBatches(SeededSource):
    """Random batches of utterances of similar length (a window of the length order), each with
    SpecAugment's masks drawn afresh; resumable (the generator is the position)."""

    def __init__(self, data: Encoded, targets: list[list[int]], batch: int, seed: int,
                 augment: SpecAugment) -> None:  # fmt: skip
        super().__init__(seed)
        self.data, self.targets, self.augment = data, targets, augment
        self.batch = min(batch, len(data))
        self.order = sorted(range(len(data)), key=lambda i: len(data.features[i]))

    def __next__(self):
        start = int(
            torch.randint(0, len(self.order) - self.batch + 1, (1,), generator=self.generator)
        )
        picked = self.order[start : start + self.batch]
        x, lengths = pad([self.data.features[i] for i in picked])
        x = self.augment(x, lengths, self.generator)
        targets = [self.targets[i] for i in picked]
        flat = torch.tensor([t for ts in targets for t in ts], dtype=torch.long)
        return x, lengths, flat, torch.tensor([len(t) for t in targets])


def ctc_loss(model: nn.Module, x, lengths, targets, target_lengths) -> Tensor:
    log_probs, steps, _ = model(x, lengths)
    return F.ctc_loss(log_probs.transpose(0, 1), targets, steps, target_lengths, blank=0,
                      reduction="mean", zero_infinity=True)  # fmt: skip


@torch.no_grad()
def posteriors(model: nn.Module, data: Encoded) -> list[Tensor]:
    """Each utterance's (steps, units) log-posteriors, in the data's order, batched by length."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.features[i]))
    out: list[Tensor | None] = [None] * len(data)
    for start in range(0, len(order), EVAL_BATCH):
        picked = order[start : start + EVAL_BATCH]
        x, lengths = pad([data.features[i] for i in picked])
        log_probs, steps, _ = model(x.to(device), lengths.to(device))
        for j, i in enumerate(picked):
            out[i] = log_probs[j, : int(steps[j])].cpu()
    model.train(was)
    return out  # type: ignore[return-value]


def greedy_texts(model: nn.Module, data: Encoded, labels: Labels) -> list[str]:
    return [labels.decode(best_path(p, len(p))) for p in posteriors(model, data)]


class SpeechTask:
    """What the trainer trains: CTC on the training utterances, judged by the validation WER."""

    monitor = Monitor("val_wer", "validation word error rate", tie_break="val_ctc",
                      train_label="training CTC loss (nats per label)")  # fmt: skip

    def __init__(self, train: Encoded, val: Encoded, labels: Labels, batch: int, seed: int,
                 augment: SpecAugment) -> None:  # fmt: skip
        self.labels, self.val = labels, val
        targets = [labels.encode(t) for t in train.texts]
        self.batches = SpeechBatches(train, targets, batch, seed, augment)
        self.val_targets = [labels.encode(t) for t in val.texts]

    def expect_test(self, utterances: int, beam: int) -> None:
        """Note the test after training, to keep time for it under a budget."""
        self.test_utterances, self.test_beam = utterances, beam
        self.greedy_per_utterance = self.beam_per_utterance = 0.0

    def after_training_seconds(self, eval_seconds: float) -> float:
        """The test at the validation's rate per utterance, the beam at its measured rate."""
        count = getattr(self, "test_utterances", 0)
        return (self.greedy_per_utterance + self.beam_per_utterance) * count + 3.0 if count else 0.0

    def loss(self, model: nn.Module, batch, carry):
        return ctc_loss(model, *batch), None

    def evaluate(self, model: nn.Module) -> dict:
        device = next(model.parameters()).device
        began = time.perf_counter()
        logs = posteriors(model, self.val)
        texts = [self.labels.decode(best_path(p, len(p))) for p in logs]
        self.greedy_per_utterance = (time.perf_counter() - began) / len(self.val)
        if getattr(self, "test_beam", 1) > 1:  # the beam's rate on a few utterances
            began, few = time.perf_counter(), logs[:BEAM_SAMPLE]
            search = BeamSearch(self.labels)
            for p in few:
                search.nbest(p, len(p), self.test_beam)
            self.beam_per_utterance = (time.perf_counter() - began) / len(few)
        rates = error_rates(texts, self.val.texts)
        total, count = 0.0, 0
        for p, target in zip(logs, self.val_targets, strict=True):
            if target and len(p) >= len(target):
                loss = F.ctc_loss(p.to(device)[:, None], torch.tensor([target]), torch.tensor([len(p)]),
                                  torch.tensor([len(target)]), blank=0, reduction="sum",
                                  zero_infinity=True)  # fmt: skip
                total, count = total + float(loss) / len(target), count + 1
        return {"val_wer": rates["wer"], "val_cer": rates["cer"],
                "val_ctc": total / max(1, count)}  # fmt: skip
