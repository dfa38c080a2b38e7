"""Distributions over the 88 keys of one step, given the RNN's output at the step before.

Each takes a vector of parameters per step (computed from h_t by the model's
head) and gives the log-probability of a step's keys, a sample, and a
single best guess (for the frame accuracy).

``BernoulliKeys``: every key independent given h_t,

    P(v_k = 1) = sigmoid(b_k(h_t)),      b(h_t) = W h_t + b     (88 parameters).

``NadeKeys``: the keys of one step modelled jointly, autoregressively from
the lowest key up (NADE, Larochelle and Murray 2011, conditioned on the RNN
as in the RNN-NADE of Boulanger-Lewandowski et al. 2012),

    a_1 = c(h_t),    a_{k+1} = a_k + W[:, k] v_k,    g_k = sigmoid(a_k)
    P(v_k = 1 | v_<k) = sigmoid(b_k(h_t) + V[k] . g_k)

with the biases b (88) and c (H) computed from h_t and W, V shared over
time; log P(v) = sum_k log P(v_k | v_<k) is exact.

``MadeKeys``: the same factorisation, computed in one pass by masking the
weights of a one-hidden-layer network (MADE, Germain et al. 2015), plus a
direct masked path from the keys below (as in the MADE paper's direct
connections):

    g = relu((M1 * W1) v + c(h_t)),   logits = b(h_t) + (M2 * W2) g + (L * D) v

where hidden unit i has a degree m_i in 1..87: M1[i, j] = [j < m_i] (it sees
the keys below m_i), M2[k, i] = [m_i <= k] (it feeds keys m_i and up) and
L[k, j] = [j < k], so logit k depends on the keys below k only. Two matrix products per step,
against NADE's 88 x H hidden activations: several times faster to train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rolls import KEYS


class KeysInOrder(nn.Module):
    """A distribution given by the logit of each key given the keys below it: the exact
    log-probability from all of them at once, sampling and a best guess key by key (``_walk``)."""

    def conditional_logits(self, params: Tensor, keys: Tensor) -> Tensor:
        raise NotImplementedError

    def _walk(self, params: Tensor, choose) -> Tensor:
        raise NotImplementedError

    def log_prob(self, params: Tensor, keys: Tensor) -> Tensor:
        logits = self.conditional_logits(params, keys)
        return -F.binary_cross_entropy_with_logits(logits, keys, reduction="none").sum(-1)

    @torch.no_grad()
    def sample(
        self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        def draw(logit: Tensor) -> Tensor:
            p = torch.sigmoid(logit / temperature)
            return (torch.rand(p.shape, generator=generator, device=p.device) < p).to(p.dtype)

        return self._walk(params, draw)

    @torch.no_grad()
    def best(self, params: Tensor) -> Tensor:
        """Each key at its likelier value given the keys chosen below it (a greedy mode)."""
        return self._walk(params, lambda logit: (logit > 0).to(logit.dtype))


class BernoulliKeys(KeysInOrder):
    """Independent keys: ``params`` are the 88 logits, whatever the keys below."""

    name = "bernoulli"

    @property
    def params_size(self) -> int:
        return KEYS

    def conditional_logits(self, params: Tensor, keys: Tensor) -> Tensor:
        return params

    def _walk(self, params: Tensor, choose) -> Tensor:
        return choose(params)  # no key depends on another: all at once


class NadeKeys(KeysInOrder):
    """Joint keys: ``params`` are the 88 output biases b(h_t), then the H hidden biases c(h_t)."""

    name = "nade"

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        # Small weights: at the start every conditional is close to its bias alone.
        self.w = nn.Parameter(torch.randn(KEYS, hidden) * 0.01)  # key k -> hidden units
        self.v = nn.Parameter(torch.randn(KEYS, hidden) * 0.01)  # hidden units -> key k

    @property
    def params_size(self) -> int:
        return KEYS + self.hidden

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        return params[..., :KEYS], params[..., KEYS:]

    def conditional_logits(self, params: Tensor, keys: Tensor) -> Tensor:
        """Logits of P(v_k = 1 | v_<k) for every k at once (teacher forcing over the keys)."""
        b, c = self._split(params)
        contributions = keys.unsqueeze(-1) * self.w  # (..., 88, H): W[:, j] v_j
        # a_k = c + sum over j < k: an exclusive running sum along the keys.
        a = c.unsqueeze(-2) + contributions.cumsum(-2) - contributions
        return b + (torch.sigmoid(a) * self.v).sum(-1)

    def _walk(self, params: Tensor, choose) -> Tensor:
        b, a = self._split(params)
        keys = torch.zeros_like(b)
        for k in range(KEYS):
            logit = b[..., k] + (torch.sigmoid(a) * self.v[k]).sum(-1)
            keys[..., k] = choose(logit)
            a = a + keys[..., k : k + 1] * self.w[k]
        return keys


class MadeKeys(KeysInOrder):
    """Joint keys in one masked pass: ``params`` are the 88 output biases, then the H hidden biases."""

    name = "made"

    def __init__(self, hidden: int = 512) -> None:
        super().__init__()
        self.hidden = hidden
        # Degrees 1..87 in turn: unit i sees the keys below m_i and feeds keys m_i and up
        # (degree 0 would see nothing, 88 would feed nothing).
        degree = torch.arange(hidden) % (KEYS - 1) + 1
        keys = torch.arange(KEYS)
        self.register_buffer("mask_in", (keys[None, :] < degree[:, None]).float())  # (H, 88)
        self.register_buffer("mask_out", (degree[None, :] <= keys[:, None]).float())  # (88, H)
        self.register_buffer("mask_direct", torch.ones(KEYS, KEYS).tril(-1))
        self.w_in = nn.Parameter(torch.randn(hidden, KEYS) / KEYS**0.5)
        self.w_out = nn.Parameter(torch.randn(KEYS, hidden) * 0.01)
        self.direct = nn.Parameter(torch.zeros(KEYS, KEYS))

    @property
    def params_size(self) -> int:
        return KEYS + self.hidden

    def conditional_logits(self, params: Tensor, keys: Tensor) -> Tensor:
        b, c = params[..., :KEYS], params[..., KEYS:]
        g = torch.relu(keys @ (self.w_in * self.mask_in).T + c)
        return b + g @ (self.w_out * self.mask_out).T + keys @ (self.direct * self.mask_direct).T

    def _walk(self, params: Tensor, choose) -> Tensor:
        keys = params.new_zeros(*params.shape[:-1], KEYS)
        for k in range(KEYS):  # key k's logit depends on the keys below it only
            keys[..., k] = choose(self.conditional_logits(params, keys)[..., k])
        return keys


OUTPUTS = ("bernoulli", "nade", "made")


def key_distribution(name: str, hidden: int = 128) -> KeysInOrder:
    """The distribution called ``name``; ``hidden`` sizes NADE's or MADE's hidden layer."""
    if name == "bernoulli":
        return BernoulliKeys()
    if name == "nade":
        return NadeKeys(hidden)
    if name == "made":
        return MadeKeys(hidden)
    raise ValueError(f"unknown output {name!r} (known: {', '.join(OUTPUTS)})")
