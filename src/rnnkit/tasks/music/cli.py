"""`rnnkit music train | eval | generate`: polyphonic music as piano rolls, by genre.

Data: the JSB Chorales benchmark file, a folder of MIDI/MusicXML/kern/ABC
files (subfolders are genres), or the music21 corpus by genre.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from ...runs import RunDir, atomic_write, check_output, register_run_files, save_json
from ...spec import RNNSpec
from .. import options
from ..common import (
    Prepared,
    TaskRecipe,
    add_train_options,
    bptt_bytes,
    budget_given,
    check_memory,
    fingerprint,
    read_run,
    register_task,
    report_result,
    run_verb,
    task_verbs,
    train_task,
)
from ..options import check_bound
from .files import plot_roll, write_midi
from .key_distributions import OUTPUTS
from .metrics import key_marginals, test_result
from .model import CONDITIONS, RollModel
from .rolls import Rolls
from .scores import STEPS, NoteCache, default_cache
from .sources import known_genres, load_source, parse_genres
from .task import MusicTask

TASK = "music"
# The best of benchmarks/music.py (see the README).
DEFAULTS = {
    "cell": "lstm",
    "hidden": 256,
    "layers": 1,
    "dropout": 0.3,
    "batch_size": 16,
    "lr": 3e-3,
    "eval_every": 250,
    "weight_decay": 0.0,
}
DEFAULT_OUTPUT = "made"
JOINT_HIDDEN = {"nade": 150, "made": 512, "bernoulli": 0}  # NADE: 88x the work per unit
DEFAULT_GENRES, DEFAULT_MAX_PIECES, DEFAULT_WINDOW = "bach", 300, 128
DEFAULT_HELD_OUT = 0.1
# The budget when none is given: this many steps, within this time.
AUTO_STEPS, AUTO_MINUTES = 3000, 15.0
HELD_OUT, TEST, SAMPLE = "held_out.npz", "test.json", "sample.mid"
register_run_files(HELD_OUT, TEST, SAMPLE, "sample.png")
# The longest piece `generate` writes without --max-steps: 20,000 steps are 25 minutes of
# eighth notes at 100 a minute, and a second or two of computing per thousand steps.
MAX_GENERATE = 20_000


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(
        subparsers, TASK, "polyphonic music as piano rolls: JSB Chorales, MIDI folders, by genre"
    )
    p = verbs.add_parser("train", help="train on piano rolls; prints the test table at the end")
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        type=options.path,
        help="a JSB-format .mat file, or a folder of MIDI/MusicXML/kern/ABC files whose "
        "subfolders, if any, are genres (default: the music21 corpus, --genres)",
    )
    g.add_argument(
        "--genres",
        help=f"music21 corpus genres, comma-separated (default {DEFAULT_GENRES}); "
        f"known: {known_genres()}",
    )
    g.add_argument(
        "--step",
        choices=sorted(STEPS),
        help="time step of the rolls made from scores (default eighth; a JSB file is quantised)",
    )
    g.add_argument(
        "--transpose", action="store_true", help="transpose every piece to C major or C minor"
    )
    g.add_argument(
        "--max-pieces",
        type=options.count(3),
        help=f"pieces per genre (default {DEFAULT_MAX_PIECES} from the corpus, all from a folder)",
    )
    g.add_argument("--skip-bad", action="store_true", help="leave out files that cannot be parsed")
    g.add_argument(
        "--cache", type=options.path, help=f"folder of parsed scores (default {default_cache()})"
    )
    g.add_argument("--no-cache", action="store_true", help="parse every file again")
    g.add_argument(
        "--held-out",
        type=options.real(0.0, 0.5, low_open=True, high_open=True),
        help=f"share of each genre's pieces for test, and again for validation "
        f"(default {DEFAULT_HELD_OUT})",
    )
    g.add_argument("--split-seed", type=options.seed, help="seed of the split (default 0)")
    g.add_argument(
        "--jobs",
        type=options.count(1, 1024),
        default=os.cpu_count() or 1,
        help="processes that parse scores",
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--output",
        choices=OUTPUTS,
        default=DEFAULT_OUTPUT,
        help="distribution of a step's keys: independent Bernoulli keys, or the keys jointly, "
        f"autoregressively from the lowest (MADE, or NADE: slower) (default {DEFAULT_OUTPUT})",
    )
    g.add_argument(
        "--joint-hidden",
        type=options.units,
        help="hidden units of the NADE or MADE output (default 150 for NADE, 512 for MADE)",
    )
    g.add_argument(
        "--condition",
        choices=("auto", *CONDITIONS),
        default="auto",
        help="how the genre conditions the RNN: initial state, extra input at every step, both, "
        "or none (default auto: both when the data hold two genres or more)",
    )
    g.add_argument(
        "--genre-size", type=options.units, default=16, help="genre embedding width (default 16)"
    )
    g.add_argument(
        "--window",
        type=options.count(2),
        default=DEFAULT_WINDOW,
        help=f"training cuts longer pieces to a random window of this many steps "
        f"(default {DEFAULT_WINDOW}); evaluation reads whole pieces",
    )
    add_train_options(p, **DEFAULTS)
    p.set_defaults(run=train)

    p = run_verb(verbs, "eval", "NLL per step and frame accuracy on the test pieces (and by genre)",
                 evaluate, json_flag=True)  # fmt: skip
    options.add_device(p)
    p = run_verb(verbs, "generate", "write a new piece as MIDI and a piano-roll PNG", generate)
    p.add_argument("--genre", help="genre of the piece (a genre model's; see `eval`)")
    p.add_argument("--steps", type=options.count(1), default=128,
                   help=f"time steps (default 128; at most {MAX_GENERATE:,} unless --max-steps)")  # fmt: skip
    p.add_argument("--max-steps", type=options.count(1), default=MAX_GENERATE,
                   help=f"the bound on --steps (default {MAX_GENERATE:,})")  # fmt: skip
    p.add_argument("--temperature", type=options.positive(), default=1.0,
                   help="sampling temperature (default 1.0)")  # fmt: skip
    options.add_seed(p)
    # MIDI holds a tempo in 24 bits of microseconds a quarter: at least 3.6 a minute
    p.add_argument("--tempo", type=options.real(4.0, 1000.0), default=100.0,
                   help="quarter notes a minute (default 100)")  # fmt: skip
    options.add_device(p)
    p.add_argument(
        "--out", type=options.path, help="MIDI file to write (default RUN/generated-GENRE-SEED.mid)"
    )


def source_config(args: argparse.Namespace) -> dict:
    if args.data is not None:
        path = Path(args.data)
        if args.genres is not None:
            raise ValueError("--genres chooses from the music21 corpus: not with --data")
        if not path.exists():
            raise ValueError(f"--data {path}: no such file or folder")
        if not path.is_dir():
            if path.suffix.lower() != ".mat":
                raise ValueError(
                    f"--data {path}: give a JSB-format .mat file or a folder of MIDI/MusicXML files"
                )
            given = [flag for flag, value in (
                ("--step", args.step), ("--transpose", args.transpose),
                ("--max-pieces", args.max_pieces), ("--held-out", args.held_out is not None),
                ("--split-seed", args.split_seed is not None), ("--skip-bad", args.skip_bad))
                if value]  # fmt: skip
            if given:
                raise ValueError(
                    f"a JSB file is already split and quantised: {', '.join(given)} do not apply"
                )
            return {"kind": "jsb", "path": str(path.resolve()), "step": 1.0}
    held_out = DEFAULT_HELD_OUT if args.held_out is None else args.held_out
    if not 0 < held_out < 0.5:  # NaN fails too
        raise ValueError(f"--held-out must be in (0, 0.5), got {args.held_out}")
    if args.split_seed is not None and args.split_seed < 0:
        raise ValueError(f"--split-seed must be >= 0, got {args.split_seed}")
    if args.max_pieces is not None and args.max_pieces < 3:
        raise ValueError(f"--max-pieces must be >= 3, got {args.max_pieces}")
    common = {
        "step": STEPS[args.step or "eighth"],
        "transpose": args.transpose,
        "held_out": held_out,
        "split_seed": args.split_seed or 0,
        "skip_bad": args.skip_bad,
    }
    if args.data is not None:
        return {"kind": "folder", "path": str(Path(args.data).resolve()),
                "max_pieces": args.max_pieces, **common}  # fmt: skip
    genres = parse_genres(DEFAULT_GENRES if args.genres is None else args.genres)
    return {"kind": "corpus", "genres": genres,
            "max_pieces": args.max_pieces or DEFAULT_MAX_PIECES, **common}  # fmt: skip


def save_held_out(path: Path, test: Rolls, marginals: np.ndarray) -> None:
    """The test pieces and the training steps' key frequencies, so that eval needs neither
    the data nor music21."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                steps=np.concatenate(test.pieces),
                lengths=np.array([len(p) for p in test.pieces]),
                genres=np.array(test.genres, dtype=str),
                names=np.array(test.names, dtype=str),
                marginals=marginals,
            )

    atomic_write(path, write)


