"""Fuzzing every task's verbs: a few hundred generated bad inputs each.

Every case ends with exit status 0, or with exactly one line on stderr that
starts with ``rnnkit: error:`` (after any ``rnnkit: warning:`` lines) and
status 2; never a traceback; and never a
run directory that blocks the next run (what is left is either nothing or a
complete run: config.json and checkpoint.pt, no lock). The seed corpus is
``tests/fuzz/``: one small valid input per task, which the cases mutate with
a fixed random seed (truncation, binary junk, other encodings, NaN and
infinities, huge and negative numbers, empty fields, lines out of shape, and
absurd values for every option). Each bug the fuzzing found is a case of its
own in ``tests/fuzz/regressions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import build_parser, main
from rnnkit.tasks import options

CORPUS = Path(__file__).parent / "fuzz"
SEED = 20261203
VALUES = ["nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e400", "-0",
          "99999999999999999999", "-99999999999999999999", "", " ", "abc", "1,5", "0x10",
          "\u0661\u0662", "\u00bd", "1e-320", "--", "\x00"]  # fmt: skip
OPTION_VALUES = ["0", "-1", "nan", "inf", "-inf", "1e308", "99999999999999999999", "", "abc",
                 "1e-300", "0.5", "-0", "3"]  # fmt: skip


@dataclass
class Case:
    argv: list[str]
    note: str
    files: dict[str, bytes] = field(default_factory=dict)  # written into the case's folder first
    out: str | None = None  # the run directory the case may leave behind


# -- mutations of a seed file ----------------------------------------------------------
def mutations(
    data: bytes, rng: random.Random, sep: str | None, count: int
) -> list[tuple[str, bytes]]:
    """``count`` mutated versions of a line-oriented file (``sep`` splits its fields)."""
    text = data.decode("utf-8")
    lines = text.splitlines()
    fixed: list[tuple[str, bytes]] = [
        ("empty file", b""),
        ("only blank lines", b"\n\n  \n"),
        ("header only", (lines[0] + "\n").encode()),
        ("no header", "\n".join(lines[1:]).encode()),
        ("utf-16", text.encode("utf-16")),
        ("utf-16-le, no BOM", text.encode("utf-16-le")),
        ("latin-1", text.encode("latin-1", "replace")),
        ("a BOM and CRLF", ("\ufeff" + "\r\n".join(lines)).encode()),
        ("random bytes", bytes(rng.randrange(256) for _ in range(600))),
        ("null bytes inside", data[: len(data) // 2] + b"\x00" * 50 + data[len(data) // 2 :]),
        ("a 200,000-character line", (text + "x" * 200_000 + "\n").encode()),
        ("the lines reversed", "\n".join([lines[0], *reversed(lines[1:])]).encode()),
        ("every line twice", "\n".join(line for line in lines for _ in range(2)).encode()),
        ("one line", lines[0].encode()),
    ]
    if sep:
        width = len(lines[0].split(sep))
        fixed += [
            ("a row short of a field", _edit_row(lines, rng, lambda f: f[:-1], sep)),
            ("a row with an extra field", _edit_row(lines, rng, lambda f: [*f, "7"], sep)),
            ("other separator", text.replace(sep, "|").encode()),
            ("every field empty", "\n".join([lines[0]] + [sep * (width - 1)] * 5).encode()),
            (
                "every value the same",
                "\n".join(
                    [lines[0]]
                    + [sep.join([lines[1].split(sep)[0]] + ["1"] * (width - 1))] * len(lines)
                ).encode(),
            ),  # fmt: skip
        ]
    out = list(fixed)
    while len(out) < count:
        kind = rng.choice(["truncate", "junk", "value", "value", "value", "delete", "swap"])
        if kind == "truncate":
            cut = rng.randrange(len(data))
            out.append((f"truncated at byte {cut}", data[:cut]))
        elif kind == "junk":
            at = rng.randrange(len(data))
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            out.append((f"junk bytes at {at}", data[:at] + junk + data[at:]))
        elif kind == "value" and sep:
            value = rng.choice(VALUES)
            out.append((f"a field set to {value!r}", _edit_row(lines, rng, lambda f, v=value: _set(f, rng, v), sep)))  # fmt: skip
        elif kind == "delete":
            i = rng.randrange(len(lines))
            out.append((f"line {i + 1} deleted", "\n".join(lines[:i] + lines[i + 1 :]).encode()))
        else:
            i, j = rng.randrange(1, len(lines)), rng.randrange(1, len(lines))
            swapped = list(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            out.append((f"lines {i + 1} and {j + 1} swapped", "\n".join(swapped).encode()))
    return out[:count]


def _set(fields: list[str], rng: random.Random, value: str) -> list[str]:
    fields = list(fields)
    fields[rng.randrange(len(fields))] = value
    return fields


def _edit_row(lines: list[str], rng: random.Random, edit, sep: str) -> bytes:
    i = rng.randrange(1, len(lines))
    edited = list(lines)
    edited[i] = sep.join(edit(lines[i].split(sep)))
    return ("\n".join(edited) + "\n").encode()


# -- absurd options ----------------------------------------------------------------------
def verb_parser(*words: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def option_cases(words: tuple[str, ...], base: list[str], rng: random.Random, count: int,
                 skip=(), out: str | None = None) -> list[Case]:  # fmt: skip
    """``base`` with one option set to an absurd value (or a choice to a wrong one)."""
    actions = [
        a
        for a in verb_parser(*words)._actions
        if a.option_strings and a.nargs != 0 and a.dest not in skip and a.dest != "help"
    ]
    cases = []
    for i in range(count):
        action = actions[i % len(actions)]
        flag = action.option_strings[-1]
        if action.choices:
            value = rng.choice(["", "nonsense", str(list(action.choices)[0]).upper()])
        elif isinstance(action.type, options.Number) or action.dest in ("seed", "device"):
            value = rng.choice(OPTION_VALUES)
        else:
            value = rng.choice(["", "x" * 300, "/nonexistent/file", "\u00e9\u00e8", "-"])
        cases.append(Case([*words, *base, f"{flag}={value}"], f"{flag} {value!r}", out=out))
    return cases


# -- running and judging a case ----------------------------------------------------------
def judge(case: Case, folder: Path, capsys) -> str | None:
    """What is wrong with the case's outcome, or None."""
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    argv = [a.replace("{dir}", str(folder)) for a in case.argv]
    threads = torch.get_num_threads()
    here = Path.cwd()
    # a relative --out ("-", "\u00e9\u00e8") lands in the case's folder, not the repository
    os.chdir(folder)
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except BaseException as error:  # a traceback, for a user
        return f"{type(error).__name__}: {error}"
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    if code not in (0, 2):
        return f"exit status {code}: {err.strip()[:300]}"
    errors = [line for line in lines if not line.startswith("rnnkit: warning: ")]
    if code == 2 and (len(errors) != 1 or not lines[-1].startswith("rnnkit: error: ")):
        return f"exit 2 without one error line: {err.strip()[:300]!r}"
    if case.out:
        run = Path(case.out.replace("{dir}", str(folder)))
        if run.exists():  # a complete run: resumable, or (lab --steps 0) finished without training
            held = {p.name for p in run.iterdir()}
            complete = "config.json" in held and bool({"checkpoint.pt", "model.safetensors"} & held)
            if ".lock" in held or not complete:
                return f"left {run} holding {sorted(held)} (exit {code})"
    return None


