"""What `transcribe` writes beside a run: attention alignments as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...plots import _pyplot, _save


def plot_alignments(
    path: Path, items: list[tuple[tuple[str, ...], tuple[str, ...], np.ndarray]]
) -> None:
    """One panel per word: output symbols (rows) against source symbols (columns), shaded by weight."""
    plt = _pyplot()
    cols = min(3, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(items) :]:
        ax.axis("off")
    image = None
    for ax, (source, output, weights) in zip(axes.flat, items, strict=False):
        image = ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(source)), source)
        ax.set_yticks(range(len(output)), output)
        ax.set_title("".join(source) if all(len(s) == 1 for s in source) else " ".join(source))
        ax.set_xlabel("source symbol")
        ax.set_ylabel("output symbol")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8,
                     label="attention weight (each row sums to 1)")  # fmt: skip
    fig.suptitle("attention: each output symbol (row) over the source (columns)")
    _save(fig, path, tight=False)
