"""How an RNN runs: torch's fused kernel, a hand-written loop kernel, or the autograd loop.

One decision, made from what the cells declare (``rnnkit.cells.RecurrentCell``):

1. **fused**: torch's kernels (oneDNN on the CPU, cuDNN on GPUs) when every
   cell names the same ``fusable_mode``, no option in ``LOOP_ONLY`` is in use,
   no layer is dilated, and no class between the cell's own and the one that
   declared the mode changes the equations (``EQUATION_METHODS``);
2. **kernel**: otherwise the time loop, with the hand-written backward pass of
   ``rnnkit.kernels`` when one is registered for the cell's class or a base
   whose equations it keeps, and no loop-only option is in use;
3. **autograd**: the cell's own ``step`` in a Python loop, for everything
   else (custom cells, the loop-only options).

``RNN.plan`` holds the outcome with its reason; ``repr(rnn)`` shows it.
Two things change the path of a single call, not the plan: recording the
state probes of ``rnnkit.diagnostics`` (autograd loop) and one step through
a stack of several layers under ``fused="auto"`` (the loop is faster there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from torch import Tensor

from . import kernels
from .cells import (
    EQUATION_METHODS,
    SHARED_OPTIONS,
    ElmanCell,
    GRUCell,
    JordanCell,
    LeakyCell,
    LSTMCell,
    RecurrentCell,
    State,
)

#: the options that live in a cell's own ``step``: neither torch's fused kernels nor the
#: hand-written ones compute them, so any of them in use means the autograd loop
LOOP_ONLY: tuple[str, ...] = tuple(SHARED_OPTIONS)

#: (cell, projected inputs (T, B, G), initial state) -> every state part, time-major (T, B, S)
Kernel = Callable[[RecurrentCell, Tensor, State], tuple[Tensor, ...]]

_KERNELS: dict[type, Kernel] = {}
_use_kernels = True


def register_kernel(cls: type[RecurrentCell], kernel: Kernel) -> None:
    """Run ``cls``, and its subclasses that keep its equations, on ``kernel``.

    A kernel must compute exactly ``cls``'s ``update`` (and return the state
    parts whose ``output`` gives the cell's outputs); check it against the
    autograd loop and by gradcheck, as tests/test_kernels.py does for the stock cells.
    """
    if not (isinstance(cls, type) and issubclass(cls, RecurrentCell)):
        raise ValueError(f"register_kernel takes a RecurrentCell subclass, got {cls!r}")
    _KERNELS[cls] = kernel


register_kernel(
    ElmanCell, lambda c, xp, s: (kernels.ElmanKernel.apply(xp, s[0], c.weight_hh, c.nonlinearity),)
)
register_kernel(
    LeakyCell,
    lambda c, xp, s: (
        kernels.LeakyKernel.apply(xp, s[0], c.weight_hh, c.alpha.to(xp.dtype), c.nonlinearity),
    ),
)
register_kernel(LSTMCell, lambda c, xp, s: kernels.LSTMKernel.apply(xp, s[0], s[1], c.weight_hh))
register_kernel(
    GRUCell, lambda c, xp, s: (kernels.GRUKernel.apply(xp, s[0], c.weight_hh, c.bias_hh),)
)
register_kernel(
    JordanCell,
    lambda c, xp, s: (
        kernels.JordanKernel.apply(
            xp, s[0], c.weight_ys, c.weight_sy, c.bias_sy, c.nonlinearity, c.output_activation
        ),
    ),
)


@contextlib.contextmanager
def autograd_loop() -> Iterator[None]:
    """Within this block every cell runs its own ``step`` under autograd (for tests and comparisons)."""
    global _use_kernels
    saved, _use_kernels = _use_kernels, False
    try:
        yield
    finally:
        _use_kernels = saved


def changed_equations(cls: type, base: type) -> str | None:
    """What in ``cls``'s own line from ``base`` (excluded) overrides an equation method, or None."""
    for klass in cls.__mro__:
        if klass is base:
            return None
        for method in EQUATION_METHODS:
            if method in klass.__dict__:
                return f"{klass.__name__} overrides {method}"
    return None


def _declaring(cls: type, attribute: str) -> type:
    return next(k for k in cls.__mro__ if attribute in k.__dict__)


def kernel_choice(cell: RecurrentCell) -> tuple[Kernel | None, str]:
    """The hand-written kernel for this cell, or None, and why."""
    if not _use_kernels:
        return None, "the autograd loop is forced"
    in_use = cell.options_in_use()
    if in_use:
        return None, f"{', '.join(in_use)} run in the cell's own step"
    for klass in type(cell).__mro__:
        if klass in _KERNELS:
            changed = changed_equations(type(cell), klass)
            if changed:
                return None, f"{changed}, so the {klass.__name__} kernel does not apply"
            return _KERNELS[klass], f"the hand-written {klass.__name__} kernel"
    return None, f"no kernel is registered for {type(cell).__name__}"


def fused_blockers(cells: Sequence[RecurrentCell], dilations: Sequence[int]) -> list[str]:
    """What keeps these cells off torch's fused kernels (empty if nothing)."""
    found: list[str] = []
    for cell in cells:
        if cell.fusable_mode is None:
            found.append(f"cell={type(cell).__name__}")
        else:
            changed = changed_equations(type(cell), _declaring(type(cell), "fusable_mode"))
            if changed:
                found.append(changed)
        found += [name for name in cell.options_in_use() if name in LOOP_ONLY]
    if any(d != 1 for d in dilations):
        found.append("dilations")
    if len({c.fusable_mode for c in cells}) > 1:
        found.append("mixed cells")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Plan:
    """How an RNN runs (``path``: "fused", "kernel" or "autograd") and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def plan(cells: Sequence[RecurrentCell], dilations: Sequence[int], fused: bool | str) -> Plan:
    """The one decision between the three paths; see the module's docstring."""
    blockers = fused_blockers(cells, dilations)
    if fused is not False and not blockers:
        return Plan("fused", f"torch's {cells[0].fusable_mode} kernel")
    not_fused = "fused=False" if fused is False else ", ".join(blockers)
    choices = [kernel_choice(cell) for cell in cells]
    slow = next((reason for kernel, reason in choices if kernel is None), None)
    if slow is None:
        return Plan("kernel", f"{choices[0][1]}; not fused: {not_fused}")
    return Plan("autograd", f"{slow}; not fused: {not_fused}")
