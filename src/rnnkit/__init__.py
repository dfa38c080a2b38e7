"""rnnkit: recurrent neural networks from the lecture to trained models, on PyTorch."""

from . import cells, decoding, models, scan
from .cells import CELLS
from .recurrent import RNN, Recurrent

__version__ = "0.1.0"
__all__ = ["CELLS", "RNN", "Recurrent", "cells", "decoding", "models", "scan", "__version__"]
