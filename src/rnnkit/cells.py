"""One time step of each recurrent cell of the lecture.

A cell computes one step, batch first::

    y_t, state = cell(x_t, state)        # x_t: (B, input_size)

The state is always a tuple of tensors, ``state[0]`` being the vector that is
fed back into the recurrent product (h for Elman, leaky, LSTM and GRU; the
previous output y for Jordan). ``cell.state_sizes`` gives their widths.

Unrolled over a sequence (``rnnkit.Recurrent``) the input projection
``x_t W_x + b`` of all time steps is one matrix product,
``cell.project_input(x)`` on (B, T, input_size), done before the time loop;
the loop then calls ``cell.step(xp_t, state, noise)``, which holds only the
recurrent product and the element-wise work.

Weights are stored in torch's layout (``weight_ih`` of shape (G*H, D),
``weight_hh`` of shape (G*H, H), ``bias_ih``, ``bias_hh``; gates in torch's
order), so the lecture's row-vector matrices are their transposes:
W_xs = weight_ih^T, W_ss = weight_hh^T. This is what lets the stock cells run
on torch's fused kernels with the very same parameter tensors.

Options shared by every cell (``RecurrentCell``):

* ``layer_norm``: layer normalisation of each gate's pre-activation.
* ``recurrent_dropout``: variational dropout of the fed-back vector, one mask
  for all the steps of a sequence (Gal and Ghahramani, 2016).
* ``zoneout``: each unit keeps its previous value with probability p during
  training (Krueger et al., 2017); in evaluation the expectation is used.
* ``transition_depth``: the lecture's deep hidden-to-hidden transition: an MLP
  of ``transition_depth - 1`` tanh layers between s_{t-1} and the cell
  (Pascanu et al., 2014, "DT-RNN").
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels
from .checks import check_choice, check_positive_int, check_probability

State = tuple[Tensor, ...]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}


class GateNorm(nn.Module):
    """Layer normalisation applied separately to each of ``gates`` blocks of width ``size``."""

    no_weight_decay = ("weight", "bias")  # gains and shifts, though two-dimensional

    def __init__(self, gates: int, size: int) -> None:
        super().__init__()
        self.gates, self.size = gates, size
        self.weight = nn.Parameter(torch.ones(gates, size))
        self.bias = nn.Parameter(torch.zeros(gates, size))

    def forward(self, z: Tensor) -> Tensor:
        shape = z.shape
        z = F.layer_norm(z.reshape(*shape[:-1], self.gates, self.size), (self.size,))
        return (z * self.weight + self.bias).reshape(shape)


#: the options every cell is built with, and the value that leaves each off
SHARED_OPTIONS: dict[str, object] = {
    "layer_norm": False,
    "recurrent_dropout": 0.0,
    "zoneout": 0.0,
    "transition_depth": 1,
}

#: the methods that hold a cell's equations: a subclass that overrides one of them
#: computes something else, so it loses the fused and hand-written paths of its base
EQUATION_METHODS = ("project_input", "input_bias", "step", "update", "recurrent", "output")


class RecurrentCell(nn.Module):
    """Base class of all cells: the contract, the step template and the options every cell shares.

    What a cell must define:

    * ``weight_ih`` and ``bias_ih`` (or override ``project_input`` /
      ``input_bias``): the input projection x_t W_x + b, done for all steps
      at once before the time loop;
    * ``state_sizes`` (the widths of the state's parts; ``state[0]`` is the
      vector fed back) and ``output_size``, when they are not ``(hidden_size,)``
      and ``hidden_size``;
    * ``update(xp_t, fed, state) -> new_state``: one step from the projected
      input, where ``fed`` is ``state[0]`` after the deep transition and the
      recurrent dropout; ``output(state)`` when the cell emits something other
      than ``state[0]``.

    What it may declare (class attributes):

    * ``supports``: which of ``SHARED_OPTIONS`` it implements. The template
      ``step`` implements ``recurrent_dropout``, ``zoneout`` and
      ``transition_depth`` for any cell whose ``update`` reads ``fed``; a cell
      that applies layer normalisation to its pre-activations adds
      ``"layer_norm"``. Asking a cell for an option it does not support is a
      ValueError naming both.
    * ``fusable_mode``: torch's fused kernel that computes exactly these
      equations in this weight layout (``"lstm"``, ``"gru"``, ``"rnn_tanh"``).
    * ``gate_names`` (the blocks of ``weight_ih``, ``weight_hh`` and the
      biases, in order), ``forget_gate`` (the gate whose opening keeps the
      state) and ``write_gate`` (the one whose opening overwrites it): what
      the chrono initialisation sets.
    * ``recurrent_matrices()``: the square matrices whose spectral radius
      governs how the state evolves (the diagnostics and ``--radius`` use it).
    * ``no_weight_decay``: names of its own parameters with two or more
      dimensions that are not weight matrices (gains, time constants); the
      trainer's weight decay acts on matrices only and skips every vector.

    A hand-written kernel is registered for a class with
    ``rnnkit.plan.register_kernel``; it serves that class's subclasses as long
    as they leave ``EQUATION_METHODS`` alone. ``rnnkit.cells.register`` gives
    a cell a name that every task's ``--cell`` accepts.
    """

    supports: frozenset[str] = frozenset({"recurrent_dropout", "zoneout", "transition_depth"})
    #: torch's name for the fused kernel that computes this cell ("lstm", "gru", "rnn_tanh", ...);
    #: None where torch has none
    fusable_mode: str | None = None
    gate_names: tuple[str, ...] = ()
    forget_gate: str | None = None
    write_gate: str | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        # Finish a cell once its outermost __init__ has run, so that the options the
        # template implements are built for every subclass, however it was written.
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__

        @functools.wraps(init)
        def finishing_init(self, *args, **kw) -> None:
            init(self, *args, **kw)
            if type(self).__init__ is finishing_init:
                self._finish()

        cls.__init__ = finishing_init

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        transition_depth: int = 1,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.layer_norm = bool(layer_norm)
        self.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = check_probability("zoneout", zoneout)
        self.transition_depth = check_positive_int("transition_depth", transition_depth)
        unsupported = [name for name in self.options_in_use() if name not in self.supports]
        if unsupported:
            known = ", ".join(sorted(self.supports)) or "none"
            raise ValueError(
                f"{type(self).__name__} does not support {', '.join(unsupported)} "
                f"(its shared options: {known})"
            )
        self.deep_transition: nn.Module | None = None

    def _finish(self) -> None:
        if self.transition_depth > 1 and self.deep_transition is None:
            self._build_transition(self.state_sizes[0])

    def options_in_use(self) -> list[str]:
        """The shared options set away from their defaults."""
        return [name for name, off in SHARED_OPTIONS.items() if getattr(self, name) != off]

    def _build_transition(self, size: int) -> None:
        """The deep hidden-to-hidden MLP, on the fed-back vector of width ``size``."""
        layers: list[nn.Module] = []
        for _ in range(self.transition_depth - 1):
            layers += [nn.Linear(size, size), nn.Tanh()]
        self.deep_transition = nn.Sequential(*layers)

    def gate_biases(self, gate: str) -> list[Tensor]:
        """The bias blocks (views) of one named gate: its part of ``bias_ih`` and ``bias_hh``."""
        if gate not in self.gate_names:
            raise ValueError(
                f"{type(self).__name__} has no gate {gate!r} (gates: {self.gate_names})"
            )
        k, h = self.gate_names.index(gate), self.hidden_size
        biases = [getattr(self, name, None) for name in ("bias_ih", "bias_hh")]
        return [b[k * h : (k + 1) * h] for b in biases if b is not None]

    def recurrent_matrices(self) -> dict[str, Tensor]:
        """Named square matrices of the recurrence: by default each gate block of ``weight_hh``."""
        weight = getattr(self, "weight_hh", None)
        if not isinstance(weight, Tensor) or weight.dim() != 2:
            return {}
        h = weight.shape[1]
        if weight.shape[0] % h:
            return {}
        blocks = weight.shape[0] // h
        names = (
            self.gate_names if len(self.gate_names) == blocks else [str(k) for k in range(blocks)]
        )
        if blocks == 1:
            names = [""]
        return {
            f"W{'_' + n if n else ''}": weight[k * h : (k + 1) * h] for k, n in enumerate(names)
        }

    def effective_recurrences(self) -> dict[str, Tensor]:
        """Named square matrices that are not parameters but govern the recurrence (diagnostics)."""
        return {}

    # -- protocol -----------------------------------------------------------------
    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        ref = next(self.parameters())
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        return tuple(
            torch.zeros(batch_size, s, device=device, dtype=dtype) for s in self.state_sizes
        )

    def project_input(self, x: Tensor) -> Tensor:
        """x W_x + b for any leading shape: one matrix product for all time steps."""
        return kernels.linear(x, self.weight_ih, self.input_bias())

    def input_bias(self) -> Tensor | None:
        return self.bias_ih

    def sample_noise(self, batch_size: int, like: Tensor) -> Tensor | None:
        """The recurrent dropout mask, one per sequence, kept for all its steps."""
        p = self.recurrent_dropout
        if not self.training or p == 0.0:
            return None
        keep = torch.empty(batch_size, self.state_sizes[0], device=like.device, dtype=like.dtype)
        return keep.bernoulli_(1.0 - p) / (1.0 - p)

    def step(self, xp_t: Tensor, state: State, noise: Tensor | None = None) -> tuple[Tensor, State]:
        """One step from the projected input ``xp_t = project_input(x_t)``."""
        fed = state[0]
        if self.deep_transition is not None:
            fed = self.deep_transition(fed)
        if noise is not None:
            fed = fed * noise
        new = self.update(xp_t, fed, state)
        if self.zoneout > 0.0:
            new = self._zoneout(state, new)
        return self.output(new), new

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        raise NotImplementedError

    def output(self, state: State) -> Tensor:
        """What the cell emits (and passes to the next layer); the state itself by default."""
        return state[0]

    def forward(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t must have shape (batch, input_size={self.input_size}), got {tuple(x_t.shape)}"
            )
        if state is None:
            state = self.initial_state(x_t.shape[0], x_t.device, x_t.dtype)
        return self.step(self.project_input(x_t), state, self.sample_noise(x_t.shape[0], x_t))

    def _zoneout(self, old: State, new: State) -> State:
        p = self.zoneout
        if self.training:
            out = []
            for o, n in zip(old, new, strict=True):
                keep = torch.empty_like(n).bernoulli_(p)
                out.append(torch.lerp(n, o, keep))
            return tuple(out)
        return tuple(torch.lerp(n, o, p) for o, n in zip(old, new, strict=True))

    def extra_repr(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        for name in ("layer_norm", "recurrent_dropout", "zoneout"):
            if getattr(self, name):
                opts.append(f"{name}={getattr(self, name)}")
        if self.transition_depth > 1:
            opts.append(f"transition_depth={self.transition_depth}")
        return ", ".join(opts)


class _GatedWeights(RecurrentCell):
    """Parameters in torch's layout for a cell with ``gates`` blocks of width H."""

    gates = 1
    supports = RecurrentCell.supports | {"layer_norm"}

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, **options) -> None:
        super().__init__(input_size, hidden_size, **options)
        g, h = self.gates, hidden_size
        self.bias = bool(bias)
        self.weight_ih = nn.Parameter(torch.empty(g * h, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * h, h))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(g * h))
            self.bias_hh = nn.Parameter(torch.empty(g * h))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.norm = GateNorm(g, h) if self.layer_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p = getattr(self, name)
            if p is not None:
                nn.init.uniform_(p, -bound, bound)

    def input_bias(self) -> Tensor | None:
        # b_ih + b_hh folded into the hoisted projection: one add less per step.
        if self.bias_ih is None:
            return None
        return self.bias_ih + self.bias_hh

    def recurrent(self, xp_t: Tensor, fed: Tensor) -> Tensor:
        """xp_t + fed W_hh^T, then the per-gate layer norm when enabled."""
        z = torch.addmm(xp_t, fed, self.weight_hh.t())
        return self.norm(z) if self.norm is not None else z


