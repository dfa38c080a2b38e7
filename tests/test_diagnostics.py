"""Gradient flow through time: the probes read dL/dh_t exactly; radii, power method, initialisations."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit import RNN, Recurrent
from rnnkit.cells import ElmanCell, GRUCell, LeakyCell, LSTMCell
from rnnkit.diagnostics import (
    gradient_flow,
    linear_recurrence,
    recurrent_radii,
    spectral_radius,
    state_jacobian_radius,
)
from rnnkit.initialization import chrono_init_, scale_recurrent_radius_
from rnnkit.models import SequenceRegressor
from rnnkit.probes import state_probes


def manual_state_gradients(cell, x, loss_of_states):
    """dL/dh_t by unrolling the cell by hand, each h_t kept with retain_grad."""
    state = cell.initial_state(x.shape[0], dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        _, state = cell(x[:, t], state)
        state[0].retain_grad()
        hs.append(state[0])
    loss_of_states(hs).backward()
    return torch.stack([h.grad for h in hs], 1)


@pytest.mark.parametrize("cell_class", [ElmanCell, LeakyCell, LSTMCell, GRUCell])
def test_probe_gradients_equal_hand_unrolled_state_gradients(cell_class):
    cell = cell_class(3, 5).double()
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    target = torch.randn(4, 5, dtype=torch.float64)

    def loss_of_states(hs):  # the loss at the last step plus one at a middle step
        return ((hs[-1] - target) ** 2).sum() + hs[4].sum()

    expected = manual_state_gradients(cell, x, loss_of_states)
    layer = Recurrent(cell)
    with state_probes() as probes:
        y, _ = layer(x)
        loss = ((y[:, -1] - target) ** 2).sum() + y[:, 4].sum()
    (grad,) = torch.autograd.grad(loss, [probes[0].tensor])
    assert torch.allclose(grad, expected, atol=1e-12)


def test_probes_of_reversed_and_dilated_layers_are_in_the_sequences_own_time_order():
    cell = ElmanCell(2, 4).double()
    x = torch.randn(3, 10, 2, dtype=torch.float64)
    # reverse: the layer reads x backwards, so its state at step t is the hand loop's at 9 - t
    expected = manual_state_gradients(cell, x.flip(1), lambda hs: hs[-1].sum()).flip(1)
    with state_probes() as probes:
        y, _ = Recurrent(cell, reverse=True)(x)
        loss = y[:, 0].sum()
    (grad,) = torch.autograd.grad(loss, [probes[0].tensor])
    assert torch.allclose(grad, expected, atol=1e-12)
    # dilation 3: the loss at step 9 reaches back only through steps 6, 3, 0
    with state_probes() as probes:
        y, _ = Recurrent(cell, dilation=3)(x)
        loss = y[:, -1].sum()
    (grad,) = torch.autograd.grad(loss, [probes[0].tensor])
    nonzero = grad.abs().sum((0, 2)) > 0
    assert nonzero.tolist() == [t in (0, 3, 6, 9) for t in range(10)]


def test_gradient_flow_of_a_fused_model_runs_the_loop_and_leaves_weights_untouched():
    model = SequenceRegressor(RNN("lstm", 2, 8, num_layers=2, bidirectional=True), 1)
    assert model.rnn.uses_fused
    x, y = torch.randn(4, 12, 2), torch.randn(4, 1)
    flow = gradient_flow(model, lambda m: F.mse_loss(m(x), y))
    assert flow.names == ["rnn.layers.0.0", "rnn.layers.0.1", "rnn.layers.1.0", "rnn.layers.1.1"]
    assert all(len(n) == 12 for n in flow.norms)
    # the forward top layer is read at its last step only: its last norm is the largest
    assert flow.norms[2][-1] == max(flow.norms[2]) > 0
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert flow.loss == pytest.approx(float(F.mse_loss(model(x), y)), rel=1e-5)


def test_gradient_flow_needs_a_recurrent_layer():
    with pytest.raises(ValueError, match="no rnnkit recurrent layer"):
        gradient_flow(torch.nn.Linear(2, 1), lambda m: m(torch.randn(3, 2)).sum())


def test_spectral_radius_and_elman_jacobian():
    assert spectral_radius(torch.diag(torch.tensor([0.5, -2.0, 1.0]))) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="square"):
        spectral_radius(torch.zeros(2, 3))
    cell = ElmanCell(3, 16, bias=False)  # tanh'(0) = 1: the Jacobian at the origin is W itself
    radii = recurrent_radii(cell)
    assert radii["jacobian"] == pytest.approx(radii["W"], rel=1e-4)


def test_lstm_jacobian_at_the_origin_is_its_forget_gate():
    cell = LSTMCell(2, 6, forget_bias=1.0)
    with torch.no_grad():
        cell.weight_hh.zero_()
    # with no recurrent weights only C_t = f C_{t-1} links the steps: radius sigma(b_f)
    expected = torch.sigmoid(cell.bias_ih[6:12] + cell.bias_hh[6:12]).max().detach()
    assert state_jacobian_radius(cell) == pytest.approx(float(expected), rel=1e-5)


def test_leaky_units_keep_the_jacobian_near_one():
    cell = LeakyCell(2, 32, max_timescale=100.0)
    radii = recurrent_radii(cell)
    assert radii["jacobian"] > 0.98 > radii["W"]


@pytest.mark.parametrize("radius", [0.9, 1.1, 1.25])
def test_power_method_grows_at_log_of_the_spectral_radius(radius):
    rec = linear_recurrence(radius, size=64, steps=200, generator=torch.Generator().manual_seed(1))
    for measured in (rec.state_rate(), rec.gradient_rate()):
        assert measured == pytest.approx(math.log(radius), rel=0.1)


def test_power_method_at_radius_one_neither_grows_nor_shrinks():
    rec = linear_recurrence(1.0, size=64, steps=200, generator=torch.Generator().manual_seed(1))
    assert abs(rec.state_rate()) < 0.01 and abs(rec.gradient_rate()) < 0.01


def test_chrono_initialisation_spreads_gate_biases():
    rnn = RNN("lstm", 2, 50)
    assert chrono_init_(rnn, 100.0, torch.Generator().manual_seed(0)) == 1
    cell = rnn.cells[0]
    bias = (cell.bias_ih + cell.bias_hh).detach()
    forget, inputs = bias[50:100], bias[:50]
    assert float(forget.min()) >= 0.0 and float(forget.max()) <= math.log(99.0)
    assert torch.allclose(inputs, -forget)
    gru = RNN("gru", 2, 50)
    chrono_init_(gru, 100.0)
    update = (gru.cells[0].bias_ih + gru.cells[0].bias_hh).detach()[50:100]
    assert float(update.min()) >= 0.0 and float(update.std()) > 0.3
    with pytest.raises(ValueError, match="max_timescale > 2"):
        chrono_init_(rnn, 1.5)


def test_scale_recurrent_radius_sets_every_gate_block():
    rnn = RNN("gru", 3, 20)
    scale_recurrent_radius_(rnn, 1.5)
    weight = rnn.cells[0].weight_hh
    for k in range(3):
        assert spectral_radius(weight[20 * k : 20 * (k + 1)]) == pytest.approx(1.5, rel=1e-5)
