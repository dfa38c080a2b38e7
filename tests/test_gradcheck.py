"""Double-precision gradient checks of every cell and option through the time loop."""

import pytest
import torch
from torch.func import functional_call

from rnnkit import RNN, Recurrent
from rnnkit.cells import CELLS

OPTIONS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "deep_transition": {"transition_depth": 3},
    "recurrent_dropout_eval": {"recurrent_dropout": 0.3},
    "zoneout_eval": {"zoneout": 0.3},
}
CELL_OPTIONS = {
    "elman": [{}, {"nonlinearity": "relu"}, {"output_size": 2}],
    "jordan": [{}, {"output_size": 2, "output_activation": "identity"}],
    "leaky": [{}, {"learn_alpha": True, "max_timescale": 10.0}],
    "lstm": [{}],
    "gru": [{}],
}


def check_module(module, x, lengths=None, state=None):
    """gradcheck with respect to the input, the initial state and every parameter."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]
    inputs = [x.requires_grad_(True)] + ([s.requires_grad_(True) for s in state] if state else [])
    n_state = len(state) if state else 0

    def f(*args):
        xs, st, ps = args[0], args[1 : 1 + n_state], args[1 + n_state :]
        call_state = tuple(st) if n_state else None
        if call_state is not None and isinstance(module, RNN):
            call_state = call_state if len(call_state) > 1 else call_state[0]
        y, final = functional_call(
            module, dict(zip(names, ps, strict=True)), (xs, call_state, lengths)
        )
        final = final if isinstance(final, tuple) else (final,)
        return (y, *final)

    assert torch.autograd.gradcheck(f, (*inputs, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_gradcheck(cell, option):
    for extra in CELL_OPTIONS[cell]:
        rnn = RNN(cell, 3, 4, fused=False, **OPTIONS[option], **extra).double().eval()
        x = torch.randn(2, 5, 3, dtype=torch.double)
        check_module(rnn, x)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_with_lengths_dilation_reverse_and_state(cell):
    layer = Recurrent(CELLS[cell](3, 4).double(), reverse=True, dilation=2)
    x = torch.randn(3, 7, 3, dtype=torch.double)
    state = tuple(torch.randn(3, s, dtype=torch.double) for s in layer.cell.state_sizes)
    check_module(layer, x, lengths=torch.tensor([7, 4, 1]), state=state)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_stacked_bidirectional_dilated(cell):
    rnn = RNN(cell, 2, 3, num_layers=2, bidirectional=True, dilations=[1, 3], fused=False).double()
    x = torch.randn(2, 6, 2, dtype=torch.double)
    check_module(rnn, x, lengths=torch.tensor([6, 4]))


def test_training_mode_noise_is_one_mask_per_sequence():
    # Variational dropout: the same units are dropped at every step of a sequence.
    rnn = RNN("elman", 1, 64, recurrent_dropout=0.5, fused=False).train()
    cell = rnn.cells[0]
    noise = cell.sample_noise(3, torch.zeros(1))
    assert noise.shape == (3, 64)
    assert set(noise.unique().tolist()) <= {0.0, 2.0}
    seen = []
    original = cell.update

    def spy(xp_t, fed, state):
        seen.append((fed == 0) & (state[0] != 0))
        return original(xp_t, fed, state)

    cell.update = spy
    rnn(torch.randn(3, 6, 1))
    dropped = [s for s in seen[1:]]  # from step 1 the fed-back state is non-zero
    for s in dropped[1:]:
        assert torch.equal(s, dropped[0])
    assert dropped[0].any()


def test_zoneout_keeps_previous_values_in_training():
    rnn = RNN("gru", 2, 200, zoneout=0.5, fused=False).train()
    y, _ = rnn(torch.randn(1, 3, 2))
    kept = (y[0, 2] == y[0, 1]).float().mean().item()
    assert 0.35 < kept < 0.65
    rnn.eval()
    y, _ = rnn(torch.randn(1, 3, 2))
    assert (y[0, 2] == y[0, 1]).float().mean().item() < 0.05
