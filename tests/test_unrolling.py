"""Semantics of unrolling: lengths, reversal, dilation (skip connections through time)."""

import pytest
import torch
from conftest import parts

from rnnkit import RNN, Recurrent
from rnnkit.cells import CELLS


def manual_unroll(cell, x, state, dilation=1):
    """The definition, one step at a time: step t reads the state of step t - dilation."""
    history = [state] * dilation
    ys = []
    for t in range(x.shape[1]):
        y, new = cell(x[:, t], history[-dilation])
        history.append(new)
        ys.append(y)
    return torch.stack(ys, 1), history[-1]


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_recurrent_matches_step_by_step_definition(cell, dilation):
    layer = Recurrent(CELLS[cell](3, 5), dilation=dilation)
    x = torch.randn(2, 8, 3)
    state = layer.cell.initial_state(2)
    y, final = layer(x)
    y_ref, final_ref = manual_unroll(layer.cell, x, state, dilation)
    torch.testing.assert_close(y, y_ref)
    for a, b in zip(final, final_ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dilation", [1, 2])
def test_lengths_equal_running_each_sequence_alone(cell, dilation):
    layer = Recurrent(CELLS[cell](3, 5), dilation=dilation)
    lengths = torch.tensor([7, 2, 5])
    x = torch.randn(3, 7, 3)
    for reverse in (False, True):
        layer.reverse = reverse
        y, final = layer(x, lengths=lengths)
        for b, n in enumerate(lengths.tolist()):
            y_alone, f_alone = layer(x[b : b + 1, :n])
            torch.testing.assert_close(y[b : b + 1, :n], y_alone)
            assert torch.all(y[b, n:] == 0)
            for a, c in zip(final, f_alone, strict=True):
                torch.testing.assert_close(a[b : b + 1], c)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("fused", ["auto", False])
def test_padding_invariance(cell, fused):
    """A sequence's outputs do not change when the other sequences in its batch change length."""
    rnn = RNN(cell, 3, 6, num_layers=2, bidirectional=True, fused=fused).eval()
    x = torch.randn(4, 10, 3)
    y1, f1 = rnn(x, lengths=torch.tensor([6, 10, 3, 1]))
    x2 = x.clone()
    x2[1:] = torch.randn(3, 10, 3) * 5  # other sequences: other values and lengths
    x2[0, 6:] = 99.0  # padding of sequence 0 holds garbage
    y2, f2 = rnn(x2, lengths=torch.tensor([6, 2, 9, 7]))
    torch.testing.assert_close(y1[0], y2[0], atol=1e-6, rtol=0)
    for a, b in zip(parts(f1), parts(f2), strict=True):
        torch.testing.assert_close(a[:, 0], b[:, 0], atol=1e-6, rtol=0)


def test_reverse_reads_each_sequence_backwards_within_its_length():
    layer = Recurrent(CELLS["elman"](1, 4), reverse=True)
    x = torch.randn(2, 5, 1)
    lengths = torch.tensor([5, 3])
    y, final = layer(x, lengths=lengths)
    forward = Recurrent(layer.cell)
    y_ref, f_ref = forward(x[1:, :3].flip(1))
    torch.testing.assert_close(y[1, :3], y_ref[0].flip(0))
    torch.testing.assert_close(final[0][1], f_ref[0][0])


def test_dilated_stack_receptive_field():
    # With dilations [1, 2, 4] the output at step t depends on inputs up to 1+2+4 steps back
    # through the shortest path, and never on future inputs.
    rnn = RNN("gru", 1, 4, num_layers=3, dilations=[1, 2, 4])
    x = torch.randn(1, 12, 1, requires_grad=True)
    y, _ = rnn(x)
    y[0, 6].sum().backward()
    assert torch.all(x.grad[0, 7:] == 0)
    assert torch.all(x.grad[0, :7] != 0)