class ElmanCell(_GatedWeights):
    r"""The simple recurrent neuron (Elman, 1990), a layer of them over a minibatch.

    .. math::
        s_t = \phi(x_t W_{xs} + s_{t-1} W_{ss} + b), \qquad y_t = s_t W_{sy}

    φ is ``"tanh"`` or ``"relu"``. Without ``output_size`` the cell emits its
    state (y_t = s_t), as torch's ``nn.RNNCell`` does; with it, output weights
    W_sy of shape (H, output_size) are added.

    Example::

        cell = ElmanCell(3, 16)
        y, state = cell(torch.randn(8, 3))      # y: (8, 16), state: ((8, 16),)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        output_size: int | None = None,
        bias: bool = True,
        **options,
    ) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias=bias, **options)
        self.phi = _ACTIVATIONS[nonlinearity]
        if output_size is None:
            self.register_parameter("weight_sy", None)
        else:
            check_positive_int("output_size", output_size)
            self.weight_sy = nn.Parameter(torch.empty(output_size, hidden_size))
            nn.init.uniform_(
                self.weight_sy, -1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size)
            )

    @property
    def fusable_mode(self) -> str | None:  # type: ignore[override]
        return None if self.weight_sy is not None else f"rnn_{self.nonlinearity}"

    @property
    def output_size(self) -> int:
        return self.hidden_size if self.weight_sy is None else self.weight_sy.shape[0]

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        return (self.phi(self.recurrent(xp_t, fed)),)

    def output(self, state: State) -> Tensor:
        return state[0] if self.weight_sy is None else state[0] @ self.weight_sy.t()


class JordanCell(RecurrentCell):
    r"""Output-to-hidden recurrence (Jordan, 1986): the only recurrent path is the previous output.

    .. math::
        s_t = \phi(x_t W_{xs} + y_{t-1} W_{ys} + b_s), \qquad y_t = \psi(s_t W_{sy} + b_y)

    The state carried from step to step is y_t alone (width ``output_size``,
    default ``hidden_size``); ψ is ``"tanh"`` by default so that the fed-back
    signal stays bounded, ``"identity"`` or ``"sigmoid"`` otherwise.

    Example::

        cell = JordanCell(3, 16, output_size=4)
        y, state = cell(torch.randn(8, 3))      # y: (8, 4), state: ((8, 4),)
    """

    supports = RecurrentCell.supports | {"layer_norm"}

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        output_size: int | None = None,
        nonlinearity: str = "tanh",
        output_activation: str = "tanh",
        bias: bool = True,
        **options,
    ) -> None:
        super().__init__(input_size, hidden_size, **options)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.output_activation = check_choice(
            "output_activation", output_activation, tuple(_ACTIVATIONS)
        )
        self.phi, self.psi = _ACTIVATIONS[nonlinearity], _ACTIVATIONS[output_activation]
        out = hidden_size if output_size is None else check_positive_int("output_size", output_size)
        self._output_size = out
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_ys = nn.Parameter(torch.empty(hidden_size, out))
        self.weight_sy = nn.Parameter(torch.empty(out, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size)) if bias else None
        self.bias_sy = nn.Parameter(torch.empty(out)) if bias else None
        self.norm = GateNorm(1, hidden_size) if self.layer_norm else None
        bound = 1.0 / math.sqrt(hidden_size)
        for p in (self.weight_ih, self.weight_ys, self.weight_sy, self.bias_ih, self.bias_sy):
            if p is not None:
                nn.init.uniform_(p, -bound, bound)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self._output_size,)

    @property
    def output_size(self) -> int:
        return self._output_size

    def effective_recurrences(self) -> dict[str, Tensor]:
        # y_{t-1} reaches y_t through W_ys then W_sy: their product is the linear loop
        return {"W_sy W_ys": self.weight_sy.t() @ self.weight_ys.t()}

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        z = torch.addmm(xp_t, fed, self.weight_ys.t())
        if self.norm is not None:
            z = self.norm(z)
        s = self.phi(z)
        return (self.psi(F.linear(s, self.weight_sy, self.bias_sy)),)


class LeakyCell(_GatedWeights):
    r"""Leaky integrator units: a linear self-connection with a weight near one.

    .. math::
        h_t = (1 - \alpha) \odot h_{t-1} + \alpha \odot \phi(x_t W + h_{t-1} U + b)

    α is per unit, in (0, 1]. It is initialised across several time scales,
    1/α log-spaced from 1 to ``max_timescale`` steps, so some units follow
    the input and others remember for long (the lecture's multiple time
    scales). ``learn_alpha=True`` makes it a parameter, through a sigmoid so it
    stays in (0, 1).

    Example::

        cell = LeakyCell(3, 16, max_timescale=100)
        y, state = cell(torch.randn(8, 3))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        max_timescale: float = 100.0,
        learn_alpha: bool = False,
        bias: bool = True,
        **options,
    ) -> None:
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        if not max_timescale >= 1.0:
            raise ValueError(f"max_timescale must be >= 1, got {max_timescale!r}")
        super().__init__(input_size, hidden_size, bias=bias, **options)
        self.nonlinearity = nonlinearity
        self.phi = _ACTIVATIONS[nonlinearity]
        timescales = torch.logspace(0.0, math.log10(max_timescale), hidden_size)
        alpha = 1.0 / timescales
        self.learn_alpha = bool(learn_alpha)
        if self.learn_alpha:
            a = alpha.clamp(1e-4, 1 - 1e-4)
            self.alpha_logit = nn.Parameter(torch.log(a) - torch.log1p(-a))
        else:
            self.register_buffer("fixed_alpha", alpha)

    @property
    def alpha(self) -> Tensor:
        return torch.sigmoid(self.alpha_logit) if self.learn_alpha else self.fixed_alpha

    def effective_recurrences(self) -> dict[str, Tensor]:
        alpha = self.alpha.detach()
        return {
            "leaky (1-α)I + αW": torch.diag(1 - alpha) + alpha[:, None] * self.weight_hh.detach()
        }

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        candidate = self.phi(self.recurrent(xp_t, fed))
        return (torch.lerp(state[0], candidate, self.alpha.to(candidate.dtype)),)


