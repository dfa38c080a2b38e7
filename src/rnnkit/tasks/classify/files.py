"""What `classify` writes beside a run: predictions as CSV, the confusion matrix as PNG."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ...plots import _pyplot, _save
from ...runs import atomic_write


def write_predictions(path: Path, proba: np.ndarray, classes: list[str], given: np.ndarray) -> None:
    """series (1-based), the predicted label, the given label when there is one, p_<class>..."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with_given = bool((given != "").any())
    writer.writerow(["series", "label", *(["given"] if with_given else []),
                     *(f"p_{c}" for c in classes)])  # fmt: skip
    for i, row in enumerate(proba):
        writer.writerow([i + 1, classes[int(row.argmax())], *([given[i]] if with_given else []),
                         *(f"{p:.6f}" for p in row)])  # fmt: skip
    atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def plot_confusion(path: Path, matrix: np.ndarray, classes: list[str]) -> None:
    """Counts, rows the true class and columns the predicted one, shaded by the row's share."""
    plt = _pyplot()
    k = len(classes)
    size = min(12.0, 2.5 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=100)
    share = matrix / np.maximum(1, matrix.sum(1, keepdims=True))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class's test series")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black", fontsize=8)  # fmt: skip
        ax.set_xticks(range(k), classes, rotation=45 if k > 6 else 0)
        ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test accuracy {np.trace(matrix) / max(1, matrix.sum()):.3f}")
    _save(fig, path)
