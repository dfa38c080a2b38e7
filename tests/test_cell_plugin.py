"""A cell written outside rnnkit is a plug-in: every architecture, option, path and task takes it."""

import json
from pathlib import Path

import pytest
import torch
from cells_extra import IndRNNCell, MinGRUCell
from conftest import run_cli

from rnnkit import RNN, cells, plan
from rnnkit.cells import LSTMCell, RecurrentCell
from rnnkit.initialization import chrono_init_, scale_recurrent_radius_
from rnnkit.models import (
    ConditionedGenerator,
    EncoderDecoder,
    SequenceClassifier,
    SequenceRegressor,
    SequenceTagger,
)
from rnnkit.spec import RNNSpec

EXTRA = [IndRNNCell, MinGRUCell]
CORPUS = Path(__file__).parent / "fuzz"


@pytest.mark.parametrize("cell", EXTRA)
def test_every_architecture_takes_an_outside_cell(cell):
    x, lengths = torch.randn(3, 7, 4), torch.tensor([7, 5, 2])
    tagger = SequenceTagger(RNN(cell, 4, 6, num_layers=2), 5)
    assert tagger(x, lengths=lengths)[0].shape == (3, 7, 5)
    classifier = SequenceClassifier(RNN(cell, 4, 6, bidirectional=True), 3, pooling="mean")
    assert classifier(x, lengths=lengths).shape == (3, 3)
    assert SequenceRegressor(RNN(cell, 4, 6, dilations=[1], num_layers=1), 2)(x).shape == (3, 2)
    generator = ConditionedGenerator(RNN(cell, 4 + 2, 6), 2, 5, condition="both", input_size=4)
    assert generator(x, torch.randn(3, 2))[0].shape == (3, 7, 5)
    for feeding in (True, False):
        encoder = RNN(cell, 4, 6, bidirectional=True)
        decoder = RNN(cell, 4 + (12 if feeding else 0), 6)
        model = EncoderDecoder(encoder, decoder, source_vocab=9, target_vocab=8,
                               attention=True, input_feeding=feeding)  # fmt: skip
        src, tgt = torch.randint(9, (3, 5)), torch.randint(8, (3, 4))
        logits = model(src, tgt, src_lengths=torch.tensor([5, 3, 1]))
        logits.sum().backward()
        assert logits.shape == (3, 4, 8)
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("cell", EXTRA)
def test_padding_changes_nothing_in_either_direction(cell):
    rnn = RNN(cell, 3, 5, bidirectional=True).eval()
    x = torch.randn(2, 6, 3)
    y, final = rnn(x, lengths=torch.tensor([6, 4]))
    alone, alone_final = rnn(x[1:, :4])
    torch.testing.assert_close(y[1, :4], alone[0])
    torch.testing.assert_close(final[:, 1], alone_final[:, 0])
    assert bool((y[1, 4:] == 0).all())