class LSTMCell(_GatedWeights):
    r"""Long short-term memory (Hochreiter and Schmidhuber, 1997), as in the lecture.

    With [h_{t-1}, x_t] the concatenation of the short-term state and the input:

    .. math::
        f_t &= \sigma(W_f [h_{t-1}, x_t] + b_f)            && \text{forget gate} \\
        i_t &= \sigma(W_i [h_{t-1}, x_t] + b_i)            && \text{input gate} \\
        \tilde C_t &= \tanh(W_C [h_{t-1}, x_t] + b_C)      && \text{candidate} \\
        C_t &= f_t \odot C_{t-1} + i_t \odot \tilde C_t    && \text{long-term state} \\
        o_t &= \sigma(W_o [h_{t-1}, x_t] + b_o)            && \text{output gate} \\
        h_t &= o_t \odot \tanh(C_t)                        && \text{short-term state, the output}

    The state is (h, C). Gates are stored in torch's order (i, f, C̃, o) so
    weights are exchangeable with ``nn.LSTM``. The forget gate's bias starts at
    ``forget_bias`` (1.0) so the cell remembers by default (Jozefowicz et al., 2015).

    Example::

        cell = LSTMCell(3, 16)
        y, (h, c) = cell(torch.randn(8, 3))
    """

    gates = 4
    fusable_mode = "lstm"
    gate_names = ("i", "f", "C", "o")
    forget_gate, write_gate = "f", "i"

    def __init__(
        self, input_size: int, hidden_size: int, *, forget_bias: float = 1.0, **options
    ) -> None:
        self.forget_bias = float(forget_bias)
        super().__init__(input_size, hidden_size, **options)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias_ih is not None:
            h = self.hidden_size
            with torch.no_grad():
                self.bias_ih[h : 2 * h].fill_(self.forget_bias)
                self.bias_hh[h : 2 * h].zero_()

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.hidden_size)

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        h = self.hidden_size
        z = self.recurrent(xp_t, fed)
        i_f = torch.sigmoid(z[:, : 2 * h])
        g = torch.tanh(z[:, 2 * h : 3 * h])
        o = torch.sigmoid(z[:, 3 * h :])
        c = torch.addcmul(i_f[:, h:] * state[1], i_f[:, :h], g)
        return (o * torch.tanh(c), c)


