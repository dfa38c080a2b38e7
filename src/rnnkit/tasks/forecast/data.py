"""Reading a CSV of measurements into checked columns, with one-line errors a user can act on.

The standard library's ``csv`` reads the file (no pandas needed for a user's
own data). Every column used must be numeric; missing values are reported
with their lines unless ``fill`` says what to do with them; a time column
must be sorted without repeats. Line numbers are the file's own (the header
is line 1). The separator is the comma, or a semicolon or tab when the
header holds more of those (then a decimal comma, '3,5', reads as 3.5).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

MISSING = {"", "na", "nan", "n/a", "null", "none", "-"}
FILLS = ("interpolate", "ffill", "drop")


@dataclass
class Table:
    """Numeric columns of equal length, and optionally their timestamps."""

    columns: dict[str, np.ndarray]  # name -> float64 (N,)
    times: np.ndarray | None = None  # datetime64[s] (N,), sorted, unique
    lines: np.ndarray | None = None  # the file line of every row (for messages)
    source: dict = field(default_factory=dict)
    offset: int | None = None  # the UTC offset (seconds) of the last row's time, when it had one

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def matrix(self, names: list[str]) -> np.ndarray:
        """(N, len(names)) float64 in the order given."""
        return np.stack([self.columns[n] for n in names], 1)


def _lines_text(lines: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


class _WithOffset(datetime):
    """A UTC time that remembers the offset it was written with."""

    utc_offset: int = 0

    @classmethod
    def of(cls, moment: datetime, offset: int) -> _WithOffset:
        out = cls(*moment.timetuple()[:6], moment.microsecond)
        out.utc_offset = offset
        return out


def parse_time(text: str) -> datetime:
    """ISO 8601 dates and times ('2012-01-31', '2012-01-31 13:00', '2012-01'), or a year.

    A time with a UTC offset ('...+02:00', '...Z') is taken in UTC, so that a
    change of offset (summer time) neither repeats nor skips an hour; the
    offset is kept on the result (``utc_offset``) for writing times back.
    """
    text = text.strip()
    for candidate in (text, text.replace("/", "-")):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                offset = parsed.utcoffset()
                parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
                return _WithOffset.of(parsed, int(offset.total_seconds()))
            return parsed
        for fmt in ("%Y-%m", "%Y", "%b %d %Y", "%d.%m.%Y"):
            try:
                return datetime.strptime(candidate, fmt)
            except ValueError:
                pass
    raise ValueError(text)


def separator(text: str) -> str:
    """',' unless the first non-blank line holds more semicolons or tabs."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    return max((",", ";", "\t"), key=header.count)  # ties go to the first, the comma


