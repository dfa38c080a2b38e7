"""`rnnkit transcribe train | eval | run`: an encoder-decoder from one sequence to another.

By default spelling to pronunciation on the CMU Pronouncing Dictionary;
``--pairs FILE`` trains on any TSV of source and target sequences.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from ...runs import RunDir, register_run_files, save_json
from ...spec import RNNSpec
from .. import options
from ..common import (
    Prepared,
    TaskRecipe,
    add_switch,
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
from .data import BOS, TOKENS, Pair, Vocabulary, load_cmudict, read_tsv, split_by_key, tokenize
from .files import plot_alignments
from .task import (
    Encoded,
    TranscribeTask,
    Words,
    build_model,
    examples,
    sample,
    score,
    transcribe,
)

TASK = "transcribe"
# The best of benchmarks/transcribe.py (see the README).
DEFAULTS = {
    "cell": "lstm",
    "hidden": 256,
    "layers": 1,
    "batch_size": 64,
    "lr": 3e-3,
    "eval_every": 500,
    "dropout": 0.0,
}
DEFAULT_EMBED = 64
DEFAULT_BEAM = 5
DEFAULT_BIDIRECTIONAL = True
DEFAULT_ATTENTION = True
DEFAULT_INPUT_FEEDING = False
# The budget when none is given: this many passes over the training pairs, within this time.
AUTO_EPOCHS, AUTO_MINUTES = 20, 30.0
EXAMPLES = 12
DEFAULT_MAX_LENGTH = 256  # symbols a side; CMUdict's longest word has 34
TEST, ATTENTION = "test.json", "attention.png"
register_run_files(TEST, ATTENTION)


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(
        subparsers,
        TASK,
        "sequence to sequence (encoder-decoder): spelling to pronunciation by default",
    )

    p = verbs.add_parser("train", help="train an encoder-decoder; prints the test table at the end")
    g = p.add_argument_group("data")
    g.add_argument(
        "--pairs",
        type=options.path,
        help="TSV of source<TAB>target lines (default: the CMU Pronouncing Dictionary, "
        "pip install 'rnnkit[transcribe]')",
    )
    for side in ("source", "target"):
        g.add_argument(
            f"--{side}-tokens",
            choices=TOKENS,
            default="chars",
            help=f"{side} symbols of --pairs: characters or space-separated symbols (default chars)",
        )
    g.add_argument(
        "--stress", action="store_true", help="CMUdict: keep the stress marks (AH0, AH1, ...)"
    )
    g.add_argument(
        "--test-fraction",
        type=options.fraction(),
        default=0.05,
        help="share of the words held out for test (default 0.05)",
    )
    g.add_argument(
        "--val-fraction",
        type=options.fraction(),
        default=0.02,
        help="share of the words held out for validation (default 0.02)",
    )
    g.add_argument(
        "--max-length",
        type=options.count(1),
        default=DEFAULT_MAX_LENGTH,
        help=f"the most symbols a source or target may have (default {DEFAULT_MAX_LENGTH}); "
        "attention's memory grows with source x target length",
    )
    g.add_argument(
        "--split-seed",
        type=options.seed,
        default=0,
        help="seed of the split by word, apart from --seed so that runs share a test set (default 0)",
    )
    g = p.add_argument_group("encoder-decoder")
    g.add_argument("--embed", type=options.units, default=DEFAULT_EMBED,
                   help=f"symbol embedding width (default {DEFAULT_EMBED})")  # fmt: skip
    add_switch(g, "attention", DEFAULT_ATTENTION, "additive attention over the encoder's outputs",
           "the plain context-vector model: the encoder's final state is all the decoder sees")  # fmt: skip
    add_switch(g, "input-feeding", DEFAULT_INPUT_FEEDING, "the context enters the decoder's next "
           "step (Bahdanau); trains one step at a time",
           "the context sits beside the decoder's output (Luong); trains all steps at once")  # fmt: skip
    add_switch(g, "bidirectional", DEFAULT_BIDIRECTIONAL, "a bidirectional encoder",
               "a one-way encoder", negation_only=True)  # fmt: skip
    g.add_argument(
        "--teacher-forcing-final",
        type=options.fraction(closed=True),
        default=1.0,
        metavar="R",
        help="scheduled sampling: the share of true previous symbols falls linearly from 1 to R "
        "(default 1.0: always the true one)",
    )
    g.add_argument(
        "--sampling-steps",
        type=options.count(1),
        help="steps over which the teacher-forcing share falls (default: the --steps budget)",
    )
    g.add_argument(
        "--beam", type=options.count(1, options.MAX_BEAM), default=DEFAULT_BEAM,
        help=f"beam width of the final test (default {DEFAULT_BEAM})",
    )  # fmt: skip
    add_train_options(p, **DEFAULTS)
    p.set_defaults(run=train, bidirectional=DEFAULT_BIDIRECTIONAL)

    p = run_verb(verbs, "eval", "word and phone error rates on the test words, greedy and beam",
                 evaluate, json_flag=True)  # fmt: skip
    p.add_argument("--beam", type=options.count(1, options.MAX_BEAM), default=DEFAULT_BEAM,
                   help=f"beam width (default {DEFAULT_BEAM})")  # fmt: skip
    options.add_device(p)
    p = run_verb(verbs, "run", "transcribe words (from the command line, or stdin)", run_words)
    p.add_argument(
        "words", nargs="*", metavar="WORD", help="sources to transcribe (default: stdin)"
    )
    p.add_argument("--beam", type=options.count(1, options.MAX_BEAM), default=DEFAULT_BEAM,
                   help=f"beam width (default {DEFAULT_BEAM})")  # fmt: skip
    p.add_argument("--nbest", type=options.count(1, options.MAX_BEAM), default=3,
                   help="transcriptions per word (default 3)")  # fmt: skip
    options.add_device(p)


def source_config(args: argparse.Namespace) -> dict:
    if args.pairs:
        if args.stress:
            raise ValueError("--stress is for the CMU Pronouncing Dictionary, not --pairs")
        return {
            "kind": "pairs",
            "path": str(Path(args.pairs).resolve()),
            "source_tokens": args.source_tokens,
            "target_tokens": args.target_tokens,
        }
    return {"kind": "cmudict", "stress": args.stress, "source_tokens": "chars"}


def load_pairs(source: dict) -> list[Pair]:
    if source["kind"] == "pairs":
        return read_tsv(source["path"], source["source_tokens"], source["target_tokens"])
    return load_cmudict(source["stress"])


def split(config: dict, max_length: int | None = None) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The run's train, validation and test pairs, checked against what training saw."""
    pairs = load_pairs(config["source"])
    check_lengths(
        pairs, max_length or config.get("max_length", DEFAULT_MAX_LENGTH), config["source"]
    )
    s = config["split"]
    parts = split_by_key(pairs, s["test_fraction"], s["val_fraction"], s["seed"])
    counts = [len(p) for p in parts]
    if "counts" in s and counts != s["counts"]:
        raise ValueError(
            f"the data changed since training: train/validation/test pairs {counts}, "
            f"the run saw {s['counts']}"
        )
    return parts


