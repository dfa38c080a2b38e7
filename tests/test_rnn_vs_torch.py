"""rnnkit.RNN against torch's own modules with copied weights, on both paths."""

import pytest
import torch
from conftest import parts
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit import RNN
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell

TORCH = {
    "elman": lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k),
    "elman_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}
D, H, B, T = 5, 7, 4, 9
LENGTHS = torch.tensor([9, 3, 6, 1])


def torch_forward(module, x, lengths, hx):
    if lengths is None:
        return module(x, hx)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    y, final = module(packed, hx)
    return pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])[0], final


@pytest.mark.parametrize("kind", list(TORCH))
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("fused", ["auto", False])
def test_matches_torch(kind, layers, bidirectional, with_lengths, fused):
    reference = TORCH[kind](D, H, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    ours = RNN.from_torch(reference, fused=fused)
    assert ours.uses_fused == (fused == "auto")
    lengths = LENGTHS if with_lengths else None
    rows = layers * (2 if bidirectional else 1)
    hx = tuple(torch.randn(rows, B, H) for _ in range(2 if kind == "lstm" else 1))
    hx = hx if kind == "lstm" else hx[0]

    x1 = torch.randn(B, T, D, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, f1 = ours(x1, hx, lengths)
    y2, f2 = torch_forward(reference, x2, lengths, hx)
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=0)
    for a, b in zip(parts(f1), parts(f2), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    # gradients with respect to the input and to every weight
    gy = torch.randn_like(y1)
    gf = [torch.randn_like(f) for f in parts(f1)]
    loss1 = (y1 * gy).sum() + sum((f * g).sum() for f, g in zip(parts(f1), gf, strict=True))
    loss2 = (y2 * gy).sum() + sum((f * g).sum() for f, g in zip(parts(f2), gf, strict=True))
    loss1.backward()
    loss2.backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=0)
    directions = 2 if bidirectional else 1
    for i, cell in enumerate(ours.cells):
        suffix = f"_l{i // directions}" + ("_reverse" if i % directions else "")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            theirs = getattr(reference, name + suffix).grad
            torch.testing.assert_close(getattr(cell, name).grad, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(TORCH))
def test_to_torch_round_trip(kind):
    ours = RNN(
        "elman" if kind.startswith("elman") else kind,
        D,
        H,
        num_layers=2,
        bidirectional=True,
        **({"nonlinearity": "relu"} if kind == "elman_relu" else {}),
    )
    module = ours.to_torch()
    x = torch.randn(B, T, D)
    y1, f1 = ours(x)
    y2, f2 = module(x)
    torch.testing.assert_close(y1, y2, atol=1e-6, rtol=0)
    for a, b in zip(parts(f1), parts(f2), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_from_torch_time_major_module():
    reference = nn.GRU(D, H, num_layers=2)  # batch_first=False
    ours = RNN.from_torch(reference)
    x = torch.randn(T, B, D)
    y2, h2 = reference(x)
    y1, h1 = ours(x.transpose(0, 1))
    torch.testing.assert_close(y1, y2.transpose(0, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(h1, h2, atol=1e-6, rtol=0)


def test_fused_and_loop_share_parameters():
    rnn = RNN("lstm", D, H, num_layers=2)
    x = torch.randn(B, T, D)
    y_fused, _ = rnn(x)
    rnn.fused = False
    y_loop, _ = rnn(x)
    torch.testing.assert_close(y_fused, y_loop, atol=1e-6, rtol=0)
    assert len(list(rnn.parameters())) == 8


@pytest.mark.parametrize(
    "cls, reference",
    [
        (lambda: ElmanCell(D, H), nn.RNNCell(D, H)),
        (lambda: ElmanCell(D, H, nonlinearity="relu"), nn.RNNCell(D, H, nonlinearity="relu")),
        (lambda: LSTMCell(D, H), nn.LSTMCell(D, H)),
        (lambda: GRUCell(D, H), nn.GRUCell(D, H)),
    ],
)
def test_single_step_cells_match_torch_cells(cls, reference):
    cell = cls()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(reference, name))
    x = torch.randn(B, D)
    state = tuple(torch.randn(B, s) for s in cell.state_sizes)
    y, new = cell(x, state)
    expected = reference(x, state if len(state) > 1 else state[0])
    expected = expected if isinstance(expected, tuple) else (expected,)
    for a, b in zip(new, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(y, expected[0])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_single_steps_through_a_stack_match_torch(kind):
    # "auto" runs a lone step through several layers on the loop (faster there); same numbers.
    reference = TORCH[kind](D, H, num_layers=2, batch_first=True)
    ours = RNN.from_torch(reference)
    state, state_ref = None, None
    for _ in range(3):
        x = torch.randn(B, 1, D)
        y, state = ours(x, state)
        y_ref, state_ref = reference(x, state_ref)
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    for a, b in zip(parts(state), parts(state_ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
