"""What `speech` writes beside a run: an utterance's spectrogram under its CTC posteriors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...plots import _pyplot, _save


def plot_posteriors(path: Path, features: np.ndarray, posteriors: np.ndarray, symbols: list[str],
                    seconds: float, times: np.ndarray, decoded: str, truth: str) -> None:  # fmt: skip
    """Top: the log-mel spectrogram (bands against time, ``seconds`` long); bottom: the
    probability of every unit at every output step (centred at ``times``), the blank dotted;
    titled with what was decoded and what was said."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), dpi=100, sharex=True)
    fig.subplots_adjust(bottom=0.2)
    image = top.imshow(features.T, origin="lower", aspect="auto", cmap="magma",
                       extent=(0, seconds, 0, features.shape[1]))  # fmt: skip
    fig.colorbar(image, ax=[top, bottom], label="normalised log energy (top)", pad=0.01,
                 shrink=0.5, anchor=(0.0, 1.0))  # fmt: skip
    top.set_ylabel("mel band")
    top.set_title(f"decoded: {decoded!r}   said: {truth!r}", fontsize=10)
    probs = np.exp(posteriors)
    bottom.plot(times, probs[:, 0], ":", color="grey", label="blank")
    shown = [u for u in range(1, probs.shape[1]) if probs[:, u].max() > 0.2]
    colours = plt.get_cmap("tab20")
    for k, unit in enumerate(shown):
        bottom.plot(times, probs[:, unit], color=colours(k % 20), label=symbols[unit - 1] or "' '")
        peak = int(probs[:, unit].argmax())
        bottom.annotate(symbols[unit - 1] or "_", (times[peak], probs[peak, unit]), fontsize=8,
                        ha="center", va="bottom")  # fmt: skip
    bottom.set_ylim(0, 1.08)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("CTC posterior")
    if len(shown) <= 20:
        bottom.legend(
            fontsize=7,
            ncol=min(12, len(shown) + 1),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.22),
            frameon=False,
        )  # below: the spikes stay clear
    _save(fig, path, tight=False)
