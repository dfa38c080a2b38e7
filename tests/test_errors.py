"""Wrong arguments raise a ValueError that names the argument and what is allowed."""

import pytest
import torch

from rnnkit import RNN, Recurrent
from rnnkit.cells import CELLS, LSTMCell
from rnnkit.models import ConditionedGenerator, EncoderDecoder, SequenceClassifier, SequenceTagger


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"cell": "transformer"},
            "unknown cell 'transformer': choose from elman, gru, jordan, leaky, lstm",
        ),
        ({"input_size": 0}, r"input_size must be an integer >= 1, got 0"),
        ({"hidden_size": -3}, r"hidden_size must be an integer >= 1, got -3"),
        ({"hidden_size": 2.5}, r"hidden_size must be an integer >= 1"),
        ({"num_layers": 0}, r"num_layers must be an integer >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"dilations": [1, 2]}, r"dilations must give one value per layer \(1\)"),
        ({"dilations": [0]}, r"dilations must be an integer >= 1"),
        ({"transition_depth": 0}, r"transition_depth must be an integer >= 1"),
        ({"zoneout": -0.1}, r"zoneout must be in \[0, 1\)"),
        ({"recurrent_dropout": 2}, r"recurrent_dropout must be in \[0, 1\)"),
        ({"fused": "yes"}, r"fused must be one of 'auto', True, False"),
        (
            {"nonlinearity": "sigmoid", "cell": "elman"},
            r"nonlinearity must be one of \['relu', 'tanh'\]",
        ),
    ],
)
def test_rnn_constructor_errors(kwargs, match):
    args = {"cell": "lstm", "input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        RNN(**args)


@pytest.mark.parametrize(
    "options, blocker",
    [
        ({"layer_norm": True}, "layer_norm"),
        ({"zoneout": 0.1}, "zoneout"),
        ({"recurrent_dropout": 0.1}, "recurrent_dropout"),
        ({"transition_depth": 2}, "transition_depth"),
        ({"dilations": [2]}, "dilations"),
        ({"cell": "leaky"}, "cell=LeakyCell"),
        ({"cell": "jordan"}, "cell=JordanCell"),
        ({"cell": "elman", "output_size": 3}, "cell=ElmanCell"),
    ],
)
def test_fused_true_names_what_prevents_it(options, blocker):
    args = {"cell": "lstm", "input_size": 3, "hidden_size": 4, "fused": True, **options}
    with pytest.raises(ValueError, match=f"fused=True is impossible with .*{blocker}"):
        RNN(**args)
    args["fused"] = "auto"
    assert not RNN(**args).uses_fused


@pytest.mark.parametrize(
    "x, lengths, match",
    [
        (torch.randn(2, 5), None, r"x must have shape \(batch, time, input_size=3\), got \(2, 5\)"),
        (
            torch.randn(2, 5, 4),
            None,
            r"x must have shape \(batch, time, input_size=3\), got \(2, 5, 4\)",
        ),
        (torch.randn(2, 0, 3), None, "at least one time step"),
        (torch.randn(2, 5, 3), [5, 0], r"lengths must lie in \[1, 5\]"),
        (torch.randn(2, 5, 3), [6, 2], r"lengths must lie in \[1, 5\]"),
        (torch.randn(2, 5, 3), [5], r"lengths must have shape \(2,\)"),
        (torch.randn(2, 5, 3), [2.5, 1.0], "lengths must hold integers"),
    ],
)
@pytest.mark.parametrize("fused", ["auto", False])
def test_forward_input_errors(x, lengths, match, fused):
    with pytest.raises(ValueError, match=match):
        RNN("gru", 3, 4, fused=fused)(x, lengths=lengths)


def test_state_shape_errors():
    rnn = RNN("lstm", 3, 4, num_layers=2)
    with pytest.raises(
        ValueError, match=r"state must hold tensors of shapes \[\(2, 5, 4\), \(2, 5, 4\)\]"
    ):
        rnn(torch.randn(5, 6, 3), torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="state must hold tensors of shapes"):
        Recurrent(LSTMCell(3, 4))(torch.randn(5, 6, 3), (torch.zeros(5, 4),))


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_step_input_errors(name):
    cell = CELLS[name](3, 4)
    with pytest.raises(ValueError, match=r"x_t must have shape \(batch, input_size=3\)"):
        cell(torch.randn(2, 5))


def test_model_argument_errors():
    with pytest.raises(
        ValueError, match=r"pooling must be one of \['attention', 'last', 'max', 'mean'\]"
    ):
        SequenceClassifier(RNN("gru", 3, 4), 2, pooling="median")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        SequenceClassifier(RNN("gru", 3, 4), 0)
    with pytest.raises(ValueError, match=r"condition must be one of \['both', 'init', 'input'\]"):
        ConditionedGenerator(RNN("gru", 6, 4), 2, 5, condition="prefix")
    with pytest.raises(ValueError, match=r"rnn.input_size \(2\) must exceed context_size \(2\)"):
        ConditionedGenerator(RNN("gru", 2, 4), 2, 5, condition="input")
    with pytest.raises(ValueError, match="decoder must not be bidirectional"):
        EncoderDecoder(RNN("gru", 3, 4), RNN("gru", 3, 4, bidirectional=True), target_vocab=5)
    with pytest.raises(ValueError, match="give exactly one of target_vocab"):
        EncoderDecoder(RNN("gru", 3, 4), RNN("gru", 3, 4))
    with pytest.raises(ValueError, match=r"rnn must be an rnnkit.RNN"):
        SequenceTagger(torch.nn.LSTM(3, 4), 5)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 5\)"):
        SequenceTagger(RNN("gru", 3, 4), 5, vocab_size=5)(torch.tensor([[1, 7]]))
    with pytest.raises(
        ValueError, match=r"input_size \(7\) differs from the RNN's input width \(3\)"
    ):
        SequenceTagger(RNN("gru", 3, 4), 5, input_size=7)


def test_from_torch_rejects_what_it_cannot_hold():
    with pytest.raises(ValueError, match="proj_size"):
        RNN.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="from_torch takes nn.RNN, nn.LSTM or nn.GRU"):
        RNN.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="to_torch: torch.nn has no module with layer_norm"):
        RNN("lstm", 3, 4, layer_norm=True).to_torch()
