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

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels

State = tuple[Tensor, ...]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}


def check_positive_int(name: str, value: object) -> int:
    """Raise a ValueError naming ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_probability(name: str, value: float, upper_inclusive: bool = False) -> float:
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")
    return float(value)


def check_choice(name: str, value: str, allowed: dict | tuple | list) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


class GateNorm(nn.Module):
    """Layer normalisation applied separately to each of ``gates`` blocks of width ``size``."""

    def __init__(self, gates: int, size: int) -> None:
        super().__init__()
        self.gates, self.size = gates, size
        self.weight = nn.Parameter(torch.ones(gates, size))
        self.bias = nn.Parameter(torch.zeros(gates, size))

    def forward(self, z: Tensor) -> Tensor:
        shape = z.shape
        z = F.layer_norm(z.reshape(*shape[:-1], self.gates, self.size), (self.size,))
        return (z * self.weight + self.bias).reshape(shape)


class RecurrentCell(nn.Module):
    """Base class of all cells: the step template and the options every cell shares.

    A subclass sets ``weight_ih`` / ``bias_ih`` (or overrides ``project_input``),
    ``state_sizes``, ``output_size`` and implements ``update``. Any module that
    follows this protocol can be unrolled by ``rnnkit.Recurrent``.
    """

    #: torch's name for the fused kernel that computes this cell ("lstm", "gru", "rnn_tanh", ...);
    #: None where torch has none
    fusable_mode: str | None = None

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
        self.deep_transition: nn.Module | None = None

    def _build_transition(self, size: int) -> None:
        """The deep hidden-to-hidden MLP, on the fed-back vector of width ``size``."""
        if self.transition_depth > 1:
            layers: list[nn.Module] = []
            for _ in range(self.transition_depth - 1):
                layers += [nn.Linear(size, size), nn.Tanh()]
            self.deep_transition = nn.Sequential(*layers)

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

    def loop_only_options(self) -> list[str]:
        """Names of the options in use that torch's fused kernels cannot run."""
        used = []
        if self.fusable_mode is None:
            used.append(f"cell={type(self).__name__}")
        if self.layer_norm:
            used.append("layer_norm")
        if self.recurrent_dropout:
            used.append("recurrent_dropout")
        if self.zoneout:
            used.append("zoneout")
        if self.transition_depth > 1:
            used.append("transition_depth")
        return used

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
        self._build_transition(hidden_size)
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
        self._build_transition(out)
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


def make_cell(
    cell: str | type[RecurrentCell] | Callable[..., RecurrentCell],
    input_size: int,
    hidden_size: int,
    **kwargs,
) -> RecurrentCell:
    """Build a cell from a registry name, a class or a factory ``f(input_size, hidden_size, **kw)``."""
    if isinstance(cell, str):
        check_choice("cell", cell, CELLS)
        return CELLS[cell](input_size, hidden_size, **kwargs)
    if callable(cell):
        return cell(input_size, hidden_size, **kwargs)
    raise ValueError(f"cell must be one of {sorted(CELLS)} or a cell class, got {cell!r}")
