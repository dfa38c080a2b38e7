"""The encoder-decoder: one sequence in, another out (the lecture's text transcription).

An encoding stage consumes the input sequence into a hidden state and has no
output to predict; the decoding stage produces the output one step at a time,
conditioned on that state (its initial state). Optional additive attention
(Bahdanau et al., 2015) lets each decoding step also look at every encoder
output, so the plain context-vector model and the attention model can be
compared on the same data. Where the context enters is a choice: as input to
the decoder's next step (Bahdanau's placement, ``input_feeding=True``), or
beside the decoder's output after its step (Luong et al., 2015,
``input_feeding=False``); the second lets teacher-forced training run the
decoder over all steps at once, on the fused kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import decoding
from .checks import check_positive_int
from .layers import (
    InputStage,
    RNNState,
    last_step,
    mlp,
    state_from_vector,
    state_parts,
    top_layer_vector,
)
from .padding import check_lengths, step_mask
from .recurrent import RNN


class AdditiveAttention(nn.Module):
    r"""score(s, h_j) = v^T tanh(W_q s + W_k h_j); weights are the softmax over valid j."""

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_size, attention_size, bias=False)
        self.key = nn.Linear(key_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """query (B, Q), keys = key(memory) (B, S, A), memory (B, S, M) -> context (B, M), weights (B, S)."""
        scores = self.v(torch.tanh(keys + self.query(query).unsqueeze(1))).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, -1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights

    def attend_all(
        self, queries: Tensor, keys: Tensor, memory: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Every step at once: queries (B, T, Q) -> contexts (B, T, M), weights (B, T, S)."""
        scores = self.v(torch.tanh(keys.unsqueeze(1) + self.query(queries).unsqueeze(2))).squeeze(
            -1
        )
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, -1)
        return torch.bmm(weights, memory), weights


