"""Audio files read through soundfile and brought to one sample rate by soxr.

Both are maintained libraries (``pip install 'rnnkit[speech]'``): rnnkit has
no audio parser or resampler of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _soundfile():
    try:
        import soundfile
    except ImportError:
        raise ValueError("reading audio needs soundfile: pip install 'rnnkit[speech]'") from None
    return soundfile


def audio_rate(path: str | Path) -> int:
    """The file's sample rate, or a one-line error naming a file that is not audio."""
    sf = _soundfile()
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception as error:  # soundfile raises its own LibsndfileError, or RuntimeError
        raise ValueError(
            f"{path}: not an audio file soundfile can read ({_reason(error)})"
        ) from None


def read_audio(path: str | Path, rate: int) -> np.ndarray:
    """The file as mono float32 samples at ``rate`` Hz (channels averaged, resampled by soxr)."""
    sf = _soundfile()
    try:
        samples, native = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise ValueError(
            f"{path}: not an audio file soundfile can read ({_reason(error)})"
        ) from None
    wave = samples.mean(axis=1)
    if wave.size == 0:
        raise ValueError(f"{path}: the file holds no samples")
    if not np.isfinite(wave).all():
        raise ValueError(f"{path}: the samples are not all finite")
    if native != rate:
        try:
            import soxr
        except ImportError:
            raise ValueError(
                f"{path} is at {native} Hz, the run at {rate} Hz: resampling needs soxr "
                "(pip install 'rnnkit[speech]')"
            ) from None
        wave = soxr.resample(wave, native, rate).astype(np.float32)
    return np.ascontiguousarray(wave, dtype=np.float32)


def resample(wave: np.ndarray, factor: float) -> np.ndarray:
    """The wave played ``factor`` times faster (pitch and tempo together, as speed perturbation
    in Kaldi's recipes), through soxr."""
    import soxr

    rate = 16000
    return soxr.resample(wave, rate * factor, rate).astype(np.float32)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:120] if text else type(error).__name__