def fuzz(cases: list[Case], tmp_path: Path, capsys) -> None:
    failures, times = [], []
    for i, case in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        began = time.perf_counter()
        problem = judge(case, folder, capsys)
        times.append((time.perf_counter() - began, case.note))
        if problem:
            failures.append(f"[{case.note}] {' '.join(case.argv)[:200]}\n    {problem}")
        shutil.rmtree(folder, ignore_errors=True)
    if os.environ.get("RNNKIT_FUZZ_TIMES"):  # where a slow fuzz test spends its time
        print(sorted(times, reverse=True)[:12], file=sys.__stderr__)
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(
        failures[:15]
    )


def file_cases(seed: str, sep: str | None, argv, rng: random.Random, count: int, out=None) -> list[Case]:  # fmt: skip
    """The seed file's mutations, each given to ``argv(name)``."""
    name = Path(seed).name
    return [
        Case(argv(f"{{dir}}/{name}"), note, {name: data}, out)
        for note, data in mutations((CORPUS / seed).read_bytes(), rng, sep, count)
    ]


def regressions(task: str) -> list[Case]:
    """The bugs fuzzing found, each kept as a case."""
    kept = json.loads((CORPUS / "regressions.json").read_text())
    return [
        Case(
            c["argv"],
            c["bug"],
            {k: v.encode() for k, v in c.get("files", {}).items()},
            c.get("out"),
        )
        for c in kept
        if c["argv"][0] == task
    ]


# -- the tasks ---------------------------------------------------------------------------
QUICK = ["--steps", "2", "--eval-every", "2", "--hidden", "4", "--minutes", "0.2"]
RUN = "{dir}/run"


