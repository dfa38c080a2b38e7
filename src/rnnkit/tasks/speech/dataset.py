"""From a folder to the utterances of training, validation and test, as the run's config says.

Everything here is a function of the config (the folder, the layout, the rate,
the split, the composition and their seeds), so ``eval`` rebuilds the very
test set that ``train`` set aside, and ``--resume`` refuses changed data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common import fingerprint, warn
from .audio import audio_rate, read_audio, resample
from .compose import Utterance, compose, single
from .corpus import FSDD_TEST_TAKES, Clip, read_clips, speakers_of


@dataclass
class Parts:
    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    train_clips: list[Utterance]  # the training clips alone (the DTW templates)


def source_config(args) -> dict:
    """The data part of a run's config, from the command line (clips listed, not yet read)."""
    layout, clips = read_clips(args.data, args.layout)
    speakers = speakers_of(clips)
    if args.test_speakers:
        wanted = [s.strip() for s in args.test_speakers.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in speakers]
        if unknown:
            raise ValueError(f"--test-speakers: {', '.join(unknown)} not in the data; its "
                             f"speakers: {', '.join(speakers)}")  # fmt: skip
        if len(wanted) == len(speakers):
            raise ValueError("--test-speakers names every speaker: none is left for training")
        split = {"kind": "speakers", "test": wanted}
    elif layout == "fsdd":
        split = {"kind": "official"}
    elif len(speakers) > 1:
        rng = np.random.default_rng(args.split_seed)
        count = max(1, round(args.test_fraction * len(speakers)))
        if count >= len(speakers):
            raise ValueError(f"--test-fraction {args.test_fraction} leaves no training speaker")
        split = {
            "kind": "speakers",
            "test": sorted(rng.choice(speakers, count, replace=False).tolist()),
        }
    else:
        split = {"kind": "clips", "fraction": args.test_fraction}
    rate = args.rate or audio_rate(clips[0].path)
    return {
        "path": str(args.data),
        "layout": layout,
        "rate": rate,
        "skip_bad": args.skip_bad,
        "split": {**split, "val_fraction": args.val_fraction, "seed": args.split_seed},
        "compose": args.compose,
        "compose_passes": args.compose_passes,
        "speed_perturb": list(args.speed_perturb),
        "clips": len(clips),
        "speakers": speakers,
        "data_fingerprint": fingerprint(*((c.path, c.text, c.speaker) for c in clips)),
    }


def load_parts(source: dict, check: bool = True) -> Parts:
    """Read, split and compose the data as ``source`` (a run's config["data"]) says."""
    _, clips = read_clips(source["path"], source["layout"])
    if (
        check
        and fingerprint(*((c.path, c.text, c.speaker) for c in clips)) != source["data_fingerprint"]
    ):
        raise ValueError(f"{source['path']}: the recordings or transcripts changed since the run "
                         "was trained")  # fmt: skip
    clips, waves = read_waves(clips, source["rate"], source["skip_bad"])
    split = source["split"]
    rng = np.random.default_rng(split["seed"])
    if split["kind"] == "official":
        is_test = [c.take is not None and c.take < FSDD_TEST_TAKES for c in clips]
    elif split["kind"] == "speakers":
        is_test = [c.speaker in split["test"] for c in clips]
    else:
        is_test = (rng.random(len(clips)) < split["fraction"]).tolist()
    rest = [i for i, t in enumerate(is_test) if not t]
    test = [i for i, t in enumerate(is_test) if t]
    if not test or not rest:
        raise ValueError("the split leaves no test or no training recording")
    val_mask = rng.random(len(rest)) < split["val_fraction"]
    val = [i for i, v in zip(rest, val_mask, strict=True) if v]
    train = [i for i, v in zip(rest, val_mask, strict=True) if not v]
    if not val:
        val, train = train[:1], train[1:]
    if not train:
        raise ValueError("--val-fraction leaves no training recording")

    def part(indices: list[int], seed: int, passes: int = 1) -> list[Utterance]:
        chosen = [clips[i] for i in indices]
        return compose(chosen, [waves[i] for i in indices], source["compose"], source["rate"],
                       seed, passes)  # fmt: skip

    seed = split["seed"]
    base = part(train, seed + 1, source["compose_passes"])
    training = list(base)
    for factor in source.get("speed_perturb", []):  # Kaldi's speed perturbation: more voices
        training += [Utterance(resample(u.wave, factor), u.text, u.speaker, u.sources)
                     for u in base]  # fmt: skip
    return Parts(
        training,
        part(val, seed + 2),
        part(test, seed + 3),
        single([clips[i] for i in train], [waves[i] for i in train]),
    )


def read_waves(clips: list[Clip], rate: int, skip_bad: bool) -> tuple[list[Clip], list[np.ndarray]]:
    """Every clip's samples; a file that is not audio stops the command, or with --skip-bad is
    left out (counted in a warning)."""
    kept, waves, bad = [], [], []
    for clip in clips:
        try:
            waves.append(read_audio(clip.path, rate))
            kept.append(clip)
        except ValueError as error:
            if not skip_bad:
                raise ValueError(f"{error} (--skip-bad leaves such files out)") from None
            bad.append(clip.path)
    if bad:
        warn(
            f"{len(bad)} of {len(clips)} files are not audio and were left out (the first: {bad[0]})"
        )
    if not kept:
        raise ValueError("no file could be read as audio")
    return kept, waves
