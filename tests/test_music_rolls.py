"""Piano rolls: the JSB-format reader, its checks, and the frame metrics."""

from pathlib import Path

import numpy as np
import pytest

from rnnkit.spec import RNNSpec
from rnnkit.tasks.music import rolls

JSB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "JSB_Chorales.mat"


def write_mat(path, parts):
    savemat = pytest.importorskip("scipy.io").savemat
    cells = {}
    for key, pieces in parts.items():
        cell = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            cell[0, i] = p
        cells[key] = cell
    savemat(str(path), cells)
    return path


def piece(steps, keys=(39, 43, 46), seed=0):
    roll = np.zeros((steps, rolls.KEYS), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for t in range(steps):
        roll[t, list(keys)] = 1
        roll[t, rng.integers(0, rolls.KEYS)] = 1
    return roll


def test_reads_the_three_parts_of_a_jsb_format_file(tmp_path):
    path = write_mat(tmp_path / "jsb.mat", {"traindata": [piece(5), piece(7, seed=1)],
                                             "validdata": [piece(4)], "testdata": [piece(6)]})  # fmt: skip
    parts = rolls.read_jsb(path)
    assert {k: (len(v), v.steps) for k, v in parts.items()} == {
        "train": (2, 12), "valid": (1, 4), "test": (1, 6)}  # fmt: skip
    np.testing.assert_array_equal(parts["train"].pieces[1], piece(7, seed=1))
    assert parts["test"].pieces[0].dtype == np.uint8 and parts["train"].genres == ["", ""]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda p: p[:, :80],
            "a piano roll must be steps x 88 keys (MIDI 21 to 108), got shape (5, 80)",
        ),
        (lambda p: p[:1], "a piece needs at least 2 steps"),
        (lambda p: p * 3, "a piano roll holds 0 and 1 only"),
    ],
)
def test_a_bad_piece_is_named_in_one_line(tmp_path, change, message):
    path = write_mat(tmp_path / "jsb.mat", {"traindata": [piece(5), change(piece(5))],
                                             "validdata": [piece(4)], "testdata": [piece(6)]})  # fmt: skip
    with pytest.raises(ValueError) as error:
        rolls.read_jsb(path)
    assert "jsb.mat traindata piece 2: " + message in str(error.value)
    assert "\n" not in str(error.value)


