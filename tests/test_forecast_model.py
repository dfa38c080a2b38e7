"""The forecaster and the normalisations: round trips, trends, both strategies with every cell."""

import numpy as np
import pytest
import torch

from rnnkit.cells import CELLS
from rnnkit.spec import RNNSpec
from rnnkit.tasks.forecast import metrics, prepare, windows
from rnnkit.tasks.forecast.model import Forecaster


def windowed(series, window, horizon):
    origins = windows.window_origins((0, len(series)), window, horizon)
    x, y = windows.gather_windows(series, series[:, :1], origins, window, horizon)
    return origins, x, y


@pytest.mark.parametrize("normalise", prepare.NORMALISATIONS)
def test_the_true_future_survives_the_round_trip(normalise):
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.normal(size=(80, 3)), 0)
    _, x, y = windowed(series, 10, 4)
    encoded = prepare.encode(x, y, [0], normalise)
    assert encoded.inputs.shape == x.shape and encoded.targets.shape == y.shape
    assert np.allclose(prepare.decode(encoded.targets.astype(np.float64), encoded), y, atol=1e-4)


@pytest.mark.parametrize("normalise", ["window", "diff"])
def test_a_trend_beyond_the_training_range_looks_like_any_other_window(normalise):
    series = (0.5 * np.arange(300.0))[:, None]  # a straight line, far above where it started
    _, x, y = windowed(series, 12, 3)
    encoded = prepare.encode(x, y, [0], normalise)
    assert np.allclose(encoded.inputs, encoded.inputs[0], atol=1e-5)  # every window the same
    assert np.allclose(encoded.targets, encoded.targets[0], atol=1e-5)
    raw = prepare.encode(x, y, [0], "none")
    assert np.ptp(raw.inputs) > 100  # unnormalised, the last windows lie far outside the first


def test_unknown_normalisation_is_named():
    with pytest.raises(ValueError, match="--normalise must be one of none, window, diff"):
        prepare.encode(np.zeros((1, 2, 1)), np.zeros((1, 1, 1)), [0], "minmax")


