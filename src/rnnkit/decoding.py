"""Greedy, sampled and beam-search decoding, shared by every generator.

All three are incremental: a model is seen only through a step function::

    step(tokens, state) -> (logits, state)     # tokens: (N,), logits: (N, V)

which consumes one token per sequence and carries its state, so a prefix is
never recomputed. Beam search reorders the state when beams are re-ranked,
through ``reorder(state, index)``; the default indexes dimension 0 of every
tensor in a nested tuple, list or dict (pass another one for states whose
batch dimension is elsewhere, as in torch's (layers, B, H) layout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]
ReorderFn = Callable[[Any, Tensor], Any]


def map_state(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to every tensor of a nested tuple / list / dict; other leaves pass through."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    return state


def index_batch(state: Any, index: Tensor) -> Any:
    """The default ``reorder``: select along dimension 0 of every tensor."""
    return map_state(state, lambda t: t.index_select(0, index.to(t.device)))


@dataclass
class Decoded:
    """The output of greedy or sampled decoding."""

    tokens: Tensor  # (B, T) generated tokens, ``eos`` repeated after a sequence ends
    log_prob: Tensor  # (B,) total log-probability of each sequence (up to and with eos)
    lengths: Tensor  # (B,) tokens up to and including the first eos


def _autoregress(
    step: StepFn,
    state: Any,
    start: Tensor,
    max_steps: int,
    pick: Callable[[Tensor], Tensor],
    eos: int | None,
) -> Decoded:
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    tokens = start
    done = torch.zeros_like(start, dtype=torch.bool)
    lengths = torch.zeros_like(start)
    total = torch.zeros(start.shape[0], device=start.device)
    out = []
    for _ in range(max_steps):
        logits, state = step(tokens, state)
        log_probs = torch.log_softmax(logits.float(), -1)
        chosen = pick(logits)
        if eos is not None:
            chosen = torch.where(done, torch.full_like(chosen, eos), chosen)
        total = total + torch.where(done, 0.0, log_probs.gather(1, chosen[:, None]).squeeze(1))
        lengths = lengths + (~done).long()
        if eos is not None:
            done = done | (chosen == eos)
        out.append(chosen)
        tokens = chosen
        if bool(done.all()):
            break
    return Decoded(torch.stack(out, 1), total, lengths)


@torch.no_grad()
def greedy(
    step: StepFn, state: Any, start: Tensor, max_steps: int, eos: int | None = None
) -> Decoded:
    """Take the most probable token at every step."""
    return _autoregress(step, state, start, max_steps, lambda logits: logits.argmax(-1), eos)


def choose(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row of (N, V) logits: softmax(logits / temperature), among the top k if given."""
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits.float() / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, -1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator).squeeze(1)


@torch.no_grad()
def sample(
    step: StepFn,
    state: Any,
    start: Tensor,
    max_steps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    eos: int | None = None,
    generator: torch.Generator | None = None,
) -> Decoded:
    """Draw each token from softmax(logits / temperature), optionally among the top k only.

    ``temperature=0`` is greedy decoding. The reported log-probabilities are
    those of the model itself, not of the tempered distribution.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")

    def pick(logits: Tensor) -> Tensor:
        return choose(logits, temperature, top_k, generator)

    return _autoregress(step, state, start, max_steps, pick, eos)


@dataclass
class Hypothesis:
    tokens: list[int]  # without the start token; ends with eos when one was produced
    log_prob: float  # sum of the token log-probabilities
    score: float  # log_prob, normalised by length when a length penalty is set


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: Any,
    start: Tensor,
    max_steps: int,
    beam_size: int = 4,
    eos: int | None = None,
    length_penalty: float = 0.0,
    reorder: ReorderFn = index_batch,
) -> list[list[Hypothesis]]:
    """The ``beam_size`` best continuations of each start token, best first.

    A finished beam (one that produced ``eos``) stays in the beam and can only
    be extended by eos at no cost, so finished and unfinished hypotheses
    compete on equal terms. With ``length_penalty`` α > 0 the final ranking
    divides the log-probability by ((5 + length) / 6) ** α (Wu et al., 2016).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    batch, k, device = start.shape[0], beam_size, start.device
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    state = reorder(state, expand)
    tokens = start.repeat_interleave(k)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    history = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    done = torch.zeros(batch * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch * k, dtype=torch.long, device=device)
    for _ in range(max_steps):
        logits, state = step(tokens, state)
        log_probs = torch.log_softmax(logits.float(), -1)  # (B*K, V)
        vocab = log_probs.shape[-1]
        if eos is not None and bool(done.any()):
            frozen = torch.full_like(log_probs[0], float("-inf"))
            frozen[eos] = 0.0
            log_probs = torch.where(done[:, None], frozen, log_probs)
        candidates = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)
        scores, flat = candidates.topk(k, -1)  # (B, K)
        parent = (flat // vocab) + torch.arange(batch, device=device)[:, None] * k
        parent = parent.view(-1)
        tokens = (flat % vocab).view(-1)
        state = reorder(state, parent)
        history = torch.cat([history[parent], tokens[:, None]], 1)
        lengths = lengths[parent] + (~done[parent]).long()
        done = done[parent]
        if eos is not None:
            done = done | (tokens == eos)
        if bool(done.all()):
            break
    results = []
    for b in range(batch):
        hyps = []
        for j in range(k):
            row = b * k + j
            log_prob = float(scores[b, j])
            if log_prob == float("-inf"):
                continue
            n = int(lengths[row])
            norm = ((5.0 + n) / 6.0) ** length_penalty if length_penalty else 1.0
            hyps.append(Hypothesis(history[row, :n].tolist(), log_prob, log_prob / norm))
        hyps.sort(key=lambda h: h.score, reverse=True)
        results.append(hyps)
    return results
