"""Speech recognition: features, layouts, composition, the CTC model and decoders, and
`rnnkit speech` end to end on synthetic audio (a tone per letter; tests/speech_audio.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from speech_audio import RATE, SPEAKERS, write_fsdd, write_manifest

from rnnkit.spec import RNNSpec
from rnnkit.tasks.speech.compose import compose
from rnnkit.tasks.speech.corpus import Clip, read_clips
from rnnkit.tasks.speech.ctc import BeamSearch, best_path, within_lexicon
from rnnkit.tasks.speech.features import FeatureConfig, LogMel, mel_filterbank, stack_frames
from rnnkit.tasks.speech.model import CTCRecogniser, Labels

pytest.importorskip("soundfile")
WORDS = ["ab", "ba", "abc", "cab", "bad", "dab"]
SMALL = ["--hidden", "24", "--layers", "1", "--eval-every", "60", "--batch-size", "16"]
FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_manifest(tmp_path_factory.mktemp("speech") / "manifest", WORDS)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from rnnkit.cli import main

    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["speech", "train", "--data", str(corpus), "--test-speakers", "cy", "--steps", "200",
                 *SMALL, "--out", str(out)]) == 0  # fmt: skip
    return out


# -- features ------------------------------------------------------------------------------
def test_mel_filters_are_triangles_that_cover_the_band():
    filters = mel_filterbank(20, 256, 8000)
    assert filters.shape == (20, 129) and (filters >= 0).all()
    peaks = filters.argmax(1)
    assert (peaks[1:] > peaks[:-1]).all()  # in order of pitch
    assert (filters.max(1).values > 0.5).all()
    inner = filters.sum(0)[peaks[0] : peaks[-1]]
    assert (inner > 0.5).all() and (inner <= 1.0 + 1e-5).all()  # neighbours overlap to one


def test_log_mel_frames_and_chunked_reading_give_the_same_frames():
    cfg = FeatureConfig(8000, 25.0, 10.0, 16)
    logmel = LogMel(cfg)
    wave = torch.randn(4003)
    whole = logmel(wave)
    assert whole.shape == (cfg.frames(4003), 16) == (1 + (4003 - 200) // 80, 16)
    parts, start = [], 0
    while cfg.frames(len(wave) - start):  # what --stream does: the frames a chunk completes
        count = cfg.frames(min(len(wave), start + 1000) - start) or cfg.frames(len(wave) - start)
        parts.append(logmel(wave[start : start + (count - 1) * cfg.hop + cfg.window]))
        start += count * cfg.hop
    torch.testing.assert_close(torch.cat(parts), whole)
    assert stack_frames(whole, 3).shape == (whole.shape[0] // 3, 48)


# -- layouts, composition ------------------------------------------------------------------
def test_three_layouts_are_read(tmp_path):
    import soundfile

    layout, clips = read_clips(write_manifest(tmp_path / "m", ["ab"], takes=1))
    assert layout == "manifest" and {c.speaker for c in clips} == set(SPEAKERS)
    layout, clips = read_clips(write_fsdd(tmp_path / "f", takes=2))
    assert layout == "fsdd" and {c.text for c in clips} == {"zero", "one", "two", "three"}
    assert {c.take for c in clips} == {0, 1}
    books = tmp_path / "libri" / "19" / "198"
    books.mkdir(parents=True)
    for key in ("19-198-0000", "19-198-0001"):
        soundfile.write(books / f"{key}.flac", np.zeros(800, dtype=np.float32), RATE)
    (books / "19-198.trans.txt").write_text("19-198-0000 HELLO  WORLD\n19-198-0001 AGAIN\n")
    layout, clips = read_clips(tmp_path / "libri")
    assert layout == "librispeech"
    assert [(c.text, c.speaker) for c in clips] == [("hello world", "19"), ("again", "19")]


def test_composed_test_utterances_use_each_clip_once_and_keep_speakers_apart():
    clips = [
        Clip(f"{s}{i}", w, s) for s in ("x", "y") for i, w in enumerate(["one", "two", "six"] * 3)
    ]
    waves = [np.full(100 + i, 0.1, dtype=np.float32) for i in range(len(clips))]
    utterances = compose(clips, waves, 3, RATE, seed=5)
    used = [p for u in utterances for p in u.sources]
    assert sorted(used) == sorted(c.path for c in clips)  # every clip exactly once
    for u in utterances:
        assert 1 <= len(u.sources) <= 3 and len(u.text.split()) == len(u.sources)
        assert {p[0] for p in u.sources} == {u.speaker}
    again = compose(clips, waves, 3, RATE, seed=5)
    assert [u.text for u in again] == [u.text for u in utterances]
    assert np.array_equal(again[0].wave, utterances[0].wave)


# -- the model and the decoders ------------------------------------------------------------
@pytest.mark.parametrize("frontend", ["stack", "conv"])
def test_padding_never_changes_a_result(frontend):
    torch.manual_seed(0)
    model = CTCRecogniser(
        RNNSpec("gru", hidden=8, layers=2, bidirectional=True), 5, 6, frontend, 2
    ).eval()
    a, b = torch.randn(1, 17, 5), torch.randn(1, 30, 5)
    padded = torch.zeros(2, 30, 5)
    padded[0, :17], padded[1] = a[0], b[0]
    batch, steps, _ = model(padded, torch.tensor([17, 30]))
    alone, alone_steps, _ = model(a, torch.tensor([17]))
    assert int(steps[0]) == int(alone_steps[0]) == alone.shape[1]
    torch.testing.assert_close(batch[0, : int(steps[0])], alone[0])
    torch.testing.assert_close(batch[1], model(b, torch.tensor([30]))[0][0])


def test_best_path_merges_repeats_and_drops_blanks_and_the_beam_agrees_on_a_clear_case():
    labels = Labels.of(["ab ba"], "chars")  # blank, ' ', a, b
    path = [2, 2, 0, 3, 3, 1, 3, 0, 2, 2]  # a a _ b b ' ' b _ a a
    log_probs = torch.log_softmax(
        torch.nn.functional.one_hot(torch.tensor(path), 4).float() * 8, -1
    )
    assert labels.decode(best_path(log_probs, len(path))) == "ab ba"
    hyps = BeamSearch(labels).nbest(log_probs, len(path), 8, 3)
    assert hyps[0][0] == "ab ba" and hyps[0][1] >= max(h[1] for h in hyps)
    assert within_lexicon([("ab bx", -1.0), ("ab ab", -2.0)], {"ab", "ba"}) == "ab ab"
    assert within_lexicon([("abx", -1.0)], {"ab", "ba"}) == "ab"
    words = Labels.of(["one two", "two"], "words")
    assert words.decode([2, 1]) == "two one" and len(words) == 3


# -- the command line ----------------------------------------------------------------------
def test_train_eval_and_transcribe(trained, corpus, capsys):
    from conftest import run_cli

    result = json.loads((trained / "test.json").read_text())
    assert {"wer", "cer", "utterances", "beam", "by_speaker", "baselines"} <= set(result)
    assert list(result["by_speaker"]) == ["cy"] and result["utterances"] == 36
    assert {"most_frequent", "dtw_1nn"} <= set(result["baselines"])  # isolated words
    # it learned: well below the most frequent word (0.83), with a wide margin
    assert result["beam"]["cer"] < 0.25 and result["beam"]["wer"] < 0.4
    assert (trained / "posteriors.png").read_bytes()[:4] == b"\x89PNG"
    code, out, err = run_cli(
        capsys, "speech", "eval", trained, "--json", "--beam", "4", "--lexicon"
    )
    assert code == 0, err
    again = json.loads(out.strip().splitlines()[-1])
    assert again["beam"]["k"] == 4 and again["beam"]["lexicon"] is True
    assert again["wer"] == result["wer"]  # the same test set, rebuilt from the config
    code, out, err = run_cli(capsys, "speech", "transcribe", trained, corpus / "cy_cab_0.wav",
                             corpus / "ann_ba_1.wav", "--nbest", "3")  # fmt: skip
    assert code == 0, err
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert len(lines) == 6 and all(len(f) == 3 for f in lines)
    scores = [float(f[1]) for f in lines[:3]]
    assert scores == sorted(scores, reverse=True)


def test_stream_prints_what_the_whole_file_gives(corpus, tmp_path, capsys):
    from conftest import run_cli

    out = tmp_path / "oneway"
    code, _, err = run_cli(capsys, "speech", "train", "--data", corpus, "--test-speakers", "cy",
                           "--steps", "60", "--no-bidirectional", *SMALL, "--out", out)  # fmt: skip
    assert code == 0, err
    clip = corpus / "bob_cab_2.wav"
    code, whole, _ = run_cli(capsys, "speech", "transcribe", out, clip, "--beam", "1")
    code, streamed, err = run_cli(
        capsys, "speech", "transcribe", out, clip, "--stream", "--chunk-ms", "40"
    )
    assert code == 0, err
    assert streamed.strip().splitlines()[-1] == whole.strip().split("\t")[1]
    code, _, err = run_cli(capsys, "speech", "train", "--data", corpus, "--steps", "2", *SMALL,
                           "--out", tmp_path / "x", "--test-speakers", "cy")  # fmt: skip
    code, _, err = run_cli(capsys, "speech", "transcribe", tmp_path / "x", clip, "--stream")
    assert code == 2 and "one-way model" in err


def test_fsdd_layout_official_split_and_connected_digits(tmp_path, capsys):
    from conftest import run_cli

    data = write_fsdd(tmp_path / "fsdd", takes=7)
    code, out, err = run_cli(capsys, "speech", "train", "--data", data, "--steps", "30", *SMALL,
                             "--compose", "3", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["layout"] == "fsdd" and config["data"]["split"]["kind"] == "official"
    assert " " in config["labels"]["symbols"]  # connected: words apart
    result = json.loads((tmp_path / "run" / "test.json").read_text())
    assert "dtw_1nn" not in result["baselines"]  # connected speech: no template baseline
    heard = sum(len(e["said"].split()) for e in result["examples"])
    assert heard > len(result["examples"])  # utterances of several digits


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        ("empty", [], "no manifest.tsv"),
        ("manifest", ["--test-speakers", "zed"], "zed not in the data; its speakers: ann, bob, cy"),
        ("missing", [], "line 2: 'gone.wav' does not exist"),
        ("junk", [], "junk.wav: not an audio file"),
        ("manifest", ["--test-speakers", "ann,bob,cy"], "none is left for training"),
        ("manifest", ["--speed-perturb", "3"], "each factor must be in [0.5, 2]"),
    ],
)
def test_bad_input_is_one_line_and_status_2(setup, argv, message, tmp_path, capsys):
    from conftest import run_cli

    folder = tmp_path / "data"
    if setup == "empty":
        folder.mkdir()
    else:
        write_manifest(folder, ["ab"], takes=1)
    if setup == "missing":
        with open(folder / "manifest.tsv", "a") as f:
            f.write("gone.wav\tab\tann\n")
        text = (folder / "manifest.tsv").read_text().splitlines()
        (folder / "manifest.tsv").write_text("\n".join([text[0], text[-1], *text[1:-1]]) + "\n")
    if setup == "junk":
        (folder / "junk.wav").write_bytes(b"RIFF not really")
        with open(folder / "manifest.tsv", "a") as f:
            f.write("junk.wav\tab\tbob\n")
    code, _, err = run_cli(capsys, "speech", "train", "--data", folder, "--steps", "2", *SMALL,
                           *argv, "--out", tmp_path / "run")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and err.startswith("rnnkit: error:"), err
    assert message in err
    assert not (tmp_path / "run").exists()
    if setup == "junk":  # --skip-bad leaves it out, counted
        code, _, err = run_cli(capsys, "speech", "train", "--data", folder, "--steps", "2", *SMALL,
                               "--skip-bad", "--out", tmp_path / "run")  # fmt: skip
        assert code == 0, err
        assert "1 of 4 files are not audio and were left out" in err


def test_utterances_with_more_labels_than_steps_are_left_out_and_counted(corpus, tmp_path, capsys):
    from conftest import run_cli

    # 9 frames a step: the two-letter words keep 2 steps, the three-letter ones get too few
    code, _, err = run_cli(capsys, "speech", "train", "--data", corpus, "--test-speakers", "cy",
                           "--steps", "2", *SMALL, "--stride", "9", "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert "training utterances have more labels than output steps" in err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    result = json.loads((tmp_path / "run" / "test.json").read_text())
    assert result["utterances"] == 36 and config["stride"] == 9  # the test set is never thinned
    code, _, err = run_cli(capsys, "speech", "train", "--data", corpus, "--test-speakers", "cy",
                           "--steps", "2", *SMALL, "--stride", "16", "--hop-ms", "30", "--out", tmp_path / "none")  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "no training utterance has as many output steps as labels" in err
    assert not (tmp_path / "none").exists()


@pytest.mark.skipif(not FSDD.exists(), reason="the FSDD copy lives in ../shared, not in a clone")
def test_the_fsdd_copy_is_read_with_its_official_split():
    layout, clips = read_clips(FSDD)
    assert layout == "fsdd" and len(clips) == 3000
    assert sum(c.take < 5 for c in clips) == 300
    assert len({c.speaker for c in clips}) == 6