@pytest.mark.parametrize("cell", EXTRA)
@pytest.mark.parametrize(
    "option", [{}, {"zoneout": 0.3}, {"recurrent_dropout": 0.3}, {"transition_depth": 3}]
)
def test_gradcheck_with_every_option_the_cell_declares(cell, option):
    rnn = RNN(cell, 2, 3, num_layers=2, bidirectional=True, **option).double()
    x = torch.randn(2, 4, 2, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([4, 2])

    def f(inputs):
        torch.manual_seed(1)  # the same dropout and zoneout masks at every evaluation
        return rnn(inputs, lengths=lengths)[0]

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("cell", EXTRA)
def test_declared_options_change_the_cell_and_others_are_refused(cell):
    plain = RNN(cell, 3, 4)
    deep = RNN(cell, 3, 4, transition_depth=3)
    extra = sum(p.numel() for p in deep.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * (4 * 4 + 4)  # two tanh layers of the deep transition
    torch.manual_seed(0)
    zoned = RNN(cell, 3, 4, zoneout=0.5).eval()
    torch.manual_seed(0)
    base = RNN(cell, 3, 4).eval()
    x = torch.randn(2, 5, 3)
    assert not torch.allclose(zoned(x)[0], base(x)[0])
    with pytest.raises(ValueError, match=f"{cell.__name__} does not support layer_norm"):
        RNN(cell, 3, 4, layer_norm=True)


def test_kernels_follow_capabilities_not_exact_types():
    class Renamed(LSTMCell):  # same equations, another name: keeps both fast paths
        pass

    class Peephole(LSTMCell):  # new equations: neither fast path may run them
        def update(self, xp_t, fed, state):
            return super().update(xp_t, fed + 0.1 * state[1], state)

    assert RNN(Renamed, 3, 4).plan.path == "fused"
    assert RNN(Renamed, 3, 4, fused=False).plan.path == "kernel"
    slow = RNN(Peephole, 3, 4)
    assert slow.plan.path == "autograd"
    assert "Peephole overrides update" in slow.plan.reason and "Peephole" in repr(slow)
    with pytest.raises(ValueError, match="Peephole overrides update"):
        RNN(Peephole, 3, 4, fused=True)
    x = torch.randn(2, 5, 3)
    peep = RNN(Peephole, 3, 4)
    stock = RNN("lstm", 3, 4)
    stock.load_state_dict(peep.state_dict())
    assert not torch.allclose(peep(x)[0], stock(x)[0])  # its own equations ran
    assert RNN(IndRNNCell, 3, 4).plan == plan.Plan(
        "autograd", "no kernel is registered for IndRNNCell; not fused: cell=IndRNNCell"
    )
    assert RNN("gru", 3, 4, zoneout=0.1).plan.path == "autograd"


def test_a_registered_kernel_serves_the_cell():
    calls = []

    class Counted(IndRNNCell):
        pass

    def kernel(cell, xp, state):  # the same equations, unrolled here
        calls.append(1)
        h, out = state[0], []
        for t in range(xp.shape[0]):
            h = torch.relu(xp[t] + cell.weight_hh * h)
            out.append(h)
        return (torch.stack(out),)

    plan.register_kernel(Counted, kernel)
    rnn = RNN(Counted, 3, 4)
    assert rnn.plan.path == "kernel"
    x = torch.randn(2, 5, 3)
    y = rnn(x)[0]
    with plan.autograd_loop():
        torch.testing.assert_close(y, rnn(x)[0])
    assert calls == [1]


def test_register_and_import_paths():
    cells.register("indrnn-test", IndRNNCell)
    try:
        assert isinstance(RNN("indrnn-test", 3, 4).cells[0], IndRNNCell)
        assert RNN("indrnn-test", 3, 4).cell_name == "indrnn-test"
        cells.register("indrnn-test", IndRNNCell)  # again: harmless
        with pytest.raises(ValueError, match="taken by IndRNNCell"):
            cells.register("indrnn-test", MinGRUCell)
    finally:
        del cells.CELLS["indrnn-test"]
    assert isinstance(RNN("cells_extra:MinGRUCell", 3, 4).cells[0], RecurrentCell)
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        RNN("no_such_module:Cell", 3, 4)
    with pytest.raises(ValueError, match="has no 'Nothing'"):
        RNN("cells_extra:Nothing", 3, 4)
    with pytest.raises(ValueError, match="not a subclass of rnnkit.cells.RecurrentCell"):
        RNN("torch.nn:LSTM", 3, 4)


def test_cell_options_are_read_from_the_signatures():
    assert set(cells.cell_options(IndRNNCell)) == {"nonlinearity", "max_recurrent"}
    assert set(cells.cell_options(cells.ElmanCell)) == {"nonlinearity", "output_size", "bias"}
    assert "forget_bias" in cells.cell_options(LSTMCell) and "bias" in cells.cell_options(LSTMCell)
    with pytest.raises(ValueError, match=r"takes no option 'radius' \(its options: max_recurrent"):
        cells.check_cell_options(IndRNNCell, {"radius": 2})


def test_initialisers_ask_the_cell():
    model = RNN(MinGRUCell, 2, 40)
    assert chrono_init_(model, 50.0, torch.Generator().manual_seed(0)) == 1
    write = model.cells[0].bias_ih[:40].detach()
    assert float(write.max()) <= 0.0 and float(write.std()) > 0.2  # z starts shut: keep
    with pytest.raises(ValueError, match="IndRNNCell declares neither"):
        chrono_init_(RNN(IndRNNCell, 2, 4), 50.0)
    with pytest.raises(ValueError, match="IndRNNCell has no recurrent matrix"):
        scale_recurrent_radius_(RNN(IndRNNCell, 2, 4), 1.5)
    with pytest.raises(ValueError, match="JordanCell has no recurrent matrix"):
        scale_recurrent_radius_(RNN("jordan", 2, 4), 1.5)
    assert scale_recurrent_radius_(RNN("gru", 2, 4), 1.5) == 1


def test_the_spec_round_trips_and_builds_every_option():
    spec = RNNSpec("cells_extra:IndRNNCell", hidden=6, layers=2, dilations=(1, 2), zoneout=0.1,
                   transition_depth=2, cell_options={"nonlinearity": "tanh"})  # fmt: skip
    assert RNNSpec.from_config(json.loads(json.dumps(spec.to_config()))) == spec
    rnn = spec.build(3)
    assert rnn.dilations == [1, 2] and rnn.cells[0].nonlinearity == "tanh"
    assert rnn.cells[0].zoneout == 0.1 and rnn.cells[0].deep_transition is not None
    assert RNNSpec.from_config({"cell": "gru", "hidden": 5}).build(2).hidden_size == 5  # old runs
    with pytest.raises(ValueError, match="--dilations gives 2 values for 3 layers"):
        RNNSpec(layers=3, dilations=(1, 2))


TINY_TEXT = ["--embed", "4", "--batch-size", "2", "--bptt", "8", "--steps", "4",
             "--eval-every", "2", "--hidden", "6"]  # fmt: skip


def test_an_outside_cell_trains_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "text", "train", "--data", CORPUS / "text.txt", *TINY_TEXT,
                             "--cell", "tests.cells_extra:IndRNNCell",
                             "--cell-option", "nonlinearity=tanh", "--cell-option", "max_recurrent=0.5",
                             "--zoneout", "0.1", "--transition-depth", "2", "--layers", "2",
                             "--out", run)  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["cell"] == "tests.cells_extra:IndRNNCell"
    assert config["cell_options"] == {"nonlinearity": "tanh", "max_recurrent": 0.5}
    assert config["zoneout"] == 0.1 and config["transition_depth"] == 2
    assert "recurrent path: autograd (zoneout, transition_depth run in the cell's own step" in out
    code, out, err = run_cli(capsys, "text", "eval", run)
    assert code == 0, err
    config["cell"] = "gone_module:IndRNNCell"
    (run / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "text", "eval", run)
    assert code == 2 and err.count("\n") == 1 and "cannot import module 'gone_module'" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--cell", "nowhere:Cell"], "argument --cell: cell 'nowhere:Cell': cannot import"),
        (["--cell", "transformer"], "argument --cell: unknown cell 'transformer'"),
        (["--cell-option", "radius=2"], "takes no option 'radius'"),
        (["--cell-option", "=2"], "argument --cell-option: '=2' is not KEY=VALUE"),
        (["--cell", "tests.cells_extra:IndRNNCell", "--layer-norm"],
         "IndRNNCell does not support layer_norm"),
        (["--dilations", "1,2", "--layers", "3"], "--dilations gives 2 layers and --layers 3"),
        (["--dilations", "1,,2"], "argument --dilations"),
    ],
)  # fmt: skip
def test_bad_cell_options_are_one_line_before_a_run_exists(tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "text", "train", "--data", CORPUS / "text.txt", *TINY_TEXT,
                           *extra, "--out", run)  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not run.exists()


