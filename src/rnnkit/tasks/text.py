"""`rnnkit text train | sample | eval`: next-character prediction and text generation.

The lecture's output-at-every-step architecture: an embedding, an RNN of any
cell, and a softmax over the characters at every step. It is trained with
truncated BPTT on one long stream: the text is laid out as B parallel rows,
each row cut into chunks of ``--bptt`` characters; the state is carried from
one chunk to the next (each row continues its own part of the text) and
detached at the boundary. Validation is the held-out tail of the text, read
whole, and reported in nats and bits per character.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import decoding
from ..diagnostics import GradientFlow, gradient_flow
from ..models import SequenceTagger
from ..runs import RunDir
from ..spec import RNNSpec
from ..training import Monitor
from . import options
from .common import (
    Prepared,
    TaskRecipe,
    add_train_options,
    budget_given,
    check_memory,
    fingerprint,
    read_run,
    register_task,
    report_result,
    task_verbs,
    train_task,
    warn,
)

TASK = "text"
BYTES_PER_CHARACTER = 24  # the string, its UTF-32 code points as int64, the ids, the batches
UNKNOWN = "\ufffd"  # stands for the characters rarer than --min-count
STDLIB_MIN_COUNT = (
    20  # the standard library has 222 distinct characters; 102 occur 20 times or more
)
DEFAULTS = {
    "cell": "lstm",
    "hidden": None,  # by budget, see BUDGET_DEFAULTS
    "layers": None,
    "dropout": 0.0,
    "batch_size": 32,
    "lr": None,
    "eval_every": 200,
}
# Defaults by time budget, measured on tiny Shakespeare on a 2-core CPU (README, benchmarks/text.py):
# a short budget is better spent on more steps of one layer, a longer one on two layers.
SHORT_BUDGET_MINUTES = 2.0
BUDGET_DEFAULTS = {
    "short": {"layers": 1, "hidden": 512, "lr": 6e-3},
    "long": {"layers": 2, "hidden": 512, "lr": 1e-2},
}


def apply_budget_defaults(args: argparse.Namespace) -> None:
    """Fill the model options the user left out with the best measured for the budget."""
    short = args.minutes is not None and args.minutes <= SHORT_BUDGET_MINUTES and args.steps is None
    for key, value in BUDGET_DEFAULTS["short" if short else "long"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)


# -- data ------------------------------------------------------------------------------
@dataclass
class Corpus:
    text: str
    source: dict  # how to find the same text again (config.json)


def _decode_file(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[: 1 << 20]:
        raise ValueError(f"{path} is a binary file, not text")
    try:
        return raw.decode("utf-8").replace("\r\n", "\n")  # Windows line ends: one symbol, not two
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not valid UTF-8 (byte {error.start}: {raw[error.start : error.start + 1]!r})"
        ) from None


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
    return [p for p in sorted(root.rglob("*.py")) if not skip & set(p.relative_to(root).parts)]


def load_corpus(path: str | None) -> Corpus:
    """A UTF-8 file, a folder of them (read in sorted order), or the standard library's source."""
    if path is None:
        parts = []
        for p in stdlib_files():
            try:
                parts.append(p.read_text("utf-8"))
            except (UnicodeDecodeError, OSError):
                continue
        text = "".join(parts)
        return Corpus(
            text, {"kind": "stdlib", "files": len(parts), "python": sys.version.split()[0]}
        )
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--data {path}: no such file or folder")
    size = (
        p.stat().st_size
        if p.is_file()
        else sum(q.stat().st_size for q in p.rglob("*") if q.is_file())
    )
    check_memory(
        BYTES_PER_CHARACTER * size,
        f"--data {path}: {size / 2**30:,.1f} GiB of text, at about {BYTES_PER_CHARACTER} bytes a "
        "character once read and encoded,",
        "give a smaller part of it",
    )
    if p.is_file():
        text = _decode_file(p)
        if not text:
            raise ValueError(f"--data {path} is empty")
        return Corpus(text, {"kind": "file", "path": str(p.resolve())})
    texts, skipped = [], 0
    for f in sorted(
        q
        for q in p.rglob("*")
        if q.is_file() and not any(s.startswith(".") for s in q.relative_to(p).parts)
    ):
        try:
            texts.append(_decode_file(f))
        except (ValueError, OSError):
            skipped += 1
    text = "".join(texts)
    if not text:
        raise ValueError(f"--data {path}: the folder holds no UTF-8 text ({skipped} files skipped)")
    return Corpus(
        text, {"kind": "folder", "path": str(p.resolve()), "files": len(texts), "skipped": skipped}
    )