def check_lengths(pairs: list[Pair], bound: int, source: dict) -> None:
    """A pair longer than --max-length on either side is refused, named by its line."""
    for number, p in enumerate(pairs, 1):
        for side, symbols in (("source", p.source), ("target", p.target)):
            if len(symbols) > bound:
                where = (
                    f"{source['path']} pair {number}" if source["kind"] == "pairs" else repr(p.key)
                )
                raise ValueError(
                    f"{where}: the {side} has {len(symbols):,} symbols, above --max-length {bound}; "
                    "raise --max-length if the machine has the memory (attention grows with "
                    "source x target length) or leave the pair out"
                )


def joiner(config: dict) -> str:
    """How a source is written back: characters run together, symbols apart."""
    return "" if config["source"]["source_tokens"] == "chars" else " "


def vocabularies(config: dict) -> tuple[Vocabulary, Vocabulary]:
    return Vocabulary(config["source_symbols"]), Vocabulary(config["target_symbols"])


def resumed_options(saved: dict) -> dict:
    """A transcription run's data options, as --resume takes them from its config."""
    source, split = saved["source"], saved["split"]
    out = {"test_fraction": split["test_fraction"], "val_fraction": split["val_fraction"],
           "split_seed": split["seed"]}  # fmt: skip
    if source["kind"] == "pairs":
        return {**out, "pairs": source["path"], "source_tokens": source["source_tokens"],
                "target_tokens": source["target_tokens"]}  # fmt: skip
    return {**out, "pairs": None, "stress": source["stress"]}