@pytest.mark.parametrize("strategy", ["direct", "seq2seq"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_cell_with_both_strategies(cell, strategy):
    model = Forecaster(
        RNNSpec(cell, hidden=8), input_size=4, target_channels=[0, 2], horizon=5, strategy=strategy
    )
    x, y = torch.randn(3, 9, 4), torch.randn(3, 5, 2)
    model.train()
    out = model(x, y)
    assert out.shape == (3, 5, 2)
    out.square().mean().backward()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (3, 5, 2)


def test_forecaster_rejects_bad_target_channels():
    with pytest.raises(ValueError, match="target_channels must index the 3 inputs"):
        Forecaster(RNNSpec("gru"), input_size=3, target_channels=[3], horizon=2)


@pytest.mark.parametrize("strategy", ["direct", "seq2seq"])
def test_a_noisy_seasonal_series_is_forecast_better_than_persistence(strategy):
    rng = np.random.default_rng(1)
    t = np.arange(600.0)
    series = (np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=600))[:, None]
    split = windows.chronological_split(600, 24, 6)
    train = windows.window_origins(split.train, 24, 6)
    test = windows.window_origins(split.test, 24, 6)
    x, y = windows.gather_windows(series, series, train, 24, 6)
    torch.manual_seed(0)
    model = Forecaster(RNNSpec("gru", hidden=32), 1, [0], 6, strategy=strategy)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xs, ys = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    for _ in range(150):
        batch = torch.randint(len(xs), (64,))
        loss = (model(xs[batch], ys[batch]) - ys[batch]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = windows.gather_windows(series, series, test, 24, 6)
    with torch.no_grad():
        forecast = model(torch.tensor(xt, dtype=torch.float32)).numpy()
    scale = metrics.seasonal_naive_scale(series[slice(*split.train)], 12)
    ours = metrics.errors(forecast, yt, scale)["mae"]
    naive = metrics.errors(metrics.persistence(series, test, 6), yt, scale)["mae"]
    assert ours < 0.5 * naive


def test_quantiles_always_hold_the_median_and_stay_in_range():
    from rnnkit.tasks.forecast.model import check_quantiles

    assert check_quantiles([0.9, 0.1]) == [0.1, 0.5, 0.9]
    assert check_quantiles([]) == []
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        check_quantiles([0.1, 1.0])


@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_seq2seq_quantiles_feed_back_each_targets_median(cell):
    torch.manual_seed(0)
    model = Forecaster(
        RNNSpec(cell, hidden=8), 3, [0, 2], 4, strategy="seq2seq", quantiles=[0.1, 0.9]
    )
    x, y = torch.randn(5, 6, 3), torch.randn(5, 4, 2)
    trained = model.train()(x, y)  # teacher forced: the true values go in
    assert trained.shape == (5, 4, 2, 3) and bool((trained.diff(dim=-1) >= 0).all())
    fed = []
    model.net.target.register_forward_hook(lambda m, args, out: fed.append(args[0]))
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (5, 4, 2, 3) and bool((out.diff(dim=-1) >= 0).all())
    assert torch.equal(fed[0], x[:, -1, [0, 2]])  # the decoder starts from the last observations
    for t in range(1, 4):  # then each step reads the previous step's medians
        assert torch.equal(fed[t], out[:, t - 1, :, 1])


def test_encoder_decoder_head_size_needs_feedback():
    from rnnkit import RNN
    from rnnkit.seq2seq import EncoderDecoder

    with pytest.raises(ValueError, match="head_size and feedback together"):
        EncoderDecoder(RNN("gru", 2, 4), RNN("gru", 2, 4), output_size=2, head_size=6)


def test_pinball_loss_by_hand_and_its_minimiser_is_the_quantile():
    from rnnkit.tasks.forecast.model import pinball_loss

    pred = torch.tensor([[1.0, 2.0]])  # quantiles 0.1 and 0.9 of a target 3
    loss = pinball_loss(pred, torch.tensor([3.0]), [0.1, 0.9])
    assert loss.item() == pytest.approx((0.1 * 2 + 0.9 * 1) / 2)
    samples = torch.randn(4000)
    grid = torch.linspace(-3, 3, 601)
    losses = [pinball_loss(g.expand(4000, 1), samples, [0.9]).item() for g in grid]
    best = grid[int(np.argmin(losses))].item()
    assert best == pytest.approx(float(samples.quantile(0.9)), abs=0.02)
    model = Forecaster(RNNSpec("lstm", hidden=8), 3, [0, 1], 4, quantiles=[0.2, 0.8])
    out = model(torch.randn(5, 6, 3))
    assert out.shape == (5, 4, 2, 3) and bool((out.diff(dim=-1) >= 0).all())  # never crossing


def test_conformal_shifts_widen_too_narrow_intervals_to_their_nominal_coverage():
    from rnnkit.tasks.forecast.calibration import apply_shifts, fit_shifts

    rng = np.random.default_rng(0)
    quantiles = [0.1, 0.5, 0.9]
    narrow = np.array([-0.5, 0.0, 0.5])  # a forecaster whose 0.1-0.9 interval is far too narrow

    def draw(n):  # actual values N(0, 1) around a forecast of 0, (n, H=2, K=1)
        actual = rng.standard_normal((n, 2, 1))
        return np.broadcast_to(narrow, (n, 2, 1, 3)).copy(), actual

    forecast, actual = draw(400)
    shifts = fit_shifts(forecast, actual, quantiles)
    assert shifts.shape == (2, 1, 3) and bool((shifts[..., 1] == 0).all())  # the median stays
    assert bool((shifts[..., 0] < 0).all() and (shifts[..., 2] > 0).all())
    new_forecast, new_actual = draw(20000)
    before = np.mean((new_actual >= new_forecast[..., 0]) & (new_actual <= new_forecast[..., 2]))
    shifted = apply_shifts(new_forecast, shifts)
    after = np.mean((new_actual >= shifted[..., 0]) & (new_actual <= shifted[..., 2]))
    assert before < 0.45 and after == pytest.approx(0.8, abs=0.05)
    with pytest.raises(ValueError, match="no validation windows"):
        fit_shifts(forecast[:0], actual[:0], quantiles)


@pytest.mark.parametrize("strategy", ["direct", "seq2seq"])
def test_the_highway_starts_at_zero_and_then_adds_a_linear_autoregression(strategy):
    torch.manual_seed(0)
    plain = Forecaster(RNNSpec("gru", hidden=8), 3, [0], 4, strategy=strategy, quantiles=[0.2, 0.8])
    torch.manual_seed(0)
    highway = Forecaster(RNNSpec("gru", hidden=8), 3, [0], 4, strategy=strategy, quantiles=[0.2, 0.8],
                         highway_window=6)  # fmt: skip
    x = torch.randn(5, 6, 3)
    with torch.no_grad():
        torch.testing.assert_close(highway.eval()(x), plain.eval()(x))  # zero at the start
        highway.highway.bias.fill_(1.0)
        shifted, base = highway(x), plain(x)
        torch.testing.assert_close(shifted[:, 0], base[:, 0] + 1.0)  # then added to the outputs
        if strategy == "direct":
            torch.testing.assert_close(shifted, base + 1.0)
        else:  # and fed back with them, so the decoder's later steps move too
            assert not torch.allclose(shifted[:, 1:], base[:, 1:] + 1.0)
    with pytest.raises(ValueError, match="reads windows of 6 steps, got 7"):
        highway(torch.randn(5, 7, 3))
