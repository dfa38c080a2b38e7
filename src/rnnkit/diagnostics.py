"""Gradient flow through time, measured: dL/dh_t at every step, spectral radii, the power method.

The lecture's argument in numbers. Back-propagated through the simplified
recurrence h_t = W^T h_{t-1}, the gradient at distance k from the loss is
(W^k) dL/dh_T, so its norm changes by a factor of about ρ(W) per step: it
vanishes for a spectral radius below one and explodes above it.

* ``gradient_flow(model, loss_fn)``: the norm of dL/dh_t for every step t and
  every recurrent layer of any model (through ``rnnkit.probes``).
* ``spectral_radius`` / ``recurrent_radii``: of a matrix, of each gate block of a
  cell's recurrent weights, and of the state Jacobian dh_t/dh_{t-1} at the
  zero state (which includes the leaky units' and the LSTM's linear paths).
* ``linear_recurrence``: the power method itself, with the measured rate
  ``log_norm_slope`` to compare with log ρ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .cells import RecurrentCell
from .probes import state_probes

JACOBIAN_LIMIT = 512  # state units up to which recurrent_radii includes the state Jacobian


@dataclass
class GradientFlow:
    """``norms[i][t]``: the batch mean of ||dL/dh_t|| for recurrent layer ``names[i]``."""

    names: list[str]
    norms: list[list[float]]
    loss: float
    radii: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"loss": self.loss, "layers": self.names, "norms": self.norms, "radii": self.radii}

    def decay(self, layer: int = 0, distance: int | None = None) -> float:
        """||dL/dh_T|| / ||dL/dh_{T-distance}|| of one layer (default: the first, over the whole sequence).

        Above one the gradient shrinks going back in time; 1000 means three
        orders of magnitude lost.
        """
        norms = self.norms[layer]
        distance = len(norms) - 1 if distance is None else distance
        far = norms[len(norms) - 1 - distance]
        return norms[-1] / far if far > 0 else math.inf


def gradient_flow(model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]) -> GradientFlow:
    """Norms of dL/dh_t at every step of every ``Recurrent`` layer that ``loss_fn(model)`` runs.

    The model runs in evaluation mode (no dropout), on the time loop, and its
    parameters' ``.grad`` are left untouched. Layers are named by their
    module path (``rnn.layers.0.0``); a layer called twice is listed twice.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), state_probes() as probes:
            loss = loss_fn(model)
        if not probes:
            raise ValueError("the model ran no rnnkit recurrent layer: no hidden state to probe")
        grads = torch.autograd.grad(loss, [p.tensor for p in probes], allow_unused=True)
    finally:
        model.train(was_training)
    names = {module: name for name, module in model.named_modules()}
    out_names, out_norms = [], []
    for probe, grad in zip(probes, grads, strict=True):
        if grad is None:
            grad = torch.zeros_like(probe.tensor)
        out_names.append(names.get(probe.layer, "recurrent"))
        out_norms.append(grad.detach().double().norm(dim=-1).mean(0).tolist())
    radii = {
        names.get(m, "cell"): recurrent_radii(m)
        for m in model.modules()
        if isinstance(m, RecurrentCell)
    }
    return GradientFlow(out_names, out_norms, float(loss.detach()), radii)


