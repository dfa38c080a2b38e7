"""Where a forecasting run's series comes from: the user's CSV, or a data set of the forecast extra.

Built in (``--data``), from the ``vega_datasets`` package (``pip install
rnnkit[forecast]``), read from the files it ships, never downloaded:

* ``seattle-weather``: daily observed weather in Seattle, 2012-2015 (1,461
  days): temp_max, temp_min, precipitation, wind. Default target temp_max.
* ``stocks``: monthly closing prices of MSFT, AMZN, IBM, GOOG and AAPL,
  2000-2010 (GOOG from 2004). Default target AAPL.

vega_datasets' ``seattle_temps`` and ``sf_temps`` are hourly climate normals
(smooth 30-year averages), not observations, and are deliberately not offered.
"""

from __future__ import annotations

import numpy as np

from .data import Table, fill_missing

BUILTIN = {
    "seattle-weather": {
        "target": ["temp_max"],
        "features": ["temp_min", "precipitation", "wind"],
        "time": "date",
    },
    "stocks": {"target": ["AAPL"], "features": [], "time": "date"},
}


def _vega():
    try:
        from vega_datasets import local_data
    except ImportError:
        raise ValueError(
            "the built-in data sets need the forecast extra: pip install 'rnnkit[forecast]' "
            "(or give your own --csv)"
        ) from None
    return local_data


def load_builtin(name: str, columns: list[str], fill: str | None) -> Table:
    """A built-in data set as a checked ``Table`` with the requested columns."""
    if name not in BUILTIN:
        raise ValueError(f"--data must be one of {', '.join(BUILTIN)}, got {name!r}")
    vega = _vega()
    if name == "seattle-weather":
        frame = vega.seattle_weather()
    else:
        frame = vega.stocks().pivot(index="date", columns="symbol", values="price").reset_index()
    available = [c for c in frame.columns if c != "date"]
    for column in columns:
        if column not in available:
            raise ValueError(
                f"--data {name} has no column {column!r}; its columns are {', '.join(map(str, available))}"
            )
    table = Table(
        {c: frame[c].to_numpy(dtype=np.float64) for c in columns},
        frame["date"].to_numpy().astype("datetime64[s]"),
        np.arange(2, len(frame) + 2),
        {"kind": "builtin", "name": name},
    )
    return fill_missing(table, fill, f"--data {name}")
