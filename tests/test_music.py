"""Music: the key distributions, the genre model, scores and MIDI, and `rnnkit music` end to end."""

import json

import numpy as np
import pytest
import torch
from test_music_rolls import piece, write_mat

from rnnkit.cli import main
from rnnkit.spec import RNNSpec
from rnnkit.tasks.music import rolls
from rnnkit.tasks.music.key_distributions import OUTPUTS, key_distribution
from rnnkit.tasks.music.model import RollModel, next_step_nll
from rnnkit.tasks.music.scores import NoteCache, Notes, common_key_shift, to_roll

KEYS = rolls.KEYS


def sparse_keys(n, seed=0, p=0.08):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, KEYS, generator=g) < p).double()


@pytest.mark.parametrize("name", ["nade", "made"])
def test_a_joint_output_depends_only_on_the_keys_below(name):
    torch.manual_seed(0)
    dist = key_distribution(name, 12).double()
    with torch.no_grad():
        for p in dist.parameters():  # away from the small initial weights
            p.normal_(0, 0.5)
    params = torch.randn(3, dist.params_size, dtype=torch.double)
    keys = sparse_keys(3)
    base = dist.conditional_logits(params, keys)
    for j in (0, 17, 50, 87):
        flipped = keys.clone()
        flipped[:, j] = 1 - flipped[:, j]
        changed = (dist.conditional_logits(params, flipped) - base).abs().amax(0) > 1e-12
        assert not changed[: j + 1].any(), f"logit of key <= {j} moved when key {j} changed"
        if j < KEYS - 1:
            assert changed[j + 1 :].any()  # and the keys above do see it


@pytest.mark.parametrize("name", OUTPUTS)
def test_log_prob_equals_the_product_of_the_conditionals_taken_key_by_key(name):
    torch.manual_seed(1)
    dist = key_distribution(name, 10).double()
    with torch.no_grad():
        for p in dist.parameters():
            p.normal_(0, 0.5)
    params = torch.randn(4, dist.params_size, dtype=torch.double)
    keys = sparse_keys(4, seed=2)
    logits = []

    def replay(logit):  # walk the keys one by one, choosing the true ones, and keep each logit
        logits.append(logit)
        k = len(logits) - 1
        return keys if logit.dim() == 2 else keys[:, k]

    dist._walk(params, replay)
    stepwise = torch.stack(logits, -1) if name != "bernoulli" else logits[0]
    want = (keys * torch.nn.functional.logsigmoid(stepwise)
            + (1 - keys) * torch.nn.functional.logsigmoid(-stepwise)).sum(-1)  # fmt: skip
    torch.testing.assert_close(dist.log_prob(params, keys), want)


@pytest.mark.parametrize("name", ["nade", "made"])
def test_joint_output_gradients_in_double_precision(name):
    torch.manual_seed(2)
    dist = key_distribution(name, 6).double()
    params = torch.randn(2, dist.params_size, dtype=torch.double, requires_grad=True)
    keys = sparse_keys(2, seed=3, p=0.2)
    weights = [p for p in dist.parameters()]
    assert torch.autograd.gradcheck(
        lambda q, *_: dist.log_prob(q, keys), (params, *weights), eps=1e-6, atol=1e-5
    )


