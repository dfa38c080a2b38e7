"""`rnnkit speech train | eval | transcribe`: recordings and transcripts to a CTC recogniser,
measured by word and character error rates on voices (or takes) it has not heard."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from ...runs import RunDir, register_run_files, save_json
from ...spec import RNNSpec
from .. import options
from ..common import (
    Prepared,
    TaskRecipe,
    add_switch,
    add_train_options,
    budget_given,
    check_memory,
    read_run,
    register_task,
    report_result,
    run_verb,
    task_verbs,
    train_task,
    warn,
)
from .audio import read_audio
from .corpus import LAYOUTS
from .ctc import BeamSearch, best_path, within_lexicon
from .dataset import Parts, load_parts, source_config
from .features import FeatureConfig, LogMel, Normaliser, SpecAugment
from .files import plot_posteriors
from .metrics import by_speaker, dtw_nearest, error_rates, most_frequent
from .model import FRONTENDS, CTCRecogniser, Labels
from .task import Encoded, SpeechTask, posteriors

TASK = "speech"
# A deep bidirectional LSTM as in Graves, Mohamed and Hinton (2013), sized for a 2-core CPU.
DEFAULTS = {"cell": "lstm", "hidden": 192, "layers": 3, "batch_size": 32, "lr": 2e-3,
            "eval_every": 100, "dropout": 0.1}  # fmt: skip
DEFAULT_MINUTES = 10.0  # the budget when none is given
DEFAULT_BEAM = 16
TEST, BASELINES, POSTERIORS = "test.json", "baselines.json", "posteriors.png"
register_run_files(TEST, BASELINES, POSTERIORS)
MAX_COMPOSE = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(subparsers, TASK, "speech recognition: audio in, words out (CTC)")
    p = verbs.add_parser("train", help="train a recogniser; prints the test table at the end")
    g = p.add_argument_group("data")
    g.add_argument("--data", type=options.path, required=True,
                   help="a folder of recordings: a manifest.tsv, LibriSpeech or FSDD layout")  # fmt: skip
    g.add_argument("--layout", choices=LAYOUTS, help="the folder's layout (default: recognised)")
    g.add_argument("--skip-bad", action="store_true",
                   help="leave out files that are not audio (counted) instead of stopping")  # fmt: skip
    g.add_argument("--rate", type=options.count(1000, 192000),
                   help="sample rate the audio is brought to (default: the first file's)")  # fmt: skip
    g.add_argument("--test-speakers", help="comma-separated speakers held out for test "
                   "(default: FSDD's official split, else --test-fraction of the speakers)")  # fmt: skip
    g.add_argument("--test-fraction", type=options.fraction(), default=0.2,
                   help="share of the speakers (of the clips, with one speaker) held out for test "
                   "without --test-speakers (default 0.2)")  # fmt: skip
    g.add_argument("--val-fraction", type=options.fraction(), default=0.1,
                   help="share of the training speakers' clips for validation (default 0.1)")  # fmt: skip
    g.add_argument("--split-seed", type=options.seed, default=0, help="(default 0)")
    g.add_argument("--compose", type=options.count(1, MAX_COMPOSE), default=1, metavar="K",
                   help="connected speech: each utterance joins 1..K clips of one speaker "
                   "(default 1: the clips alone)")  # fmt: skip
    g.add_argument("--compose-passes", type=options.count(1, 100), default=3,
                   help="with --compose: times each training clip is used (default 3)")  # fmt: skip
    g.add_argument("--speed-perturb", type=_factors, default=(),
                   metavar="F1,F2", help="add the training audio played F times faster, e.g. "
                   "0.9,1.1 (through soxr)")  # fmt: skip
    g = p.add_argument_group("features")
    g.add_argument("--bands", type=options.count(4, 512), default=40, help="mel bands (default 40)")
    g.add_argument("--window-ms", type=options.real(1.0, 1000.0), default=25.0, help="(default 25)")
    g.add_argument("--hop-ms", type=options.real(1.0, 1000.0), default=10.0, help="(default 10)")
    g.add_argument("--normalise", choices=("global", "utterance"), default="global",
                   help="per-band statistics of the training set, or each utterance's own mean "
                   "taken out first (default global)")  # fmt: skip
    for what, unit, width in (("time", "frames", 10), ("freq", "bands", 8)):
        g.add_argument(f"--{what}-masks", type=options.count(0, 100), default=0,
                       help=f"SpecAugment: {what} masks per utterance (default 0)")  # fmt: skip
        g.add_argument(f"--{what}-width", type=options.count(1, 1000), default=width,
                       help=f"SpecAugment: a {what} mask's widest, in {unit} (default {width})")  # fmt: skip
    g.add_argument("--frontend", choices=FRONTENDS, default="stack",
                   help="stack: --stride frames side by side; conv: a strided convolution (default stack)")  # fmt: skip
    g.add_argument("--stride", type=options.count(1, 16), default=3,
                   help="frames per recurrent step (default 3)")  # fmt: skip
    g = p.add_argument_group("output")
    g.add_argument("--units", choices=("chars", "words"), default="chars",
                   help="CTC's output units (default chars)")  # fmt: skip
    add_switch(g, "bidirectional", True, "a bidirectional RNN", "a one-way RNN (needed for "
               "transcribe --stream)", negation_only=True)  # fmt: skip
    _decoding_options(g)
    add_train_options(p, **DEFAULTS)
    p.set_defaults(run=train, bidirectional=True)

    p = run_verb(verbs, "eval", "word and character error rates on the test utterances",
                 evaluate, json_flag=True)  # fmt: skip
    _decoding_options(p)
    options.add_device(p)

    p = run_verb(verbs, "transcribe", "transcribe audio files", transcribe)
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG)")
    _decoding_options(p)
    p.add_argument("--nbest", type=options.count(1, options.MAX_BEAM), default=1,
                   help="transcriptions per file, with their log-probabilities (default 1)")  # fmt: skip
    p.add_argument("--stream", action="store_true", help="read each file in chunks, carrying "
                   "the state, and print the transcription as it grows (a one-way model)")  # fmt: skip
    p.add_argument("--chunk-ms", type=options.real(10.0, 60000.0), default=500.0,
                   help="--stream: the chunk read at a time (default 500)")  # fmt: skip
    options.add_device(p)


def _decoding_options(g) -> None:
    g.add_argument("--beam", type=options.count(1, options.MAX_BEAM), default=DEFAULT_BEAM,
                   help=f"prefix beam search width; 1 is the best path (default {DEFAULT_BEAM})")  # fmt: skip
    g.add_argument("--lexicon", action="store_true",
                   help="keep the best hypothesis made of words of the training transcripts")  # fmt: skip


def _factors(text: str) -> tuple[float, ...]:
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of numbers"
            ) from None
        if not (math.isfinite(value) and 0.5 <= value <= 2.0):
            raise argparse.ArgumentTypeError(f"{item.strip()!r}: each factor must be in [0.5, 2]")
        values.append(value)
    return tuple(values)


# -- the run's pieces, rebuilt from its config ---------------------------------------------
def feature_config(config: dict) -> FeatureConfig:
    return FeatureConfig(**config["features"])


def build_model(config: dict) -> CTCRecogniser:
    return CTCRecogniser(RNNSpec.from_config(config), config["features"]["bands"],
                         len(Labels.from_config(config["labels"])), config["frontend"],
                         config["stride"], config["dropout"])  # fmt: skip


def encode_parts(config: dict, parts: Parts) -> dict[str, Encoded]:
    logmel = LogMel(feature_config(config))
    norm = Normaliser.from_config(config["normaliser"])
    return {name: Encoded.of(getattr(parts, name), logmel, norm) for name in ("val", "test")}


def steps_of(config: dict, frames: int) -> int:
    width = config["stride"] * (2 if config["frontend"] == "conv" else 1)
    return max(0, (frames - width) // config["stride"] + 1)


def drop_unlearnable(data: Encoded, labels: Labels, config: dict, what: str) -> Encoded:
    """Leave out utterances CTC cannot align: more labels (and repeats) than output steps."""
    keep = []
    for i, text in enumerate(data.texts):
        ids = labels.encode(text)
        need = len(ids) + sum(a == b for a, b in zip(ids, ids[1:], strict=False))
        if ids and steps_of(config, len(data.features[i])) >= need:
            keep.append(i)
    if not keep:
        raise ValueError(
            f"no {what} utterance has as many output steps as labels: lower --stride or --hop-ms"
        )
    if len(keep) < len(data):
        kept = set(keep)
        first = next(i for i in range(len(data)) if i not in kept)
        warn(f"{len(data) - len(keep)} {what} utterances have more labels than output steps "
             f"(the first: {data.texts[first]!r}) and were left out; lower --stride or --hop-ms")  # fmt: skip
    return Encoded([data.features[i] for i in keep], [data.texts[i] for i in keep],
                   [data.speakers[i] for i in keep])  # fmt: skip


class SpeechRecipe(TaskRecipe):
    """Speech recognition: what the speech task plugs into the shared train sequence."""

    name = TASK
    metric_name = "validation WER"

    def resumed_options(self, saved: dict) -> dict:
        data = saved["data"]
        split = data["split"]
        return {"data": data["path"], "layout": data["layout"], "rate": data["rate"],
                "skip_bad": data["skip_bad"], "compose": data["compose"],
                "compose_passes": data["compose_passes"],
                "speed_perturb": tuple(data.get("speed_perturb", ())),
                "test_speakers": ",".join(split["test"]) if split["kind"] == "speakers" else None,
                "val_fraction": split["val_fraction"], "split_seed": split["seed"],
                **saved["features"], **saved["augment"], "normalise": saved["normaliser"]["kind"],
                "units": saved["labels"]["units"]}  # fmt: skip

    def check_options(self, args: argparse.Namespace) -> None:
        if not budget_given(args):
            args.minutes = DEFAULT_MINUTES

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        source = source_config(args)
        features = FeatureConfig(source["rate"], args.window_ms, args.hop_ms, args.bands)
        if features.window > 4 * source["rate"]:
            raise ValueError("--window-ms is longer than 4 seconds")
        parts = load_parts(source)
        logmel = LogMel(features)
        raw = Encoded.of(parts.train, logmel, None)
        short = [i for i, f in enumerate(raw.features) if len(f) == 0]
        if len(short) == len(raw):
            raise ValueError(
                f"every training utterance is shorter than one --window-ms {args.window_ms:g} window"
            )
        normaliser = Normaliser.fit(
            [f for f in raw.features if len(f)], args.normalise == "utterance"
        )
        labels = Labels.of(raw.texts, args.units)
        config: dict = {
            "task": TASK, "data": source, "features": features.to_config(),
            "normaliser": {**normaliser.to_config(), "kind": args.normalise},
            "labels": labels.to_config(),
            "lexicon": sorted({w for t in raw.texts for w in t.split()}), "frontend": args.frontend, "stride": args.stride,
            **spec.to_config(), "seed": args.seed, "batch_size": args.batch_size,
            "augment": {"time_masks": args.time_masks, "time_width": args.time_width,
                        "freq_masks": args.freq_masks, "freq_width": args.freq_width},
        }  # fmt: skip
        train = drop_unlearnable(Encoded([normaliser(f) for f in raw.features], raw.texts, raw.speakers),
                                 labels, config, "training")  # fmt: skip
        encoded = encode_parts(config, parts)
        val = drop_unlearnable(encoded["val"], labels, config, "validation")
        frames = sum(len(f) for f in train.features)
        check_memory(4.0 * frames * spec.hidden * 12 * spec.layers / max(1, len(train)) * args.batch_size,
                     "a batch of the longest utterances", "lower --batch-size or --hidden",
                     args.device)  # fmt: skip
        augment = SpecAugment(**config["augment"])
        task = SpeechTask(train, val, labels, args.batch_size, args.seed, augment)
        task.expect_test(len(encoded["test"]), args.beam)
        seconds = sum(u.wave.size for u in parts.train) / source["rate"]
        split = source["split"]
        held = (f"test speakers {','.join(split['test'])}" if split["kind"] == "speakers"
                else "the official test takes" if split["kind"] == "official" else "a share of the clips")  # fmt: skip
        headline = (
            f"speech {source['path']} ({source['layout']}): {len(train)} training utterances "
            f"({seconds / 60:.1f} min), {len(val)} validation, {len(encoded['test'])} test ({held}); "
            f"{len(labels) - 1} {args.units}; {spec.describe()}, {args.frontend} x{args.stride}"
        )
        steps_per_epoch = max(1, math.ceil(len(train) / args.batch_size))
        return Prepared(config, task, steps_per_epoch, headline,
                        state={"parts": parts, "test": encoded["test"], "train": train})  # fmt: skip

    def build_model(self, config: dict) -> CTCRecogniser:
        return build_model(config)

    def before_training(self, run: RunDir, prepared: Prepared, args: argparse.Namespace) -> None:
        # the baselines need no model: measured before training, inside the time budget
        if not run.file(BASELINES).exists():
            state = prepared.state
            save_json(
                run.file(BASELINES),
                measure_baselines(prepared.config, state["parts"], state["test"]),
            )

    def after_training(self, run: RunDir, model, prepared: Prepared, args, result: dict) -> None:
        config, state = prepared.config, prepared.state
        baselines = json.loads(run.file(BASELINES).read_text())
        outcome = test_result(model, run, config, state["test"], args.beam, args.lexicon, baselines)
        save_json(run.file(TEST), outcome)
        report(outcome)


RECIPE = register_task(SpeechRecipe())


def train(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


# -- the test ------------------------------------------------------------------------------
def isolated(texts: list[str]) -> bool:
    return all(len(t.split()) == 1 for t in texts)


def measure_baselines(config: dict, parts: Parts, test: Encoded) -> dict:
    """The most frequent transcript; for isolated words also 1-NN DTW on the same features."""
    train_texts = [u.text for u in parts.train]
    out = {"most_frequent": most_frequent(train_texts, test.texts)}
    if config["data"]["compose"] <= 1 and isolated(train_texts) and isolated(test.texts):
        logmel, norm = LogMel(feature_config(config)), Normaliser.from_config(config["normaliser"])
        templates = Encoded.of(parts.train_clips, logmel, norm)
        keep = [i for i, f in enumerate(templates.features) if len(f)]
        queries = [f if len(f) else torch.zeros(1, f.shape[1]) for f in test.features]
        print(
            f"1-NN DTW baseline: {len(test)} test clips against {len(keep)} templates ...",
            flush=True,
        )
        out["dtw_1nn"] = dtw_nearest([templates.features[i] for i in keep],
                                     [templates.texts[i] for i in keep], queries, test.texts)  # fmt: skip
    return out


def decode_all(model, config: dict, data: Encoded, beam: int, lexicon: bool, nbest: int = 1):
    """Each utterance's posteriors, best-path text, and beam hypotheses (text, log-probability)."""
    labels = Labels.from_config(config["labels"])
    logs = posteriors(model, data)
    greedy = [labels.decode(best_path(p, len(p))) for p in logs]
    if beam <= 1:
        beams = [[(g, float("nan"))] for g in greedy]
    else:
        search = BeamSearch(labels)
        beams = [search.nbest(p, len(p), beam, max(nbest, 8 if lexicon else 1)) for p in logs]
    if lexicon:
        words = lexicon_of(config)
        chosen = [within_lexicon(b, words) for b in beams]
        beams = [
            [(c, b[0][1])] + [h for h in b if h[0] != c] for c, b in zip(chosen, beams, strict=True)
        ]
    return logs, greedy, beams