class GRUCell(_GatedWeights):
    r"""Gated recurrent unit (Cho et al., 2014) in torch's gate convention.

    .. math::
        r_t &= \sigma(x_t W_{xr} + h_{t-1} W_{hr} + b_r)                    && \text{reset gate} \\
        z_t &= \sigma(x_t W_{xz} + h_{t-1} W_{hz} + b_z)                    && \text{update gate} \\
        n_t &= \tanh(x_t W_{xn} + b_{xn} + r_t \odot (h_{t-1} W_{hn} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    One update gate z decides both what is forgotten and what is written; there
    is no output gate and the whole state is emitted. The reset gate is applied
    after the recurrent product (as torch and cuDNN do), so weights are
    exchangeable with ``nn.GRU``. With ``layer_norm`` the r and z
    pre-activations and the candidate's are normalised separately.

    Example::

        cell = GRUCell(3, 16)
        y, (h,) = cell(torch.randn(8, 3))
    """

    gates = 3
    fusable_mode = "gru"
    gate_names = ("r", "z", "n")
    forget_gate = "z"  # h_t = lerp(n_t, h_{t-1}, z_t): z open keeps the state

    def input_bias(self) -> Tensor | None:
        # b_hn stays inside r ⊙ (...), so only b_ih is hoisted.
        return self.bias_ih

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        h = self.hidden_size
        gh = F.linear(fed, self.weight_hh, self.bias_hh)
        rz_pre = xp_t[:, : 2 * h] + gh[:, : 2 * h]
        if self.norm is not None:
            # normalise r and z pre-activations; the candidate's is normalised below
            rz_pre = F.layer_norm(rz_pre.view(-1, 2, h), (h,)).view(-1, 2 * h)
            rz_pre = rz_pre * self.norm.weight[:2].reshape(-1) + self.norm.bias[:2].reshape(-1)
        rz = torch.sigmoid(rz_pre)
        r, z = rz[:, :h], rz[:, h:]
        n_pre = torch.addcmul(xp_t[:, 2 * h :], r, gh[:, 2 * h :])
        if self.norm is not None:
            n_pre = F.layer_norm(n_pre, (h,), self.norm.weight[2], self.norm.bias[2])
        n = torch.tanh(n_pre)
        return (torch.lerp(n, state[0], z),)


