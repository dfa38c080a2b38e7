"""Forecasting's data layer: CSV checks with one-line errors, splits and windows without leaks, baselines."""

import math

import numpy as np
import pytest

from rnnkit.tasks.forecast import data, metrics, windows


def write(tmp_path, text, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_csv_columns_times_and_lines(tmp_path):
    path = write(
        tmp_path, "date,temp,wind\n2012-01-01,10.5,3\n2012-01-02,11,4.5\n\n2012-01-03,9,2\n"
    )
    table = data.read_csv(path, ["temp", "wind"], time_col="date")
    assert len(table) == 3 and table.columns["temp"].tolist() == [10.5, 11.0, 9.0]
    assert table.times[2] == np.datetime64("2012-01-03T00:00:00")
    assert table.lines.tolist() == [2, 3, 5]  # the blank line is skipped, the count is the file's
    assert table.matrix(["wind", "temp"]).shape == (3, 2)


@pytest.mark.parametrize(
    "text",
    ["day;temp\n2012-01-01;10,5\n2012-01-02;-3\n", "day\ttemp\n2012-01-01\t10.5\n2012-01-02\t-3\n"],
)
def test_semicolon_and_tab_separated_files(tmp_path, text):
    table = data.read_csv(write(tmp_path, text), ["temp"], time_col="day")
    assert table.columns["temp"].tolist() == [10.5, -3.0] and len(table.times) == 2


def test_times_with_utc_offsets_are_taken_in_utc(tmp_path):
    # a summer-time change: local 02:00+02:00 is followed by 02:00+01:00, an hour later in UTC
    path = write(tmp_path, "t,load\n2024-10-27T01:00+02:00,1\n2024-10-27T02:00+02:00,2\n"
                           "2024-10-27T02:00+01:00,3\n2024-10-27T02:00:00Z,4\n")  # fmt: skip
    table = data.read_csv(path, ["load"], time_col="t")
    hours = (table.times - table.times[0]) / np.timedelta64(1, "h")
    assert hours.tolist() == [0, 1, 2, 3]
    assert table.times[0] == np.datetime64("2024-10-26T23:00:00")


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("", {}, "is empty"),
        ("date,temp\n", {}, "has a header but no rows"),
        ("date,temp\n2012-01-01,1\n", {"columns": ["tmp"]}, "has no column 'tmp'; its columns are date, temp"),
        ("date,temp\n2012-01-01,1\n2012-01-02,warm\n", {}, "line 3: column 'temp' holds 'warm', not a number"),
        ("date,temp\n2012-01-01,1\n2012-01-02,\n2012-01-03,NA\n2012-01-04,2\n", {},
         "missing values: 'temp' at lines 3, 4; choose --fill interpolate, ffill or drop"),
        ("date,temp\n2012-01-01,1\n2012-01-01,2\n", {}, "repeats 2012-01-01T00:00:00 at lines 2 and 3"),
        ("date,temp\n2012-01-02,1\n2012-01-01,2\n", {}, "is not sorted: line 3 (2012-01-01T00:00:00) comes after line 2"),
        ("date,temp\nyesterday,1\n", {}, "line 2: time column 'date' holds 'yesterday', not a date"),
        ("date,temp\n2012-01-01,1\n", {"fill": "mean"}, "--fill must be one of interpolate, ffill, drop"),
    ],
)  # fmt: skip
def test_bad_csv_input_gets_one_clear_line(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    args = {"columns": ["temp"], "time_col": "date", **kwargs}
    with pytest.raises(ValueError) as error:
        data.read_csv(path, **args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        data.read_csv(tmp_path / "nope.csv", ["x"])


def test_fill_strategies(tmp_path):
    path = write(tmp_path, "t,x\n1,\n2,2\n3,\n4,6\n5,\n")
    interpolated = data.read_csv(path, ["x"], fill="interpolate").columns["x"]
    assert interpolated.tolist() == [2.0, 2.0, 4.0, 6.0, 6.0]
    carried = data.read_csv(path, ["x"], fill="ffill").columns["x"]
    assert carried.tolist() == [2.0, 2.0, 2.0, 6.0, 6.0]
    dropped = data.read_csv(path, ["x", "t"], fill="drop")
    assert dropped.columns["t"].tolist() == [2.0, 4.0] and dropped.lines.tolist() == [3, 5]


def test_interpolation_follows_time_not_rows(tmp_path):
    path = write(tmp_path, "date,x\n2012-01-01,0\n2012-01-02,\n2012-01-05,8\n")
    table = data.read_csv(path, ["x"], time_col="date", fill="interpolate")
    assert table.columns["x"][1] == pytest.approx(2.0)  # one day of four


def test_season_and_calendar_features_follow_the_sampling_interval():
    hourly = np.arange("2020-01-01T00", "2020-01-03T00", dtype="datetime64[h]").astype(
        "datetime64[s]"
    )
    daily = np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]").astype("datetime64[s]")
    monthly = np.arange("2000-01", "2003-01", dtype="datetime64[M]").astype("datetime64[s]")
    assert [data.infer_season(t) for t in (hourly, daily, monthly, None)] == [24, 7, 12, 1]
    features, names = data.calendar_features(hourly)
    assert names[:2] == ["hour_sin", "hour_cos"] and features.shape == (48, 6)
    assert features[6, 0] == pytest.approx(1.0)  # 06:00 is a quarter of the day
    _, names = data.calendar_features(monthly)
    assert names == ["yearday_sin", "yearday_cos"]
    features, names = data.calendar_features(daily)
    assert names[:2] == ["weekday_sin", "weekday_cos"]
    # Monday is 0: 2020-01-01 was a Wednesday
    assert features[0, 0] == pytest.approx(math.sin(2 * math.pi * 2 / 7))
    assert features[7, :2] == pytest.approx(features[0, :2])


def test_split_windows_never_cross_a_boundary():
    split = windows.chronological_split(
        100, window=5, horizon=3, val_fraction=0.1, test_fraction=0.2
    )
    assert split.train == (0, 70) and split.val == (70, 80) and split.test == (80, 100)
    for name in ("train", "val", "test"):
        start, end = split.part(name)
        origins = windows.window_origins((start, end), 5, 3)
        assert origins.min() - 5 >= start and origins.max() + 3 <= end


def test_no_future_value_reaches_an_input():
    # the series is its own time index: an input may only hold values before its origin
    series = np.arange(200, dtype=float)[:, None]
    split = windows.chronological_split(200, 12, 4)
    for name in ("train", "val", "test"):
        origins = windows.window_origins(split.part(name), 12, 4)
        x, y = windows.gather_windows(series, series, origins, 12, 4)
        assert (x.max((1, 2)) < origins).all() and (y.min((1, 2)) >= origins).all()
        assert (y[:, :, 0] == origins[:, None] + np.arange(4)).all()
    # and the scaler sees the training part only
    scaler = windows.Scaler.fit(series[slice(*split.train)])
    assert scaler.mean[0] == pytest.approx((split.train[1] - 1) / 2)


def test_series_too_short_says_how_long_it_must_be():
    with pytest.raises(
        ValueError, match=r"the series has 50 steps.*needs at least 37 steps.*about 370"
    ):
        windows.chronological_split(50, window=30, horizon=7)


def test_baselines_and_metrics_by_hand():
    series = np.arange(20, dtype=float)[:, None] % 4  # period 4: 0 1 2 3 0 1 2 3 ...
    origins = np.array([8, 12])
    assert metrics.persistence(series, origins, 3)[:, :, 0].tolist() == [[3, 3, 3], [3, 3, 3]]
    seasonal = metrics.seasonal_naive(series, origins, 6, season=4)
    actual = np.stack([series[o : o + 6] for o in origins])
    assert np.array_equal(seasonal, actual)  # a periodic series is its own seasonal forecast
    scale = metrics.seasonal_naive_scale(series[:8], 1)
    assert scale.tolist() == [pytest.approx(9 / 7)]  # steps 1, 1, 1, 3, 1, 1, 1
    result = metrics.errors(metrics.persistence(series, origins, 3), actual[:, :3], scale)
    assert result["by_step"]["mae"] == [3.0, 2.0, 1.0]
    assert result["mae"] == pytest.approx(2.0) and result["mase"] == pytest.approx(2.0 * 7 / 9)
    assert result["by_step"]["smape"][0] == pytest.approx(200.0)  # 3 against 0: the worst case
    assert metrics.training_mean(series[:8], origins, 2).shape == (2, 2, 1)


def _times(index):
    return np.array(index.values, dtype="datetime64[s]")


@pytest.mark.parametrize(
    "freq, start", [("MS", "1949-01-01"), ("QS", "1990-01-01"), ("QE", "1990-03-31"),
                    ("W-SUN", "2020-01-05"), ("h", "2024-03-30 20:00"), ("B", "2024-01-01"),
                    ("ME", "2000-01-31"), ("YS", "1900-01-01"), ("15min", "2024-01-01")],
)  # fmt: skip
def test_forecast_dates_continue_the_series_calendar(freq, start):
    pd = pytest.importorskip("pandas")
    calendar = pd.date_range(start, periods=148, freq=freq)
    got = data.future_times(_times(calendar[:144]), 4)
    assert got == [str(t) for t in _times(calendar[144:])]


def test_forecast_dates_of_months_and_business_days():
    pd = pytest.importorskip("pandas")
    airline = _times(pd.date_range("1949-01-01", periods=144, freq="MS"))
    assert data.future_times(airline, 3) == [
        "1961-01-01T00:00:00", "1961-02-01T00:00:00", "1961-03-01T00:00:00"]  # fmt: skip
    friday = _times(pd.date_range("2024-03-01", periods=41, freq="B"))  # ends on Friday 26 April
    assert data.future_times(friday, 2) == ["2024-04-29T00:00:00", "2024-04-30T00:00:00"]


def test_forecast_dates_survive_gaps():
    pd = pytest.importorskip("pandas")
    months = pd.date_range("1949-01-01", periods=144, freq="MS").delete([5, 70])
    assert data.future_times(_times(months), 2) == ["1961-01-01T00:00:00", "1961-02-01T00:00:00"]
    days = pd.date_range("2024-01-01", periods=60, freq="B").delete([3, 20, 41])  # holidays
    assert data.calendar_frequency(_times(days)) == "B"
    odd = np.array(["2020-01-01T00:00", "2020-01-01T00:07", "2020-01-01T00:15", "2020-01-01T00:21"],
                   dtype="datetime64[s]")  # fmt: skip
    assert data.future_times(odd, 1) == ["2020-01-01T00:28:00"]  # the median step