def lexicon_of(config: dict) -> set[str]:
    return set(config["lexicon"])


def test_result(model, run: RunDir, config: dict, test: Encoded, beam: int, lexicon: bool,
                baselines: dict) -> dict:  # fmt: skip
    model = model.cpu()
    logs, greedy, beams = decode_all(model, config, test, beam, lexicon)
    best = [b[0][0] for b in beams]
    rates = error_rates(greedy, test.texts)
    wide = error_rates(best, test.texts)
    example = max(range(len(test)), key=lambda i: (len(test.texts[i].split()), -i))
    labels = Labels.from_config(config["labels"])
    f, front = feature_config(config), model.front
    frames = len(test.features[example])
    centre = (np.arange(len(logs[example])) * front.stride + (front.width - 1) / 2) * f.hop
    plot_posteriors(run.file(POSTERIORS), test.features[example].numpy(), logs[example].numpy(),
                    labels.symbols, ((frames - 1) * f.hop + f.window) / f.rate,
                    (centre + f.window / 2) / f.rate, best[example], test.texts[example])  # fmt: skip
    return {
        "wer": rates["wer"], "cer": rates["cer"], "utterances": rates["utterances"],
        "beam": {"wer": wide["wer"], "cer": wide["cer"], "k": beam, "lexicon": lexicon},
        "by_speaker": by_speaker(best, test.texts, test.speakers),
        "baselines": baselines,
        "examples": [{"said": t, "heard": h} for t, h in list(zip(test.texts, best, strict=True))[:8]],
    }  # fmt: skip