class TranscribeRecipe(TaskRecipe):
    """Sequence to sequence: what the transcribe task plugs into the shared train sequence."""

    name = TASK
    metric_name = "validation word error"

    resumed_options = staticmethod(resumed_options)

    def check_options(self, args: argparse.Namespace) -> None:
        args.auto_budget = not budget_given(args)
        if args.teacher_forcing_final < 1.0 and not (
            args.sampling_steps or args.steps or args.epochs or args.auto_budget
        ):
            raise ValueError(
                "scheduled sampling needs --sampling-steps (or a --steps or --epochs budget)"
            )

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        config: dict = {"task": TASK, "source": source_config(args)}
        config["split"] = {
            "test_fraction": args.test_fraction,
            "val_fraction": args.val_fraction,
            "seed": args.split_seed,
        }
        train_pairs, val_pairs, test_pairs = split(config, args.max_length)
        config["split"]["counts"] = [len(train_pairs), len(val_pairs), len(test_pairs)]
        source = Vocabulary.of(p.source for p in train_pairs)
        target = Vocabulary.of(p.target for p in train_pairs)
        config.update(
            source_symbols=source.to_config(),
            target_symbols=target.to_config(),
            longest_target=max(len(p.target) for p in train_pairs),
            max_length=args.max_length,
            **spec.to_config(),
            embed=args.embed,
            attention=args.attention,
            input_feeding=args.input_feeding,
            batch_size=args.batch_size,
            teacher_forcing_final=args.teacher_forcing_final,
            seed=args.seed,
            data_fingerprint=fingerprint(
                *((p.source, p.target) for p in train_pairs + val_pairs + test_pairs)
            ),
        )
        check_pair_memory(args, train_pairs + val_pairs + test_pairs)
        steps_per_epoch = max(1, math.ceil(len(train_pairs) / args.batch_size))
        if args.auto_budget:
            args.epochs, args.minutes = AUTO_EPOCHS, AUTO_MINUTES
        span = args.sampling_steps or args.steps
        if span is None and args.epochs is not None:
            span = math.ceil(args.epochs * steps_per_epoch)
        words = {name: len({p.key for p in part}) for name, part in
                 (("train", train_pairs), ("val", val_pairs), ("test", test_pairs))}  # fmt: skip
        what = "CMUdict" if config["source"]["kind"] == "cmudict" else config["source"]["path"]
        budget = (f"{args.epochs:g} epochs, at most {args.minutes:g} minutes" if args.auto_budget
                  else "as given")  # fmt: skip
        task = TranscribeTask(Encoded.of(train_pairs, source, target), Words.of(val_pairs),
                              source, target, config, span or 1)  # fmt: skip
        test_words = Words.of(test_pairs)
        task.expect_test(len(test_words), args.beam)
        headline = (
            f"transcribe {what}: {len(train_pairs)} training pairs ({words['train']} words), "
            f"{words['val']} validation and {words['test']} test words; {len(source) - 3} source "
            f"and {len(target) - 3} target symbols; {spec.cell} {spec.hidden}"
            f"{', bidirectional encoder' if spec.bidirectional else ''}"
            f"{', attention' if args.attention else ', context vector only'}; budget {budget}"
        )
        return Prepared(config, task, steps_per_epoch, headline, state={"test": test_words})

    def build_model(self, config: dict) -> torch.nn.Module:
        return build_model(config)

    def after_training(self, run: RunDir, model, prepared: Prepared, args, result: dict) -> None:
        result = test_result(model.cpu(), run, prepared.config, prepared.state["test"], args.beam,
                             progress=True)  # fmt: skip
        save_json(run.file(TEST), result)
        report(result)


RECIPE = register_task(TranscribeRecipe())