def load_held_out(path: Path) -> tuple[Rolls, np.ndarray]:
    if not path.exists():
        raise ValueError(f"{path.parent} has no {path.name}: not a finished music run")
    try:
        with np.load(path, allow_pickle=False) as z:
            pieces = np.split(z["steps"], np.cumsum(z["lengths"])[:-1])
            rolls = Rolls(pieces, [str(g) for g in z["genres"]], [str(n) for n in z["names"]])
            return rolls, z["marginals"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} is damaged ({type(error).__name__}); train the run again"
        ) from None


def build_model(config: dict) -> RollModel:
    return RollModel(
        RNNSpec.from_config(config),
        config["output"],
        config["joint_hidden"],
        config["genres"],
        config["condition"],
        config["genre_size"],
    )


def resumed_options(saved: dict) -> dict:
    """A music run's data options, as --resume takes them from its config."""
    source = saved["source"]
    if source["kind"] == "jsb":
        return {"data": source["path"], "genres": None}
    out = {"step": next(k for k, v in STEPS.items() if v == source["step"]),
           "transpose": source["transpose"], "held_out": source["held_out"],
           "split_seed": source["split_seed"], "skip_bad": source["skip_bad"],
           "max_pieces": source.get("max_pieces")}  # fmt: skip
    if source["kind"] == "folder":
        return {**out, "data": source["path"], "genres": None}
    return {**out, "data": None, "genres": ",".join(source["genres"])}


