"""Unrolling a cell over time (``Recurrent``) and the RNN block built from it (``RNN``).

``Recurrent`` is one cell, one direction, one layer: the lecture's unrolled
network, trained by backpropagation through time simply because autograd
follows the loop. ``RNN`` stacks layers and directions, and runs on torch's
fused kernels (oneDNN on the CPU, cuDNN on GPUs) whenever the cell and the
options allow; the time loop otherwise. Both paths use the same parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fused as fused_path
from . import plan as execution
from . import probes
from .cells import CellSpec, RecurrentCell, State, cell_name, make_cell, resolve
from .checks import check_positive_int, check_probability
from .layers import last_step
from .padding import check_lengths, reverse_padded
from .scan import scan


def check_input(x: Tensor, width: int, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != width:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (batch, time, input_size={width}), got {shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step, got shape {tuple(x.shape)}")


def last_steps(history: Tensor, steps: int) -> Tensor:
    """The last ``steps`` entries of a history (its steps on dimension -2). A shorter one is
    lengthened with copies of its first entry: a layer never reads steps before its dilation."""
    history = history[..., -steps:, :]
    missing = steps - history.shape[-2]
    if not missing:
        return history
    first = history[..., :1, :].expand(*history.shape[:-2], missing, history.shape[-1])
    return torch.cat([first, history], -2)


class Recurrent(nn.Module):
    """One cell unrolled over time, batch first.

    ``forward(x, state=None, lengths=None) -> (y, final)`` with x of shape
    (B, T, input_size) and y of shape (B, T, cell.output_size). With
    ``lengths``, padded steps neither change the state nor produce output
    (zeros), and ``final`` is each sequence's state at its own last step.
    ``reverse=True`` runs each sequence backwards within its own length.
    ``dilation=d`` connects step t to step t-d: the lecture's skip connections
    through time, computed as d interleaved chains in one batch. Continuing a
    dilated sequence needs the last d states, not the last one: with d > 1,
    ``final`` holds each part as (B, d, size), the states of the last d steps
    in time order (``[:, -1]`` is the last step's), and ``state`` takes that
    history or a plain (B, size) state, which then starts every chain.

    Example::

        layer = Recurrent(LSTMCell(3, 16), reverse=True)
        y, (h, c) = layer(torch.randn(8, 20, 3), lengths=torch.randint(1, 21, (8,)))
    """

    def __init__(self, cell: RecurrentCell, reverse: bool = False, dilation: int = 1) -> None:
        super().__init__()
        self.cell = cell
        self.reverse = bool(reverse)
        self.dilation = check_positive_int("dilation", dilation)

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | Sequence[int] | None = None
    ) -> tuple[Tensor, State]:
        check_input(x, self.cell.input_size)
        batch, steps = x.shape[:2]
        lengths = check_lengths(lengths, batch, steps)
        if state is None:
            state = self.cell.initial_state(batch, x.device, x.dtype)
        else:
            state = self._check_state(state, batch)
        probe = probes.new_probe(self, x, self.cell.state_sizes[0])
        if self.reverse:
            x = reverse_padded(x, lengths)
            probe = None if probe is None else reverse_padded(probe, lengths)
        if self.dilation == 1:
            y, final = scan(self.cell, x, state, lengths, probe=probe)
        else:
            y, final = self._dilated(x, state, lengths, probe)
        if self.reverse:
            y = reverse_padded(y, lengths)
        return y, final

    def _check_state(self, state: State | Tensor, batch: int) -> State:
        if isinstance(state, Tensor):
            state = (state,)
        d = self.dilation
        plain = [(batch, s) for s in self.cell.state_sizes]
        history = [(batch, d, s) for s in self.cell.state_sizes]
        got = [tuple(s.shape) for s in state]
        if got != plain and (d == 1 or got != history):
            accepted = f"{plain}" + ("" if d == 1 else f" or the last {d} steps' {history}")
            raise ValueError(f"state must hold tensors of shapes {accepted}, got {got}")
        return tuple(state)

    def _dilated(
        self, x: Tensor, state: State, lengths: Tensor | None, probe: Tensor | None
    ) -> tuple[Tensor, State]:
        # Step t depends on step t-d: the sequence is d interleaved chains, which run
        # side by side as a batch of B*d ordinary sequences.
        d, (batch, steps, _) = self.dilation, x.shape
        chain_steps = math.ceil(steps / d)
        full = torch.full((batch,), steps) if lengths is None else lengths

        def to_chains(t: Tensor) -> Tensor:
            t = F.pad(t, (0, 0, 0, chain_steps * d - steps))
            width = t.shape[-1]
            return (
                t.view(batch, chain_steps, d, width)
                .transpose(1, 2)
                .reshape(batch * d, chain_steps, width)
            )

        x = to_chains(x)
        probe = None if probe is None else to_chains(probe)
        offsets = torch.arange(d)
        chain_lengths = ((full[:, None] - offsets[None, :] + d - 1) // d).clamp(min=0).reshape(-1)
        # chain c starts from the state at step c - d: the history's entry c
        state = tuple(
            (s if s.dim() == 3 else s.unsqueeze(1).expand(-1, d, -1)).reshape(batch * d, -1)
            for s in state
        )
        y, final = scan(self.cell, x, state, chain_lengths, allow_empty=True, probe=probe)
        y = y.view(batch, d, chain_steps, -1).transpose(1, 2).reshape(batch, chain_steps * d, -1)
        # the state at step L - d + k ends chain (L + k) mod d; a chain that never ran
        # (L < d) still holds its start, the state at that same step
        order = ((full[:, None] + offsets[None, :]) % d).to(x.device)
        final = tuple(
            f.view(batch, d, -1).gather(1, order.unsqueeze(-1).expand(-1, -1, f.shape[-1]))
            for f in final
        )
        return y[:, :steps], final

    def extra_repr(self) -> str:
        return f"reverse={self.reverse}, dilation={self.dilation}"


FusedOption = bool | str


class RNN(nn.Module):
    """Stacked, optionally bidirectional recurrent layers of any cell; batch first.

    ``forward(x, state=None, lengths=None) -> (y, final)``: y is (B, T,
    directions * output_size); ``final`` is in torch's layout, a tensor of
    shape (num_layers * directions, B, H) for single-state cells and a tuple
    ``(h_n, c_n)`` for the LSTM, so an ``nn.LSTM`` can be swapped for it.
    With dilations (max D > 1), each part also keeps the last D steps, (num_layers
    * directions, B, D, H), ``[:, :, -1]`` the last step's, so that passing
    ``final`` back continues the sequence exactly (truncated BPTT, generation);
    a plain (num_layers * directions, B, H) state is taken too.

    Args:
        cell: a registered name (``"elman"``, ``"jordan"``, ``"leaky"``, ``"lstm"``,
            ``"gru"``, or one given to ``rnnkit.cells.register``), an import path
            ``"package.module:Class"``, a ``RecurrentCell`` subclass or a factory
            ``f(input_size, hidden_size, **options)``.
        dropout: dropout on the outputs of every layer but the last.
        dilations: one dilation per layer, e.g. ``[1, 2, 4, 8]`` (skip connections through time).
        transition_depth: depth of the hidden-to-hidden transition (deep transition RNN).
        layer_norm, recurrent_dropout, zoneout: cell options, see ``rnnkit.cells``.
        fused: ``"auto"`` runs torch's fused kernels whenever the configuration
            allows; ``False`` forces the time loop; ``True`` demands the fused
            path and raises a ValueError naming what prevents it. ``rnn.plan``
            says which path runs and why (``rnnkit.plan``).
        **cell_options: passed to every cell (``nonlinearity``, ``bias``, ...).

    Example::

        rnn = RNN("gru", 8, 32, num_layers=2, bidirectional=True)
        y, h_n = rnn(torch.randn(4, 50, 8))    # y: (4, 50, 64), h_n: (4, 4, 32)
    """

    def __init__(
        self,
        cell: CellSpec = "lstm",
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        dilations: Sequence[int] | None = None,
        transition_depth: int = 1,
        fused: FusedOption = "auto",
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        **cell_options,
    ) -> None:
        super().__init__()
        self.cell_name = cell_name(cell)
        cell = resolve(cell)
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dropout = check_probability("dropout", dropout)
        if fused not in ("auto", True, False):
            raise ValueError(f"fused must be one of 'auto', True, False, got {fused!r}")
        dilations = [1] * self.num_layers if dilations is None else list(dilations)
        if len(dilations) != self.num_layers:
            raise ValueError(
                f"dilations must give one value per layer ({self.num_layers}), got {dilations}"
            )
        for d in dilations:
            check_positive_int("dilations", d)
        self.dilations = dilations
        self.history = max(dilations) if max(dilations) > 1 else 0  # steps a state keeps
        options = dict(
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            transition_depth=transition_depth,
            **cell_options,
        )
        layers = []
        width = self.input_size
        for layer in range(self.num_layers):
            directions = nn.ModuleList(
                Recurrent(
                    make_cell(cell, width, self.hidden_size, **options),
                    reverse=bool(k),
                    dilation=dilations[layer],
                )
                for k in range(self.num_directions)
            )
            layers.append(directions)
            width = directions[0].cell.output_size * self.num_directions
        self.layers = nn.ModuleList(layers)
        self.output_size = width
        self.fused = fused
        blockers = self.fused_blockers()
        if fused is True and blockers:
            raise ValueError(
                f"fused=True is impossible with {', '.join(blockers)}; use fused='auto' or False"
            )

    # -- introspection ------------------------------------------------------------
    @property
    def cells(self) -> list[RecurrentCell]:
        return [rec.cell for layer in self.layers for rec in layer]

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.cells[0].state_sizes

    def fused_blockers(self) -> list[str]:
        """What keeps this RNN off torch's fused kernels (empty if nothing); see ``rnnkit.plan``."""
        return execution.fused_blockers(self.cells, self.dilations)

    @property
    def plan(self) -> execution.Plan:
        """How this RNN runs, and why: fused, the hand-written kernel, or the autograd loop."""
        return execution.plan(self.cells, self.dilations, self.fused)

    @property
    def uses_fused(self) -> bool:
        return self.plan.path == "fused"

    def _apply(self, fn, recurse=True):  # .to(), .cuda(), .half() all come through here
        super()._apply(fn, recurse)
        if self.uses_fused:
            fused_path.flatten(self)
        return self

    # -- forward ------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        state: Tensor | tuple[Tensor, ...] | None = None,
        lengths: Tensor | Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
        check_input(x, self.input_size)
        batch, steps = x.shape[:2]
        lengths = check_lengths(lengths, batch, steps)
        # One step at a time (generation) through several layers, torch's fused call costs
        # more than the step (3.8 ms against 0.95 ms for a trained 2 x 512 LSTM on this CPU;
        # with one layer it is the faster, 0.31 against 0.39 ms): "auto" then takes the loop.
        single_step_stack = steps == 1 and self.num_layers > 1 and self.fused == "auto"
        if state is not None and not self.history:  # a dilated stack's state: its last step
            state = last_step(state)
        states = None if state is None else self._split_state(state, batch)
        if self.uses_fused and not single_step_stack and not probes.recording():
            hx = None if state is None else self._stack_state(states)
            y, final = fused_path.run(self, x, hx, lengths)
            return y, final if len(final) > 1 else final[0]
        finals: list[list[State]] = []
        inp = x
        for index, layer in enumerate(self.layers):
            outs, layer_finals = [], []
            for k, rec in enumerate(layer):
                y, f = rec(inp, None if states is None else states[index][k], lengths)
                outs.append(y)
                layer_finals.append(f)
            finals.append(layer_finals)
            inp = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
            if self.dropout and self.training and index < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, True)
        final = self._stack_state(finals)
        return inp, final if len(final) > 1 else final[0]

    def initial_state(
        self, batch_size: int, device=None, dtype=None
    ) -> Tensor | tuple[Tensor, ...]:
        """Zeros in the layout of ``final``."""
        per = [
            [rec.cell.initial_state(batch_size, device, dtype) for rec in layer]
            for layer in self.layers
        ]
        final = self._stack_state(per)
        return final if len(final) > 1 else final[0]

    def _stack_state(self, per_layer: list[list[State]]) -> tuple[Tensor, ...]:
        parts = len(per_layer[0][0])

        def kept(s: Tensor) -> Tensor:  # a layer's state or history, as the last D steps
            if not self.history:
                return s
            return last_steps(s if s.dim() == 3 else s.unsqueeze(1), self.history)

        return tuple(
            torch.stack([kept(s[i]) for layer in per_layer for s in layer], 0) for i in range(parts)
        )

    def _split_state(self, state: Tensor | tuple[Tensor, ...], batch: int) -> list[list[State]]:
        parts = (state,) if isinstance(state, Tensor) else tuple(state)
        rows = self.num_layers * self.num_directions
        expected = [(rows, batch, s) for s in self.state_sizes]
        got = [tuple(p.shape) for p in parts]
        # a history of any length is taken (an encoder's with other dilations, say)
        plain = [(*g[:2], g[3]) if len(g) == 4 else g for g in got]
        if plain != expected or (self.history == 0 and got != expected):
            accepted = f"{expected} (layers * directions, batch, size)"
            if self.history:
                accepted += f" or with the last {self.history} steps (rows, batch, steps, size)"
            raise ValueError(f"state must hold tensors of shapes {accepted}, got {got}")

        def of_layer(p: Tensor, layer: int) -> Tensor:
            d = self.dilations[layer]
            if p.dim() == 3:
                return p
            return p[:, :, -1] if d == 1 else last_steps(p, d)

        return [
            [
                tuple(of_layer(p, layer)[layer * self.num_directions + k] for p in parts)
                for k in range(self.num_directions)
            ]
            for layer in range(self.num_layers)
        ]

    # -- torch interop ------------------------------------------------------------
    @classmethod
    def from_torch(cls, module: nn.RNNBase, **options) -> RNN:
        """An RNN holding (copies of) the weights of a ``torch.nn.RNN``, ``LSTM`` or ``GRU``."""
        return fused_path.from_torch(cls, module, **options)

    def to_torch(self) -> nn.RNNBase:
        """An equivalent ``torch.nn`` module (batch first) with copies of these weights."""
        return fused_path.to_torch(self)

    def extra_repr(self) -> str:
        extra = f"fused={self.fused}, plan={self.plan}"
        if self.dropout:
            extra += f", dropout={self.dropout}"
        if any(d != 1 for d in self.dilations):
            extra += f", dilations={self.dilations}"
        return extra
