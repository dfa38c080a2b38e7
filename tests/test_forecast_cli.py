"""`rnnkit forecast train | eval` end to end on small CSV files, and its one-line errors."""

import json
import math

import numpy as np
import pytest
from conftest import run_cli as cli


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    days = np.arange("2020-01-01", "2020-12-31", dtype="datetime64[D]")
    t = np.arange(len(days))
    load = 10 + 3 * np.sin(2 * np.pi * t / 7) + 0.3 * rng.normal(size=len(t))
    temp = 15 + 8 * np.sin(2 * np.pi * t / 365) + rng.normal(size=len(t))
    path = tmp_path_factory.mktemp("data") / "load.csv"
    rows = ["day,load,temp"] + [
        f"{d},{a:.3f},{b:.3f}" for d, a, b in zip(days, load, temp, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


SMALL = [
    "--window",
    "14",
    "--horizon",
    "3",
    "--steps",
    "40",
    "--eval-every",
    "20",
    "--hidden",
    "16",
]


@pytest.mark.parametrize(
    "strategy, normalise", [("direct", "none"), ("seq2seq", "window"), ("direct", "diff")]
)
def test_train_then_eval_json(csv_file, tmp_path, capsys, strategy, normalise):
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "forecast", "train", "--csv", csv_file, "--target", "load", "--features",
                            "temp", "--time-col", "day", "--strategy", strategy, "--normalise", normalise,
                            *SMALL, "--out", out)  # fmt: skip
    assert code == 0, err
    assert "season 7" in stdout and "persistence" in stdout and "seasonal_naive" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["channels"][:2] == ["load", "temp"] and "weekday_sin" in config["channels"]
    code, stdout, err = cli(capsys, "forecast", "eval", out, "--json")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["horizon"] == 3 and result["origins"] > 50
    assert set(result["baselines"]) == {"persistence", "seasonal_naive", "mean"}
    for scores in [result["model"], *result["baselines"].values()]:
        assert set(scores) == {"mae", "rmse", "smape", "mase", "by_step"}
        assert len(scores["by_step"]["mae"]) == 3
        assert scores["mae"] == pytest.approx(np.mean(scores["by_step"]["mae"]))
    # predict: the 3 days after the file's last one, as CSV and plots
    code, stdout, err = cli(capsys, "forecast", "predict", out)
    assert code == 0, err
    lines = (out / "forecast.csv").read_text().splitlines()
    assert lines[0] == "time,load" and len(lines) == 4
    assert lines[1].startswith("2020-12-31") and lines[3].startswith("2021-01-02")
    assert all(math.isfinite(float(line.split(",")[1])) for line in lines[1:])
    for png in ("forecast.png", "forecast_error_by_horizon.png"):
        assert (out / png).stat().st_size > 0
    short = tmp_path / "short.csv"
    short.write_text("day,load\n2021-01-01,3\n")
    code, _, err = cli(capsys, "forecast", "predict", out, "--csv", short)
    assert code == 2 and "has no column 'temp'; its columns are day, load" in err
    # a weekly series: seasonal naive is the baseline to beat here
    b = result["baselines"]
    assert b["seasonal_naive"]["mae"] < min(b["persistence"]["mae"], b["mean"]["mae"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "lod"], "has no column 'lod'; its columns are day, load, temp"),
        ([], "--csv needs --target"),
        (["--target", "load", "--features", "load"], "load is both a target and a feature"),
        (
            ["--target", "load", "--window", "200"],
            "needs at least 207 steps, so the series needs about 2070",
        ),
        (["--target", "load", "--bidirectional"], "--bidirectional would read the future"),
        (["--target", "load", "--data", "stocks"], "give --csv or --data, not both"),
    ],
)
def test_bad_forecast_input_is_one_line_and_status_2(csv_file, tmp_path, capsys, args, message):
    code, _, err = cli(capsys, "forecast", "train", "--csv", csv_file, "--time-col", "day", *args,
                       "--steps", "2", "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()  # nothing is created before the data are checked


def test_missing_values_are_located_then_filled(tmp_path, capsys):
    values = [f"{np.sin(i / 3):.3f}" for i in range(200)]
    values[5] = values[9] = ""
    path = tmp_path / "gappy.csv"
    path.write_text("t,x\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    code, _, err = cli(capsys, "forecast", "train", "--csv", path, "--target", "x", "--window", "8",
                       "--horizon", "2", "--steps", "2", "--out", tmp_path / "a")  # fmt: skip
    assert code == 2 and "'x' at lines 7, 11" in err
    code, _, err = cli(capsys, "forecast", "train", "--csv", path, "--target", "x", "--window", "8",
                       "--horizon", "2", "--steps", "2", "--fill", "interpolate", "--out", tmp_path / "b")  # fmt: skip
    assert code == 0, err


def test_builtin_seattle_weather(tmp_path, capsys):
    pytest.importorskip("vega_datasets")
    code, stdout, err = cli(capsys, "forecast", "train", "--steps", "3", "--eval-every", "3",
                            "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert "forecast temp_max: 1461 steps" in stdout


def test_builtin_airline_ships_with_rnnkit(tmp_path, capsys):
    code, stdout, err = cli(capsys, "forecast", "train", "--data", "airline", "--steps", "3",
                            "--eval-every", "3", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert (
        "forecast passengers: 144 steps" in stdout and "window 12, horizon 6, season 12" in stdout
    )


@pytest.mark.parametrize("strategy", ["direct", "seq2seq"])
def test_quantile_forecasts_report_coverage_and_write_intervals(
    csv_file, tmp_path, capsys, strategy
):
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "forecast", "train", "--csv", csv_file, "--target", "load",
                            "--time-col", "day", "--strategy", strategy, "--quantiles", "0.1,0.9",
                            *SMALL, "--out", out)  # fmt: skip
    assert code == 0, err
    assert "interval 0.1-0.9 (nominal 80%): covers" in stdout
    code, stdout, err = cli(capsys, "forecast", "eval", out, "--json")
    interval = json.loads(stdout.strip().splitlines()[-1])["interval"]
    assert 0.0 <= interval["coverage"] <= 1.0 and len(interval["by_step"]) == 3
    assert interval["calibrated"] and (out / "calibration.json").exists()
    assert 0.0 <= interval["uncalibrated_coverage"] <= 1.0
    assert interval["width"] > 0 and interval["nominal"] == pytest.approx(0.8)
    assert cli(capsys, "forecast", "predict", out)[0] == 0
    header, first = (out / "forecast.csv").read_text().splitlines()[:2]
    assert header == "time,load,load_q0.1,load_q0.5,load_q0.9"
    low, mid, high = map(float, first.split(",")[2:])
    assert low <= mid <= high and float(first.split(",")[1]) == mid


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--quantiles", "0.1,0.9", "--strategy", "direct", "--normalise", "diff"],
            "a sum of quantiles",
        ),
        (["--quantiles", "0.1,x"], "is not a comma-separated list of finite numbers"),
        (["--quantiles", "0,0.5"], "strictly between 0 and 1"),
    ],
)
def test_bad_quantile_options(csv_file, tmp_path, capsys, args, message):
    code, _, err = cli(capsys, "forecast", "train", "--csv", csv_file, "--target", "load", *args,
                       "--steps", "2", "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and message in err


def test_several_targets_from_an_hourly_file_without_features(tmp_path, capsys):
    hours = np.arange("2024-03-01T00", "2024-03-15T00", dtype="datetime64[h]")
    t = np.arange(len(hours))
    power = 50 + 10 * np.sin(2 * np.pi * t / 24)
    price = 30 + 0.05 * t + 5 * np.cos(2 * np.pi * t / 24)  # a trend: per-window normalisation
    path = tmp_path / "grid.csv"
    path.write_text("time,power,price\n" + "".join(
        f"{h}:00,{a:.2f},{b:.2f}\n" for h, a, b in zip(hours, power, price, strict=True)))  # fmt: skip
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "forecast", "train", "--csv", path, "--target", "power,price",
                            "--time-col", "time", "--window", "24", "--horizon", "6", "--steps", "20",
                            "--eval-every", "10", "--hidden", "8", "--out", out)  # fmt: skip
    assert code == 0, err
    assert "forecast power, price" in stdout and "season 24" in stdout
    assert "hour_sin" in json.loads((out / "config.json").read_text())["channels"]
    assert cli(capsys, "forecast", "predict", out)[0] == 0
    lines = (out / "forecast.csv").read_text().splitlines()
    assert lines[0] == "time,power,price" and len(lines) == 7
    assert lines[1].startswith("2024-03-15T00:00:00")  # the hour after the file's last row