class MusicRecipe(TaskRecipe):
    """Polyphonic music: what the music task plugs into the shared train sequence."""

    name = TASK
    forward_only = "would read what comes next: a model of music reads forward only"
    metric_name = "validation NLL"

    resumed_options = staticmethod(resumed_options)

    def check_options(self, args: argparse.Namespace) -> None:
        if args.joint_hidden is None:
            args.joint_hidden = JOINT_HIDDEN[args.output]
        elif args.output == "bernoulli" and "joint_hidden" in getattr(
            args, "given", {"joint_hidden"}
        ):
            raise ValueError("--joint-hidden sizes a NADE or MADE output, not --output bernoulli")
        args.auto_budget = not budget_given(args)
        if args.auto_budget:
            args.steps, args.minutes = AUTO_STEPS, AUTO_MINUTES

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        cache_folder = Path(args.cache or default_cache())
        if not args.no_cache and cache_folder.exists() and not cache_folder.is_dir():
            raise ValueError(f"--cache {cache_folder} is a file, not a folder")
        config: dict = {"task": TASK, "source": source_config(args)}
        source = config["source"]
        if (
            source["kind"] == "corpus"
            and len(source["genres"]) < 2
            and args.condition in CONDITIONS[1:]
        ):
            raise ValueError(f"--condition {args.condition} needs pieces of two genres or more")
        cache = None if args.no_cache else NoteCache(cache_folder)
        parts = load_source(source, cache, args.jobs)
        longest = min(max(len(p) for p in parts["train"].pieces), args.window) + 1
        batch = min(args.batch_size, len(parts["train"]))
        check_memory(
            bptt_bytes(args, batch, longest)
            + 4.0 * batch * longest * max(args.joint_hidden, 88) * 3,
            f"a batch of {args.batch_size} windows of {longest - 1:,} steps",
            "lower --batch-size or --window",
            args.device,
        )
        genres = sorted(set(parts["train"].genres) - {""})
        condition = args.condition
        if condition == "auto":
            condition = "both" if len(genres) > 1 else "none"
        elif condition != "none" and len(genres) < 2:
            raise ValueError(f"--condition {condition} needs pieces of two genres or more")
        config.update(
            genres=genres if condition != "none" else [],  # the ones the model is conditioned on
            data_genres=genres,
            pieces={k: len(v) for k, v in parts.items()},
            **spec.to_config(),
            output=args.output,
            joint_hidden=args.joint_hidden,
            condition=condition,
            genre_size=args.genre_size,
            window=args.window,
            batch_size=args.batch_size,
            seed=args.seed,
            data_fingerprint=fingerprint(*(p for part in parts.values() for p in part.pieces)),
        )
        steps_per_epoch = max(1, math.ceil(len(parts["train"]) / args.batch_size))
        what = {"jsb": source.get("path"), "folder": source.get("path")}.get(
            source["kind"], "music21 corpus"
        )
        budget = (f"{args.steps} steps, at most {args.minutes:g} minutes" if args.auto_budget
                  else "as given")  # fmt: skip
        task = MusicTask(parts["train"], parts["valid"], args.batch_size, args.seed, args.window)
        task.expect_test(parts["test"], len(config["genres"]))
        headline = (
            f"music {what}: {len(parts['train'])} training pieces ({parts['train'].steps} steps), "
            f"{len(parts['valid'])} validation, {len(parts['test'])} test"
            f"{'; genres ' + ', '.join(genres) if genres else ''}; {spec.cell} {spec.hidden}, "
            f"{args.output} output, condition {condition}; budget {budget}"
        )
        state = {"parts": parts, "marginals": key_marginals(parts["train"]), "genres": genres}
        return Prepared(config, task, steps_per_epoch, headline, state=state)

    def build_model(self, config: dict) -> RollModel:
        return build_model(config)

    def before_training(self, run: RunDir, prepared: Prepared, args: argparse.Namespace) -> None:
        if not args.resume:
            save_held_out(run.file(HELD_OUT), prepared.state["parts"]["test"],
                          prepared.state["marginals"])  # fmt: skip

    def after_training(self, run: RunDir, model, prepared: Prepared, args, result: dict) -> None:
        config, test = prepared.config, prepared.state["parts"]["test"]
        model = model.cpu()
        print(f"scoring the {len(test)} test pieces", flush=True)
        result = test_result(model, test, prepared.state["marginals"])
        save_json(run.file(TEST), result)
        report(result)
        genre = prepared.state["genres"][0] if config["genres"] else None
        write_sample(model, config, genre, 128, 1.0, args.seed, 100.0, run.file(SAMPLE))


