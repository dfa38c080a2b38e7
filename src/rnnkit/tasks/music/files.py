"""What `music` writes: generated pieces as MIDI files (through mido) and piano-roll PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...plots import _pyplot, _save
from ...runs import atomic_write
from .rolls import KEYS, LOWEST_MIDI

TICKS_PER_QUARTER = 480


def write_midi(roll: np.ndarray, path: str | Path, step: float, tempo: float = 100.0) -> None:
    """A one-track piano MIDI file: a key held over consecutive steps is one note.

    ``step`` is the roll's step in quarter notes, ``tempo`` in quarter notes per minute.
    """
    try:
        import mido
    except ImportError:
        raise ValueError("writing MIDI needs mido: pip install 'rnnkit[music]'") from None
    ticks = round(step * TICKS_PER_QUARTER)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    track.append(mido.Message("program_change", program=0, time=0))  # acoustic grand piano
    silence = np.zeros((1, KEYS), np.uint8)
    frames = np.vstack([silence, roll, silence])  # every key released after the last step
    last = 0  # tick of the last event written
    for t in range(1, len(frames)):
        change = frames[t].astype(int) - frames[t - 1].astype(int)
        # at each step boundary: the keys let go, then the keys struck
        for kind, keys in (("note_off", np.flatnonzero(change < 0)),
                           ("note_on", np.flatnonzero(change > 0))):  # fmt: skip
            for k in keys:
                now = (t - 1) * ticks
                track.append(
                    mido.Message(kind, note=int(k) + LOWEST_MIDI, velocity=64, time=now - last)
                )
                last = now
    # The piece lasts its whole length, silent steps at the end included.
    track.append(mido.MetaMessage("end_of_track", time=len(roll) * ticks - last))
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.append(track)
    atomic_write(path, lambda tmp: midi.save(tmp))


def plot_roll(roll: np.ndarray, path: str | Path, title: str, step: float) -> None:
    """Keys (rows, low at the bottom) against time in quarter notes, the sounding ones dark."""
    plt = _pyplot()
    played = np.flatnonzero(roll.any(0))
    low, high = (played.min(), played.max()) if len(played) else (39, 51)
    low, high = max(0, low - 2), min(KEYS - 1, high + 2)
    fig, ax = plt.subplots(figsize=(min(14, 4 + len(roll) * 0.06), 4), dpi=100)
    ax.imshow(
        roll[:, low : high + 1].T,
        origin="lower",
        aspect="auto",
        cmap="Greys",
        interpolation="nearest",
        extent=(0, len(roll) * step, low - 0.5, high + 0.5),
    )
    cs = [k for k in range(low, high + 1) if (k + LOWEST_MIDI) % 12 == 0]
    ax.set_yticks(cs, [f"C{(k + LOWEST_MIDI) // 12 - 1}" for k in cs])
    ax.set_xlabel("quarter notes")
    ax.set_title(title)
    _save(fig, path)