def test_fuzz_text(tmp_path, capsys):
    rng = random.Random(SEED)
    base = ["--embed", "4", "--batch-size", "2", "--bptt", "8", *QUICK, "--out", RUN]
    cases = file_cases("text.txt", None,
                       lambda path: ["text", "train", "--data", path, *base], rng, 70, RUN)  # fmt: skip
    data = {"text.txt": (CORPUS / "text.txt").read_bytes()}
    trained = tmp_path / "trained"
    assert main(["text", "train", "--data", str(CORPUS / "text.txt"), *base[:-2], "--out",
                 str(trained)]) == 0  # fmt: skip
    capsys.readouterr()
    for case in option_cases(("text", "train"), ["--data", "{dir}/text.txt", *base], rng, 60,
                             out=RUN):  # fmt: skip
        case.files = data
        cases.append(case)
    cases += option_cases(("text", "sample"), [str(trained), "--length", "5"], rng, 30)
    cases += option_cases(("text", "eval"), [str(trained)], rng, 12)
    cases += file_cases("text.txt", None,
                        lambda path: ["text", "eval", str(trained), "--data", path], rng, 25)  # fmt: skip
    prime = ["", "\x00", "\ufffd", "Z" * 5000, "\U0001f600", "é", "\n"]
    cases += [Case(["text", "sample", str(trained), "--prime", p, "--length", "3"], f"prime {p[:5]!r}")
              for p in prime]  # fmt: skip
    cases += regressions("text")
    fuzz(cases, tmp_path, capsys)


def test_fuzz_forecast(tmp_path, capsys):
    rng = random.Random(SEED + 1)
    base = ["--target", "load", "--features", "temp", "--time-col", "day", "--window", "7",
            "--horizon", "2", *QUICK, "--out", RUN]  # fmt: skip
    cases = file_cases("forecast.csv", ",",
                       lambda path: ["forecast", "train", "--csv", path, *base], rng, 90, RUN)  # fmt: skip
    data = {"forecast.csv": (CORPUS / "forecast.csv").read_bytes()}
    for case in option_cases(("forecast", "train"), ["--csv", "{dir}/forecast.csv", *base], rng,
                             70, skip=("data",), out=RUN):  # fmt: skip
        case.files = data
        cases.append(case)
    trained = tmp_path / "trained"
    assert main(["forecast", "train", "--csv", str(CORPUS / "forecast.csv"), *base[:-2], "--out",
                 str(trained)]) == 0  # fmt: skip
    capsys.readouterr()
    cases += file_cases("forecast.csv", ",", lambda path: ["forecast", "predict", str(trained),
                        "--csv", path, "--out", "{dir}/f.csv"], rng, 40)  # fmt: skip
    cases += option_cases(("forecast", "predict"), [str(trained)], rng, 10, skip=("csv",))
    cases += option_cases(("forecast", "eval"), [str(trained)], rng, 6)
    cases += regressions("forecast")
    fuzz(cases, tmp_path, capsys)


def test_fuzz_classify(tmp_path, capsys):
    rng = random.Random(SEED + 2)
    base = ["--batch-size", "4", "--ensemble", "1", *QUICK, "--out", RUN]
    test_file = str(CORPUS / "classify_test.csv")
    cases = file_cases("classify_train.csv", ",", lambda path: [
        "classify", "train", "--train", path, "--test", test_file, *base], rng, 70, RUN)  # fmt: skip
    cases += file_cases("classify_test.csv", ",", lambda path: [
        "classify", "train", "--train", str(CORPUS / "classify_train.csv"), "--test", path,
        *base], rng, 40, RUN)  # fmt: skip
    files = ["--train", str(CORPUS / "classify_train.csv"), "--test", test_file]
    cases += option_cases(("classify", "train"), [*files, *base], rng, 60, skip=("dataset",),
                          out=RUN)  # fmt: skip
    cases += [Case(["classify", "train", "--dataset", name, *base], f"set {name!r}", out=RUN)
              for name in ("", "NoSuchSet", "../../etc/passwd", "GunPoint\x00")]  # fmt: skip
    trained = tmp_path / "trained"
    assert main(["classify", "train", *files, *base[:-2], "--out", str(trained)]) == 0
    capsys.readouterr()
    cases += file_cases("classify_test.csv", ",", lambda path: [
        "classify", "predict", str(trained), "--input", path, "--out", "{dir}/p.csv"], rng, 30)  # fmt: skip
    cases += option_cases(("classify", "eval"), [str(trained)], rng, 5)
    cases += regressions("classify")
    fuzz(cases, tmp_path, capsys)


