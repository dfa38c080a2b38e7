"""The trainer: schedules, truncated BPTT, non-finite steps, early stopping, budgets, checkpoints."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import RNN
from rnnkit.models import SequenceTagger
from rnnkit.runs import RunDir
from rnnkit.tasks.text import StreamBatches
from rnnkit.training import TrainConfig, Trainer, TrainingDiverged, detach_carry, learning_rate


class CountingTask:
    """A stream task on a repeating pattern; ``poison`` steps get a non-finite loss."""

    def __init__(self, poison=(), val_losses=None):
        ids = torch.arange(4000) % 7
        self.batches = StreamBatches(ids, batch=4, bptt=8)
        self.poison, self.val_losses, self.calls = set(poison), val_losses, 0
        self.carries = []

    def loss(self, model, batch, carry):
        self.calls += 1
        self.carries.append(carry)
        x, y, reset = batch
        logits, state = model(x, state=None if reset else carry)
        loss = F.cross_entropy(logits.reshape(-1, 7), y.reshape(-1))
        if self.calls in self.poison:
            loss = loss * float("nan")
        return loss, state

    def evaluate(self, model):
        if self.val_losses is not None:
            return {"val_loss": self.val_losses.pop(0)}
        x = torch.arange(65)[None] % 7
        logits, _ = model(x[:, :-1])
        return {"val_loss": float(F.cross_entropy(logits[0], x[0, 1:]))}


def model():
    return SequenceTagger(RNN("gru", 8, 16), 7, vocab_size=7)


def test_schedule_warms_up_then_decays_by_cosine():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 0) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + 1)))
    assert learning_rate(cfg, 9, 0) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.09))
    )
    assert learning_rate(cfg, 50, 0) == pytest.approx(0.1 + 0.9 * 0.5)
    assert learning_rate(cfg, 100, 0) == pytest.approx(0.1)
    timed = TrainConfig(minutes=1.0, lr=1.0, warmup=0, min_lr_ratio=0.0)
    assert learning_rate(timed, 5, 30.0) == pytest.approx(0.5)


def test_stream_rows_continue_their_own_part_and_carry_is_detached():
    ids = torch.arange(1000)
    batches = StreamBatches(ids, batch=4, bptt=10)
    x1, y1, reset1 = next(batches)
    x2, _, reset2 = next(batches)
    assert reset1 and not reset2
    assert torch.equal(x2[:, 0], y1[:, -1])  # each row goes on where it stopped
    assert torch.equal(x1[1, 0], ids[250])  # row 1 starts a quarter into the stream
    task = CountingTask()
    trainer = Trainer(model(), task, TrainConfig(steps=3, eval_every=10))
    trainer.fit()
    carried = task.carries[1]
    assert carried is not None and carried.grad_fn is None and not carried.requires_grad
    assert detach_carry((torch.ones(1, requires_grad=True) * 2,))[0].grad_fn is None


def test_stream_position_round_trips():
    a = StreamBatches(torch.arange(5000), batch=4, bptt=10)
    for _ in range(150):  # crosses an epoch boundary
        next(a)
    b = StreamBatches(torch.arange(5000), batch=4, bptt=10)
    b.load_state_dict(a.state_dict())
    for _ in range(5):
        xa, ya, ra = next(a)
        xb, yb, rb = next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and ra == rb


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    task = CountingTask(poison={3, 4})
    trainer = Trainer(model(), task, TrainConfig(steps=10, eval_every=5), RunDir(tmp_path))
    result = trainer.fit()
    assert result["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    task = CountingTask(poison=set(range(6, 100)))
    run = RunDir(tmp_path)
    trainer = Trainer(model(), task, TrainConfig(steps=50, eval_every=5, max_bad_steps=4), run)
    with pytest.raises(TrainingDiverged, match="4 steps in a row had a non-finite loss"):
        trainer.fit()
    saved = run.load_checkpoint()
    assert saved["step"] == 5
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_early_stopping_and_best_weights(tmp_path):
    task = CountingTask(val_losses=[3.0, 2.0, 2.5, 2.4, 2.6, 1.0])
    trainer = Trainer(
        model(), task, TrainConfig(steps=100, eval_every=2, patience=3), RunDir(tmp_path)
    )
    result = trainer.fit()
    assert result["stopped_by"] == "early stopping"
    assert result["best"] == 2.0 and result["monitor"] == "val_loss"
    assert trainer.step == 10
    assert len(RunDir(tmp_path).read_metrics()) == 5
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_budget_ends_training():
    trainer = Trainer(model(), CountingTask(), TrainConfig(minutes=0.02, eval_every=10_000))
    result = trainer.fit()
    assert result["stopped_by"] == "time budget"
    assert trainer.step > 0


@pytest.mark.parametrize("bad", [{"steps": -1}, {"minutes": -1.0}, {"lr": 0.0}, {}])
def test_config_errors(bad):
    kwargs = {"steps": 10, **bad} if bad else {}
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    torch.save({"model": Payload()}, run.file("checkpoint.pt"))
    with pytest.raises(ValueError, match="was refused: not a plain tensor checkpoint"):
        run.load_checkpoint()
    assert not marker.exists()


def test_weights_round_trip_and_mismatch(tmp_path):
    run = RunDir(tmp_path)
    a, b = model(), model()
    run.save_weights(a)
    run.load_weights(b)
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="does not fit the model"):
        run.load_weights(nn.Linear(2, 2))
    run.file("model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="is corrupt"):
        run.load_weights(b)


def test_random_windows_resume_exactly_and_shard_rows():
    from rnnkit.tasks.text import RandomWindows

    ids = torch.arange(3000)
    a = RandomWindows(ids, batch=4, bptt=10, seed=5)
    next(a)
    b = RandomWindows(ids, batch=4, bptt=10, seed=99)
    b.load_state_dict(a.state_dict())
    xa, ya, reset = next(a)
    xb, yb, _ = next(b)
    assert reset and torch.equal(xa, xb) and torch.equal(ya[:, :-1], xa[:, 1:])
    halves = [RandomWindows(ids, batch=4, bptt=10, rank=r, world=2, seed=5) for r in (0, 1)]
    whole = RandomWindows(ids, batch=4, bptt=10, seed=5)
    xw, _, _ = next(whole)
    assert torch.equal(torch.cat([next(h)[0] for h in halves]), xw)


def test_weight_decay_acts_on_matrices_only():
    from rnnkit.training import parameter_groups

    net = nn.Sequential(
        RNN("leaky", 3, 5, learn_alpha=True),
        RNN("lstm", 5, 6, layer_norm=True),
        nn.LayerNorm(6),
        nn.Embedding(4, 3),
    )
    decay, keep = parameter_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    names = {id(p): n for n, p in net.named_parameters()}
    kept = {names[id(p)].rsplit(".", 1)[-1] for p in keep["params"]}
    decayed = {names[id(p)].rsplit(".", 1)[-1] for p in decay["params"]}
    # biases, GateNorm's two-dimensional gains, LayerNorm and the leaky time constants
    assert {"bias_ih", "alpha_logit", "weight", "bias"} <= kept
    assert {"weight_ih", "weight_hh"} <= decayed and "alpha_logit" not in decayed
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(keep["params"]) == len(list(net.parameters()))
    # the trainer's AdamW: with no gradient, the decay alone moves matrices, never biases
    tagger = model()
    trainer = Trainer(tagger, CountingTask(), TrainConfig(steps=1, weight_decay=0.5))
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [0.5, 0.0]
    before = {n: p.detach().clone() for n, p in tagger.named_parameters()}
    for p in tagger.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    moved = {n for n, p in tagger.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all(before[n].ndim >= 2 for n in moved)
    assert not any("bias" in n for n in moved)


def test_a_checkpoint_with_one_parameter_group_still_resumes(tmp_path):
    run = RunDir(tmp_path)
    trainer = Trainer(model(), CountingTask(), TrainConfig(steps=4, eval_every=2), run)
    trainer.fit()
    state = run.load_checkpoint()
    # what checkpoints held before the two groups: one group over model.parameters()
    old = torch.optim.AdamW(trainer.model.parameters(), weight_decay=0.01)
    params = list(trainer.model.parameters())
    for p in params:
        old.state[p] = {k: v.clone() for k, v in trainer.optimizer.state[p].items()}
    state["optimizer"] = old.state_dict()
    run.save_checkpoint(state)
    again = Trainer(model(), CountingTask(), TrainConfig(steps=6, eval_every=2), run)
    again.resume()
    assert again.step == 4
    for mine, theirs in zip(again.model.parameters(), params, strict=True):
        assert torch.equal(
            again.optimizer.state[mine]["exp_avg"], trainer.optimizer.state[theirs]["exp_avg"]
        )
    again.fit()
    assert again.step == 6


def test_zero_steps_evaluate_and_save_the_initial_model(tmp_path):
    run = RunDir(tmp_path)
    net = model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = Trainer(net, CountingTask(), TrainConfig(steps=0), run).fit()
    assert result["step"] == 0 and result["stopped_by"] == "steps"
    assert run.load_checkpoint()["step"] == 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