class Vocab:
    """Characters <-> ids; characters rarer than ``min_count`` share one id (UNKNOWN)."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        points = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._order = np.argsort(points)
        self._points = points[self._order]

    @classmethod
    def build(cls, text: str, min_count: int = 1, held_out: str = "") -> Vocab:
        """The characters of ``text`` seen ``min_count`` times; UNKNOWN stands for the rest, and
        for those of ``held_out`` (the validation tail) that training never sees."""
        points, counts = np.unique(_codepoints(text), return_counts=True)
        kept = [chr(int(p)) for p, n in zip(points, counts, strict=True) if n >= min_count]
        unseen = len(kept) < len(points) or bool(set(held_out) - set(kept))
        if unseen and UNKNOWN not in kept:
            kept.append(UNKNOWN)
        return cls(sorted(kept))

    def __len__(self) -> int:
        return len(self.chars)

    def unknown_chars(self, text: str) -> list[str]:
        return sorted(set(text) - set(self.index))

    def encode(self, text: str, strict: bool = True) -> Tensor:
        """Ids as int64; characters outside the vocabulary raise (strict) or map to UNKNOWN."""
        points = _codepoints(text)
        pos = np.searchsorted(self._points, points).clip(0, len(self._points) - 1)
        found = self._points[pos] == points
        if not found.all():
            missing = sorted({chr(int(c)) for c in points[~found]})
            if strict or UNKNOWN not in self.index:
                shown = ", ".join(repr(c) for c in missing[:10]) + (
                    " ..." if len(missing) > 10 else ""
                )
                raise ValueError(f"characters the model never saw: {shown}")
        ids = self._order[pos]
        if not found.all():
            ids = np.where(found, ids, self.index[UNKNOWN])
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: list[int] | Tensor) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


class StreamBatches:
    """Truncated-BPTT batches over one stream: B rows, chunks of k steps, resumable.

    Row r holds the r-th of B equal parts of the stream; chunk c of every row is
    one batch, so each row continues its own part and the carried state stays
    meaningful. Each epoch shifts the cut points so that chunk boundaries vary.
    With several processes, rank i takes its share of the rows of every batch.
    """

    def __init__(self, ids: Tensor, batch: int, bptt: int, rank: int = 0, world: int = 1) -> None:
        if batch % world:
            raise ValueError(
                f"--batch-size {batch} must divide by the number of processes ({world})"
            )
        self.ids, self.batch, self.bptt = ids, batch, bptt
        self.rows = slice(rank * batch // world, (rank + 1) * batch // world)
        self.row_len = len(ids) // batch
        if self.row_len < bptt + 1:
            raise ValueError(
                f"the training text ({len(ids)} characters) is shorter than one chunk per row: "
                f"it needs at least --batch-size x (--bptt + 1) = {batch * (bptt + 1)}; "
                "give more text or lower --batch-size / --bptt"
            )
        self.epoch, self.chunk = 0, 0
        self._layout()

    def _layout(self) -> None:
        offset = (self.epoch * 7919) % max(
            1, self.row_len - self.bptt * ((self.row_len - 1) // self.bptt)
        )
        usable = self.row_len - offset
        self.chunks = (usable - 1) // self.bptt
        rows = self.ids[: self.batch * self.row_len].view(self.batch, self.row_len)[self.rows]
        self.layout = rows[:, offset:]

    @property
    def steps_per_epoch(self) -> int:
        return self.chunks

    def __next__(self) -> tuple[Tensor, Tensor, bool]:
        if self.chunk >= self.chunks:
            self.epoch, self.chunk = self.epoch + 1, 0
            self._layout()
        start = self.chunk * self.bptt
        piece = self.layout[:, start : start + self.bptt + 1]
        reset = self.chunk == 0  # a new pass over the stream starts from a blank state
        self.chunk += 1
        return piece[:, :-1], piece[:, 1:], reset

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "chunk": self.chunk}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.chunk = int(state["epoch"]), int(state["chunk"])
        self._layout()


class RandomWindows:
    """Batches of B windows at random places in the stream, each read from a blank state.

    The alternative to ``StreamBatches`` (``--sampling random``): no state is
    carried, every batch is an independent sample of the text. The generator's
    state is the data position, so resume stays exact; with several processes
    every rank draws the same offsets and takes its share of the rows.
    """

    def __init__(
        self, ids: Tensor, batch: int, bptt: int, rank: int = 0, world: int = 1, seed: int = 0
    ) -> None:
        if batch % world:
            raise ValueError(
                f"--batch-size {batch} must divide by the number of processes ({world})"
            )
        if len(ids) < bptt + 2:
            raise ValueError(
                f"the training text ({len(ids)} characters) is shorter than one chunk (--bptt {bptt})"
            )
        self.ids, self.batch, self.bptt = ids, batch, bptt
        self.rows = slice(rank * batch // world, (rank + 1) * batch // world)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps_per_epoch = max(1, len(ids) // (batch * bptt))

    def __next__(self) -> tuple[Tensor, Tensor, bool]:
        starts = torch.randint(
            0, len(self.ids) - self.bptt - 1, (self.batch,), generator=self.generator
        )[self.rows]
        index = starts[:, None] + torch.arange(self.bptt + 1)[None, :]
        piece = self.ids[index]
        return piece[:, :-1], piece[:, 1:], True

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


@torch.no_grad()
def stream_loss(
    model: SequenceTagger, ids: Tensor, device: torch.device, rows: int = 16, chunk: int = 256
) -> tuple[float, int]:
    """Mean negative log-likelihood (nats per character) of every character after the first.

    The stream is read as ``rows`` parallel rows (the last one padded), the
    state carried along each; a row's first character is predicted from a
    blank state.
    """
    inputs, targets = ids[:-1], ids[1:]
    count = len(inputs)
    rows = max(1, min(rows, count))
    row_len = math.ceil(count / rows)
    pad = rows * row_len - count
    inputs = F.pad(inputs, (0, pad), value=0).view(rows, row_len).to(device)
    targets = F.pad(targets, (0, pad), value=-100).view(rows, row_len).to(device)
    total, state = 0.0, None
    for start in range(0, row_len, chunk):
        logits, state = model(inputs[:, start : start + chunk], state=state)
        total += float(
            F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets[:, start : start + chunk].reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
        )
    return total / max(count, 1), count


MONITOR = Monitor(
    "val_nll",
    "validation NLL (nats per character)",
    train_label="training NLL (nats per character)",
    same_axis=True,
)


class TextProbe:
    """dL/dh_t over windows of the validation tail, the loss on the last character only."""

    monitor = MONITOR  # what selected the run's weights (``rnnkit diagnose`` finds that step)

    def __init__(self, val_ids: Tensor, bptt: int, rows: int = 8) -> None:
        span = max(2, min(bptt + 1, len(val_ids) // rows))
        rows = max(1, min(rows, len(val_ids) // span))
        self.windows = val_ids[: rows * span].view(rows, span)

    def gradient_flow(self, model) -> GradientFlow:
        windows = self.windows.to(next(model.parameters()).device)

        def last_char_loss(m) -> Tensor:
            logits, _ = m(windows[:, :-1])
            return F.cross_entropy(logits[:, -1], windows[:, -1])

        return gradient_flow(model, last_char_loss)


class TextTask:
    """Training on the stream; validation during training on (at most) ``eval_chars`` of the tail."""

    monitor = MONITOR

    def __init__(
        self,
        train_ids: Tensor,
        val_ids: Tensor,
        batch: int,
        bptt: int,
        rank: int,
        world: int,
        eval_chars: int,
        sampling: str = "stream",
        seed: int = 0,
    ) -> None:
        if sampling == "stream":
            self.batches = StreamBatches(train_ids, batch, bptt, rank, world)
        else:
            self.batches = RandomWindows(train_ids, batch, bptt, rank, world, seed)
        self.val_ids = val_ids[:eval_chars]
        self.probe = TextProbe(val_ids, bptt)

    def gradient_flow(self, model) -> GradientFlow:
        return self.probe.gradient_flow(model)

    def loss(self, model, batch, carry):
        x, y, reset = batch
        logits, state = model(x, state=None if reset else carry)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state

    def evaluate(self, model) -> dict:
        device = next(model.parameters()).device
        loss, count = stream_loss(model, self.val_ids, device)
        return {"val_nll": loss, "val_bpc": loss / math.log(2), "val_characters": count}


def build_model(config: dict) -> SequenceTagger:
    vocab = len(config["vocab"])
    rnn = RNNSpec.from_config(config).build(config["embed"])
    return SequenceTagger(rnn, vocab, vocab_size=vocab, dropout=config["dropout"])


def diagnosis(config: dict) -> tuple[Callable[[], SequenceTagger], TextProbe]:
    """What ``rnnkit diagnose`` needs to measure a text run afresh: a model builder and a probe."""
    source = config["data"]
    try:
        corpus = load_corpus(None if source["kind"] == "stdlib" else source["path"])
    except ValueError as error:
        raise ValueError(f"cannot re-read the run's text to measure it: {error}") from None
    _, val_ids = split(
        Vocab(config["vocab"]).encode(corpus.text, strict=False), config["val_fraction"]
    )
    return (lambda: build_model(config)), TextProbe(val_ids, config["bptt"])


def split(ids: Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    n_val = int(len(ids) * val_fraction)
    if n_val < 2:
        raise ValueError(
            f"--val-fraction {val_fraction} leaves {n_val} characters for validation; give more text"
        )
    return ids[:-n_val], ids[-n_val:]


# -- commands ---------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = task_verbs(subparsers, TASK, "next-character prediction and text generation")

    p = verbs.add_parser(
        "train",
        help="train a character model on a text file, a folder, or Python's source",
        description="Train a character model with truncated BPTT. Model defaults follow the time budget: "
        f"with --minutes {SHORT_BUDGET_MINUTES:g} or less, one LSTM layer of 512 units at lr 6e-3; otherwise two "
        "layers of 512 at lr 1e-2 (measured on tiny Shakespeare, see the README). "
        "Without --steps, --epochs or --minutes it trains for 5 minutes.",
    )
    p.add_argument(
        "--data",
        type=options.path,
        help="UTF-8 text file or folder (default: the Python standard library's source)",
    )
    p.add_argument(
        "--val-fraction",
        type=options.fraction(),
        default=0.1,
        help="held-out tail for validation (default 0.1)",
    )
    p.add_argument(
        "--bptt",
        type=options.count(1),
        default=128,
        help="truncated BPTT chunk length (default 128)",
    )
    p.add_argument(
        "--embed", type=options.units, default=64, help="character embedding width (default 64)"
    )
    p.add_argument(
        "--sampling",
        choices=("stream", "random"),
        default="stream",
        help="stream: B rows read in order, state carried (truncated BPTT); random: windows at random "
        "places, blank state (default stream)",
    )
    p.add_argument(
        "--eval-chars",
        type=options.count(2),
        default=200_000,
        help="validate during training on at most this many characters of the tail (default 200000; "
        "`text eval` always reads all of it)",
    )
    p.add_argument(
        "--min-count",
        type=options.count(1),
        help=f"rarer characters share one symbol (default 1; {STDLIB_MIN_COUNT} for Python's source)",
    )
    add_train_options(p, **DEFAULTS)
    p.set_defaults(run=train)

    p = verbs.add_parser("sample", help="generate text from a trained run, streaming it")
    p.add_argument("run_dir", metavar="RUN", type=options.path)
    p.add_argument("--prime", default="\n", help="text to start from (default a newline)")
    p.add_argument("--length", type=options.count(1), default=500,
                   help="characters to generate, streamed (default 500)")  # fmt: skip
    p.add_argument("--temperature", type=options.real(0.0), default=0.8,
                   help="0: always the likeliest character; 1: the model's own probabilities "
                   "(default 0.8)")  # fmt: skip
    p.add_argument("--top-k", type=options.count(1), help="sample among the K likeliest only")
    options.add_seed(p)
    options.add_device(p)
    p.set_defaults(run=sample)

    p = verbs.add_parser(
        "eval", help="loss and bits per character of a run on its validation tail or --data"
    )
    p.add_argument("run_dir", metavar="RUN", type=options.path)
    p.add_argument(
        "--data",
        type=options.path,
        help="text file or folder to evaluate on (default: the run's validation tail)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    options.add_device(p)
    p.set_defaults(run=evaluate)


class TextRecipe(TaskRecipe):
    """Next-character prediction: what the text task plugs into the shared train sequence."""

    name = TASK
    forward_only = "cannot predict the next character: it would read the future"
    metric_name = "validation NLL"

    def resumed_options(self, saved: dict) -> dict:
        return {"data": saved["data"].get("path")}

    def check_options(self, args: argparse.Namespace) -> None:
        if not budget_given(args):
            args.minutes = 5.0
        apply_budget_defaults(args)

    def prepare(self, args: argparse.Namespace, spec: RNNSpec) -> Prepared:
        corpus = load_corpus(args.data)
        min_count = args.min_count or (STDLIB_MIN_COUNT if args.data is None else 1)
        train_text_len = len(corpus.text) - int(len(corpus.text) * args.val_fraction)
        vocab = Vocab.build(corpus.text[:train_text_len], min_count, corpus.text[train_text_len:])
        ids = vocab.encode(corpus.text, strict=False)
        train_ids, val_ids = split(ids, args.val_fraction)
        config = {
            "task": TASK,
            "data": corpus.source,
            "vocab": vocab.chars,
            "min_count": min_count,
            "val_fraction": args.val_fraction,
            **spec.to_config(),
            "embed": args.embed,
            "bptt": args.bptt,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "data_fingerprint": fingerprint(corpus.text),
        }
        comparable = ("data", "vocab", *RNNSpec.config_keys(), "embed", "bptt", "batch_size",
                      "seed")  # fmt: skip
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        task = TextTask(train_ids, val_ids, args.batch_size, args.bptt, rank, world,
                        args.eval_chars, args.sampling, args.seed)  # fmt: skip

        def headline(model: SequenceTagger) -> str:
            params = sum(p.numel() for p in model.parameters())
            return (
                f"text: {len(train_ids):,} training and {len(val_ids):,} validation characters, "
                f"{len(vocab)} symbols; {spec.cell} {spec.layers}x{spec.hidden}, "
                f"{params:,} parameters"
            )

        return Prepared(config, task, task.batches.steps_per_epoch, headline, comparable)

    def build_model(self, config: dict) -> SequenceTagger:
        return build_model(config)

    def best_line(self, run: RunDir, result: dict) -> str:
        return (
            f"best validation NLL {result['best']:.4f} nats/char "
            f"({result['best'] / math.log(2):.3f} bits/char); stopped by {result['stopped_by']}; "
            f"weights in {run.file('model.safetensors')}"
        )

    diagnosis = staticmethod(diagnosis)


RECIPE = register_task(TextRecipe())


def train(args: argparse.Namespace) -> int:
    return train_task(args, RECIPE)


def load_run(path: str, device: str | None) -> tuple[dict, SequenceTagger, Vocab, torch.device]:
    run, config = read_run(path, TASK)
    model = RECIPE.trained_model(run, config, device)
    dev = next(model.parameters()).device
    return config, model.eval(), Vocab(config["vocab"]), dev


def sample(args: argparse.Namespace) -> int:
    if not args.prime:
        raise ValueError("--prime must hold at least one character")
    config, model, vocab, device = load_run(args.run_dir, args.device)
    unknown = vocab.unknown_chars(args.prime)
    if unknown and "prime" not in args.given:  # the default newline, never seen: any character
        args.prime = " " if " " in vocab.index else vocab.chars[0]
        unknown = vocab.unknown_chars(args.prime)
    if unknown and UNKNOWN not in vocab.index:
        raise ValueError(
            f"--prime has characters the model never saw: {', '.join(repr(c) for c in unknown)}"
        )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    prime = vocab.encode(args.prime, strict=False).to(device)[None, :]  # rare ones: UNKNOWN
    out = sys.stdout
    out.write(args.prime)
    with torch.no_grad():
        logits, state = model(prime)
        logits = logits[:, -1]
        if not torch.isfinite(logits).all():
            raise ValueError(
                "the model's outputs are not finite: its training diverged; "
                "train again with a lower --lr"
            )
        for _ in range(args.length):
            token = decoding.choose(logits, args.temperature, args.top_k, generator)
            out.write(vocab.chars[int(token)])
            out.flush()
            logits, state = model.step(token, state)
    out.write("\n")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    config, model, vocab, device = load_run(args.run_dir, args.device)
    if args.data:
        text = load_corpus(args.data).text
        unseen = vocab.unknown_chars(text)
        ids = vocab.encode(text, strict=UNKNOWN not in vocab.index)
        if unseen:
            shown = ", ".join(repr(c) for c in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            warn(f"{len(unseen)} characters the model never saw ({shown}) are scored as its "
                 "rare-character symbol")  # fmt: skip
        what = args.data
    else:
        source = config["data"]
        corpus = load_corpus(None if source["kind"] == "stdlib" else source["path"])
        _, ids = split(vocab.encode(corpus.text, strict=False), config["val_fraction"])
        what = "the run's validation tail"
    if len(ids) < 2:
        raise ValueError("the evaluation text needs at least two characters")
    loss, count = stream_loss(model, ids, device)
    if not math.isfinite(loss):
        raise ValueError("the model's loss is not finite: its training diverged; train again")
    result = {"loss": loss, "bpc": loss / math.log(2), "characters": count}
    return report_result(
        args,
        result,
        lambda r: print(
            f"{what}: {loss:.4f} nats/char, {r['bpc']:.4f} bits/char over {count:,} characters"
        ),
    )
