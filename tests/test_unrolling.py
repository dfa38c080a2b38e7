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
    if dilation == 1:
        return torch.stack(ys, 1), history[-1]
    # a dilated layer's final state: the last d steps' states, in time order
    return torch.stack(ys, 1), tuple(
        torch.stack(s, 1) for s in zip(*history[-dilation:], strict=True)
    )


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


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dilations", [[1, 2], [3, 1, 2], [4]])
def test_a_dilated_stack_continues_exactly_from_its_final_state(cell, dilations):
    """Chunks (truncated BPTT) and single steps (generation) carry every chain's state."""
    rnn = RNN(cell, 3, 5, num_layers=len(dilations), dilations=dilations).eval()
    x = torch.randn(2, 11, 3)
    y, final = rnn(x)
    assert parts(final)[0].shape == (len(dilations), 2, max(dilations), 5)
    for cuts in ([0, 3, 4, 9, 11], list(range(12))):
        state, ys = None, []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            out, state = rnn(x[:, a:b], state)
            ys.append(out)
        torch.testing.assert_close(torch.cat(ys, 1), y)
        for p, q in zip(parts(state), parts(final), strict=True):
            torch.testing.assert_close(p, q)


def test_a_dilated_history_with_lengths_and_plain_states():
    rnn = RNN("gru", 2, 4, num_layers=2, dilations=[1, 3]).eval()
    x, lengths = torch.randn(3, 7, 2), torch.tensor([7, 2, 5])
    _, final = rnn(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):  # a short sequence keeps the start it was given
        _, alone = rnn(x[b : b + 1, :n])
        torch.testing.assert_close(final[:, b : b + 1], alone)
    plain = torch.randn(2, 3, 4)  # a (rows, B, H) state starts every chain
    history = plain.unsqueeze(2).expand(-1, -1, 3, -1)
    torch.testing.assert_close(rnn(x, plain)[0], rnn(x, history.contiguous())[0])
    # the last step's state stands last, and a stack without dilations reads only that
    y, final = rnn(x)
    torch.testing.assert_close(final[1, :, -1], y[:, -1])
    plain_rnn = RNN("gru", 2, 4, num_layers=2).eval()
    torch.testing.assert_close(plain_rnn(x, final)[0], plain_rnn(x, final[:, :, -1])[0])
    with pytest.raises(ValueError, match="rows, batch, steps, size"):
        rnn(x, torch.randn(2, 3, 3, 5))
