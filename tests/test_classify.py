"""Classification: files and named sets with one-line errors, scores and baselines by hand, the model
under padding, and `rnnkit classify train | eval | predict` end to end."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli as cli
from safetensors.torch import load_file

from rnnkit.cells import CELLS
from rnnkit.models import Pooling
from rnnkit.spec import RNNSpec
from rnnkit.tasks.classify import data, metrics
from rnnkit.tasks.classify.model import Classifier, Ensemble
from rnnkit.tasks.classify.task import build_model


def toy_series(n, seed, channels=1, lengths=(30, 30)):
    """Two classes: a slow sine and a fast one, noisy, random phase; lengths drawn from the range."""
    rng = np.random.default_rng(seed)
    series, labels = [], []
    for i in range(n):
        label = i % 2
        t = np.arange(rng.integers(lengths[0], lengths[1] + 1))
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * t / (12 if label else 4) + phase)
        series.append(np.stack([wave * (c + 1) for c in range(channels)], 1) + 0.1 * rng.normal(size=(len(t), channels)))  # fmt: skip
        labels.append(["slow", "fast"][label])
    return series, np.array(labels)


def write_csv(path, series, labels, label_first=True):
    longest = max(len(s) for s in series)
    lines = ["label," + ",".join(f"t{k}" for k in range(longest))]
    for s, label in zip(series, labels, strict=True):
        lines.append(label + "," + ",".join(f"{v:.5f}" for v in s[:, 0]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_npz(path, series, labels):
    longest = max(len(s) for s in series)
    x = np.zeros((len(series), longest, series[0].shape[1]))
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    np.savez(path, x=x, y=labels, lengths=np.array([len(s) for s in series]))
    return path


# -- data ---------------------------------------------------------------------------------
def test_csv_rows_that_end_early_are_shorter_series(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id_label,a,b,c\nx,1,2,3\ny,4,5,\nx,6,,\n")
    got = data.read_file(path, label_col="id_label")
    assert got.lengths.tolist() == [3, 2, 1] and got.labels.tolist() == ["x", "y", "x"]
    assert got.series[1][:, 0].tolist() == [4.0, 5.0] and got.channels == 1


def test_npz_with_lengths_round_trips_and_refuses_pickles(tmp_path):
    series, labels = toy_series(6, 0, channels=3, lengths=(5, 9))
    got = data.read_file(write_npz(tmp_path / "s.npz", series, labels))
    assert got.channels == 3 and got.lengths.tolist() == [len(s) for s in series]
    np.testing.assert_allclose(got.series[4], series[4])
    np.savez(
        tmp_path / "obj.npz", x=np.zeros((2, 3)), y=np.array([{"a": 1}, {"b": 2}], dtype=object)
    )
    with pytest.raises(ValueError, match="not a readable .npz file of plain arrays"):
        data.read_file(tmp_path / "obj.npz")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("label,a,b\n", "has a header but no series"),
        ("kind,a,b\nx,1,2\n", "has no label column 'label' (--label-col); its columns are kind, a, b"),
        ("label,a,b,c\nx,1,,3\n", "line 2: missing value at step 2"),
        ("label,a,b\nx,1,NA\n", "line 2: missing value at step 2"),
        ("label,a,b\nx,1,warm\n", "line 2: 'warm' at step 2 is not a number"),
        ("label,a,b\n,1,2\n", "line 2: the label is missing"),
    ],
)  # fmt: skip
def test_bad_csv_files_get_one_clear_line(tmp_path, text, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        data.read_file(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_training_and_test_sets_must_agree(tmp_path):
    one, labels = toy_series(4, 0)
    three, _ = toy_series(4, 1, channels=3)
    train = data.LabelledSeries(one, labels, "train.npz")
    with pytest.raises(ValueError, match="test.npz has 3 channels, the training set 1"):
        data.check_compatible(train, data.LabelledSeries(three, labels, "test.npz"))
    other = data.LabelledSeries(one, np.array(["slow", "odd", "fast", "odder"]), "test.npz")
    with pytest.raises(ValueError, match="labels the training set lacks: 'odd', 'odder'"):
        data.check_compatible(train, other)
    with pytest.raises(ValueError, match="one class only \\('slow'\\)"):
        data.check_training(data.LabelledSeries(one, np.array(["slow"] * 4), "train.npz"))
    nan = [s.copy() for s in one]
    nan[2][5, 0] = np.nan
    with pytest.raises(ValueError, match="series 3 has a missing or infinite value at step 6"):
        data.check(data.LabelledSeries(nan, labels, "train.npz"))


def test_stratified_split_keeps_every_class_in_both_parts():
    labels = np.array(["a"] * 10 + ["b"] * 5 + ["c"] * 2)
    train, val = data.stratified_split(labels, 0.2, seed=3)
    assert sorted(train.tolist() + val.tolist()) == list(range(17))
    assert [(labels[val] == c).sum() for c in "abc"] == [2, 1, 1]
    assert set(labels[train]) == {"a", "b", "c"}
    again = data.stratified_split(labels, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again, strict=True))


def test_z_normalisation_is_per_series_and_channel():
    series, labels = toy_series(3, 0, channels=2)
    series[0] = series[0] * 50 + 7
    out = data.z_normalise(data.LabelledSeries(series, labels, ""))
    for s in out.series:
        np.testing.assert_allclose(s.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(s.std(0), 1, atol=1e-9)


def test_named_sets_come_from_sktime_and_unknown_names_list_them():
    pytest.importorskip("sktime")
    available = data.offline_sets()
    assert {"GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions", "JapaneseVowels"} <= set(
        available
    )
    vowels = data.load_named("JapaneseVowels", "train")
    assert len(vowels) == 270 and vowels.channels == 12 and len(vowels.classes) == 9
    assert vowels.lengths.min() < vowels.lengths.max()  # unequal lengths, carried as they are
    with pytest.raises(ValueError, match="'GunPont' is not available offline; .*GunPoint"):
        data.load_named("GunPont", "train")


def test_ts_files_are_read_by_sktime(tmp_path):
    pytest.importorskip("sktime")
    path = tmp_path / "toy.ts"
    path.write_text(
        "@problemName toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n"
        "@equalLength false\n@classLabel true a b\n@data\n"
        "1,2,3:4,5,6:a\n7,8:9,10:b\n"
    )
    got = data.read_file(path)
    assert (
        got.channels == 2 and got.lengths.tolist() == [3, 2] and got.labels.tolist() == ["a", "b"]
    )
    np.testing.assert_allclose(got.series[0], [[1, 4], [2, 5], [3, 6]])
    (tmp_path / "bad.ts").write_text("not a ts file\n")
    with pytest.raises(ValueError, match="bad.ts is not a readable .ts file"):
        data.read_file(tmp_path / "bad.ts")


# -- scores and baselines -----------------------------------------------------------------
def test_scores_by_hand():
    actual = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    got = metrics.scores(actual, predicted, 4)  # class 3: neither present nor predicted
    assert got["accuracy"] == pytest.approx(4 / 6)
    f1 = [2 * 2 / (3 + 2), 2 * 1 / (2 + 2), 2 * 1 / (1 + 2)]
    assert got["macro_f1"] == pytest.approx(np.mean(f1))
    assert got["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert metrics.majority(np.array([1, 2, 2, 1, 0]), 3).tolist() == [1, 1, 1]  # tie: lowest


def test_nearest_neighbour_by_hand_and_across_lengths():
    train = [np.array([[0.0], [0.0]]), np.array([[5.0], [5.0]])]
    test = [np.array([[1.0], [0.5]]), np.array([[4.0], [6.0]]), np.array([[5.0], [5.0], [5.0]])]
    assert metrics.nearest_neighbour(train, np.array([3, 7]), test).tolist() == [3, 7, 7]
    stretched = metrics.resample([np.array([[0.0], [2.0]])], 5)
    np.testing.assert_allclose(stretched[0, :, 0], [0, 0.5, 1, 1.5, 2])


# -- the model ------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("pooling", Pooling.KINDS)
def test_padding_changes_nothing_for_any_cell_and_pooling(cell, pooling):
    torch.manual_seed(0)
    model = Classifier(
        RNNSpec(cell, hidden=8, bidirectional=True), 3, 4, pooling=pooling, conv=True
    ).eval()
    short, long = torch.randn(1, 7, 3), torch.randn(1, 12, 3)
    padded = torch.cat([short, 100 * torch.randn(1, 5, 3)], 1)  # garbage past the end
    both = model(torch.cat([padded, long]), torch.tensor([7, 12]))
    torch.testing.assert_close(both[0], model(short)[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both[1], model(long)[0], atol=1e-5, rtol=1e-4)


# -- the command line -----------------------------------------------------------------------
SMALL = ["--steps", "30", "--eval-every", "15", "--hidden", "16", "--batch-size", "8"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    train, train_labels = toy_series(40, 0, lengths=(20, 40))
    test, test_labels = toy_series(20, 1, lengths=(20, 40))
    return {
        "csv": (write_csv(root / "train.csv", train, train_labels), write_csv(root / "test.csv", test, test_labels)),
        "npz": (write_npz(root / "train.npz", train, train_labels), write_npz(root / "test.npz", test, test_labels)),
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_train_eval_predict_end_to_end(files, tmp_path, capsys, kind):
    train, test = files[kind]
    out = tmp_path / "run"
    code, stdout, err = cli(
        capsys, "classify", "train", "--train", train, "--test", test, *SMALL, "--out", out
    )
    assert code == 0, err
    assert "40 training series (32 train, 8 validation), 20 test, 2 classes" in stdout
    assert "length 20-40" in stdout and "nn1" in stdout and (out / "confusion.png").exists()
    code, stdout, err = cli(capsys, "classify", "eval", out, "--json")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert set(result["baselines"]) == {"majority", "nn1"} and result["classes"] == ["fast", "slow"]
    assert np.array(result["confusion"]).sum() == 20 and 0 <= result["macro_f1"] <= 1
    assert result["baselines"]["majority"]["accuracy"] == pytest.approx(0.5)
    code, stdout, err = cli(capsys, "classify", "predict", out, "--input", test)
    assert code == 0, err
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "series,label,given,p_fast,p_slow" and len(rows) == 21
    p = np.array([[float(v) for v in r.split(",")[3:]] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert f"accuracy on the 20 labelled: {result['accuracy']:.4f}" in stdout
    before = (out / "model.safetensors").read_bytes()
    for name in ("model.safetensors", "config.json", "confusion.png", "refit.json"):
        code, _, err = cli(capsys, "classify", "predict", out, "--input", test, "--out", out / name)
        assert code == 2 and f"would overwrite the run's own {name}" in err, err
    code, _, err = cli(capsys, "classify", "predict", out, "--input", test, "--out", test)
    assert code == 2 and "which this command or the run reads" in err
    assert (out / "model.safetensors").read_bytes() == before


def test_one_series_per_class_says_what_validation_needs(tmp_path, capsys):
    series, labels = toy_series(2, 0, lengths=(10, 10))
    train = write_csv(tmp_path / "train.csv", series, labels)
    code, _, err = cli(capsys, "classify", "train", "--train", train, "--test", train, *SMALL,
                       "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and "no class has two training series" in err, err
    assert "--val-fraction" not in err and not (tmp_path / "run").exists()


def test_a_trained_classifier_beats_the_majority_class(files, tmp_path, capsys):
    train, test = files["npz"]
    code, stdout, err = cli(capsys, "classify", "train", "--train", train, "--test", test, "--no-conv",
                            "--cell", "gru", "--steps", "150", "--eval-every", "50", "--hidden", "16",
                            "--lr", "1e-2", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    model_accuracy = float(stdout.split("\nmodel")[1].split()[0])
    assert model_accuracy >= 0.9  # majority: 0.5


def test_refit_trains_on_every_training_series_for_the_best_step_count(files, tmp_path, capsys):
    train, test = files["npz"]
    out = tmp_path / "run"
    code, stdout, err = cli(
        capsys, "classify", "train", "--train", train, "--test", test, *SMALL, "--out", out
    )  # fmt: skip (refit is the default)
    assert code == 0, err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(records, key=lambda r: (r["val_error"], r["val_nll"]))["step"]
    assert json.loads((out / "refit.json").read_text()) == {
        "steps": best,
        "series": 40,
        "members": 3,
    }
    assert f"refit on all 40 training series for {best} steps (3 members)" in stdout
    code, stdout, err = cli(capsys, "classify", "eval", out, "--json")
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["test_series"] == 20


def test_an_ensemble_averages_its_members_probabilities():
    torch.manual_seed(0)
    members = [
        Classifier(RNNSpec("gru", hidden=5), 2, 3, conv=conv) for conv in (False, True, False)
    ]
    ensemble = Ensemble(members).eval()
    x, lengths = torch.randn(4, 9, 2), torch.tensor([9, 3, 5, 9])
    want = torch.stack([torch.softmax(m(x, lengths), -1) for m in members]).mean(0)
    torch.testing.assert_close(torch.softmax(ensemble(x, lengths), -1), want)
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])


def test_ensemble_refits_its_members_from_successive_seeds(files, tmp_path, capsys):
    train, test = files["npz"]
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "classify", "train", "--train", train, "--test", test, *SMALL,
                            "--ensemble", "2", "--seed", "3", "--out", out)  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "refit.json").read_text())["members"] == 2
    assert "(2 members)" in stdout
    config = json.loads((out / "config.json").read_text())
    model = build_model(config)
    assert isinstance(model, Ensemble) and len(model.members) == 2
    state = load_file(str(out / "model.safetensors"))
    first = {k[len("members.0.") :]: v for k, v in state.items() if k.startswith("members.0.")}
    second = {k[len("members.1.") :]: v for k, v in state.items() if k.startswith("members.1.")}
    assert first.keys() == second.keys() and any(
        not torch.equal(first[k], second[k]) for k in first
    )
    # the first member is the model a single refit from the same seed gives
    single = tmp_path / "single"
    code, _, err = cli(capsys, "classify", "train", "--train", train, "--test", test, *SMALL,
                       "--seed", "3", "--ensemble", "1", "--out", single)  # fmt: skip
    assert code == 0, err
    alone = load_file(str(single / "model.safetensors"))
    assert alone.keys() == first.keys() and all(torch.equal(alone[k], first[k]) for k in alone)
    code, stdout, err = cli(capsys, "classify", "eval", out, "--json")
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["test_series"] == 20


def test_predict_reads_unlabelled_series(files, tmp_path, capsys):
    train, test = files["csv"]
    out = tmp_path / "run"
    code, _, err = cli(capsys, "classify", "train", "--train", train, "--test", test, *SMALL,
                       "--no-refit", "--out", out)  # fmt: skip
    assert code == 0, err
    assert not (out / "refit.json").exists()  # the weights chosen on validation stay
    unlabelled = tmp_path / "new.csv"
    unlabelled.write_text("a,b,c,d\n" + "\n".join(",".join(f"{np.sin(k + i):.3f}" for k in range(4)) for i in range(3)) + "\n")  # fmt: skip
    code, stdout, err = cli(
        capsys, "classify", "predict", out, "--input", unlabelled, "--out", tmp_path / "p.csv"
    )
    assert code == 0, err
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "series,label,p_fast,p_slow" and len(rows) == 4


def test_named_set_end_to_end(tmp_path, capsys):
    pytest.importorskip("sktime")
    code, stdout, err = cli(capsys, "classify", "train", "--dataset", "ItalyPowerDemand", "--steps", "4",
                            "--eval-every", "2", "--hidden", "8", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert "67 training series" in stdout and "1029 test" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --dataset NAME (a UCR/UEA set) or both --train FILE and --test FILE"),
        (
            ["--dataset", "GunPoint", "--train", "x.csv"],
            "give --dataset or --train/--test, not both",
        ),
        (["--train", "missing.csv", "--test", "missing.csv"], "missing.csv: no such file"),
        (["--val-fraction", "1.5"], "--val-fraction: must be in (0, 1), got 1.5"),
        (["--ensemble", "0"], "--ensemble: must be in [1, 64], got 0"),
        (["--ensemble", "2", "--no-refit"], "--ensemble refits its members on every training"),
    ],
)
def test_bad_options_are_one_line_and_status_2(tmp_path, capsys, args, message):
    code, _, err = cli(capsys, "classify", "train", *args, "--out", tmp_path / "run")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_mismatched_test_file_stops_before_a_run_exists(files, tmp_path, capsys):
    train, _ = files["csv"]
    other = tmp_path / "other.csv"
    other.write_text("label,a,b\nmaybe,1,2\nslow,2,3\n")
    code, _, err = cli(
        capsys, "classify", "train", "--train", train, "--test", other, "--out", tmp_path / "run"
    )
    assert code == 2 and "labels the training set lacks: 'maybe'" in err
    assert not (tmp_path / "run").exists()
