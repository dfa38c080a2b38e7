"""Two cells written outside rnnkit, the way a user writes one: the plug-in contract's test bed.

Each subclasses ``rnnkit.cells.RecurrentCell``, defines its weights in
torch's layout, ``update`` and what it declares, and nothing else; the tests
in test_cell_plugin.py run them through every architecture, option and task.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.cells import RecurrentCell, State


class IndRNNCell(RecurrentCell):
    r"""Independently recurrent units (Li et al., 2018): each unit feeds back only itself.

    .. math::
        h_t = \phi(x_t W + u \odot h_{t-1} + b)

    ``u`` is a vector, so the recurrence is element-wise; it starts in
    ``[-max_recurrent, max_recurrent]``, which bounds the gradient's growth per step.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "relu",
        max_recurrent: float = 1.0,
        **options,
    ) -> None:
        super().__init__(input_size, hidden_size, **options)
        if nonlinearity not in ("relu", "tanh"):
            raise ValueError(f"nonlinearity must be relu or tanh, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.zeros(hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size))  # the vector u
        bound = 1.0 / math.sqrt(input_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -max_recurrent, max_recurrent)

    def recurrent_matrices(self) -> dict[str, Tensor]:
        return {}  # u is a vector: there is no matrix whose radius to set

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        z = xp_t + self.weight_hh * fed
        return (torch.relu(z) if self.nonlinearity == "relu" else torch.tanh(z),)


class MinGRUCell(RecurrentCell):
    r"""The minimal GRU (Feng et al., 2024): gates that read the input only.

    .. math::
        z_t = \sigma(x_t W_z + b_z), \qquad \tilde h_t = x_t W_h + b_h, \qquad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    z opening writes the state, so it is the ``write_gate`` the chrono
    initialisation sets; the deep transition and the recurrent dropout act on
    the fed-back h_{t-1}, as the template step does for every cell.
    """

    gate_names = ("z", "h")
    write_gate = "z"

    def __init__(self, input_size: int, hidden_size: int, **options) -> None:
        super().__init__(input_size, hidden_size, **options)
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.zeros(2 * hidden_size))
        bound = 1.0 / math.sqrt(input_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)

    def update(self, xp_t: Tensor, fed: Tensor, state: State) -> State:
        h = self.hidden_size
        z = torch.sigmoid(xp_t[:, :h])
        return (torch.lerp(fed, xp_t[:, h:], z),)