RECIPE = register_task(MusicRecipe())


def train(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


def report(result: dict) -> None:
    pieces = f"{result['pieces']} piece{'s' if result['pieces'] != 1 else ''}"
    print(f"test set, {pieces}, {result['steps']} predicted steps:")
    print(f"{'model':24s} {'NLL/step':>10s} {'frame acc':>10s}")
    print(f"{'this model':24s} {result['nll']:10.3f} {result['frame_accuracy']:10.3f}")
    for name, b in result["baselines"].items():
        nll = "" if b.get("nll") is None else f"{b['nll']:10.3f}"
        print(f"{name:24s} {nll:>10s} {b['frame_accuracy']:10.3f}")
    by_genre = result.get("by_genre")
    if by_genre:
        names = list(by_genre)
        print(
            "NLL per step of each genre's test pieces (rows) conditioned on each genre (columns):"
        )
        w = max(11, *(len(n) for n in names)) + 1
        print(" " * w + "".join(f"{n:>{w}s}" for n in names) + f"{'margin':>10s}")
        for g, row in by_genre.items():
            cells = "".join(f"{row['as'][n]:{w}.3f}" for n in names)
            print(f"{g:{w}s}{cells}{row['margin']:10.3f}")


def evaluate(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    test, marginals = load_held_out(run.file(HELD_OUT))
    model = RECIPE.trained_model(run, config, args.device)
    result = test_result(model, test, marginals)
    return report_result(args, result, report)


def write_sample(
    model: RollModel,
    config: dict,
    genre: str | None,
    steps: int,
    temperature: float,
    seed: int,
    tempo: float,
    path: Path,
) -> Path:
    index = None
    if config["genres"]:
        if genre is None:
            raise ValueError(f"this model is conditioned on a genre: give --genre "
                             f"(known: {', '.join(config['genres'])})")  # fmt: skip
        if genre not in config["genres"]:
            raise ValueError(f"unknown genre {genre!r} (known: {', '.join(config['genres'])})")
        index = config["genres"].index(genre)
    elif genre is not None and genre not in config.get("data_genres", []):
        known = ", ".join(config.get("data_genres", [])) or "none: it was trained without genres"
        raise ValueError(f"unknown genre {genre!r} (known: {known})")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    roll = model.generate(steps, index, temperature, generator, _progress(steps))
    roll = roll.cpu().numpy().astype(np.uint8)
    step = config["source"]["step"]
    write_midi(roll, path, step, tempo)
    png = path.with_suffix(".png")
    label = f"{genre}, " if genre else ""
    plot_roll(roll, png, f"generated: {label}{steps} steps, temperature {temperature:g}", step)
    print(f"wrote {path} and {png}: {int(roll.any(1).sum())} of {steps} steps sound")
    return path


def _progress(steps: int, every: float = 10.0):
    """Lines on stderr while a long piece is generated: every ``every`` seconds after the first."""
    began = last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every or (done == total and now - began >= every):
            rate = done / max(now - began, 1e-9)
            print(f"  generated {done:,}/{total:,} steps ({rate:,.0f} a second)", flush=True)
            last = now

    return report


def generate(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    check_bound("--steps", args.steps, args.max_steps, "--max-steps", "steps")
    reads = (config["source"].get("path"),)  # the JSB file, or the folder of scores
    out = check_output(run, args.out or run.file(f"generated-{args.genre or 'piece'}-{args.seed}.mid"),
                       inputs=reads)  # fmt: skip
    if out.suffix.lower() not in (".mid", ".midi"):
        raise ValueError(f"--out {out}: a MIDI file's name ends in .mid")
    png = check_output(run, out.with_suffix(".png"), given=out, inputs=reads)
    if png.exists() and not out.exists():  # a picture that is not this file's piano roll
        raise ValueError(f"--out {out} would overwrite {png}; choose another name")
    model = RECIPE.trained_model(run, config, args.device)
    write_sample(model, config, args.genre, args.steps, args.temperature, args.seed, args.tempo,
                 out)  # fmt: skip
    return 0
