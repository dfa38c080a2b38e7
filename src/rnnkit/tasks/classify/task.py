"""A classification run's data, assembled from its config, and its training task.

The training file is split, stratified by class, into the part that trains
and the part that validates (early stopping, best weights); the test file
is read once, at the end. Channels are standardised with the training
part's statistics (after per-series z-normalisation when asked).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...diagnostics import GradientFlow, gradient_flow
from ...spec import RNNSpec
from ...training import Monitor, SeededSource
from . import data, metrics
from .model import Classifier, Ensemble


@dataclass
class Encoded:
    """Series as the model reads them: padded (N, T, C) float32, lengths (N,), class indices (N,)."""

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray  # -1 where a series has no (known) label

    def unpadded(self) -> list[np.ndarray]:
        return [x[:n] for x, n in zip(self.x, self.lengths, strict=True)]


def load_training(config: dict) -> data.LabelledSeries:
    source = config["source"]
    if source["kind"] == "named":
        return data.check(data.load_named(source["name"], "train"))
    return data.read_file(source["train"], source.get("label_col", "label"))


def load_test(config: dict) -> data.LabelledSeries:
    source = config["source"]
    if source["kind"] == "named":
        return data.check(data.load_named(source["name"], "test"))
    return data.read_file(source["test"], source.get("label_col", "label"))


def fit_scaler(train: data.LabelledSeries) -> dict:
    """Per-channel mean and spread over every step of the training part."""
    steps = np.concatenate(train.series, 0)
    std = steps.std(0)
    return {"mean": steps.mean(0).tolist(), "std": np.where(std > 1e-8, std, 1.0).tolist()}


def encode(series: data.LabelledSeries, config: dict, labelled: bool = True) -> Encoded:
    if config["znorm"]:
        series = data.z_normalise(series)
    mean = np.array(config["scaler"]["mean"])
    std = np.array(config["scaler"]["std"])
    scaled = data.LabelledSeries([(s - mean) / std for s in series.series], series.labels, "")
    x, lengths = scaled.padded()
    index = {c: i for i, c in enumerate(config["classes"])}
    y = np.array([index.get(label, -1) if labelled else -1 for label in series.labels])
    return Encoded(x, lengths, y)


def build_model(config: dict, members: int | None = None) -> nn.Module:
    """The run's classifier, or an ensemble of ``config["ensemble"]`` of them (``members`` overrides)."""
    count = config.get("ensemble", 1) if members is None else members
    if count > 1:
        return Ensemble([build_model(config, 1) for _ in range(count)])
    return Classifier(
        RNNSpec.from_config(config),
        config["channels"],
        len(config["classes"]),
        pooling=config["pooling"],
        conv=config["conv"],
    )


def as_batch(encoded: Encoded, index, device) -> tuple[Tensor, Tensor | None]:
    """Inputs cut to the batch's longest series; lengths only when they differ."""
    lengths = encoded.lengths[index]
    longest = int(lengths.max())
    x = torch.as_tensor(encoded.x[index, :longest], device=device)
    if (lengths == longest).all():
        return x, None
    return x, torch.as_tensor(lengths)


@torch.no_grad()
def predict_proba(model: nn.Module, encoded: Encoded, chunk: int = 256) -> np.ndarray:
    """Class probabilities (N, K)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = []
    for start in range(0, len(encoded.x), chunk):
        index = np.arange(start, min(start + chunk, len(encoded.x)))
        x, lengths = as_batch(encoded, index, device)
        out.append(torch.softmax(model(x, lengths), -1).double().cpu().numpy())
    model.train(was)
    return np.concatenate(out)


class SeriesBatches(SeededSource):
    """Random minibatches of training series, resumable."""

    def __init__(self, encoded: Encoded, batch: int, seed: int) -> None:
        super().__init__(seed)
        self.encoded = encoded
        self.batch = min(batch, len(encoded.x))

    def __next__(self) -> tuple[Tensor, Tensor | None, Tensor]:
        index = torch.randint(len(self.encoded.x), (self.batch,), generator=self.generator).numpy()
        x, lengths = as_batch(self.encoded, index, "cpu")
        return x, lengths, torch.as_tensor(self.encoded.y[index])


class ClassifyTask:
    """Cross-entropy on the training part; validation error (ties broken by its cross-entropy)."""

    monitor = Monitor(
        "val_error",
        "validation error rate (share misclassified)",
        tie_break="val_nll",
        train_label="training cross-entropy (nats per series)",
    )

    def __init__(self, train: Encoded, val: Encoded, config: dict) -> None:
        self.train, self.val = train, val
        self.batches = SeriesBatches(train, config["batch_size"], config["seed"])
        self.eval_seconds = 0.0
        self.test_count, self.nn1_work, self.reserve = 0, 0, False

    def expect_test(self, test: Encoded, training, reserve: bool) -> None:
        """Note the test that follows training, to judge its time; ``reserve``: keep that time
        out of training (without a refit, the test comes straight after)."""
        self.test_count, self.reserve = len(test.y), reserve
        self.nn1_work = len(training) * len(test.y) * int(test.x.shape[1]) * int(test.x.shape[2])

    def test_seconds(self) -> float:
        """The test's time: the model at the validation's rate per series, and the 1-NN baseline."""
        per_series = self.eval_seconds / max(1, len(self.val.y))
        return per_series * self.test_count + 3e-9 * self.nn1_work + 1.0

    def after_training_seconds(self, eval_seconds: float) -> float:
        return self.test_seconds() if self.reserve else 0.0

    def loss(self, model: nn.Module, batch, carry):
        x, lengths, y = batch
        device = next(model.parameters()).device
        return F.cross_entropy(model(x.to(device), lengths), y.to(device)), None

    def evaluate(self, model: nn.Module) -> dict:
        began = time.perf_counter()
        proba = predict_proba(model, self.val)
        accuracy = float((proba.argmax(1) == self.val.y).mean())
        nll = float(-np.log(np.maximum(proba[np.arange(len(proba)), self.val.y], 1e-12)).mean())
        self.eval_seconds = time.perf_counter() - began
        # the error decides; the cross-entropy breaks ties (see monitor)
        return {"val_error": 1.0 - accuracy, "val_accuracy": accuracy, "val_nll": nll}

    def gradient_flow(self, model: nn.Module) -> GradientFlow:
        device = next(model.parameters()).device
        index = np.arange(min(32, len(self.val.x)))
        x, lengths = as_batch(self.val, index, device)
        y = torch.as_tensor(self.val.y[index], device=device)
        return gradient_flow(model, lambda m: F.cross_entropy(m(x, lengths), y))


def evaluate_test(model: nn.Module, train: Encoded, test: Encoded, classes: int) -> dict:
    """The model and the baselines on the test set: the JSON of ``classify eval``.

    ``train`` is the whole training file (the validation part included): the
    baselines learn from all of it, as the model did (its weights were chosen on it).
    """
    proba = predict_proba(model, test)
    result = metrics.scores(test.y, proba.argmax(1), classes)
    nn1 = metrics.nearest_neighbour(train.unpadded(), train.y, test.unpadded())
    result["baselines"] = {
        "majority": metrics.scores(test.y, metrics.majority(train.y, len(test.y)), classes),
        "nn1": metrics.scores(test.y, nn1, classes),
    }
    for baseline in result["baselines"].values():
        del baseline["confusion"]
    result["test_series"] = int(len(test.y))
    return result
