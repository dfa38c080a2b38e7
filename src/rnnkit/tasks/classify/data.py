"""Labelled series: named UCR/UEA sets, ``.ts``, CSV and NPZ files, checked with one-line errors.

A set is a list of series, each (T_i, C) float64 (time first, as everywhere
in rnnkit), and one label per series, kept as strings. Named sets and
``.ts`` files go through sktime's own loaders (the classify extra); CSV and
NPZ files need nothing beyond numpy:

* CSV: a header row, one row per series, a label column (``--label-col``,
  default ``label``) and the values in the other columns, in order. A row
  may end early (empty trailing cells): its series is shorter.
* NPZ: ``x`` of shape (N, T) or (N, T, C), ``y`` of N labels, and optionally
  ``lengths`` (N,) when the series are padded to T.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MISSING = {"", "na", "nan", "?", "null", "none"}


@dataclass
class LabelledSeries:
    """Series (each (T_i, C)) and their labels."""

    series: list[np.ndarray]
    labels: np.ndarray  # (N,) str
    source: str  # named in messages

    def __len__(self) -> int:
        return len(self.series)

    @property
    def channels(self) -> int:
        return self.series[0].shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.series])

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()), key=_natural)

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, T_max, C) float32 with zeros after each series' end, and the lengths (N,)."""
        lengths = self.lengths
        out = np.zeros((len(self), int(lengths.max()), self.channels), np.float32)
        for i, s in enumerate(self.series):
            out[i, : len(s)] = s
        return out, lengths

    def subset(self, index: np.ndarray) -> LabelledSeries:
        return LabelledSeries([self.series[i] for i in index], self.labels[index], self.source)


def _natural(label: str) -> tuple:
    """Numbers in numeric order ('2' before '10'), then text."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# -- named sets (sktime) -------------------------------------------------------------
def _sktime_data_dir() -> Path:
    try:
        import sktime.datasets
    except ImportError:
        raise ValueError(
            "named data sets and .ts files need sktime: pip install 'rnnkit[classify]'"
        ) from None
    return Path(sktime.datasets.__file__).parent / "data"


def offline_sets() -> list[str]:
    """The classification sets shipped inside the installed sktime (loadable without a network)."""
    found = []
    for folder in sorted(_sktime_data_dir().iterdir()):
        train = folder / f"{folder.name}_TRAIN.ts"
        if train.is_file() and (folder / f"{folder.name}_TEST.ts").is_file():
            with open(train, encoding="utf-8", errors="replace") as f:
                head = "".join(f.readline() for _ in range(60)).lower()
            if "@classlabel true" in head:  # not the regression sets
                found.append(folder.name)
    return found


def describe_source(source: dict) -> str:
    """A run's data in words, for the line printed before it is read."""
    if source["kind"] == "named":
        return f"the UCR/UEA set {source['name']} through sktime"
    return f"{source['train']} and {source['test']}"


def load_named(name: str, split: str) -> LabelledSeries:
    """``split`` of a UCR/UEA set shipped with sktime, through sktime's loader."""
    available = offline_sets()
    if name not in available:
        raise ValueError(
            f"--dataset {name!r} is not available offline; the installed sktime ships "
            f"{', '.join(available)} (or give --train FILE --test FILE)"
        )
    from sktime.datasets import load_UCR_UEA_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = load_UCR_UEA_dataset(name, split=split, return_X_y=True)
    return _from_nested(x, y, f"{name} ({split})")


def read_ts(path: Path) -> LabelledSeries:
    """A ``.ts`` file (the UCR/UEA archive's format), through sktime's loader."""
    _sktime_data_dir()
    from sktime.datasets import load_from_tsfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, y = load_from_tsfile(str(path), return_data_type="nested_univ")
    except Exception as error:  # sktime raises its own IOError subclasses with the reason
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a readable .ts file: {reason}") from None
    return _from_nested(x, y, str(path))


def _from_nested(frame, labels, source: str) -> LabelledSeries:
    """sktime's nested frame (a row per series, a cell per channel) to (T_i, C) arrays."""
    series = []
    for i in range(len(frame)):
        channels = [np.asarray(frame.iloc[i, c], dtype=np.float64) for c in range(frame.shape[1])]
        if len({len(c) for c in channels}) > 1:
            raise ValueError(f"{source}: series {i + 1} has channels of different lengths")
        series.append(np.stack(channels, 1))
    return LabelledSeries(series, np.asarray(labels).astype(str), source)