def report(result: dict) -> None:
    beam = result["beam"]
    print(f"test set, {result['utterances']} utterances:")
    print(f"{'recogniser':22s} {'WER':>8s} {'CER':>8s}")
    print(f"{'best path':22s} {result['wer']:8.4f} {result['cer']:8.4f}")
    name = f"beam {beam['k']}" + (", lexicon" if beam.get("lexicon") else "")
    print(f"{name:22s} {beam['wer']:8.4f} {beam['cer']:8.4f}")
    for key, what in (("most_frequent", "most frequent words"), ("dtw_1nn", "1-NN DTW templates")):
        if key in result["baselines"]:
            b = result["baselines"][key]
            print(f"{what:22s} {b['wer']:8.4f} {b['cer']:8.4f}")
    for speaker, r in result["by_speaker"].items():
        print(f"  {speaker:20s} {r['wer']:8.4f} {r['cer']:8.4f}  ({r['utterances']} utterances)")


# -- the verbs after training ----------------------------------------------------------------
def evaluate(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    model = RECIPE.trained_model(run, config, args.device)
    parts = load_parts(config["data"])
    test = encode_parts(config, parts)["test"]
    path = run.file(BASELINES)
    baselines = (
        json.loads(path.read_text()) if path.exists() else measure_baselines(config, parts, test)
    )
    result = test_result(model, run, config, test, args.beam, args.lexicon, baselines)
    return report_result(args, result, report)


def transcribe(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    if args.stream and config.get("bidirectional"):
        raise ValueError("--stream needs a one-way model (train with --no-bidirectional): a "
                         "bidirectional one reads the whole recording before its first output")  # fmt: skip
    if args.stream and config["normaliser"].get("per_utterance"):
        raise ValueError("--stream needs --normalise global: the run takes each utterance's "
                         "own mean out, which is known only at its end")  # fmt: skip
    features = feature_config(config)
    waves = [read_audio(path, features.rate) for path in args.files]  # every file checked first
    model = RECIPE.trained_model(run, config, args.device).eval()
    logmel, norm = LogMel(features), Normaliser.from_config(config["normaliser"])
    for path, wave in zip(args.files, waves, strict=True):
        if args.stream:
            stream(model, config, logmel, norm, wave, args.chunk_ms)
            continue
        data = Encoded([norm(logmel(torch.from_numpy(wave)))], [""], [""])
        if len(data.features[0]) == 0:
            raise ValueError(f"{path}: shorter than one analysis window")
        _, greedy, beams = decode_all(model, config, data, args.beam, args.lexicon, args.nbest)
        if args.nbest == 1:
            print(f"{path}\t{beams[0][0][0]}")
        else:
            for text, score in beams[0][: args.nbest]:
                print(f"{path}\t{score:.3f}\t{text}")
    return 0


@torch.no_grad()
def stream(model, config: dict, logmel: LogMel, norm: Normaliser, wave: np.ndarray,
           chunk_ms: float) -> None:  # fmt: skip
    """Chunk by chunk: the frames each chunk completes, the front-end's steps they complete, one
    RNN step per step with the state carried, and the best path extended and printed."""
    c = logmel.config
    labels = Labels.from_config(config["labels"])
    device = next(model.parameters()).device
    chunk = max(c.hop, int(c.rate * chunk_ms / 1000))
    samples = np.zeros(0, dtype=np.float32)
    frames = torch.zeros(0, c.bands)
    state, last, ids, shown = None, 0, [], None
    consumed = 0  # samples whose frames are done
    for start in range(0, len(wave), chunk):
        samples = np.concatenate([samples, wave[start : start + chunk]])
        count = c.frames(len(samples))
        if count:
            new = norm(logmel(torch.from_numpy(samples[: (count - 1) * c.hop + c.window])))
            frames = torch.cat([frames, new])
            samples = samples[count * c.hop :]
            consumed += count * c.hop
        steps = model.front.lengths(torch.tensor([len(frames)]))
        if int(steps) == 0:
            continue
        used = int(steps) * model.front.stride
        x = frames[None, : used + model.front.width - model.front.stride].to(device)
        frames = frames[used:]
        log_probs, _, state = model(x, torch.tensor([x.shape[1]], device=device), state)
        for unit in log_probs[0].argmax(-1).tolist():
            if unit != last and unit != 0:
                ids.append(unit)
            last = unit
        text = labels.decode(ids)
        if text != shown:
            print(f"  ... {text}", flush=True)
            shown = text
    print(labels.decode(ids), flush=True)