@pytest.mark.parametrize("task", ["forecast", "classify", "transcribe", "music"])
def test_every_task_takes_the_cell_options(tmp_path, capsys, task):
    data = {
        "forecast": ["--csv", CORPUS / "forecast.csv", "--target", "load", "--features", "temp",
                     "--time-col", "day", "--window", "7", "--horizon", "2"],
        "classify": ["--train", CORPUS / "classify_train.csv", "--test",
                     CORPUS / "classify_test.csv", "--ensemble", "1", "--batch-size", "4"],
        "transcribe": ["--pairs", CORPUS / "transcribe.tsv", "--embed", "4", "--beam", "1",
                       "--batch-size", "4"],
        "music": ["--data", CORPUS / "music.mat", "--window", "8", "--joint-hidden", "8",
                  "--batch-size", "2"],
    }[task]  # fmt: skip
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, task, "train", *data, "--steps", "2", "--eval-every", "2",
                             "--hidden", "4", "--cell", "tests.cells_extra:MinGRUCell",
                             "--recurrent-dropout", "0.2", "--zoneout", "0.1", "--out", run)  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (config["cell"], config["recurrent_dropout"], config["zoneout"]) == (
        "tests.cells_extra:MinGRUCell", 0.2, 0.1)  # fmt: skip