CELLS: dict[str, type[RecurrentCell]] = {
    "elman": ElmanCell,
    "jordan": JordanCell,
    "leaky": LeakyCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
}

CellSpec = str | type[RecurrentCell] | Callable[..., RecurrentCell]


def register(name: str, cls: type[RecurrentCell]) -> type[RecurrentCell]:
    """Give a cell class a name that ``RNN``, every model and every task's ``--cell`` accept.

    Registering the same class again, or a new definition of it (a module or a
    notebook cell run again), replaces it; another class under a taken name is
    a ValueError. Returns the class, so it also serves as a decorator
    through ``functools.partial`` or a lambda.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a cell's name must be a non-empty string without ':', got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, RecurrentCell)):
        raise ValueError(f"register takes a RecurrentCell subclass, got {cls!r}")
    taken = CELLS.get(name, cls)
    if taken is not cls and import_path(taken) != import_path(cls):  # a redefinition may replace
        raise ValueError(f"the cell name {name!r} is taken by {taken.__qualname__}")
    CELLS[name] = cls
    return cls


def import_path(cls: type) -> str:
    """``module:QualName``, the form ``resolve`` and ``--cell`` read back."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve(cell: CellSpec) -> CellSpec:
    """A registered name, ``package.module:Class`` (imported now) or a class or factory, checked."""
    if not isinstance(cell, str):
        if callable(cell):
            return cell
        raise ValueError(
            f"cell must be a name, 'module:Class', a cell class or a factory, got {cell!r}"
        )
    if cell in CELLS:
        return CELLS[cell]
    if ":" not in cell:
        raise ValueError(
            f"unknown cell {cell!r}: choose from {', '.join(sorted(CELLS))} "
            "or name a class as package.module:Class"
        )
    module_name, _, qualname = cell.partition(":")
    try:
        found: object = _import(module_name)
    except ImportError as error:
        raise ValueError(f"cell {cell!r}: cannot import module {module_name!r} ({error})") from None
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ValueError(f"cell {cell!r}: module {module_name!r} has no {qualname!r}")
    if not (isinstance(found, type) and issubclass(found, RecurrentCell)):
        raise ValueError(f"cell {cell!r} is not a subclass of rnnkit.cells.RecurrentCell")
    return found


