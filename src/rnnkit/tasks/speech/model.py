"""The recogniser: a front-end that shortens the frames, a deep (bidirectional) RNN, and a
CTC output layer over the transcript's units with the blank at index 0 (Graves et al. 2006,
Graves, Mohamed and Hinton 2013).

    y_t = softmax(W s_t + b)   over {blank} + units,   P(l | x) = sum over the paths that
    collapse to l (repeats merged, blanks removed) of prod_t y_t(path_t)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...spec import RNNSpec

FRONTENDS = ("stack", "conv")
BLANK = 0
WORD_MARK = "\u2581"  # a word unit's mark for the beam decoder (a word piece that starts a word)


class Labels:
    """CTC's output symbols: 0 is the blank, then the characters (a space between words) or the
    words of the training transcripts."""

    def __init__(self, units: str, symbols: list[str]) -> None:
        self.units, self.symbols = units, list(symbols)
        self.index = {s: i + 1 for i, s in enumerate(self.symbols)}

    @classmethod
    def of(cls, texts, units: str) -> Labels:
        if units == "words":
            return cls(units, sorted({w for t in texts for w in t.split()}))
        return cls(units, sorted({ch for t in texts for ch in t}))

    def __len__(self) -> int:
        return len(self.symbols) + 1  # with the blank

    def pieces(self, text: str) -> list[str]:
        return text.split() if self.units == "words" else list(text)

    def known(self, text: str) -> bool:
        return all(p in self.index for p in self.pieces(text))

    def encode(self, text: str) -> list[int]:
        return [self.index[p] for p in self.pieces(text) if p in self.index]

    def decode(self, ids) -> str:
        pieces = [self.symbols[i - 1] for i in ids if i != BLANK]
        return " ".join(pieces) if self.units == "words" else " ".join("".join(pieces).split())

    def decoder_labels(self) -> list[str]:
        """The labels a CTC beam decoder (pyctcdecode) reads: the blank is ''."""
        if self.units == "words":
            return ["", *(WORD_MARK + s for s in self.symbols)]
        return ["", *self.symbols]

    def to_config(self) -> dict:
        return {"units": self.units, "symbols": self.symbols}

    @classmethod
    def from_config(cls, config: dict) -> Labels:
        return cls(config["units"], config["symbols"])


class FrontEnd(nn.Module):
    """Frames to fewer, wider steps: ``stack`` puts ``stride`` frames side by side; ``conv`` is a
    convolution of width 2 x stride and step ``stride`` (with a ReLU). Each output step sees
    only real frames, so padding never changes a result."""

    def __init__(self, kind: str, bands: int, stride: int, channels: int) -> None:
        super().__init__()
        if kind not in FRONTENDS:
            raise ValueError(f"front-end must be one of {', '.join(FRONTENDS)}, got {kind!r}")
        self.kind, self.stride = kind, stride
        self.width = stride if kind == "stack" else 2 * stride
        self.conv = nn.Conv1d(bands, channels, self.width, stride) if kind == "conv" else None
        self.output_size = bands * stride if kind == "stack" else channels

    def lengths(self, frames: Tensor) -> Tensor:
        return torch.clamp(
            torch.div(frames - self.width, self.stride, rounding_mode="floor") + 1, min=0
        )

    def forward(self, x: Tensor) -> Tensor:
        """(batch, frames, bands) -> (batch, steps, output_size)."""
        steps = max(0, (x.shape[1] - self.width) // self.stride + 1)
        if self.conv is None:
            usable = x[:, : steps * self.stride]
            return usable.reshape(x.shape[0], steps, self.output_size)
        if steps == 0:
            return x.new_zeros(x.shape[0], 0, self.output_size)
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)


class CTCRecogniser(nn.Module):
    """``forward(x, lengths) -> (log_probs, steps)``: x is (batch, frames, bands) of normalised
    features; log_probs is (batch, steps, len(labels)), log-softmax over blank + units."""

    def __init__(self, spec: RNNSpec, bands: int, labels: int, frontend: str = "stack",
                 stride: int = 3, dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.front = FrontEnd(frontend, bands, stride, spec.hidden)
        self.rnn = spec.build(self.front.output_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.rnn.output_size, labels)  # both directions included

    def forward(self, x: Tensor, lengths: Tensor, state=None):
        steps = self.front.lengths(lengths)
        h = self.front(x)
        y, final = self.rnn(h, state=state, lengths=steps.clamp_min(1).to(h.device))
        return torch.log_softmax(self.out(self.dropout(y)), dim=-1), steps, final
