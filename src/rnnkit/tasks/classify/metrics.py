"""Classification scores and the baselines every classifier is set beside.

Labels are class indices 0..K-1 here; the task maps them to names.
"""

from __future__ import annotations

import numpy as np


def confusion(actual: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(K, K) counts: row = the true class, column = the predicted one."""
    out = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(out, (actual, predicted), 1)
    return out


def scores(actual: np.ndarray, predicted: np.ndarray, classes: int) -> dict:
    """Accuracy, macro F1 (the unweighted mean of each class's F1) and the confusion matrix.

    A class that is neither present nor predicted has no F1 and is left out
    of the mean; one present but never predicted (or the reverse) counts 0.
    """
    matrix = confusion(actual, predicted, classes)
    true_positive = np.diag(matrix).astype(float)
    present, predicted_count = matrix.sum(1), matrix.sum(0)
    seen = (present + predicted_count) > 0
    f1 = 2 * true_positive[seen] / (present[seen] + predicted_count[seen])
    return {
        "accuracy": float(true_positive.sum() / max(1, len(actual))),
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "confusion": matrix.tolist(),
    }


def majority(train_labels: np.ndarray, count: int) -> np.ndarray:
    """The most frequent training class (the lowest index on a tie), ``count`` times."""
    return np.full(count, int(np.bincount(train_labels).argmax()))


def resample(series: list[np.ndarray], length: int) -> np.ndarray:
    """Each (T_i, C) series stretched or shrunk to ``length`` steps by linear interpolation: (N, length, C)."""
    grid = np.linspace(0.0, 1.0, length)
    out = np.empty((len(series), length, series[0].shape[1]))
    for i, s in enumerate(series):
        where = np.linspace(0.0, 1.0, len(s)) if len(s) > 1 else np.zeros(1)
        for c in range(s.shape[1]):
            out[i, :, c] = np.interp(grid, where, s[:, c]) if len(s) > 1 else s[0, c]
    return out


def nearest_neighbour(
    train: list[np.ndarray], train_labels: np.ndarray, test: list[np.ndarray], chunk: int = 256
) -> np.ndarray:
    """1-NN by Euclidean distance (the UCR archive's baseline); series of unequal
    length are first resampled to the longest training length."""
    length = max(len(s) for s in train)
    a = resample(train, length).reshape(len(train), -1)
    b = resample(test, length).reshape(len(test), -1)
    out = np.empty(len(test), dtype=np.int64)
    a_sq = (a**2).sum(1)
    for start in range(0, len(b), chunk):
        block = b[start : start + chunk]
        distance = a_sq[None, :] - 2 * block @ a.T  # + |b|^2, the same for every candidate
        out[start : start + chunk] = train_labels[distance.argmin(1)]
    return out