def test_files_that_are_not_jsb_format(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        rolls.read_jsb(tmp_path / "missing.mat")
    pytest.importorskip("scipy.io")
    (tmp_path / "text.mat").write_text("not matlab")
    with pytest.raises(ValueError, match="is not a readable MATLAB file"):
        rolls.read_jsb(tmp_path / "text.mat")
    path = write_mat(tmp_path / "other.mat", {"traindata": [piece(5)]})
    with pytest.raises(ValueError, match="lacks validdata, testdata: not a JSB-format file"):
        rolls.read_jsb(path)


def test_frame_nll_is_the_bernoulli_loss_summed_over_keys():
    y = np.zeros((2, rolls.KEYS))
    y[0, 3] = 1
    p = np.full((2, rolls.KEYS), 0.1)
    nll = rolls.frame_nll(p, y)
    assert nll[0] == pytest.approx(-np.log(0.1) - 87 * np.log(0.9))
    assert nll[1] == pytest.approx(-88 * np.log(0.9))
    assert rolls.frame_nll(np.full((1, rolls.KEYS), 0.5), y[:1])[0] == pytest.approx(88 * np.log(2))


def test_frame_accuracy_counts_hits_against_hits_and_mistakes():
    truth = np.zeros((3, rolls.KEYS), dtype=np.uint8)
    truth[0, [1, 2]] = 1
    truth[1, 5] = 1
    guess = np.zeros_like(truth)
    guess[0, [1, 3]] = 1  # one hit, one false positive, one miss
    guess[1, 5] = 1  # one hit; step 2 silent on both sides adds nothing
    assert rolls.frame_accuracy(guess, truth) == pytest.approx(2 / 4)
    assert rolls.frame_accuracy(truth, truth) == 1.0


@pytest.mark.skipif(
    not JSB.exists(), reason="the benchmark data (../shared/data) is not beside this clone"
)
def test_the_jsb_chorales_benchmark_file():
    parts = rolls.read_jsb(JSB)
    assert {k: (len(v), v.steps) for k, v in parts.items()} == {
        "train": (229, 13807), "valid": (76, 4602), "test": (77, 4725)}  # fmt: skip


def test_next_step_nll_ignores_padding_and_matches_the_frame_metric():
    import torch

    from rnnkit.tasks.music.model import RollModel, next_step_nll, shifted_inputs

    torch.manual_seed(0)
    model = RollModel(RNNSpec("gru", hidden=12)).eval()
    a, b = torch.from_numpy(piece(6)).float(), torch.from_numpy(piece(4, seed=2)).float()
    padded = torch.rand(2, 6, rolls.KEYS)  # garbage past the end of the shorter piece
    padded[0], padded[1, :4] = a, b
    total, count = next_step_nll(model, padded, torch.tensor([6, 4]))
    alone = [next_step_nll(model, p[None], torch.tensor([len(p)])) for p in (a, b)]
    assert int(count) == 5 + 3
    torch.testing.assert_close(total, alone[0][0] + alone[1][0])
    with torch.no_grad():
        logits, _ = model(shifted_inputs(a[None]))
    probabilities = torch.sigmoid(logits)[0, 1:].numpy()  # the first step is not scored
    want = rolls.frame_nll(probabilities, a[1:].numpy()).sum()
    assert float(alone[0][0].detach()) == pytest.approx(want, rel=1e-4)


def test_the_bernoulli_model_learns_a_repeating_progression():
    import torch

    from rnnkit.tasks.music.model import RollModel, next_step_nll

    torch.manual_seed(0)
    chords = [(39, 43, 46), (41, 44, 48), (43, 46, 50)]
    roll = np.zeros((24, rolls.KEYS), dtype=np.float32)
    for t in range(24):
        roll[t, list(chords[t % 3])] = 1
    x, lengths = torch.from_numpy(roll)[None].repeat(4, 1, 1), torch.tensor([24] * 4)
    model = RollModel(RNNSpec("lstm", hidden=32))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(300):
        total, count = next_step_nll(model, x, lengths)
        optimizer.zero_grad()
        (total / count).backward()
        optimizer.step()
    with torch.no_grad():
        total, count = next_step_nll(model.eval(), x, lengths)
    # knowing nothing costs 88 ln 2 = 61 nats per step; each key's own frequency, 9 H(1/3) = 5.7
    assert float(total / count) < 2.0


def test_the_trainer_fits_a_bernoulli_model_on_rolls(tmp_path):
    import torch

    from rnnkit.runs import RunDir
    from rnnkit.tasks.music.model import RollModel
    from rnnkit.tasks.music.task import MusicTask, RollBatches, mean_nll
    from rnnkit.training import TrainConfig, Trainer

    chords = [(39, 43, 46), (41, 44, 48)]

    def song(steps, shift):
        roll = np.zeros((steps, rolls.KEYS), dtype=np.uint8)
        for t in range(steps):
            roll[t, [k + shift for k in chords[t % 2]]] = 1
        return roll

    train = rolls.Rolls([song(8 + i, i % 3) for i in range(12)])
    valid = rolls.Rolls([song(10, 1), song(7, 2)])
    torch.manual_seed(0)
    model = RollModel(RNNSpec("gru", hidden=24))
    before, steps = mean_nll(model, valid)
    assert steps == 9 + 6
    task = MusicTask(train, valid, batch=4, seed=0)
    config = TrainConfig(steps=200, lr=1e-2, eval_every=100, warmup=0)
    (tmp_path / "run").mkdir()
    result = Trainer(model, task, config, RunDir(tmp_path / "run"), quiet=True).fit()
    assert result["best"] < 0.25 * before
    batches = RollBatches(train, 4, seed=3)
    state = batches.state_dict()
    first = next(batches)
    batches.load_state_dict(state)
    again = next(batches)
    torch.testing.assert_close(again[:2], first[:2])  # resumable
    assert again[2] == first[2]