def test_sampling_is_seeded_and_cold_sampling_gives_the_best_guess():
    torch.manual_seed(3)
    dist = key_distribution("nade", 16)
    params = torch.randn(5, dist.params_size) * 3
    a = dist.sample(params, 1.0, torch.Generator().manual_seed(7))
    b = dist.sample(params, 1.0, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    cold = dist.sample(params, 1e-4, torch.Generator().manual_seed(8))
    assert torch.equal(cold, dist.best(params))


def test_a_joint_output_learns_what_independent_keys_cannot():
    """Either of two chords at random, never a mix: independent keys pay for the mix."""
    torch.manual_seed(0)
    chords = [(39, 43, 46), (41, 45, 48)]
    g = torch.Generator().manual_seed(0)
    pieces = torch.zeros(16, 12, KEYS)
    for i in range(16):
        for t in range(12):
            pieces[i, t, list(chords[int(torch.randint(2, (1,), generator=g))])] = 1
    lengths = torch.full((16,), 12)
    final = {}
    for output in ("bernoulli", "made"):
        model = RollModel(RNNSpec("gru", hidden=16), output=output, joint_hidden=32)
        optimizer = torch.optim.Adam(model.parameters(), 2e-2)
        for _ in range(150):
            total, count = next_step_nll(model, pieces, lengths, include_first=True)
            optimizer.zero_grad()
            (total / count).backward()
            optimizer.step()
        final[output] = float(total.detach() / count)
    # the truth is one coin flip per step, ln 2 = 0.69 nats; independent keys, 6 H(1/2) = 4.2
    assert final["made"] < 1.2 < 3.5 < final["bernoulli"]


@pytest.mark.parametrize("condition", ["init", "input", "both"])
def test_the_genre_model_conditions_on_the_genre(condition):
    torch.manual_seed(0)
    model = RollModel(
        RNNSpec("lstm", hidden=16), output="bernoulli", genres=["a", "b"], condition=condition
    )
    x = torch.from_numpy(piece(5)).float()[None].repeat(2, 1, 1)
    params, _ = model(x, None, torch.tensor([0, 1]))
    assert params.shape == (2, 5, KEYS)
    assert not torch.allclose(params[0], params[1])  # same steps, another genre
    with pytest.raises(ValueError, match="conditioned on a genre"):
        model(x)
    with pytest.raises(ValueError, match="at least two genres"):
        RollModel(genres=["a"], condition="init")
    roll = model.generate(7, 1, 1.0, torch.Generator().manual_seed(0))
    assert roll.shape == (7, KEYS) and set(roll.unique().tolist()) <= {0.0, 1.0}


def notes(pitches, starts, ends, name="x"):
    return Notes(name, np.array(pitches, np.int16), np.array(starts, float), np.array(ends, float))


def test_notes_to_a_roll():
    n = notes([60, 64, 60, 20, 200], [1.0, 1.0, 2.5, 1.0, 1.0], [2.0, 1.75, 3.0, 2.0, 2.0])
    roll = to_roll(n, 0.5)
    assert roll.shape == (4, KEYS)  # the silence before the first note is cut
    c4, e4 = 60 - rolls.LOWEST_MIDI, 64 - rolls.LOWEST_MIDI
    assert roll[:, c4].tolist() == [1, 1, 0, 1] and roll[:, e4].tolist() == [1, 1, 0, 0]
    assert roll.sum() == 5  # MIDI 20 and 200 are off the piano
    assert to_roll(n, 0.25, shift=2)[:, c4 + 2].sum() == 6
    # a note shorter than a step still sounds for one
    assert to_roll(notes([60], [0.0], [0.1]), 0.5).sum() == 1


def test_the_common_key_shift():
    major = [0, 2, 4, 5, 7, 9, 11, 12]
    scale = notes(
        [62 + p for p in major], np.arange(8.0), np.arange(8.0) + [2, 1, 1, 1, 2, 1, 1, 2]
    )
    assert common_key_shift(scale) == -2  # D major to C major
    minor = [0, 2, 3, 5, 7, 8, 11, 12, 7, 0]
    tune = notes([57 + p for p in minor], np.arange(10.0), np.arange(10.0) + 1.5)
    assert common_key_shift(tune) == 3  # A minor to C minor


def test_the_note_cache_round_trip(tmp_path):
    source = tmp_path / "a.mid"
    source.write_bytes(b"x")
    cache = NoteCache(tmp_path / "cache")
    assert cache.load(source) is None
    kept = [notes([60, 62], [0, 1], [1, 2], "a.mid#1"), notes([70], [0], [4], "a.mid#2")]
    cache.save(source, kept)
    back = cache.load(source)
    assert [b.name for b in back] == ["a.mid#1", "a.mid#2"]
    np.testing.assert_array_equal(back[0].start, kept[0].start)
    source.write_bytes(b"xy")  # the file changed: parsed again
    assert cache.load(source) is None


# --- MIDI files and the command line -------------------------------------------------------


def song(steps, chords, shift=0):
    roll = np.zeros((steps, KEYS), np.uint8)
    for t in range(steps):
        roll[t, [k + shift for k in chords[(t // 2) % len(chords)]]] = 1
    return roll


@pytest.fixture
def midi_genres(tmp_path):
    """A folder with two genres of MIDI files: slow high chords and fast low ones."""
    pytest.importorskip("mido")
    pytest.importorskip("music21")
    from rnnkit.tasks.music.files import write_midi

    root = tmp_path / "midi"
    for genre, chords in (("hymn", [(51, 55, 58), (53, 56, 60)]), ("march", [(27, 31), (29, 32)])):
        for i in range(5):
            write_midi(song(12 + 2 * i, chords, shift=i % 2), root / genre / f"{i}.mid", 0.5)
    return root


def test_a_midi_file_written_reads_back_as_the_same_roll(tmp_path):
    pytest.importorskip("mido")
    pytest.importorskip("music21")
    from rnnkit.tasks.music.files import write_midi
    from rnnkit.tasks.music.scores import parse_file

    roll = song(10, [(39, 43, 46), (41, 44)])
    roll[3:6, 60] = 1  # a held note across the chord change
    write_midi(roll, tmp_path / "a.mid", 0.5)
    (parsed,) = parse_file(tmp_path / "a.mid")
    np.testing.assert_array_equal(to_roll(parsed, 0.5), roll)


def test_musicxml_and_midi_files_read_alike(tmp_path):
    music21 = pytest.importorskip("music21")
    from rnnkit.tasks.music.scores import parse_file

    score = music21.stream.Score()
    part = music21.stream.Part()
    for pitches, length in (([60, 64, 67], 1.0), ([62], 0.5), ([65, 69], 1.5)):
        part.append(music21.chord.Chord(pitches, quarterLength=length))
    score.append(part)
    rolls_read = []
    for suffix in ("musicxml", "mid"):
        path = tmp_path / f"piece.{suffix}"
        score.write("midi" if suffix == "mid" else "musicxml", fp=str(path))
        (notes_read,) = parse_file(path)
        rolls_read.append(to_roll(notes_read, 0.5))
    np.testing.assert_array_equal(rolls_read[0], rolls_read[1])
    c4 = 60 - rolls.LOWEST_MIDI
    assert rolls_read[0].shape == (6, KEYS) and rolls_read[0][:, c4].tolist() == [1, 1, 0, 0, 0, 0]


def test_a_midi_round_trip_is_exact_at_sixteenths_and_keeps_the_trailing_silence(tmp_path):
    mido = pytest.importorskip("mido")
    from rnnkit.tasks.music.files import write_midi
    from rnnkit.tasks.music.scores import parse_file

    rng = np.random.default_rng(0)
    roll = (rng.random((40, KEYS)) < 0.05).astype(np.uint8)
    roll[0, 0] = 1  # the first step sounds: nothing is cut from the start
    roll[-6:] = 0  # silent at the end
    write_midi(roll, tmp_path / "a.mid", 0.25, tempo=120)
    (parsed,) = parse_file(tmp_path / "a.mid")
    back = to_roll(parsed, 0.25)
    np.testing.assert_array_equal(back, roll[: len(back)])
    assert not roll[len(back) :].any()
    assert mido.MidiFile(tmp_path / "a.mid").length == pytest.approx(40 * 0.25 * 0.5)


def test_notes_struck_together_keep_their_own_lengths(tmp_path):
    mido = pytest.importorskip("mido")
    from rnnkit.tasks.music.scores import parse_file

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.Message("note_on", note=48, velocity=80, time=0))
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_on", note=38, velocity=80, channel=9, time=0))  # a drum
    track.append(mido.Message("note_off", note=60, velocity=0, time=240))
    track.append(mido.Message("note_on", note=48, velocity=0, time=120))  # velocity 0 releases
    midi.save(tmp_path / "chord.mid")
    (notes_read,) = parse_file(tmp_path / "chord.mid")
    assert notes_read.pitch.tolist() == [60, 48]
    assert notes_read.end.tolist() == [0.5, 0.75]


def test_a_jsb_file_in_any_of_matlab_s_layouts(tmp_path):
    savemat = pytest.importorskip("scipy.io").savemat
    pieces = [piece(5, seed=i) for i in range(3)]
    column = np.empty((3, 1), dtype=object)
    for i, p in enumerate(pieces):
        column[i, 0] = p
    savemat(str(tmp_path / "column.mat"), {k: column for k in rolls.JSB_PARTS.values()})
    stacked = np.stack(pieces).astype(float)  # pieces of one length become one 3-D array
    savemat(str(tmp_path / "stacked.mat"), {k: stacked for k in rolls.JSB_PARTS.values()})
    for name in ("column.mat", "stacked.mat"):
        parts = rolls.read_jsb(tmp_path / name)
        assert [len(parts[k]) for k in ("train", "valid", "test")] == [3, 3, 3], name
        np.testing.assert_array_equal(parts["test"].pieces[2], pieces[2])
    savemat(str(tmp_path / "empty.mat"), {"traindata": stacked, "validdata": stacked,
                                           "testdata": []})  # fmt: skip
    with pytest.raises(ValueError, match="testdata holds no pieces"):
        rolls.read_jsb(tmp_path / "empty.mat")


def test_the_split_keeps_training_pieces_for_every_genre():
    from rnnkit.tasks.music.sources import split_rolls

    data = rolls.Rolls([piece(4, seed=i) for i in range(10)], ["a"] * 4 + ["b"] * 6)
    parts = split_rolls(data, 0.2, seed=0)
    assert {k: sorted(v.genres) for k, v in parts.items()} == {
        "train": ["a"] * 2 + ["b"] * 4, "valid": ["a", "b"], "test": ["a", "b"]}  # fmt: skip
    with pytest.raises(ValueError, match="genre 'a' has 4 pieces: --held-out 0.4 .* none for"):
        split_rolls(data, 0.4, seed=0)


def test_hidden_folders_are_not_data(midi_genres):
    from rnnkit.tasks.music.sources import folder_pieces

    hymns = len(list((midi_genres / "hymn").glob("*.mid")))
    checkpoint = midi_genres / "hymn" / ".ipynb_checkpoints"
    checkpoint.mkdir()
    (checkpoint / "0-checkpoint.mid").write_bytes((midi_genres / "hymn" / "0.mid").read_bytes())
    (midi_genres / "__MACOSX" / "hymn").mkdir(parents=True)
    (midi_genres / "__MACOSX" / "hymn" / "._0.mid").write_bytes(b"\x00\x05")
    pieces = folder_pieces(midi_genres, None, skip_bad=False, jobs=1, max_pieces=None)
    assert sorted({p.genre for p in pieces}) == ["hymn", "march"]
    assert sum(p.genre == "hymn" for p in pieces) == hymns


def run_cli(*argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own errors exit through SystemExit
        return stop.code


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_music_on_a_jsb_file_end_to_end(tmp_path, capsys):
    data = write_mat(tmp_path / "jsb.mat", {
        "traindata": [piece(8 + i % 5, seed=i) for i in range(10)],
        "validdata": [piece(9, seed=20), piece(7, seed=21)],
        "testdata": [piece(10, seed=30), piece(6, seed=31)],
    })  # fmt: skip
    run = tmp_path / "run"
    assert run_cli("music", "train", "--data", data, "--output", "made", "--joint-hidden", 16,
                   "--hidden", 16, "--steps", 6, "--eval-every", 3, "--out", run) == 0  # fmt: skip
    for name in ("model.safetensors", "test.json", "held_out.npz", "sample.mid", "sample.png"):
        assert (run / name).exists(), name
    capsys.readouterr()
    assert run_cli("music", "eval", run, "--json") == 0
    result = last_json(capsys)
    assert result["steps"] == 9 + 5 and result["pieces"] == 2
    assert 0 < result["nll"] < 88 and 0 <= result["frame_accuracy"] <= 1
    assert "by_genre" not in result and "key frequencies" in result["baselines"]
    saved = json.loads((run / "test.json").read_text())
    assert saved["nll"] == pytest.approx(result["nll"], rel=1e-6)  # eval repeats train's figure
    assert run_cli("music", "train", "--data", data, "--output", "made", "--joint-hidden", 16,
                   "--hidden", 16, "--steps", 9, "--eval-every", 3, "--out", run,
                   "--resume") == 0  # fmt: skip
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 9
    assert run_cli("music", "train", "--data", data, "--output", "nade", "--joint-hidden", 16,
                   "--hidden", 16, "--steps", 9, "--out", run, "--resume") == 2  # fmt: skip
    assert "contradict" in capsys.readouterr().err
    assert (run / "gradient_flow.jsonl").exists()
    assert run_cli("diagnose", run) == 0  # the gradient flow recorded at every evaluation
    out = tmp_path / "new.mid"
    args = ("music", "generate", run, "--steps", 20, "--seed", 3, "--out", out)
    assert run_cli(*args) == 0
    first = out.read_bytes()
    assert run_cli(*args) == 0 and out.read_bytes() == first  # seeded
    assert out.with_suffix(".png").exists()
    mido = pytest.importorskip("mido")
    assert mido.MidiFile(out).length > 0


def test_a_genre_model_on_a_midi_folder(midi_genres, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("music", "train", "--data", midi_genres, "--condition", "input",
                   "--output", "bernoulli", "--hidden", 16, "--steps", 150, "--eval-every", 50,
                   "--lr", 1e-2, "--warmup", 0, "--cache", tmp_path / "cache", "--jobs", 1,
                   "--out", run) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["genres"] == ["hymn", "march"] and config["condition"] == "input"
    capsys.readouterr()
    assert run_cli("music", "eval", run, "--json") == 0
    table = last_json(capsys)["by_genre"]
    assert set(table) == {"hymn", "march"}
    for genre, row in table.items():
        assert set(row["as"]) == {"hymn", "march"}
        # the two genres share no key: each is far likelier under its own
        assert row["margin"] > 1.0, (genre, row)
    out = tmp_path / "h.mid"
    assert run_cli("music", "generate", run, "--genre", "hymn", "--steps", 8, "--out", out) == 0
    assert run_cli("music", "generate", run, "--genre", "hymn", "--out", run / "curves.mid") == 2
    assert "would overwrite" in capsys.readouterr().err  # the run's own training curves
    assert run_cli("music", "generate", run, "--genre", "hymn", "--tempo", 2, "--out", out) == 2
    assert "--tempo: must be in [4, 1000]" in capsys.readouterr().err
    assert run_cli("music", "generate", run, "--genre", "jazz", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: unknown genre 'jazz'") and "hymn, march" in err
    assert run_cli("music", "generate", run, "--out", out) == 2  # a genre model needs one


def test_bad_midi_is_named_and_can_be_skipped(midi_genres, tmp_path, capsys):
    bad = midi_genres / "hymn" / "broken.mid"
    bad.write_bytes(b"MThd this is not music")
    args = ("music", "train", "--data", midi_genres, "--hidden", 8, "--steps", 2,
            "--no-cache", "--jobs", 1)  # fmt: skip
    assert run_cli(*args, "--out", tmp_path / "a") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress line
    assert err.startswith("rnnkit: error: ") and "broken.mid" in err and "--skip-bad" in err
    assert not (tmp_path / "a").exists()
    assert run_cli(*args, "--skip-bad", "--out", tmp_path / "b", "--output", "bernoulli") == 0
    assert "skipped" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        ("empty", ["--data", "{d}"], "holds no music files"),
        ("loose", ["--data", "{d}"], "lies beside the genre subfolders"),
        ("wide", ["--data", "{d}/wide.mat"], "88 keys"),
        ("wide", ["--data", "{d}/wide.mat", "--transpose"], "already split and quantised"),
        ("none", ["--data", "{d}/missing.mat"], "no such file"),
        ("none", ["--data", "{d}/notes.txt"], "JSB-format .mat file or a folder"),
        ("none", ["--genres", "bach,disco"], "unknown genre 'disco' (known: bach, folk"),
        ("none", ["--genres", "bach", "--bidirectional"], "forward only"),
        ("none", ["--genres", "bach", "--held-out", "0.6"], "--held-out"),
        ("none", ["--genres", "bach", "--condition", "both"], "two genres"),
        ("none", ["--genres", "bach", "--lr", "0"], "--lr: must be in (0, 1000], got 0"),
        ("none", ["--genres", "bach", "--device", "foo"], "not a device"),
        ("none", ["--genres", "bach", "--held-out", "nan"], "--held-out"),
        ("none", ["--genres", "bach", "--output", "made", "--joint-hidden", "0"], "--joint-hidden"),
        ("none", ["--genres", "bach", "--cache", "{d}/notes.txt"], "is a file, not a folder"),
        ("none", ["--data", ""], "--data: an empty name"),
        ("wide", ["--data", "{d}/wide.mat", "--held-out", "0.2"], "--held-out do not apply"),
    ],
)
def test_bad_input_is_one_line_and_status_2(setup, argv, message, tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    if setup == "loose":
        pytest.importorskip("mido")
        from rnnkit.tasks.music.files import write_midi

        write_midi(song(4, [(40,)]), d / "g" / "a.mid", 0.5)
        write_midi(song(4, [(40,)]), d / "b.mid", 0.5)
    if setup == "wide":
        write_mat(d / "wide.mat", {k: [np.zeros((5, 87))] for k in
                                   ("traindata", "validdata", "testdata")})  # fmt: skip
    (d / "notes.txt").write_text("x")
    out = tmp_path / "run"
    code = run_cli("music", "train", *[a.format(d=d) for a in argv], "--steps", 1, "--out", out)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rnnkit: error: ") and len(err.splitlines()) == 1
    assert message in err, err
    assert not out.exists()


def test_the_music21_corpus_by_genre_is_parsed_once(tmp_path, capsys):
    pytest.importorskip("music21")
    cache = tmp_path / "cache"
    args = ("music", "train", "--genres", "bach", "--max-pieces", 4, "--cache", cache,
            "--hidden", 8, "--output", "bernoulli", "--steps", 2, "--jobs", 1)  # fmt: skip
    assert run_cli(*args, "--out", tmp_path / "a") == 0
    assert "parsing" in capsys.readouterr().out
    assert len(list(cache.glob("*.npz"))) >= 4
    assert run_cli(*args, "--out", tmp_path / "b", "--transpose", "--step", "sixteenth") == 0
    assert "parsing" not in capsys.readouterr().out  # every file from the cache
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["source"]["step"] == 0.25 and config["source"]["transpose"]
    assert config["pieces"] == {"train": 2, "valid": 1, "test": 1}
    # the cache is no part of a run: resuming without it parses again and goes on
    assert run_cli("music", "train", "--genres", "bach", "--max-pieces", 4, "--no-cache",
                   "--hidden", 8, "--output", "bernoulli", "--steps", 3, "--jobs", 1,
                   "--out", tmp_path / "a", "--resume") == 0  # fmt: skip