def test_fuzz_transcribe(tmp_path, capsys):
    rng = random.Random(SEED + 3)
    base = [
        "--embed",
        "4",
        "--batch-size",
        "4",
        "--beam",
        "1",
        "--no-attention",
        *QUICK,
        "--out",
        RUN,
    ]
    cases = file_cases("transcribe.tsv", "\t", lambda path: [
        "transcribe", "train", "--pairs", path, *base], rng, 90, RUN)  # fmt: skip
    data = {"transcribe.tsv": (CORPUS / "transcribe.tsv").read_bytes()}
    for case in option_cases(("transcribe", "train"), ["--pairs", "{dir}/transcribe.tsv", *base],
                             rng, 70, out=RUN):  # fmt: skip
        case.files = data
        cases.append(case)
    trained = tmp_path / "trained"
    assert main(["transcribe", "train", "--pairs", str(CORPUS / "transcribe.tsv"), *base[:-2],
                 "--out", str(trained)]) == 0  # fmt: skip
    capsys.readouterr()
    words = [
        "",
        " ",
        "\x00",
        "CAT",
        "c a t",
        "x" * 100_000,
        "\u00e9t\u00e9",
        "\U0001f600",
        "\t",
        "-",
    ]
    cases += [Case(["transcribe", "run", str(trained), w], f"word {w[:6]!r}") for w in words]
    cases += option_cases(("transcribe", "run"), [str(trained), "cat"], rng, 12)
    cases += option_cases(("transcribe", "eval"), [str(trained)], rng, 6)
    cases += regressions("transcribe")
    fuzz(cases, tmp_path, capsys)


def music_mat(pieces: dict, tmp_path: Path) -> bytes:
    """A JSB-format file's bytes, written as test_music_rolls writes one."""
    from test_music_rolls import write_mat

    return write_mat(tmp_path / "piece.mat", pieces).read_bytes()


def test_fuzz_music(tmp_path, capsys):
    pytest.importorskip("scipy")
    rng = random.Random(SEED + 4)
    base = ["--batch-size", "2", "--window", "8", "--joint-hidden", "8", *QUICK, "--out", RUN]
    seed = (CORPUS / "music.mat").read_bytes()
    cases = []
    for _ in range(40):  # a .mat is binary: byte-level mutations only
        kind = rng.choice(["truncate", "junk", "flip"])
        if kind == "truncate":
            at = rng.randrange(len(seed))
            data, note = seed[:at], f"truncated at byte {at}"
        elif kind == "junk":
            at = rng.randrange(len(seed))
            data, note = (
                seed[:at] + bytes(rng.randrange(256) for _ in range(30)) + seed[at:],
                f"junk at {at}",
            )
        else:
            flipped = bytearray(seed)
            for _ in range(20):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            data, note = bytes(flipped), "20 bytes changed"
        cases.append(
            Case(["music", "train", "--data", "{dir}/m.mat", *base], note, {"m.mat": data}, RUN)
        )
    good = np.zeros((6, 88), np.uint8)
    good[:, 40] = 1
    shapes = {
        "a piece 87 keys wide": np.zeros((6, 87), np.uint8),
        "a piece of one step": good[:1],
        "a piece of no steps": good[:0],
        "NaN in a piece": np.full((6, 88), np.nan),
        "values of 2": good * 2,
        "negative values": -good.astype(np.int8),
        "fractions": good * 0.5,
        "a 3-D piece": np.zeros((2, 6, 88)),
        "a string": np.array(["abc"]),
        "a huge piece": np.zeros((300_000, 88), np.uint8),
    }
    for note, bad in shapes.items():
        mat = music_mat(
            {"traindata": [good, bad], "validdata": [good], "testdata": [good]}, tmp_path
        )
        cases.append(
            Case(["music", "train", "--data", "{dir}/m.mat", *base], note, {"m.mat": mat}, RUN)
        )
    cases.append(
        Case(
            ["music", "train", "--data", "{dir}/m.mat", *base],
            "no testdata",
            {"m.mat": music_mat({"traindata": [good], "validdata": [good]}, tmp_path)},
            RUN,
        )
    )
    data = {"m.mat": seed}
    for case in option_cases(("music", "train"), ["--data", "{dir}/m.mat", *base], rng, 90,
                             skip=("genres", "cache"), out=RUN):  # fmt: skip
        case.files = data
        cases.append(case)
    folder = {"midi/a.mid": bytes(rng.randrange(256) for _ in range(100)), "midi/b.mid": b"MThd"}
    cases.append(Case(["music", "train", "--data", "{dir}/midi", "--no-cache", *base],
                      "a folder of broken MIDI files", folder, RUN))  # fmt: skip
    cases.append(Case(["music", "train", "--data", "{dir}/midi", "--skip-bad", "--no-cache", *base],
                      "--skip-bad on a folder of broken MIDI files", folder, RUN))  # fmt: skip
    trained = tmp_path / "trained"
    assert main(["music", "train", "--data", str(CORPUS / "music.mat"), *base[:-2], "--out",
                 str(trained)]) == 0  # fmt: skip
    capsys.readouterr()
    cases += option_cases(("music", "generate"), [str(trained), "--steps", "4",
                          "--out", "{dir}/g.mid"], rng, 50)  # fmt: skip
    cases += option_cases(("music", "eval"), [str(trained)], rng, 5)
    cases += regressions("music")
    fuzz(cases, tmp_path, capsys)