# -- CSV and NPZ -----------------------------------------------------------------------
def read_csv(path: Path, label_col: str, need_labels: bool = True) -> LabelledSeries:
    """One row per univariate series; see the module docstring.

    Without ``need_labels`` a file with no label column is all values (labels '').
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            rows = [(n, r) for n, r in enumerate(csv.reader(f), 1) if any(c.strip() for c in r)]
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a readable CSV file: {error}") from None
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [h.strip() for h in rows[0][1]]
    if label_col not in header and need_labels:
        raise ValueError(
            f"{path} has no label column {label_col!r} (--label-col); its columns are "
            f"{', '.join(header[:12])}{' ...' if len(header) > 12 else ''}"
        )
    if len(rows) == 1:
        raise ValueError(f"{path} has a header but no series")
    at = header.index(label_col) if label_col in header else -1
    series, labels = [], []
    for n, row in rows[1:]:
        label = row[at].strip() if 0 <= at < len(row) else ""
        if label.lower() in MISSING and at >= 0:
            raise ValueError(f"{path} line {n}: the label is missing")
        cells = [c.strip() for k, c in enumerate(row) if k != at]
        while cells and cells[-1] == "":  # a row that ends early is a shorter series
            cells.pop()
        values = np.empty(len(cells))
        for k, cell in enumerate(cells):
            if cell.lower() in MISSING:
                raise ValueError(
                    f"{path} line {n}: missing value at step {k + 1}; fill or drop it before training"
                )
            try:
                values[k] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path} line {n}: {cell!r} at step {k + 1} is not a number"
                ) from None
        if not len(values):
            raise ValueError(f"{path} line {n}: the series is empty")
        series.append(values[:, None])
        labels.append(label)
    return LabelledSeries(series, np.array(labels), str(path))


def read_npz(path: Path, need_labels: bool = True) -> LabelledSeries:
    """Arrays ``x`` (N, T) or (N, T, C), ``y`` (N,), optional ``lengths`` (N,); no pickles."""
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise ValueError(f"{path} is not a .npz archive (numpy.savez writes one)")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a readable .npz file of plain arrays: {error}") from None
    with arrays:
        missing = [k for k in ("x", "y")[: 2 if need_labels else 1] if k not in arrays.files]
        if missing:
            raise ValueError(
                f"{path} lacks {', '.join(missing)}; it holds {', '.join(arrays.files) or 'nothing'}"
                " (x: (N, T) or (N, T, C) series, y: N labels, lengths: optional)"
            )
        try:  # the arrays are read here, lazily: an object array refuses to load now
            if np.iscomplexobj(arrays["x"]):
                raise ValueError("x holds complex numbers; give real-valued series")
            x = np.asarray(arrays["x"], dtype=np.float64)
            y = np.asarray(arrays["y"]) if "y" in arrays.files else None
            lengths = np.asarray(arrays["lengths"]) if "lengths" in arrays.files else None
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"{path} is not a readable .npz file of plain arrays: {error}"
            ) from None
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"{path}: x must be (N, T) or (N, T, C) with N, T >= 1, got {x.shape}")
    if y is None:
        y = np.full(len(x), "")
    if y.shape != (len(x),):
        raise ValueError(
            f"{path}: y must hold one label per series ({len(x)}), got shape {y.shape}"
        )
    if lengths is None:
        lengths = np.full(len(x), x.shape[1])
    if lengths.shape != (len(x),) or lengths.min() < 1 or lengths.max() > x.shape[1]:
        raise ValueError(f"{path}: lengths must be N values in 1..{x.shape[1]}")
    series = [x[i, : int(n)] for i, n in enumerate(lengths)]
    return LabelledSeries(series, y.astype(str), str(path))


def read_file(
    path: str | Path, label_col: str = "label", need_labels: bool = True
) -> LabelledSeries:
    """A ``.ts``, ``.npz`` or CSV file (by its suffix), checked; labels '' where none are given."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    suffix = path.suffix.lower()
    if suffix == ".ts":
        data = read_ts(path)
    elif suffix == ".npz":
        data = read_npz(path, need_labels)
    else:
        data = read_csv(path, label_col, need_labels)
    return check(data)


# -- checks ----------------------------------------------------------------------------
LARGEST = 1e30  # float32 ends at 3.4e38, and the variance squares the values first


def check(data: LabelledSeries) -> LabelledSeries:
    """No empty set, no missing values, one number of channels."""
    if len(data) == 0:
        raise ValueError(f"{data.source} holds no series")
    widths = {s.shape[1] for s in data.series}
    if len(widths) > 1:
        raise ValueError(
            f"{data.source}: the series have different numbers of channels {sorted(widths)}"
        )
    for i, s in enumerate(data.series):
        if len(s) == 0:
            raise ValueError(f"{data.source}: series {i + 1} is empty")
        bad = ~np.isfinite(s)
        if bad.any():
            step, channel = np.argwhere(bad)[0]
            raise ValueError(
                f"{data.source}: series {i + 1} has a missing or infinite value at step {step + 1}"
                f"{f', channel {channel + 1}' if s.shape[1] > 1 else ''}; fill or drop it before training"
            )
        largest = float(np.abs(s).max())
        if largest > LARGEST:
            raise ValueError(
                f"{data.source}: series {i + 1} holds {largest:.3g}, beyond what 32-bit floats "
                f"hold with room to standardise (|x| <= {LARGEST:g}); rescale the data"
            )
    return data


def check_training(train: LabelledSeries) -> None:
    classes = train.classes
    if len(classes) < 2:
        raise ValueError(
            f"{train.source} holds one class only ({classes[0]!r}): there is nothing to tell apart"
        )


def check_compatible(train: LabelledSeries, other: LabelledSeries, labelled: bool = True) -> None:
    """Same channels; with ``labelled``, no label the training set lacks."""
    if other.channels != train.channels:
        raise ValueError(
            f"{other.source} has {other.channels} channel{'s' * (other.channels != 1)}, "
            f"the training set {train.channels}"
        )
    if labelled:
        unknown = sorted(set(other.labels.tolist()) - set(train.classes), key=_natural)
        if unknown:
            raise ValueError(
                f"{other.source} has labels the training set lacks: {', '.join(map(repr, unknown[:10]))}"
                f" (training labels: {', '.join(map(repr, train.classes[:10]))})"
            )


def z_normalise(data: LabelledSeries) -> LabelledSeries:
    """Each series and channel to mean 0 and spread 1 over its own steps (flat ones to 0)."""
    out = []
    for s in data.series:
        mean, std = s.mean(0), s.std(0)
        out.append((s - mean) / np.where(std > 1e-8, std, 1.0))
    return LabelledSeries(out, data.labels, data.source)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): ``fraction`` of each class (at least one, when it has two or more)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(set(labels.tolist())):
        members = rng.permutation(np.flatnonzero(labels == label))
        take = min(len(members) - 1, max(1, math.floor(fraction * len(members) + 0.5)))
        val += members[:take].tolist()
        train += members[take:].tolist()
    return np.array(sorted(train)), np.array(sorted(val))
