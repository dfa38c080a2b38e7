"""PNG plots of a run, drawn with matplotlib's file-only backend."""

from __future__ import annotations

from pathlib import Path

from .runs import atomic_write


def training_curves(records: list[dict], path: str | Path, title: str = "", monitor=None) -> None:
    """Training loss (as logged) and the monitored validation metric against the step.

    ``monitor`` (a ``training.Monitor``) names the metric and labels both
    curves; unless they share a unit, the metric gets its own axis on the right.
    """
    plt = _pyplot()
    name = getattr(monitor, "name", "val_loss")
    train_label = getattr(monitor, "train_label", "training loss")
    val_label = getattr(monitor, "label", "validation loss")
    same = getattr(monitor, "same_axis", monitor is None)
    train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    val = [(r["step"], r.get(name, r.get("val_loss"))) for r in records]
    val = [(step, v) for step, v in val if isinstance(v, (int, float))]
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    lines = []
    if train:
        lines += ax.plot(*zip(*train, strict=True), label=train_label, color="tab:blue", alpha=0.8)
    right = ax if same else ax.twinx()
    if val:
        lines += right.plot(*zip(*val, strict=True), "o-", label=val_label, color="tab:orange",
                            markersize=3)  # fmt: skip
    ax.set_xlabel("optimizer step")
    if same:
        ax.set_ylabel(train_label.removeprefix("training ").strip() or "loss")
    else:
        ax.set_ylabel(train_label, color="tab:blue")
        right.set_ylabel(val_label, color="tab:orange")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8)
    _save(fig, path)