def read_csv(
    path: str | Path,
    columns: list[str],
    time_col: str | None = None,
    fill: str | None = None,
) -> Table:
    """Read ``columns`` (and ``time_col``) of a CSV file, checked; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--csv {path}: no such file")
    if fill is not None and fill not in FILLS:
        raise ValueError(f"--fill must be one of {', '.join(FILLS)}, got {fill!r}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            text = f.read()
            delimiter = separator(text)
            rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a readable CSV file: {error}") from None
    decimal_comma = delimiter != ","
    rows = [(n, r) for n, r in enumerate(rows, 1) if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [h.strip() for h in rows[0][1]]
    body = rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no rows")
    wanted = list(dict.fromkeys(columns + ([time_col] if time_col else [])))
    for name in wanted:
        if name not in header:
            raise ValueError(f"{path} has no column {name!r}; its columns are {', '.join(header)}")
        if header.count(name) > 1:
            raise ValueError(f"{path}: the header names column {name!r} {header.count(name)} times")
    index = {name: header.index(name) for name in wanted}
    lines = np.array([n for n, _ in body])
    values: dict[str, np.ndarray] = {}
    for name in columns:
        out = np.empty(len(body))
        for i, (n, row) in enumerate(body):
            cell = row[index[name]].strip() if index[name] < len(row) else ""
            if cell.lower() in MISSING:
                out[i] = math.nan
                continue
            if decimal_comma and "," in cell and "." not in cell:
                cell = cell.replace(",", ".")
            try:
                out[i] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path} line {n}: column {name!r} holds {cell!r}, not a number"
                ) from None
            if not math.isfinite(out[i]):
                out[i] = math.nan
        values[name] = out
    times = None
    if time_col:
        parsed = []
        for n, row in body:
            cell = row[index[time_col]].strip() if index[time_col] < len(row) else ""
            try:
                parsed.append(parse_time(cell))
            except ValueError:
                raise ValueError(
                    f"{path} line {n}: time column {time_col!r} holds {cell!r}, not a date or time "
                    "(write ISO 8601: 2024-01-31 or 2024-01-31 13:00)"
                ) from None
        offset = getattr(parsed[-1], "utc_offset", None) if parsed else None
        times = np.array([datetime(*p.timetuple()[:6]) for p in parsed], dtype="datetime64[s]")
    else:
        offset = None
    table = Table(values, times, lines, {"kind": "csv", "path": str(path.resolve())}, offset)
    table = fill_missing(table, fill, str(path))
    if times is not None:
        check_times(table, time_col, str(path))
    return table


def fill_missing(table: Table, fill: str | None, where: str) -> Table:
    """Interpolate, carry forward or drop missing values; without ``fill``, say where they are."""
    missing = np.zeros(len(table), dtype=bool)
    for values in table.columns.values():
        missing |= np.isnan(values)
    if not missing.any():
        return table
    if fill is None:
        parts = []
        for name, values in table.columns.items():
            gaps = np.flatnonzero(np.isnan(values))
            if len(gaps):
                lines = table.lines[gaps].tolist() if table.lines is not None else gaps.tolist()
                parts.append(f"{name!r} at line{'s' if len(gaps) > 1 else ''} {_lines_text(lines)}")
        raise ValueError(
            f"{where} has missing values: {'; '.join(parts)}; choose --fill interpolate, ffill or drop"
        )
    if fill == "drop":
        keep = ~missing
        if not keep.any():
            raise ValueError(
                f"{where}: every row has a missing value; nothing is left after --fill drop"
            )
        return Table(
            {k: v[keep] for k, v in table.columns.items()},
            None if table.times is None else table.times[keep],
            None if table.lines is None else table.lines[keep],
            table.source,
            table.offset,
        )
    filled = {}
    for name, values in table.columns.items():
        gaps = np.isnan(values)
        if gaps.all():
            raise ValueError(f"{where}: column {name!r} has no values at all")
        if not gaps.any():
            filled[name] = values
            continue
        known = np.flatnonzero(~gaps)
        if fill == "interpolate":
            # linear in the row index (or in time, when timestamps are given); the ends take the nearest value
            x = np.arange(len(values)) if table.times is None else table.times.astype(np.int64)
            out = values.copy()
            out[gaps] = np.interp(x[gaps], x[known], values[known])
        else:  # ffill: the last value seen; leading gaps take the first value seen
            last = np.maximum.accumulate(np.where(gaps, 0, np.arange(len(values))))
            out = values[last]
            out[: known[0]] = values[known[0]]
        filled[name] = out
    return Table(filled, table.times, table.lines, table.source, table.offset)


def check_times(table: Table, time_col: str, where: str) -> None:
    """Timestamps must increase strictly: no repeats, no rows out of order."""
    t = table.times
    if t is None or len(t) < 2:
        return
    step = np.diff(t.astype(np.int64))
    lines = table.lines if table.lines is not None else np.arange(1, len(t) + 1)
    repeats = np.flatnonzero(step == 0)
    if len(repeats):
        i = repeats[0]
        raise ValueError(
            f"{where}: time column {time_col!r} repeats {t[i]} at lines {lines[i]} and {lines[i + 1]}"
            f"{f' ({len(repeats)} repeats in all)' if len(repeats) > 1 else ''}"
        )
    back = np.flatnonzero(step < 0)
    if len(back):
        i = back[0]
        raise ValueError(
            f"{where}: time column {time_col!r} is not sorted: line {lines[i + 1]} ({t[i + 1]}) "
            f"comes after line {lines[i]} ({t[i]}); sort the file by time"
        )


# -- what the time column tells -------------------------------------------------------
_HOUR, _DAY = 3600, 86400


def median_step_seconds(times: np.ndarray) -> float:
    return float(np.median(np.diff(times.astype(np.int64)))) if len(times) > 1 else math.nan


def calendar_frequency(times: np.ndarray) -> str | None:
    """The series' calendar frequency as a pandas offset alias ('MS', 'QS-OCT', 'W-SUN', 'B',
    'h', ...), or None when the timestamps follow none.

    pandas' ``infer_freq`` reads a regular series; where gaps break it (a few
    dropped rows, business days without holidays) the most recent stretch is
    tried, then the patterns that survive gaps: weekdays only, month starts,
    month ends, each at the typical spacing.
    """
    import pandas as pd

    index = pd.DatetimeIndex(times)
    for part in (index, index[-min(len(index), 30) :]):
        if len(part) >= 3:
            try:
                found = pd.infer_freq(part)
            except (TypeError, ValueError):
                found = None
            if found:
                return found
    if len(index) < 3:
        return None
    midnight = (index == index.normalize()).all()
    months = np.diff(index.year * 12 + index.month)
    if midnight and (index.day == 1).all() and (months > 0).all():
        return f"{int(np.median(months))}MS"
    if midnight and index.is_month_end.all() and (months > 0).all():
        return f"{int(np.median(months))}ME"
    same_time = len(set(zip(index.hour, index.minute, index.second, strict=True))) == 1
    gaps = np.diff(index.normalize().values).astype("timedelta64[D]").astype(int)
    if same_time and (index.dayofweek < 5).all() and np.median(gaps) == 1:
        return "B"
    return None


def future_times(times: np.ndarray, horizon: int, offset: int | None = None) -> list[str]:
    """The ``horizon`` timestamps after the last, stepping by the series' own calendar: month
    starts stay month starts, quarters quarters, business days skip weekends; a series with
    no calendar frequency steps by its median interval.

    With ``offset`` (the input's UTC offset, in seconds) the calendar is the
    local one of that offset and the times are written with it ('+02:00').
    """
    import pandas as pd

    if offset is not None:
        local = future_times(times + np.timedelta64(offset, "s"), horizon)
        sign, size = ("+" if offset >= 0 else "-"), abs(offset)
        return [f"{t}{sign}{size // 3600:02d}:{size % 3600 // 60:02d}" for t in local]
    frequency = calendar_frequency(times)
    last = pd.Timestamp(times[-1])
    if frequency is not None:
        after = pd.date_range(last, periods=horizon + 1, freq=frequency)
        if after[0] == last:  # the last timestamp is on the calendar: it starts the range
            steps = after[1:]
        else:  # off the calendar (a gap, an odd last row): the next dates on it
            steps = pd.date_range(last, periods=horizon, freq=frequency)
        out = steps.values.astype("datetime64[s]")
    else:
        step = np.timedelta64(int(round(median_step_seconds(times))), "s")
        out = times[-1] + step * np.arange(1, horizon + 1)
    return [str(t) for t in out.astype("datetime64[s]")]


def infer_season(times: np.ndarray | None) -> int:
    """The usual season for the sampling interval: the steps of a day under an hour (96 for
    quarter hours), 24 hourly, 7 daily, 52 weekly, 12 monthly, 4 quarterly.

    1 (no season: seasonal naive is then persistence) when there is no time
    column or the interval is none of these.
    """
    if times is None or len(times) < 2:
        return 1
    step = median_step_seconds(times)
    if 0 < step < _HOUR and _DAY % step == 0:  # minutes: the daily cycle, 96 for quarter hours
        return int(_DAY // step)
    for seconds, season in (
        (_HOUR, 24),
        (_DAY, 7),
        (7 * _DAY, 52),
        (30.44 * _DAY, 12),
        (91.3 * _DAY, 4),
    ):
        if abs(step - seconds) <= 0.1 * seconds:
            return season
    return 1


def calendar_features(times: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Sine and cosine of the hour of day, the day of week and the day of year, as the interval allows.

    Hour of day only for sampling finer than a day, day of week only for
    sampling finer than a week: a feature that never changes between samples
    carries nothing.
    """
    step = median_step_seconds(times)
    seconds = times.astype("datetime64[s]").astype(np.int64)
    days = seconds / _DAY
    columns: list[np.ndarray] = []
    names: list[str] = []

    def cyclic(name: str, phase: np.ndarray) -> None:
        columns.extend([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)])
        names.extend([f"{name}_sin", f"{name}_cos"])

    if step < _DAY:
        cyclic("hour", (seconds % _DAY) / _DAY)
    if step < 7 * _DAY:
        cyclic("weekday", ((np.floor(days) + 3) % 7) / 7)  # 1970-01-01 was a Thursday
    year_start = times.astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    cyclic("yearday", (seconds - year_start) / (365.25 * _DAY))
    return np.stack(columns, 1), names