class EncoderDecoder(nn.Module):
    """Encoder RNN -> context (its final state) -> decoder RNN, any cells.

    Targets are token ids (``target_vocab``) or real vectors (``output_size``);
    sources likewise (``source_vocab``) or real vectors of width
    ``encoder.input_size``. When the two RNNs' states have the same layout the
    encoder's final state starts the decoder as it is, as in the lecture;
    otherwise (a bidirectional encoder, other depths or cells) a learned
    bridge, tanh(W s + b), maps the encoder's top layer to every decoder layer.

    A real-valued head may emit more than it feeds back: ``head_size`` values
    per step, which the module ``feedback`` maps to the next step's input of
    width ``output_size`` (say several quantiles per target, the median fed back).

    With ``attention=True`` the decoder's input at each step is the previous
    target and the attention context, so ``decoder.input_size`` must be the
    target embedding's width plus ``encoder.output_size``; with
    ``input_feeding=False`` as well, the decoder reads the previous target
    alone (``decoder.input_size`` is the embedding's width), its output is the
    query, and the head reads the output beside the context.

    Example::

        enc, dec = RNN("gru", 32, 128, bidirectional=True), RNN("gru", 32 + 256, 128)
        model = EncoderDecoder(enc, dec, source_vocab=30, target_vocab=42, attention=True)
        logits = model(src, tgt_in, src_lengths=lengths)      # (B, T_tgt, 42)
    """

    def __init__(
        self,
        encoder: RNN,
        decoder: RNN,
        *,
        source_vocab: int | None = None,
        target_vocab: int | None = None,
        output_size: int | None = None,
        attention: bool = False,
        attention_size: int | None = None,
        output_hidden: Sequence[int] = (),
        head_size: int | None = None,
        feedback: nn.Module | None = None,
        input_feeding: bool = True,
    ) -> None:
        super().__init__()
        for name, rnn in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(rnn, RNN):
                raise ValueError(f"{name} must be an rnnkit.RNN, got {type(rnn).__name__}")
        if decoder.bidirectional:
            raise ValueError("decoder must not be bidirectional: it generates one step at a time")
        if (target_vocab is None) == (output_size is None):
            raise ValueError(
                "give exactly one of target_vocab (token targets) or output_size (real-valued targets)"
            )
        self.encoder, self.decoder = encoder, decoder
        self.tokens = target_vocab is not None
        self.out_size = check_positive_int(
            "target_vocab" if self.tokens else "output_size", target_vocab or output_size
        )
        memory_size = encoder.output_size
        context_size = memory_size if attention else 0
        self.input_feeding = bool(input_feeding) and attention
        embed_size = decoder.input_size - (context_size if self.input_feeding else 0)
        if embed_size < 1:
            raise ValueError(
                f"decoder.input_size ({decoder.input_size}) must exceed encoder.output_size ({memory_size}) with attention"
            )
        self.source = InputStage(encoder.input_size, None, source_vocab)
        self.target = (
            nn.Embedding(self.out_size, embed_size)
            if self.tokens
            else nn.Linear(self.out_size, embed_size)
        )
        self.direct = (
            encoder.num_directions == 1
            and encoder.num_layers == decoder.num_layers
            and encoder.state_sizes == decoder.state_sizes
        )
        if not self.direct:
            self.bridge = nn.Linear(
                encoder.num_directions * sum(encoder.state_sizes),
                decoder.num_layers * sum(decoder.state_sizes),
            )
        self.attention = (
            AdditiveAttention(
                decoder.state_sizes[0], memory_size, attention_size or decoder.hidden_size
            )
            if attention
            else None
        )
        width = self.out_size if head_size is None else check_positive_int("head_size", head_size)
        if (head_size is None) != (feedback is None) or (self.tokens and feedback is not None):
            raise ValueError(
                "give head_size and feedback together, and only for real-valued targets"
            )
        self.feedback = feedback
        self.head = mlp([decoder.output_size + context_size, *output_hidden, width])

    # -- encoding -------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor | None = None) -> dict:
        """Run the encoder; returns the decoder's initial state and what attention needs."""
        lengths = check_lengths(src_lengths, src.shape[0], src.shape[1])
        memory, final = self.encoder(self.source(src), lengths=lengths)
        state = (
            final
            if self.direct
            else state_from_vector(
                torch.tanh(self.bridge(top_layer_vector(final, self.encoder.num_directions))),
                self.decoder,
            )
        )
        enc = {"state": state}
        if self.attention is not None:
            enc["memory"] = memory
            enc["keys"] = self.attention.key(memory)
            enc["mask"] = None if lengths is None else step_mask(lengths, src.shape[1], src.device)
        return enc

    # -- decoding -------------------------------------------------------------------
    def fed_back(self, out: Tensor) -> Tensor:
        """What a step's output feeds into the next step: its token, or the ``feedback`` values."""
        if self.tokens:
            return out.argmax(-1)
        return out if self.feedback is None else self.feedback(out)

    def step(
        self, y_prev: Tensor, state: RNNState, enc: dict
    ) -> tuple[Tensor, RNNState, Tensor | None]:
        """One decoder step from the previous target (B,) or (B, output_size)."""
        e = self.target(y_prev)
        weights = None
        if self.input_feeding:
            query = state_parts(last_step(state))[0][-1]  # s_{t-1}, the top layer
            context, weights = self.attention(query, enc["keys"], enc["memory"], enc["mask"])
            e = torch.cat([e, context], -1)
        y, state = self.decoder(e.unsqueeze(1), state)
        y = y[:, 0]
        if self.attention is not None and not self.input_feeding:
            context, weights = self.attention(y, enc["keys"], enc["memory"], enc["mask"])  # s_t
        if self.attention is not None:
            y = torch.cat([y, context], -1)
        return self.head(y), state, weights

    def forward(
        self,
        src: Tensor,
        tgt_in: Tensor,
        src_lengths: Tensor | None = None,
        teacher_forcing: float = 1.0,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Outputs (B, T, out) for decoder inputs ``tgt_in`` (the targets shifted right).

        ``teacher_forcing`` < 1 feeds, per sequence and step, the model's own
        previous prediction instead of the true one with probability 1 - ratio
        (scheduled sampling, Bengio et al., 2015).
        """
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        enc = self.encode(src, src_lengths)
        state = enc["state"]
        if teacher_forcing == 1.0 and not self.input_feeding:
            # all steps at once: the fused path applies
            y, _ = self.decoder(self.target(tgt_in), state)
            weights = None
            if self.attention is not None:
                context, weights = self.attention.attend_all(
                    y, enc["keys"], enc["memory"], enc["mask"]
                )
                y = torch.cat([y, context], -1)
            return (self.head(y), weights) if return_attention else self.head(y)
        outs, alignments = [], []
        previous = tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            if t > 0:
                previous = tgt_in[:, t]
                if teacher_forcing < 1.0:
                    own = self.fed_back(outs[-1].detach())
                    use_true = torch.rand(own.shape[0], device=own.device) < teacher_forcing
                    use_true = use_true if self.tokens else use_true[:, None]
                    previous = torch.where(use_true, previous, own)
            out, state, weights = self.step(previous, state, enc)
            outs.append(out)
            alignments.append(weights)
        out = torch.stack(outs, 1)
        if return_attention:
            return out, (torch.stack(alignments, 1) if self.attention is not None else None)
        return out

    def _decode_step(self):
        def step(tokens: Tensor, packed: tuple) -> tuple[Tensor, tuple]:
            state, enc = packed
            logits, state, _ = self.step(tokens, state, enc)
            return logits, (state, enc)

        return step

    @staticmethod
    def _reorder(packed: tuple, index: Tensor) -> tuple:
        state, enc = packed
        state = decoding.map_state(state, lambda t: t.index_select(1, index))  # (rows, B, H)
        return state, decoding.index_batch(enc, index)

    @torch.no_grad()
    def decode(
        self,
        src: Tensor,
        bos: int,
        max_steps: int,
        src_lengths: Tensor | None = None,
        eos: int | None = None,
        beam_size: int = 1,
        length_penalty: float = 0.0,
    ) -> decoding.Decoded | list[list[decoding.Hypothesis]]:
        """Token outputs: greedy (``beam_size=1``, a ``Decoded``) or the n-best lists of beam search."""
        if not self.tokens:
            raise ValueError(
                "decode is for token targets; use generate_values for real-valued ones"
            )
        enc = self.encode(src, src_lengths)
        start = torch.full((src.shape[0],), bos, dtype=torch.long, device=src.device)
        packed = (enc.pop("state"), enc)
        step = self._decode_step()
        if beam_size == 1:
            return decoding.greedy(step, packed, start, max_steps, eos)
        return decoding.beam_search(
            step, packed, start, max_steps, beam_size, eos, length_penalty, self._reorder
        )

    @torch.no_grad()
    def generate_values(
        self, src: Tensor, first: Tensor, steps: int, src_lengths: Tensor | None = None
    ) -> Tensor:
        """Real-valued outputs, each step fed the previous prediction: (B, steps, head width)."""
        if self.tokens:
            raise ValueError("generate_values is for real-valued targets; use decode for tokens")
        enc = self.encode(src, src_lengths)
        state, previous, outs = enc["state"], first, []
        for _ in range(check_positive_int("steps", steps)):
            out, state, _ = self.step(previous, state, enc)
            outs.append(out)
            previous = self.fed_back(out)
        return torch.stack(outs, 1)
