"""Where a forecasting run's series comes from: the user's CSV, or a data set of the forecast extra.

Built in (``--data``), from the ``vega_datasets`` package (``pip install
rnnkit[forecast]``), read from the files it ships, never downloaded:

* ``seattle-weather``: daily observed weather in Seattle, 2012-2015 (1,461
  days): temp_max, temp_min, precipitation, wind. Default target temp_max.
* ``stocks``: monthly closing prices of MSFT, AMZN, IBM, GOOG and AAPL,
  2000-2010 (GOOG from 2004). Default target AAPL.

* ``airline``: monthly international airline passengers (thousands),
  1949-1960 (144 months; Box and Jenkins, series G): a trend and a seasonal
  swing that grows with it. Small and public, so it ships with rnnkit.

vega_datasets' ``seattle_temps`` and ``sf_temps`` are hourly climate normals
(smooth 30-year averages), not observations, and are deliberately not offered.
"""

from __future__ import annotations

import numpy as np

from .data import Table, fill_missing

# Each set's default columns, and the window, horizon and validation share that fit its length.
BUILTIN = {
    "seattle-weather": {
        "unit": "°C",
        "target": ["temp_max"],
        "features": ["temp_min", "precipitation", "wind"],
        "time": "date",
        "window": 30,
        "horizon": 7,
        "val_fraction": 0.1,
    },
    "stocks": {
        "unit": "USD",
        "target": ["AAPL"],
        "features": [],
        "time": "date",
        "window": 12,
        "horizon": 3,
        "val_fraction": 0.15,
    },
    "airline": {
        "unit": "thousands of passengers",
        "target": ["passengers"],
        "features": [],
        "time": "date",
        "window": 12,
        "horizon": 6,
        "val_fraction": 0.15,
    },
}

# Box and Jenkins' series G, January 1949 to December 1960, thousands of passengers.
AIRLINE = (
    112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118,
    115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140,
    145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166,
    171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194,
    196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201,
    204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
    242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278,
    284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306,
    315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336,
    340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337,
    360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405,
    417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432,
)  # fmt: skip


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
    if name == "airline":
        if columns != ["passengers"]:
            raise ValueError(
                f"--data airline has one column, 'passengers'; asked for {', '.join(columns)}"
            )
        months = np.arange("1949-01", "1961-01", dtype="datetime64[M]").astype("datetime64[s]")
        values = np.array(AIRLINE, dtype=np.float64)
        return Table(
            {"passengers": values}, months, np.arange(2, 146), {"kind": "builtin", "name": name}
        )
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
