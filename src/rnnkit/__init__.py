"""rnnkit: recurrent neural networks from the lecture to trained models, on PyTorch."""

__version__ = "0.1.0"

from . import cells, decoding, models, scan  # noqa: E402
from .cells import CELLS  # noqa: E402
from .recurrent import RNN, Recurrent  # noqa: E402

__all__ = ["CELLS", "RNN", "Recurrent", "cells", "decoding", "models", "scan", "__version__"]