def _import(module_name: str):
    """Import a module, searching the current folder last (as ``python -m`` would search it)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        here = os.getcwd()
        if here in sys.path or not (error.name or "").split(".")[0] == module_name.split(".")[0]:
            raise
        sys.path.append(here)
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError:
            sys.path.remove(here)
            raise error from None


def cell_name(cell: CellSpec) -> str:
    """How a cell is written in config.json and on the command line: its name or import path."""
    if isinstance(cell, str):
        return cell
    for name, cls in CELLS.items():
        if cls is cell:
            return name
    return import_path(cell) if isinstance(cell, type) else getattr(cell, "__name__", "custom")


_NOT_OPTIONS = ("self", "input_size", "hidden_size", *SHARED_OPTIONS)


def cell_options(cell: CellSpec) -> dict[str, inspect.Parameter]:
    """The cell's own keyword arguments (beyond the sizes and ``SHARED_OPTIONS``), by name.

    Read from the signatures of its ``__init__`` and, while those pass
    ``**options`` on, of its bases'.
    """
    classes = inspect.getmro(cell) if isinstance(cell, type) else (cell,)
    found: dict[str, inspect.Parameter] = {}
    for cls in classes:
        init = cls.__dict__.get("__init__") if isinstance(cell, type) else cls
        if init is None:
            continue
        if cls is RecurrentCell or cls is nn.Module or cls is object:
            break
        params = inspect.signature(inspect.unwrap(init)).parameters.values()
        passes_on = False
        for param in params:
            if param.kind is param.VAR_KEYWORD:
                passes_on = True
            elif param.kind is not param.VAR_POSITIONAL and param.name not in _NOT_OPTIONS:
                found.setdefault(param.name, param)
        if not passes_on:
            break
    return found


def check_cell_options(cell: CellSpec, options: dict) -> dict:
    """Raise a ValueError naming an option the cell does not take, and the ones it does."""
    if not isinstance(cell, type):
        params = inspect.signature(cell).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return options  # a factory that takes anything: the cell it builds will say
    known = cell_options(cell)
    unknown = [key for key in options if key not in known and key not in SHARED_OPTIONS]
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ValueError(
            f"cell {cell_name(cell)} takes no option {', '.join(map(repr, unknown))} "
            f"(its options: {names})"
        )
    return options


def make_cell(cell: CellSpec, input_size: int, hidden_size: int, **kwargs) -> RecurrentCell:
    """Build a cell from a registry name, an import path, a class or a factory ``f(input_size, hidden_size, **kw)``."""
    factory = resolve(cell)
    check_cell_options(factory, kwargs)
    built = factory(input_size, hidden_size, **kwargs)
    if not isinstance(built, RecurrentCell):
        raise ValueError(
            f"the cell factory {cell!r} returned {type(built).__name__}, not a RecurrentCell"
        )
    return built