def spectral_radius(matrix: Tensor) -> float:
    """The largest eigenvalue magnitude of a square matrix."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"spectral radius needs a square matrix, got shape {tuple(matrix.shape)}")
    matrix = matrix.detach().cpu()
    # double precision for small matrices; above 256 rows float32 is 4x faster and exact enough
    matrix = matrix.double() if matrix.shape[0] <= 256 else matrix.float()
    return float(torch.linalg.eigvals(matrix).abs().max())


def recurrent_radii(cell: RecurrentCell) -> dict[str, float]:
    """Spectral radii of a cell's recurrent weights (one per gate block) and of its state Jacobian.

    ``jacobian`` is the radius of d state_t / d state_{t-1} at the zero state
    and zero input, every part of the state included (h and C for the LSTM):
    the factor by which a small perturbation, or a gradient, grows per step
    near the origin. For a plain tanh Elman network it equals the radius of W.
    It is left out above ``JACOBIAN_LIMIT`` state units (a second or more per
    call), so that recording during training stays cheap.
    """
    radii: dict[str, float] = {}
    for label, matrix in {**cell.recurrent_matrices(), **cell.effective_recurrences()}.items():
        radii[label] = spectral_radius(matrix)
    if sum(cell.state_sizes) <= JACOBIAN_LIMIT:
        radii["jacobian"] = state_jacobian_radius(cell)
    return radii


def state_jacobian_radius(cell: RecurrentCell) -> float:
    """Spectral radius of d state_t / d state_{t-1} at the zero state with zero input."""
    sizes = cell.state_sizes
    like = next(cell.parameters())
    zero_x = torch.zeros(1, cell.input_size, dtype=like.dtype, device=like.device)

    def step(flat: Tensor) -> Tensor:
        state = tuple(part.unsqueeze(0) for part in flat.split(list(sizes)))
        _, new = cell.step(cell.project_input(zero_x), state)
        return torch.cat([s.squeeze(0) for s in new])

    was_training = cell.training
    cell.eval()  # no dropout or zoneout noise in the Jacobian
    try:
        origin = torch.zeros(sum(sizes), dtype=like.dtype, device=like.device)
        jac = torch.autograd.functional.jacobian(step, origin, vectorize=True)
    finally:
        cell.train(was_training)
    return spectral_radius(jac)


@dataclass
class LinearRecurrence:
    """Norms along h_t = W^T h_{t-1} and along the gradient of L = v·h_T sent back to every h_t."""

    radius: float
    state_norms: list[float]  # ||h_t||, t = 0..T
    gradient_norms: list[float]  # ||dL/dh_t||, t = 0..T

    @property
    def predicted_rate(self) -> float:
        return math.log(self.radius)

    def state_rate(self) -> float:
        return log_norm_slope(self.state_norms)

    def gradient_rate(self) -> float:
        """Growth rate of the gradient per step back in time (the distance to the loss)."""
        return log_norm_slope(self.gradient_norms[::-1])


def random_matrix_with_radius(
    size: int, radius: float, generator: torch.Generator | None = None, gap: float = 0.8
) -> Tensor:
    """A random symmetric matrix of spectral radius ``radius``: W = Q diag(λ) Q^T.

    λ_1 = ``radius`` and the other eigenvalues are uniform in
    [-gap·radius, gap·radius], in random orthonormal directions Q. The power
    method converges to the dominant direction like gap^t; after that, norms
    change by exactly the factor ``radius`` per step.
    """
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    rest = (torch.rand(size - 1, generator=generator, dtype=torch.float64) * 2 - 1) * gap * radius
    eigenvalues = torch.cat([torch.tensor([radius], dtype=torch.float64), rest])
    return q @ torch.diag(eigenvalues) @ q.t()


def linear_recurrence(
    radius: float,
    size: int = 64,
    steps: int = 100,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> LinearRecurrence:
    """Run the lecture's power method h_t = W^T h_{t-1} for a random W of spectral radius ``radius``.

    W comes from ``random_matrix_with_radius``; the gradient is that of
    L = v·h_T for a random unit vector v, sent back to every h_t. W, h_0 and v
    are drawn on the CPU (the same for every device), the recurrence runs on ``device``.
    """
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    w = random_matrix_with_radius(size, radius, generator).to(device)
    h = torch.randn(size, generator=generator, dtype=torch.float64).to(device)
    h = (h / h.norm()).requires_grad_(True)
    states = [h]
    for _ in range(steps):
        nxt = states[-1] @ w  # row vector times W: h_t = W^T h_{t-1}
        nxt.retain_grad()
        states.append(nxt)
    v = torch.randn(size, generator=generator, dtype=torch.float64).to(device)
    (states[-1] @ (v / v.norm())).backward()
    return LinearRecurrence(
        radius,
        [float(s.detach().norm()) for s in states],
        [float(s.grad.norm()) for s in states],
    )


def log_norm_slope(norms: list[float], skip_fraction: float = 0.5) -> float:
    """Least-squares slope of log ||·|| against the step, over the last part of the sequence.

    The first ``skip_fraction`` is left out: the power method converges to
    the dominant eigenvector first, and only then grows at the rate log ρ.
    """
    start = int(len(norms) * skip_fraction)
    ys = torch.tensor(norms[start:], dtype=torch.float64).clamp_min(1e-300).log()
    if len(ys) < 2:
        raise ValueError("need at least two norms to fit a slope")
    ts = torch.arange(len(ys), dtype=torch.float64)
    ts = ts - ts.mean()
    return float((ts * (ys - ys.mean())).sum() / (ts * ts).sum())