def test_fuzz_speech(tmp_path, capsys):
    pytest.importorskip("soundfile")
    from speech_audio import write_manifest

    rng = random.Random(SEED + 6)
    corpus = write_manifest(tmp_path / "corpus", ["ab", "ba"], takes=2)
    audio = {f"d/{p.name}": p.read_bytes() for p in sorted(corpus.glob("*.wav"))}
    manifest = (corpus / "manifest.tsv").read_bytes()
    base = ["--hidden", "4", "--layers", "1", "--batch-size", "4", "--beam", "2",
            "--test-speakers", "cy", *QUICK[:4], "--minutes", "0.2", "--out", RUN]  # fmt: skip
    train = ["speech", "train", "--data", "{dir}/d", *base]
    cases = [Case(train, f"manifest: {note}", {**audio, "d/manifest.tsv": data}, RUN)
             for note, data in mutations(manifest, rng, "\t", 35)]  # fmt: skip
    names = sorted(audio)
    for i in range(20):  # a recording damaged: truncated, junk inside, or bytes changed
        name, wave = names[i % len(names)], audio[names[i % len(names)]]
        at = rng.randrange(len(wave))
        damaged = [wave[:at], wave[:at] + bytes(rng.randrange(256) for _ in range(40)) + wave[at:],
                   bytes(rng.randrange(256) for _ in range(len(wave))), b""][i % 4]  # fmt: skip
        files = {**audio, name: damaged, "d/manifest.tsv": manifest}
        cases.append(Case(train, f"{name} damaged ({i % 4})", files, RUN))
        cases.append(Case([*train, "--skip-bad"], f"--skip-bad, {name} damaged", files, RUN))
    data = {**audio, "d/manifest.tsv": manifest}
    for case in option_cases(("speech", "train"), ["--data", "{dir}/d", *base], rng, 50, out=RUN):
        case.files = data
        cases.append(case)
    trained = tmp_path / "trained"
    assert main(["speech", "train", "--data", str(corpus), *base[:-2], "--out", str(trained)]) == 0
    capsys.readouterr()
    wave = str(corpus / "ann_ab_0.wav")
    cases += [Case(["speech", "transcribe", str(trained), "{dir}/x.wav"], f"a {note} file",
                   {"x.wav": data}) for note, data in [("empty", b""), ("text", b"hello"),
                   ("truncated", audio["d/ann_ab_0.wav"][:30])]]  # fmt: skip
    cases += option_cases(("speech", "transcribe"), [str(trained), wave], rng, 12)
    cases += option_cases(("speech", "eval"), [str(trained)], rng, 6)
    cases += regressions("speech")
    fuzz(cases, tmp_path, capsys)


def test_fuzz_lab_demo_and_diagnose(tmp_path, capsys):
    rng = random.Random(SEED + 5)
    cases = option_cases(("lab", "gradients"), ["--steps", "2", "--length", "5", "--hidden", "4",
                         "--val-size", "8", "--test-size", "8", "--out", RUN], rng, 40,
                         skip=("threads",), out=RUN)  # fmt: skip
    cases += option_cases(("lab", "power"), ["--length", "8", "--out", "{dir}/p"], rng, 12)
    cases += option_cases(("lab", "explode"), ["--steps", "3", "--length", "5", "--hidden", "4",
                          "--out", "{dir}/e"], rng, 20)  # fmt: skip
    cases += option_cases(("demo",), ["--steps", "3", "--length", "5", "--hidden", "4",
                          "--compare", ""], rng, 20)  # fmt: skip
    cases += [Case(["diagnose", path], f"diagnose {path}")
              for path in ("{dir}", "{dir}/none", str(CORPUS / "text.txt"))]  # fmt: skip
    cases += regressions("lab") + regressions("demo") + regressions("diagnose")
    fuzz(cases, tmp_path, capsys)