def train(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


def check_pair_memory(args: argparse.Namespace, pairs: list[Pair]) -> None:
    """Attention scores every source step for every target step of a batch: refuse what cannot fit."""
    source = max(len(p.source) for p in pairs)
    target = max(len(p.target) for p in pairs) + 1
    batch = min(args.batch_size, len(pairs))
    need = bptt_bytes(args, batch, source) + bptt_bytes(args, batch, target)
    if args.attention:
        need += 4.0 * 3 * batch * source * target * args.hidden  # additive scores and gradients
    check_memory(
        need,
        f"a batch of {batch} pairs of up to {source:,} source and {target:,} target symbols",
        "lower --batch-size or --max-length",
        args.device,
    )


def test_result(
    model, run: RunDir, config: dict, words: Words, beam: int, progress: bool = False
) -> dict:
    """Greedy and beam error rates on the test words, examples, and the attention PNG."""
    source, target = vocabularies(config)
    longest = config.get("longest_target", 0)
    greedy = score(model, words, source, target, longest=longest,
                   progress=_progress(f"{len(words):,} test words, greedy") if progress else None)  # fmt: skip
    wide = score(model, words, source, target, beam, longest,
                 progress=_progress(f"{len(words):,} test words, beam {beam}") if progress else None)  # fmt: skip
    result = {
        "wer": greedy["wer"],
        "per": greedy["per"],
        "beam": {"wer": wide["wer"], "per": wide["per"], "k": beam},
        "words": greedy["words"],
        "unknown_sources": greedy["unknown"],
        "examples": examples(words, wide["outputs"], EXAMPLES, joiner(config)),
    }
    if config["attention"]:
        plot_alignments(
            run.file(ATTENTION), alignments(model, words, source, target, greedy["outputs"])
        )
    return result


def _progress(what: str, every: float = 10.0):
    """A callback for ``transcribe``: a line at the start, then every ``every`` seconds and at the end."""
    began = last = time.monotonic()
    print(f"decoding {what} ...", flush=True)

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every or done == total:
            print(f"  {what}: {done:,}/{total:,} ({now - began:.0f} s)", flush=True)
            last = now

    return report


def alignments(
    model, words: Words, source: Vocabulary, target: Vocabulary, outputs, count: int = 6
):
    """Attention weights of the greedy outputs of the first few example words."""
    items = []
    model.eval()
    for i in sample(words, count):
        try:
            ids = source.encode(words.sources[i])
        except ValueError:  # a symbol training never saw: no output to show
            continue
        tgt_in = torch.tensor([[BOS] + target.encode(outputs[i])])
        with torch.no_grad():
            _, weights = model(torch.tensor([ids]), tgt_in, return_attention=True)
        items.append((words.sources[i], (*outputs[i], "</s>"), weights[0].numpy()))
    return items


def report(result: dict) -> None:
    print(f"test set, {result['words']} words:")
    print(f"{'decoding':12s} {'WER':>8s} {'PER':>8s}")
    print(f"{'greedy':12s} {result['wer']:8.4f} {result['per']:8.4f}")
    beam = result["beam"]
    print(f"{'beam ' + str(beam['k']):12s} {beam['wer']:8.4f} {beam['per']:8.4f}")
    for e in result["examples"]:
        mark = "right" if e["right"] else "wrong, want " + " | ".join(e["references"])
        print(f"  {e['source']:24s} -> {e['output']:28s} {mark}")


def evaluate(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    _, _, test_pairs = split(config)
    model = RECIPE.trained_model(run, config, args.device)
    result = test_result(model, run, config, Words.of(test_pairs), args.beam, progress=True)
    return report_result(args, result, report)


def run_words(args: argparse.Namespace) -> int:
    run, config = read_run(args.run_dir, TASK)
    words = args.words or [line.strip() for line in sys.stdin if line.strip()]
    if not words:
        raise ValueError("no words: give them after RUN or on stdin")
    source, target = vocabularies(config)
    tokens = config["source"]["source_tokens"]
    cmudict = config["source"]["kind"] == "cmudict"
    bound = config.get("max_length", DEFAULT_MAX_LENGTH)
    ids = []
    for word in words:
        symbols = tokenize(word.lower() if cmudict else word, tokens)
        if not symbols:
            raise ValueError(f"{word!r} is empty: there is nothing to transcribe")
        if len(symbols) > bound:
            raise ValueError(
                f"{word[:20]!r}...: {len(symbols):,} symbols, above the run's --max-length {bound}"
            )
        try:
            ids.append(source.encode(symbols, "source symbol"))
        except ValueError as error:
            raise ValueError(f"{word!r}: {error}") from None
    model = RECIPE.trained_model(run, config, args.device)
    for word, hyps in zip(
        words,
        transcribe(model, ids, max(args.beam, args.nbest), config.get("longest_target", 0)),
        strict=True,
    ):
        for rank, h in enumerate(hyps[: args.nbest], 1):
            print(f"{word}\t{rank}\t{' '.join(target.decode(h.tokens))}\t{h.log_prob:.4f}")
    return 0
