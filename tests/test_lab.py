"""The long-range problems, the lab's training task, and `rnnkit lab` / `rnnkit diagnose` end to end."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli as cli

from rnnkit.runs import RunDir
from rnnkit.tasks import longrange
from rnnkit.tasks.synthetic import PROBLEMS, adding_problem, copy_memory, delayed_recall
from rnnkit.training import TrainConfig, Trainer


def test_adding_baseline_is_the_variance_of_the_target():
    x, y = adding_problem(20000, 30, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 30, 2) and bool((x[..., 1].sum(1) == 2).all())
    marked = (x[..., 0] * x[..., 1]).sum(1, keepdim=True)
    assert torch.equal(marked, y)
    assert F.mse_loss(torch.full_like(y, 1.0), y).item() == pytest.approx(1 / 6, rel=0.03)


def test_copy_memory_layout_and_its_baseline():
    length = 7
    x, y = copy_memory(500, length, torch.Generator().manual_seed(0))
    tokens = x.argmax(-1)
    assert x.shape == (500, length + 20, 10) and y.shape == (500, length + 20)
    assert bool((tokens[:, :10] >= 1).all() and (tokens[:, :10] <= 8).all())
    assert bool((tokens[:, 10 + length - 1] == 9).all())
    assert torch.equal(y[:, -10:], tokens[:, :10]) and bool((y[:, :-10] == 0).all())
    # the memoryless predictor: certain blanks, then a uniform guess over the 8 symbols
    logits = torch.full((500, length + 20, 9), -1e9)
    logits[:, :-10, 0] = 0.0
    logits[:, -10:, 1:] = 0.0
    memoryless = F.cross_entropy(logits.reshape(-1, 9), y.reshape(-1)).item()
    assert memoryless == pytest.approx(PROBLEMS["copy"].baseline(length), rel=1e-5)
    assert PROBLEMS["copy"].baseline(1000) == pytest.approx(10 * math.log(8) / 1020)


def test_delayed_recall_asks_for_the_marked_symbol_early_in_the_sequence():
    x, y = delayed_recall(300, 50, torch.Generator().manual_seed(0))
    marked = x[..., -1].argmax(1)
    assert bool((x[..., -1].sum(1) == 1).all()) and int(marked.max()) < 5
    assert torch.equal(x[torch.arange(300), marked, :8].argmax(-1), y)
    assert PROBLEMS["recall"].baseline(50) == pytest.approx(math.log(8))


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problems_are_reproducible_from_a_seed_and_reject_short_lengths(name):
    generate = PROBLEMS[name].generate
    a = generate(4, 20, torch.Generator().manual_seed(3))
    b = generate(4, 20, torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="length must be >="):
        generate(4, 0, None)


def _config(**overrides):
    base = {
        "task": "lab",
        "problem": "adding",
        "length": 12,
        "cell": "gru",
        "dilations": None,
        "hidden": 16,
        "layers": 1,
        "init": "default",
        "radius": None,
        "nonlinearity": "tanh",
        "learn_alpha": True,
        "max_timescale": 12.0,
        "batch_size": 16,
        "lr": 1e-2,
        "clip": 1.0,
        "val_size": 200,
        "seed": 0,
    }
    return {**base, **overrides}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("cell", ["elman", "leaky", "lstm", "gru", "jordan"])
def test_every_cell_trains_on_every_problem(problem, cell):
    config = _config(problem=problem, cell=cell)
    model = longrange.build_model(config)
    task = longrange.LongRangeTask(PROBLEMS[problem], 12, 16, 0, val_size=64)
    loss, carry = task.loss(model, next(task.batches), None)
    loss.backward()
    assert carry is None and math.isfinite(loss.item())
    metrics = task.evaluate(model)
    assert set(metrics) >= {task.monitor.name, "baseline", "solved"}
    assert task.monitor.name == ("val_mse" if problem == "adding" else "val_nll")
    flow = task.gradient_flow(model)
    assert len(flow.norms[-1]) == PROBLEMS[problem].sequence_length(12)


def test_training_stops_when_the_problem_is_solved(tmp_path):
    # adding with T = 4 is easy: a GRU solves it within a few hundred steps
    config = _config(length=4, lr=2e-2)
    torch.manual_seed(0)
    model = longrange.build_model(config)
    task = longrange.LongRangeTask(PROBLEMS["adding"], 4, 64, 0, val_size=500)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    trainer = Trainer(model, task, TrainConfig(steps=3000, lr=2e-2, eval_every=50), run, quiet=True)
    result = trainer.fit()
    assert result["stopped_by"] == "solved" and trainer.step < 3000
    assert result["val_mse"] < 0.01 and result["monitor"] == "val_mse"
    flows = run.read_metrics("gradient_flow.jsonl")
    assert flows[0]["step"] == 0 and flows[-1]["step"] == trainer.step


def test_generated_batches_resume_where_they_stopped():
    a = longrange.GeneratedBatches(PROBLEMS["copy"], 2, 5, seed=1)
    next(a)
    state = a.state_dict()
    expected = next(a)
    b = longrange.GeneratedBatches(PROBLEMS["copy"], 2, 5, seed=99)
    b.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(next(b), expected, strict=True))


def test_chrono_and_radius_options_reach_the_model():
    model = longrange.build_model(_config(cell="lstm", init="chrono", max_timescale=50.0))
    bias = (model.rnn.cells[0].bias_ih + model.rnn.cells[0].bias_hh).detach()
    assert float(bias[16:32].std()) > 0.3  # spread forget biases, not a constant 1
    model = longrange.build_model(_config(cell="elman", radius=1.5))
    from rnnkit.diagnostics import spectral_radius

    assert spectral_radius(model.rnn.cells[0].weight_hh) == pytest.approx(1.5, rel=1e-4)


# -- the command line ------------------------------------------------------------------


TINY = ["--hidden", "12", "--batch-size", "8", "--val-size", "50", "--test-size", "50"]


def test_lab_compare_prints_a_table_plots_and_a_json_last_line(tmp_path, capsys):
    out = tmp_path / "cmp"
    code, stdout, err = cli(
        capsys, "lab", "compare", "--task", "recall", "--length", "10", "--cells", "elman,lstm",
        "--dilations", "1,2", "--steps", "12", "--eval-every", "6", "--seeds", "2", "--out", out, *TINY,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["task"] == "recall" and summary["length"] == 10
    rows = summary["results"]
    assert [(r["cell"], r["dilations"], r["seed"]) for r in rows] == [
        ("elman", None, 0), ("elman", None, 1), ("lstm", None, 0), ("lstm", None, 1),
        ("elman", [1, 2], 0), ("elman", [1, 2], 1),
    ]  # fmt: skip
    for r in rows:
        assert {"test_metric", "solved", "steps", "seconds"} <= set(r)
        assert r["steps"] == 12 and r["solved"] is False and r["test_metric"] > 0
    assert "steps to solve" in stdout and "memoryless baseline 2.0794" in stdout
    for name in ("curves.png", "gradient_flow.png", "results.json", "lstm-seed1/model.safetensors"):
        assert (out / name).stat().st_size > 0
    # a second compare into the same folder refuses to overwrite anything
    code, _, err = cli(capsys, "lab", "compare", "--steps", "5", "--cells", "lstm", "--seeds", "1",
                       "--task", "recall", "--length", "10", "--out", out, *TINY)  # fmt: skip
    assert code == 2 and "already holds a run" in err


def test_lab_gradients_and_diagnose(tmp_path, capsys):
    out = tmp_path / "g"
    code, stdout, err = cli(capsys, "lab", "gradients", "--cell", "lstm", "--task", "copy",
                            "--length", "15", "--steps", "8", "--eval-every", "4", "--out", out, *TINY)  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "gradient_flow.json").read_text())
    assert summary["steps_recorded"] == [0, 4, 8]
    assert len(summary["norms"][0][0]) == 35  # T + 20 steps of the copy task
    assert (out / "gradient_flow.png").stat().st_size > 0
    assert (out / "gradient_flow_lines.png").stat().st_size > 0
    code, stdout, err = cli(capsys, "diagnose", out, "--json")
    assert code == 0, err
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last["steps_recorded"] == [0, 4, 8] and "W_f" in str(last["summary"][0]["radii"])


def test_elman_gradients_vanish_at_initialisation_where_leaky_units_keep_them(tmp_path, capsys):
    shrink = {}
    for cell in ("elman", "leaky"):
        out = tmp_path / cell
        code, _, err = cli(capsys, "lab", "gradients", "--cell", cell, "--length", "101", "--steps", "0",
                           "--out", out)  # fmt: skip
        assert code == 0, err
        shrink[cell] = json.loads((out / "gradient_flow.json").read_text())["summary"][0][
            "shrink_100"
        ]
    assert shrink["elman"] > 1000 > 10 * shrink["leaky"]


def test_diagnose_measures_a_run_that_recorded_nothing(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli(capsys, "lab", "gradients", "--length", "8", "--steps", "0", "--out", out)[0] == 0
    (out / "gradient_flow.jsonl").unlink()
    code, stdout, err = cli(capsys, "diagnose", out)
    assert code == 0, err
    assert json.loads((out / "gradient_flow.json").read_text())["steps_recorded"] == [0, 0]


def test_lab_power_matches_log_of_the_radius(tmp_path, capsys):
    code, stdout, err = cli(
        capsys, "lab", "power", "--radii", "0.8,1.1", "--length", "150", "--out", tmp_path
    )
    assert code == 0, err
    results = json.loads((tmp_path / "power_method.json").read_text())["results"]
    assert [r["radius"] for r in results] == [0.8, 1.1]
    assert all(r["relative_error"] < 0.1 for r in results)
    assert (tmp_path / "power_method.png").stat().st_size > 0


def test_lab_explode_shows_what_clipping_prevents(tmp_path, capsys):
    code, stdout, err = cli(
        capsys,
        "lab",
        "explode",
        "--steps",
        "40",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    unclipped, clipped = json.loads((tmp_path / "explode.json").read_text())["runs"]
    assert unclipped["clip"] is None and clipped["clip"] == 1.0
    assert unclipped["non_finite_steps"] + unclipped["huge_steps"] > 0
    assert clipped["non_finite_steps"] == 0 and clipped["test_mse"] is not None
    assert len(unclipped["grad_norms"]) == 40 and (tmp_path / "explode.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["lab", "compare", "--steps", "5", "--dilations", "1,x"], "--dilations: '1,x' is not"),
        (["lab", "compare", "--steps", "5", "--dilations", "0"], "must list integers >= 1"),
        (["lab", "compare", "--steps", "5", "--cells", "lstm,tcn"], "unknown cell 'tcn'"),
        (["lab", "compare", "--cells", "lstm"], "give --minutes or --steps"),
        (
            ["lab", "compare", "--steps", "5", "--seeds", "0"],
            "--seeds: must be in [1, 1000], got 0",
        ),
        (["lab", "gradients", "--length", "0"], "--length: must be in [1, 100000], got 0"),
        (["lab", "gradients", "--radius", "-1"], "--radius: must be in (0, 100], got -1"),
        (["lab", "gradients", "--task", "adding", "--length", "1"], "--length must be >= 2"),
        (["lab", "power", "--radii", "0.9,-1"], "--radii must list numbers in (0, 100]"),
        (["lab", "explode", "--radius", "0"], "--radius: must be in (0, 100], got 0"),
        (["lab", "gradients", "--task", "sorting"], "invalid choice: 'sorting'"),
    ],
)
def test_lab_bad_input_is_one_line_and_status_2(args, message, capsys, tmp_path):
    code, _, err = (
        cli(capsys, *args, "--out", tmp_path / "x") if args[1] != "power" else cli(capsys, *args)
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnkit: error:") and message in err


def test_diagnose_refuses_what_is_not_a_run(tmp_path, capsys):
    code, _, err = cli(capsys, "diagnose", tmp_path / "missing")
    assert code == 2 and "does not exist" in err


def test_lab_explode_writes_strict_json_when_nothing_stays_finite(tmp_path, capsys):
    # relu with radius 4: the forward pass itself overflows; clipping cannot help there
    code, stdout, err = cli(capsys, "lab", "explode", "--radius", "4", "--nonlinearity", "relu",
                            "--steps", "5", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    text = (tmp_path / "explode.json").read_text()
    runs = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))["runs"]
    assert all(r["non_finite_steps"] == 5 and r["max_grad_norm"] is None for r in runs)
    assert "none finite" in stdout


def test_lab_gradients_resumes_and_takes_every_shared_option(tmp_path, capsys):
    out = tmp_path / "g"
    code, _, err = cli(capsys, "lab", "gradients", "--cell", "gru", "--task", "copy", "--length", "6",
                       "--steps", "8", "--eval-every", "4", "--checkpoint-every", "2",
                       "--layer-norm", "--out", out, *TINY)  # fmt: skip
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["layer_norm"] is True and config["train"]["checkpoint_every"] == 2
    code, stdout, err = cli(capsys, "lab", "gradients", "--out", out, "--resume", "--steps", "12")
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["steps"] == 12
    steps = [
        json.loads(line)["step"] for line in (out / "gradient_flow.jsonl").read_text().splitlines()
    ]
    assert steps == [0, 4, 8, 12]  # the resumed run went on from step 8, with the run's options
    code, _, err = cli(capsys, "lab", "gradients", "--out", out, "--steps", "4")
    assert code == 2 and "already holds a run" in err