def _pyplot():
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a symbol the font lacks (a control character in a user's data) is drawn as a box
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    return plt


def _save(fig, path: str | Path, tight: bool = True) -> None:
    plt = _pyplot()
    if tight:  # a colour bar shared by several panels does not survive tight_layout
        fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _by_distance(norms: list[float]) -> list[float]:
    """Norms of dL/dh_t re-indexed by the distance to the loss (the last step is distance 0)."""
    return list(reversed(norms))


def _heatmap(ax, records: list[dict], layer: int, title: str) -> None:
    import numpy as np

    grid = np.array([_by_distance(r["norms"][layer]) for r in records], dtype=float)
    with np.errstate(divide="ignore"):
        logs = np.where(grid > 0, np.log10(np.where(grid > 0, grid, 1.0)), np.nan)
    steps = [r["step"] for r in records]
    image = ax.imshow(
        logs.T,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        interpolation="nearest",
        extent=(-0.5, len(steps) - 0.5, -0.5, grid.shape[1] - 0.5),
    )
    every = max(1, len(steps) // 4)
    ticks = [i for i in range(0, len(steps), every) if len(steps) - 1 - i >= 0.75 * every]
    ticks.append(len(steps) - 1)
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("training step")
    ax.set_ylabel("distance to the loss (steps)")
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(image, ax=ax, label="log10 ||dL/dh_t||")


def gradient_flow_heatmap(records: list[dict], path: str | Path, title: str = "") -> None:
    """One panel per recurrent layer: log10 ||dL/dh_t|| by distance to the loss and training step."""
    plt = _pyplot()
    layers = records[0]["layers"]
    fig, axes = plt.subplots(
        1, len(layers), figsize=(5.5 * len(layers), 4.2), dpi=100, squeeze=False
    )
    for i, name in enumerate(layers):
        _heatmap(axes[0][i], records, i, f"{title}\n{name}" if title else name)
    _save(fig, path)


def gradient_flow_lines(
    records: list[dict], path: str | Path, title: str = "", layer: int = 0
) -> None:
    """||dL/dh_t|| against the distance to the loss, log scale, at a few points of training."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=100)
    picks = sorted({0, len(records) // 4, len(records) // 2, len(records) - 1})
    cmap = plt.get_cmap("plasma")
    for n, i in enumerate(picks):
        norms = _by_distance(records[i]["norms"][layer])
        shown = [(d, v) for d, v in enumerate(norms) if v > 0]
        if shown:
            label = "initialisation" if records[i]["step"] == 0 else f"step {records[i]['step']}"
            color = cmap(0.85 * n / max(1, len(picks) - 1))
            ax.semilogy(*zip(*shown, strict=True), label=label, color=color)
    ax.set_xlabel("distance to the loss (steps)")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title or records[0]["layers"][layer], fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:  # every norm zero: nothing drawn, nothing to label
        ax.legend()
    _save(fig, path)


def gradient_flow_grid(flows: dict[str, list[dict]], path: str | Path, title: str = "") -> None:
    """Side by side: one heat map per configuration, and their curves at initialisation.

    The first (bottom) layer is shown: its dL/dh_t carries every path back to
    the inputs, through the skips of the layers above it in a dilated stack.
    """
    plt = _pyplot()
    flows = {k: v for k, v in flows.items() if v}
    n = len(flows) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.0), dpi=100, squeeze=False)
    for ax, (name, records) in zip(axes[0], flows.items(), strict=False):
        _heatmap(ax, records, 0, name)
    ax = axes[0][-1]
    for name, records in flows.items():
        norms = _by_distance(records[0]["norms"][0])
        shown = [(d, v) for d, v in enumerate(norms) if v > 0]
        if shown:
            ax.semilogy(*zip(*shown, strict=True), label=name)
    ax.set_xlabel("distance to the loss (steps)")
    ax.set_ylabel("||dL/dh_t|| at initialisation")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def compare_curves(
    runs: dict[str, list[dict]],
    baseline: float,
    path: str | Path,
    title: str = "",
    metric: str = "val_loss",
    label: str = "validation metric",
) -> None:
    """Validation metric of every run against steps and against seconds, with the baseline."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    names = sorted({name.rsplit(" ", 1)[0] for name in runs})
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    for name, records in runs.items():
        points = [r for r in records if r.get(metric, r.get("val_loss")) is not None]
        if not points:
            continue
        config = name.rsplit(" ", 1)[0]
        first = name.endswith(" s0")
        for ax, key in zip(axes, ("step", "time"), strict=True):
            ax.semilogy(
                [r[key] for r in points],
                [max(r.get(metric, r.get("val_loss")), 1e-8) for r in points],
                color=colors[config],
                alpha=0.8,
                label=config if first else None,
            )
    for ax, xlabel in zip(axes, ("step", "seconds"), strict=True):
        ax.axhline(
            baseline, color="black", linestyle="--", linewidth=1, label="memoryless baseline"
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def power_method_plot(results: list[dict], path: str | Path) -> None:
    """Norms along the linear recurrence, and the measured slopes beside log ρ."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for r in results:
        axes[0].semilogy(r["state_norms"], label=f"||h_t||, ρ={r['radius']:g}")
        axes[0].semilogy(
            list(reversed(r["gradient_norms"])),
            linestyle="--",
            label=f"||dL/dh_(T-k)||, ρ={r['radius']:g}",
        )
    axes[0].set_xlabel("t (states) or k, the distance to the loss (gradients)")
    axes[0].set_ylabel("norm")
    axes[0].grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    xs = range(len(results))
    width = 0.27
    axes[1].bar([x - width for x in xs], [r["log_radius"] for r in results], width, label="log ρ")
    axes[1].bar(xs, [r["state_slope"] for r in results], width, label="slope of log ||h_t||")
    axes[1].bar(
        [x + width for x in xs],
        [r["gradient_slope"] for r in results],
        width,
        label="slope of log ||dL/dh||",
    )
    axes[1].set_xticks(list(xs), [f"ρ={r['radius']:g}" for r in results])
    axes[1].axhline(0, color="black", linewidth=0.8)
    axes[1].set_ylabel("growth rate per step")
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3, axis="y")
    fig.suptitle("the power method: h_t = W^T h_(t-1)")
    _save(fig, path)


def explode_plot(runs: list[dict], path: str | Path, title: str = "") -> None:
    """Gradient norm (before clipping) at every SGD step, non-finite steps marked at the top."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for run in runs:
        norms = run["grad_norms"]
        label = "no clipping" if run["clip"] is None else f"clipped at {run['clip']:g}"
        finite = [(i, v) for i, v in enumerate(norms) if v is not None]
        line = ax.semilogy(*zip(*finite, strict=True), label=label, alpha=0.85) if finite else None
        bad = [i for i, v in enumerate(norms) if v is None]
        if bad:
            color = line[0].get_color() if line else "red"
            ax.plot(
                bad,
                [1.0] * len(bad),
                "x",
                color=color,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                label=f"{label}: non-finite ({len(bad)})",
            )
    ax.set_xlabel("SGD step")
    ax.set_ylabel("gradient norm before clipping")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)
