"""Log-mel filterbank features, their normalisation, SpecAugment and frame stacking.

A frame of ``window`` samples every ``hop`` samples (no padding at the ends,
so that a stream read in chunks gives the very frames of the whole file),
a Hann window, the power spectrum by ``torch.stft``, triangular filters
equally spaced on the mel scale (m = 2595 log10(1 + f / 700)), and
log(energy + 1e-6).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class FeatureConfig:
    rate: int = 16000  # samples per second the audio is brought to
    window_ms: float = 25.0
    hop_ms: float = 10.0
    bands: int = 40

    @property
    def window(self) -> int:
        return max(2, round(self.rate * self.window_ms / 1000))

    @property
    def hop(self) -> int:
        return max(1, round(self.rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return self.window  # the FFT of exactly one window: a frame spans no more samples

    def frames(self, samples: int) -> int:
        """How many frames ``samples`` samples give (0 when shorter than a window)."""
        return 0 if samples < self.window else 1 + (samples - self.window) // self.hop

    def to_config(self) -> dict:
        return asdict(self)


def hz_to_mel(f: Tensor | float) -> Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(bands: int, n_fft: int, rate: int) -> Tensor:
    """(bands, n_fft // 2 + 1): triangles from 0 Hz to the Nyquist frequency, peaks equally
    spaced in mels, each rising from the previous peak and falling to the next."""
    bins = torch.linspace(0.0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(
        torch.linspace(0.0, float(hz_to_mel(rate / 2)), bands + 2, dtype=torch.float64)
    )
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMel:
    """Waves to log-mel frames, (samples,) -> (frames, bands)."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.window = torch.hann_window(config.window)
        self.filters = mel_filterbank(config.bands, config.n_fft, config.rate)

    def __call__(self, wave: Tensor) -> Tensor:
        c = self.config
        if wave.numel() < c.window:
            return torch.zeros(0, c.bands)
        spectrum = torch.stft(wave, c.n_fft, hop_length=c.hop, win_length=c.window,
                              window=self.window, center=False, return_complex=True)  # fmt: skip
        power = spectrum.abs().pow(2)  # (bins, frames)
        return torch.log(self.filters @ power + LOG_FLOOR).T.contiguous()


class Normaliser:
    """Per-band mean and deviation from the training features, saved in the run.

    ``per_utterance`` also takes each utterance's own band means out first (cepstral
    mean normalisation, which removes a fixed channel or voice colouring).
    """

    def __init__(self, mean: Tensor, std: Tensor, per_utterance: bool = False) -> None:
        self.mean, self.std, self.per_utterance = mean, std, per_utterance

    @classmethod
    def fit(cls, features: list[Tensor], per_utterance: bool = False) -> Normaliser:
        if per_utterance:
            features = [f - f.mean(0, keepdim=True) for f in features]
        joined = torch.cat(features)
        return cls(joined.mean(0), joined.std(0).clamp_min(1e-3), per_utterance)

    def __call__(self, features: Tensor) -> Tensor:
        if self.per_utterance and len(features):
            features = features - features.mean(0, keepdim=True)
        return (features - self.mean) / self.std

    def to_config(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(),
                "per_utterance": self.per_utterance}  # fmt: skip

    @classmethod
    def from_config(cls, config: dict) -> Normaliser:
        return cls(torch.tensor(config["mean"]), torch.tensor(config["std"]),
                   bool(config["per_utterance"]))  # fmt: skip


@dataclass(frozen=True)
class SpecAugment:
    """Time and frequency masks (Park et al. 2019), drawn afresh for every utterance of a batch."""

    time_masks: int = 0
    time_width: int = 10  # frames, at most; a mask never covers more than a fifth of an utterance
    freq_masks: int = 0
    freq_width: int = 8  # bands, at most

    @property
    def active(self) -> bool:
        return bool(self.time_masks or self.freq_masks)

    def __call__(self, x: Tensor, lengths: Tensor, generator: torch.Generator) -> Tensor:
        """x: (batch, frames, bands), normalised (a masked value is set to 0, the mean)."""
        if not self.active:
            return x
        x = x.clone()
        bands = x.shape[-1]
        for i, length in enumerate(lengths.tolist()):
            for _ in range(self.freq_masks):
                width = int(torch.randint(0, self.freq_width + 1, (1,), generator=generator))
                start = int(torch.randint(0, max(1, bands - width), (1,), generator=generator))
                x[i, :, start : start + width] = 0.0
            widest = min(self.time_width, length // 5)
            for _ in range(self.time_masks):
                width = int(torch.randint(0, widest + 1, (1,), generator=generator))
                start = int(torch.randint(0, max(1, length - width), (1,), generator=generator))
                x[i, start : start + width] = 0.0
        return x


def stack_frames(features: Tensor, k: int) -> Tensor:
    """(frames, bands) -> (frames // k, k * bands): k consecutive frames side by side."""
    if k == 1:
        return features
    usable = features.shape[0] // k * k
    return features[:usable].reshape(usable // k, k * features.shape[1])
