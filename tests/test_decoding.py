"""Greedy, sampled and beam-search decoding against exhaustive search on small chains."""

import itertools
import math

import pytest
import torch

from rnnkit import decoding


def markov_step(table):
    """A step function whose state is the previous token: logits = table[token]."""

    def step(tokens, state):
        assert tokens.dim() == 1  # one token per sequence: nothing is recomputed
        return table[tokens], state + 1

    return step


def exhaustive_best(table, start, steps):
    log_p = torch.log_softmax(table, -1)
    best, best_seq = -math.inf, None
    for seq in itertools.product(range(table.shape[0]), repeat=steps):
        prev, total = start, 0.0
        for tok in seq:
            total += float(log_p[prev, tok])
            prev = tok
        if total > best:
            best, best_seq = total, list(seq)
    return best_seq, best


def test_beam_search_finds_the_exhaustive_optimum():
    torch.manual_seed(3)
    table = torch.randn(4, 4) * 2
    for start in range(4):
        seq, score = exhaustive_best(table, start, 4)
        hyps = decoding.beam_search(
            markov_step(table), torch.zeros(1), torch.tensor([start]), 4, beam_size=64
        )[0]
        assert hyps[0].tokens == seq
        assert hyps[0].log_prob == pytest.approx(score, abs=1e-5)
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)


def test_beam_beats_greedy_where_greedy_is_short_sighted():
    # From 0, token 1 looks best (0.6) but leads to a flat distribution; token 2 leads to certainty.
    probs = torch.tensor(
        [
            [0.0, 0.6, 0.4],
            [1 / 3, 1 / 3, 1 / 3],
            [0.0, 0.0, 1.0],
        ]
    )
    table = torch.log(probs.clamp_min(1e-9))
    greedy = decoding.greedy(markov_step(table), torch.zeros(1), torch.tensor([0]), 2)
    beam = decoding.beam_search(
        markov_step(table), torch.zeros(1), torch.tensor([0]), 2, beam_size=2
    )
    assert greedy.tokens[0].tolist()[0] == 1
    assert beam[0][0].tokens == [2, 2]
    assert beam[0][0].log_prob > float(greedy.log_prob[0])


def test_beam_of_one_is_greedy():
    table = torch.randn(5, 5)
    starts = torch.arange(5)
    greedy = decoding.greedy(markov_step(table), torch.zeros(5), starts, 6)
    beam = decoding.beam_search(markov_step(table), torch.zeros(5), starts, 6, beam_size=1)
    for b in range(5):
        assert beam[b][0].tokens == greedy.tokens[b].tolist()
        assert beam[b][0].log_prob == pytest.approx(float(greedy.log_prob[b]), abs=1e-5)


def test_eos_ends_sequences_and_is_counted_once():
    table = torch.full((3, 3), -5.0)
    table[0, 2] = 5.0  # 0 -> 2 (eos)
    table[1, 1] = 5.0  # 1 -> 1 forever
    out = decoding.greedy(markov_step(table), torch.zeros(2), torch.tensor([0, 1]), 4, eos=2)
    assert out.tokens[0].tolist() == [2, 2, 2, 2]
    assert out.lengths.tolist() == [1, 4]
    hyps = decoding.beam_search(
        markov_step(table), torch.zeros(2), torch.tensor([0, 1]), 4, beam_size=3, eos=2
    )
    assert hyps[0][0].tokens == [2]
    assert hyps[0][0].log_prob == pytest.approx(float(torch.log_softmax(table[0], -1)[2]), abs=1e-5)


def test_length_penalty_prefers_longer_hypotheses():
    table = torch.zeros(3, 3)
    table[0] = torch.tensor([0.0, -0.5, 0.3])  # eos=2 slightly preferred immediately
    table[1] = torch.tensor([0.0, 2.0, 0.0])
    plain = decoding.beam_search(
        markov_step(table), torch.zeros(1), torch.tensor([0]), 5, beam_size=4, eos=2
    )
    penalised = decoding.beam_search(
        markov_step(table),
        torch.zeros(1),
        torch.tensor([0]),
        5,
        beam_size=4,
        eos=2,
        length_penalty=2.0,
    )
    assert len(penalised[0][0].tokens) >= len(plain[0][0].tokens)


def test_sampling_follows_the_distribution_and_its_limits():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    table = torch.log(probs).repeat(4, 1)
    start = torch.zeros(20000, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    drawn = decoding.sample(markov_step(table), torch.zeros(1), start, 1, generator=g).tokens[:, 0]
    freq = torch.bincount(drawn, minlength=4).float() / drawn.numel()
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    top2 = decoding.sample(
        markov_step(table), torch.zeros(1), start, 1, top_k=2, generator=g
    ).tokens
    assert set(top2.unique().tolist()) == {0, 1}
    cold = decoding.sample(markov_step(table), torch.zeros(1), start[:10], 3, temperature=0)
    assert torch.all(cold.tokens == 0)


def test_reorder_default_handles_nested_states():
    state = {"h": (torch.arange(3), torch.arange(3) * 10), "mask": None}
    out = decoding.index_batch(state, torch.tensor([2, 0]))
    assert (
        out["h"][0].tolist() == [2, 0] and out["h"][1].tolist() == [20, 0] and out["mask"] is None
    )


@pytest.mark.parametrize("bad", [{"beam_size": 0}, {"max_steps": 0}])
def test_bad_arguments(bad):
    kwargs = {"beam_size": 2, "max_steps": 3, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        decoding.beam_search(
            markov_step(torch.zeros(2, 2)), torch.zeros(1), torch.tensor([0]), **kwargs
        )
