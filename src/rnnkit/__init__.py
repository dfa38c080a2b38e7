"""rnnkit: recurrent neural networks from the lecture to trained models, on PyTorch."""

__version__ = "0.1.0"

from . import cells, decoding, models, plan, scan  # noqa: E402
from .cells import CELLS  # noqa: E402
from .recurrent import RNN, Recurrent  # noqa: E402
from .spec import RNNSpec  # noqa: E402

__all__ = [
    "CELLS",
    "RNN",
    "RNNSpec",
    "Recurrent",
    "cells",
    "decoding",
    "models",
    "plan",
    "scan",
    "__version__",
]