def test_predict_dates_of_the_monthly_airline_series_are_month_starts(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "forecast", "train", "--data", "airline", "--steps", "2",
                       "--eval-every", "2", "--hidden", "8", "--out", out)  # fmt: skip
    assert code == 0, err
    assert cli(capsys, "forecast", "predict", out)[0] == 0
    times = [line.split(",")[0] for line in (out / "forecast.csv").read_text().splitlines()[1:]]
    assert times == [f"1961-{m:02d}-01T00:00:00" for m in range(1, 7)]


@pytest.mark.parametrize("freq, step", [("QS", "3 months"), ("W-MON", "7 days")])
def test_predict_dates_of_quarterly_and_weekly_files(tmp_path, capsys, freq, step):
    pd = pytest.importorskip("pandas")
    calendar = pd.date_range("1990-01-01", periods=130, freq=freq)
    values = 10 + np.sin(np.arange(130) / 3)
    path = tmp_path / "series.csv"
    path.write_text("when,value\n" + "".join(
        f"{t.date()},{v:.3f}\n" for t, v in zip(calendar[:126], values, strict=False)))  # fmt: skip
    out = tmp_path / "run"
    code, _, err = cli(capsys, "forecast", "train", "--csv", path, "--target", "value",
                       "--time-col", "when", "--window", "8", "--horizon", "4", "--steps", "2",
                       "--eval-every", "2", "--hidden", "8", "--out", out)  # fmt: skip
    assert code == 0, err
    assert cli(capsys, "forecast", "predict", out)[0] == 0
    times = [line.split(",")[0] for line in (out / "forecast.csv").read_text().splitlines()[1:]]
    assert times == [f"{t.date()}T00:00:00" for t in calendar[126:]], step


def test_a_constant_target_is_refused_with_the_reason(tmp_path, capsys):
    path = tmp_path / "flat.csv"
    days = np.arange("2024-01-01", "2024-04-01", dtype="datetime64[D]")
    path.write_text("day,stock,noise\n" + "".join(
        f"{d},5.0,{i % 7}\n" for i, d in enumerate(days)))  # fmt: skip
    out = tmp_path / "run"
    code, _, err = cli(capsys, "forecast", "train", "--csv", path, "--target", "stock",
                       "--window", "3", "--horizon", "1", "--steps", "2", "--out", out)  # fmt: skip
    assert code == 2 and "'stock' is constant over the training part" in err, err
    assert "nothing to forecast" in err and not out.exists()
