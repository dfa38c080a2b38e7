"""The CUDA paths: every cell and architecture on the GPU agrees with the CPU, the fused path
with cuDNN's own modules, and the task commands train there. Skipped without a GPU (as in CI)."""

import json
import warnings

import pytest
import torch
from conftest import parts, run_cli
from torch import nn

from rnnkit import CELLS, RNN
from rnnkit.diagnostics import gradient_flow
from rnnkit.seq2seq import EncoderDecoder
from rnnkit.spec import RNNSpec
from rnnkit.tasks.forecast.model import Forecaster

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
GPU = torch.device("cuda")
D, H, B, T = 6, 16, 5, 23
LENGTHS = torch.tensor([23, 7, 15, 1, 23])


@pytest.fixture(autouse=True)
def _full_precision():
    """Compare in true float32: no TF32 in matrix products or cuDNN."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def forward_backward(module, x, lengths=None):
    """Outputs, final state and every gradient (input first) of a fixed random projection."""
    x = x.detach().clone().requires_grad_(True)
    y, final = module(x, None, lengths)
    torch.manual_seed(1)
    gy = torch.randn(y.shape).to(y.device)
    loss = (y * gy).sum() + sum(f.square().sum() for f in parts(final))
    loss.backward()
    grads = [x.grad] + [p.grad for p in module.parameters()]
    return [y, *parts(final)], grads


def assert_same(gpu, cpu, atol, rtol=1e-4):
    for a, b in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(a.cpu(), b, atol=atol, rtol=rtol)


ARCHITECTURES = {
    "one layer": {},
    "stacked, bidirectional": {"num_layers": 2, "bidirectional": True},
    "deep transition": {"transition_depth": 2},
    "skip connections through time": {"num_layers": 2, "dilations": [1, 3]},
}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_every_cell_in_every_architecture_agrees_with_the_cpu(cell, architecture, with_lengths):
    torch.manual_seed(0)
    cpu = RNN(cell, D, H, **ARCHITECTURES[architecture])
    gpu = RNN(cell, D, H, **ARCHITECTURES[architecture]).to(GPU)
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(B, T, D)
    lengths = LENGTHS if with_lengths else None
    out_cpu, grads_cpu = forward_backward(cpu, x, lengths)
    out_gpu, grads_gpu = forward_backward(gpu, x.to(GPU), lengths)
    assert_same(out_gpu, out_cpu, atol=1e-5)
    # float32 sums in another order over 23 steps and two directions: ~1e-4 relative apart
    assert_same(grads_gpu, grads_cpu, atol=1e-4, rtol=1e-3)


TORCH = {
    "elman": lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


@pytest.mark.parametrize("kind", list(TORCH))
@pytest.mark.parametrize("fused", ["auto", False])
def test_stock_cells_match_cudnn_with_copied_weights(kind, fused):
    reference = TORCH[kind](D, H, num_layers=2, bidirectional=True, batch_first=True).to(GPU)
    ours = RNN.from_torch(reference, fused=fused)
    assert ours.uses_fused == (fused == "auto")
    x = torch.randn(B, T, D, device=GPU)
    out, grads = forward_backward(ours, x)
    x_ref = x.detach().clone().requires_grad_(True)
    y, final = reference(x_ref)
    torch.manual_seed(1)
    gy = torch.randn(y.shape).to(GPU)
    ((y * gy).sum() + sum(f.square().sum() for f in parts(final))).backward()
    assert_same(out, [t.cpu() for t in [y, *parts(final)]], atol=1e-5)
    torch.testing.assert_close(grads[0], x_ref.grad, atol=1e-4, rtol=1e-4)


class LastStep(nn.Module):
    def __init__(self, rnn: RNN) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0][:, -1]


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman"])
def test_fused_weights_are_one_cudnn_block_after_moving_and_training(kind):
    rnn = RNN(kind, D, H, num_layers=2, bidirectional=True).to(GPU)
    parameters = list(rnn.parameters())
    optimiser = torch.optim.Adam(rnn.parameters(), lr=1e-3)
    x = torch.randn(B, T, D, device=GPU)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cuDNN warns when it must compact scattered weights
        for _ in range(2):
            optimiser.zero_grad()
            rnn(x)[0].square().mean().backward()
            optimiser.step()
    assert all(a is b for a, b in zip(parameters, rnn.parameters(), strict=True))
    assert len({p.untyped_storage().data_ptr() for p in rnn.parameters()}) == 1


def test_gradient_flow_probes_agree_with_the_cpu():
    torch.manual_seed(0)
    cpu = LastStep(RNN("lstm", D, H, fused="auto"))
    gpu = LastStep(RNN("lstm", D, H, fused="auto"))
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(GPU)
    x = torch.randn(B, T, D)
    flow_cpu = gradient_flow(cpu, lambda m: m(x).square().mean())
    flow_gpu = gradient_flow(gpu, lambda m: m(x.to(GPU)).square().mean())
    assert len(flow_gpu.norms[0]) == T and flow_gpu.norms[0][-1] > 0
    torch.testing.assert_close(
        torch.tensor(flow_gpu.norms), torch.tensor(flow_cpu.norms), atol=1e-6, rtol=1e-3
    )


@pytest.mark.parametrize("strategy", ["direct", "seq2seq"])
def test_forecaster_with_quantiles_agrees_with_the_cpu(strategy):
    torch.manual_seed(0)
    cpu = Forecaster(
        RNNSpec("gru", hidden=12), 4, [0, 1], 5, strategy=strategy, quantiles=[0.1, 0.9]
    )
    gpu = Forecaster(
        RNNSpec("gru", hidden=12), 4, [0, 1], 5, strategy=strategy, quantiles=[0.1, 0.9]
    )
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(GPU)
    x = torch.randn(3, 10, 4)
    with torch.no_grad():
        torch.testing.assert_close(gpu.eval()(x.to(GPU)).cpu(), cpu.eval()(x), atol=1e-5, rtol=1e-4)


def test_encoder_decoder_with_attention_agrees_with_the_cpu():
    torch.manual_seed(0)

    def build():
        enc, dec = RNN("gru", 8, 16, bidirectional=True), RNN("lstm", 8 + 32, 16)
        return EncoderDecoder(enc, dec, source_vocab=11, target_vocab=9, attention=True)

    cpu, gpu = build(), build()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(GPU)
    src, tgt = torch.randint(11, (4, 12)), torch.randint(9, (4, 6))
    lengths = torch.tensor([12, 5, 9, 1])
    torch.testing.assert_close(
        gpu(src.to(GPU), tgt.to(GPU), src_lengths=lengths).cpu(),
        cpu(src, tgt, src_lengths=lengths),
        atol=1e-5,
        rtol=1e-4,
    )


def test_forecast_cli_trains_on_the_gpu_and_evaluates_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "forecast", "train", "--data", "airline", "--device", "cuda",
                                "--steps", "40", "--eval-every", "20", "--quantiles", "0.1,0.9",
                                "--out", out)  # fmt: skip
    assert code == 0, err
    assert "covers" in stdout
    code, stdout, err = run_cli(capsys, "forecast", "eval", out, "--json")  # loads onto the CPU
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["model"]["mae"] > 0 and result["origins"] > 0


def test_text_cli_trains_on_the_gpu_with_truncated_bptt(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 200)
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "text", "train", "--data", corpus, "--device", "cuda",
                                "--steps", "30", "--eval-every", "15", "--hidden", "32",
                                "--bptt", "16", "--batch-size", "8", "--out", out)  # fmt: skip
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "text", "sample", out, "--length", "40", "--device", "cuda")
    assert code == 0, err
    assert len(stdout.strip()) > 0
