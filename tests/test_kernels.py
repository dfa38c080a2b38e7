"""The hand-written BPTT kernels agree with autograd through the cells' own step."""

import pytest
import torch
from conftest import parts

from rnnkit import RNN, plan
from rnnkit.cells import CELLS

VARIANTS = {
    "elman": [{}, {"nonlinearity": "relu"}, {"output_size": 3}, {"bias": False}],
    "jordan": [
        {},
        {"output_size": 3, "output_activation": "identity"},
        {"output_activation": "sigmoid", "nonlinearity": "relu"},
    ],
    "leaky": [{}, {"learn_alpha": True}, {"nonlinearity": "relu"}],
    "lstm": [{}, {"bias": False}],
    "gru": [{}, {"bias": False}],
}


def run(rnn, x, state, lengths):
    rnn.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    y, final = rnn(x, state, lengths)
    torch.manual_seed(7)
    loss = (y * torch.randn_like(y)).sum() + sum(
        (f * torch.randn_like(f)).sum() for f in parts(final)
    )
    loss.backward()
    grads = {n: p.grad.clone() for n, p in rnn.named_parameters()}
    return y.detach(), [f.detach() for f in parts(final)], x.grad, grads


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_autograd_loop(cell, dtype):
    for options in VARIANTS[cell]:
        rnn = RNN(
            cell, 6, 16, num_layers=2, bidirectional=True, dilations=[1, 2], fused=False, **options
        ).to(dtype)
        assert plan.kernel_choice(rnn.cells[0])[0] is not None
        x = torch.randn(5, 11, 6, dtype=dtype)
        lengths = torch.tensor([11, 4, 7, 1, 9])
        state = rnn.initial_state(5, dtype=dtype)
        state = tuple(torch.randn_like(s) for s in parts(state))
        state = state if len(state) > 1 else state[0]
        fast = run(rnn, x, state, lengths)
        with plan.autograd_loop():
            assert plan.kernel_choice(rnn.cells[0])[0] is None
            slow = run(rnn, x, state, lengths)
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(fast[0], slow[0], atol=tol, rtol=0)
        for a, b in zip(fast[1], slow[1], strict=True):
            torch.testing.assert_close(a, b, atol=tol, rtol=0)
        torch.testing.assert_close(fast[2], slow[2], atol=tol, rtol=0)
        for name in fast[3]:
            torch.testing.assert_close(
                fast[3][name], slow[3][name], atol=tol * 10, rtol=1e-5, msg=name
            )


def test_garbage_in_padding_does_not_leak():
    rnn = RNN("lstm", 3, 8, fused=False)
    x = torch.randn(2, 6, 3)
    x[1, 3:] = float("nan")
    y, (h, c) = rnn(x, lengths=torch.tensor([6, 3]))
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in rnn.parameters())


def test_subclassed_cells_run_their_own_step():
    class Doubled(CELLS["gru"]):
        def update(self, xp_t, fed, state):
            return tuple(2 * s for s in super().update(xp_t, fed, state))

    assert plan.kernel_choice(Doubled(3, 4))[0] is None
    assert plan.kernel_choice(CELLS["gru"](3, 4, layer_norm=True))[0] is None
