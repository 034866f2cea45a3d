"""The decoding interface shared by every seq2seq model (Bahdanau GRU, Transformer) and the searches built on it.

A model exposes ``start_decoding(src, src_lens, use_cache) -> state`` (encode once) and
``decode_step(state, tokens) -> DecoderStep(logits, state)`` (one target position for every row). The state
selects rows with ``state.reorder(batch_indices)``; since that is an ``index_select``, the same call expands a
batch into beams (repeated indices), follows surviving hypotheses and drops finished rows. Greedy and beam
search are batched: the per-step work is tensor ops over all rows; the only Python loop runs over time steps.

Shape legend: B batch, K beam size, S source length, T target length, L decoded length, V target vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple, Protocol

import torch
from torch import Tensor


class DecodingState(Protocol):
    """Whatever a model carries from step to step (encoder memory, hidden states, key/value caches)."""

    def reorder(self, batch_indices: Tensor) -> None:
        """Keep rows ``batch_indices`` (B_new,) in this order, in place; indices may repeat."""
        ...


class DecoderStep(NamedTuple):
    logits: Tensor  # (B, V) unnormalised scores of the next token
    state: DecodingState


class Seq2SeqOutput(NamedTuple):
    """What every seq2seq model's teacher-forced ``forward`` returns (Bahdanau GRU and Transformer alike).

    The weight lists hold one ``(B, H, Tq, Tk)`` tensor per layer (``H = 1`` for single-head attention) and are
    empty where a model has no such attention (Bahdanau: no self-attention); entries are None unless the
    weights were asked for.
    """

    logits: Tensor  # (B, T, V)
    encoder_self_weights: list[Tensor | None]  # per layer (B, H, S, S)
    decoder_self_weights: list[Tensor | None]  # per layer (B, H, T, T)
    cross_weights: list[Tensor | None]  # per layer (B, H, T, S)


class Seq2SeqNet(Protocol):
    """The contract of the models that ``attnlab.lit.seq2seq.Seq2SeqModule`` trains and these searches decode."""

    pad_id: int
    bos_id: int
    eos_id: int

    def __call__(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, need_weights: bool = False) -> Seq2SeqOutput:
        """Teacher forcing: ``src`` (B, S), ``src_lens`` (B,), ``tgt_in`` (B, T) = <bos> y, padded."""
        ...

    def start_decoding(self, src: Tensor, src_lens: Tensor, use_cache: bool = True) -> DecodingState: ...

    def decode_step(self, state: DecodingState, tokens: Tensor) -> DecoderStep:
        """``tokens`` (B,) is the previous output (<bos> first); returns the next token's logits (B, V)."""
        ...


def check_special_ids(tgt_vocab_size: int, **ids: int) -> None:
    """Every special id a seq2seq model is given (``pad_id=..., bos_id=..., eos_id=...``) names a target token."""
    for name, index in ids.items():
        if not 0 <= index < tgt_vocab_size:
            raise ValueError(f"{name}={index} is outside the target vocabulary of size {tgt_vocab_size}")


class Hypotheses(NamedTuple):
    tokens: Tensor  # (B, L) output ids without <bos>/<eos>, padded with pad_id
    lengths: Tensor  # (B,) tokens before <eos>
    scores: Tensor  # (B,) greedy: summed log-probabilities (incl. <eos>); beam: that sum / GNMT length penalty


def _banned_tokens(net: Seq2SeqNet, device: torch.device) -> Tensor:
    """<pad> and <bos> never follow in a target: searches rule them out."""
    return torch.tensor([net.pad_id, net.bos_id], device=device)


def _next_log_probs(
    net: Seq2SeqNet, state: DecodingState, tokens: Tensor, banned: Tensor
) -> tuple[Tensor, DecodingState]:
    logits, state = net.decode_step(state, tokens)
    logits = logits.float().index_fill_(-1, banned, torch.finfo(torch.float32).min)  # (B, V), in place: no copy
    return torch.log_softmax(logits, dim=-1), state


def _check_max_steps(max_steps: int) -> None:
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")


@torch.no_grad()
def greedy_decode(
    net: Seq2SeqNet, src: Tensor, src_lens: Tensor, *, max_steps: int = 50, use_cache: bool = True
) -> Hypotheses:
    """Pick the most likely token at every step until <eos> or ``max_steps`` tokens; finished rows are dropped
    from the state, so the batch shrinks as sentences end."""
    _check_max_steps(max_steps)
    batch, device = src.shape[0], src.device
    state = net.start_decoding(src, src_lens, use_cache)
    out = torch.full((batch, max_steps), net.pad_id, dtype=torch.long, device=device)  # (B, max_steps)
    lengths = torch.full((batch,), max_steps, dtype=torch.long, device=device)
    scores = torch.zeros(batch, device=device)
    rows = torch.arange(batch, device=device)  # batch row of every live row
    tokens = torch.full((batch,), net.bos_id, dtype=torch.long, device=device)
    banned = _banned_tokens(net, device)
    for step in range(max_steps):
        log_probs, state = _next_log_probs(net, state, tokens, banned)  # (B_live, V)
        best, tokens = log_probs.max(dim=-1)  # (B_live,)
        scores[rows] += best
        ended = tokens == net.eos_id
        out[rows, step] = tokens.masked_fill(ended, net.pad_id)
        lengths[rows[ended]] = step
        if ended.any():
            live = (~ended).nonzero().squeeze(1)
            if live.numel() == 0:
                break
            rows, tokens = rows[live], tokens[live]
            state.reorder(live)
    return Hypotheses(out[:, : int(lengths.max())].contiguous(), lengths, scores)


def gnmt_length_penalty(length: Tensor | int, alpha: float) -> Tensor | float:
    """``((5 + |Y|) / 6) ^ alpha`` (Wu et al., 2016, eq. 14); alpha = 0 ranks by raw log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    net: Seq2SeqNet,
    src: Tensor,
    src_lens: Tensor,
    *,
    beam_size: int = 4,
    length_penalty: float = 0.6,
    max_steps: int = 50,
    use_cache: bool = True,
) -> Hypotheses:
    """Batched beam search ranking finished hypotheses by ``log P(Y) / lp(|Y|)`` (GNMT length penalty).

    As in fairseq, each step takes the ``2K`` best expansions; those ending in <eos> among the best ``K`` are
    finished, the best ``K`` others live on. A sentence stops once it has ``K`` finished hypotheses (and leaves
    the state); after ``max_steps`` its live beams count as finished. With ``beam_size=1`` this is greedy search.
    """
    _check_max_steps(max_steps)
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    batch, device, k = src.shape[0], src.device, beam_size
    neg_inf = float("-inf")
    state = net.start_decoding(src, src_lens, use_cache)
    state.reorder(torch.arange(batch, device=device).repeat_interleave(k))  # (B * K) rows, a sentence's K adjacent
    # Finished hypotheses of every sentence: tokens without <eos>, their lengths and normalised scores.
    done_tokens = torch.full((batch, k, max_steps), net.pad_id, dtype=torch.long, device=device)  # (B, K, max_steps)
    done_lengths = torch.zeros(batch, k, dtype=torch.long, device=device)  # (B, K)
    done_scores = torch.full((batch, k), neg_inf, device=device)  # (B, K); -inf: empty slot
    # Live beams of the sentences still searching; rows maps them to the batch.
    rows = torch.arange(batch, device=device)
    history = torch.empty(batch, k, 0, dtype=torch.long, device=device)  # (B_live, K, t)
    raw = torch.full((batch, k), neg_inf, device=device)  # (B_live, K) summed log-probabilities
    raw[:, 0] = 0.0  # the K beams start identical: expand only the first
    tokens = torch.full((batch * k,), net.bos_id, dtype=torch.long, device=device)
    banned = _banned_tokens(net, device)

    def finish(candidates: Tensor, candidate_lengths: Tensor, candidate_scores: Tensor) -> None:
        """Merge candidates ``(B_live, C, max_steps)`` into the finished pools of ``rows``, keeping the best K."""
        scores = torch.cat([done_scores[rows], candidate_scores], dim=1)  # (B_live, K + C)
        best_scores, best = scores.topk(k, dim=1)  # (B_live, K)
        done_lengths[rows] = torch.cat([done_lengths[rows], candidate_lengths], dim=1).gather(1, best)
        pool = torch.cat([done_tokens[rows], candidates], dim=1)  # (B_live, K + C, max_steps)
        done_tokens[rows] = pool.gather(1, best.unsqueeze(-1).expand(-1, -1, max_steps))
        done_scores[rows] = best_scores

    for step in range(max_steps):
        live = rows.shape[0]
        log_probs, state = _next_log_probs(net, state, tokens, banned)  # (B_live * K, V)
        vocab = log_probs.shape[-1]
        expanded = (raw.unsqueeze(-1) + log_probs.view(live, k, vocab)).view(live, k * vocab)  # (B_live, K * V)
        top_raw, top_index = expanded.topk(min(2 * k, k * vocab), dim=1)  # (B_live, 2K), best first
        origin, word = top_index // vocab, top_index % vocab  # beam it extends, token it adds
        prefixes = history.gather(1, origin.unsqueeze(-1).expand(-1, -1, step))  # (B_live, 2K, t)

        is_eos = word == net.eos_id
        ends = is_eos.clone()
        ends[:, k:] = False  # only an <eos> among the best K finishes a hypothesis
        if ends.any():
            candidates = torch.full((live, ends.shape[1], max_steps), net.pad_id, dtype=torch.long, device=device)
            candidates[:, :, :step] = prefixes
            normalised = torch.where(ends, top_raw / gnmt_length_penalty(step + 1, length_penalty), neg_inf)
            finish(candidates, torch.full_like(word, step), normalised)

        raw, keep = top_raw.masked_fill(is_eos, neg_inf).topk(k, dim=1)  # (B_live, K) the live beams
        word = word.gather(1, keep)
        history = torch.cat([prefixes.gather(1, keep.unsqueeze(-1).expand(-1, -1, step)), word.unsqueeze(-1)], dim=2)
        tokens = word.reshape(-1)  # (B_live * K,)
        beam_rows = (torch.arange(live, device=device).unsqueeze(1) * k + origin.gather(1, keep)).reshape(-1)

        finished = torch.isfinite(done_scores[rows]).all(1) | ~torch.isfinite(raw).any(1)  # (B_live,)
        if finished.any():
            still = (~finished).nonzero().squeeze(1)
            rows, raw, history = rows[still], raw[still], history[still]
            tokens = tokens.view(live, k)[still].reshape(-1)
            beam_rows = beam_rows.view(live, k)[still].reshape(-1)
        if rows.numel() == 0 or step + 1 == max_steps:
            break
        state.reorder(beam_rows)
    if rows.numel():  # out of steps: the live beams finish as they stand, without <eos>
        steps = history.shape[2]
        candidates = torch.full((rows.shape[0], k, max_steps), net.pad_id, dtype=torch.long, device=device)
        candidates[:, :, :steps] = history
        finish(candidates, torch.full_like(history[:, :, 0], steps), raw / gnmt_length_penalty(steps, length_penalty))
    best = done_scores.argmax(dim=1, keepdim=True)  # (B, 1)
    lengths = done_lengths.gather(1, best).squeeze(1)  # (B,)
    tokens = done_tokens.gather(1, best.unsqueeze(-1).expand(-1, -1, max_steps)).squeeze(1)  # (B, max_steps)
    return Hypotheses(tokens[:, : int(lengths.max())].contiguous(), lengths, done_scores.gather(1, best).squeeze(1))


STRATEGIES = ("greedy", "beam")
Search = Callable[[Seq2SeqNet, Tensor, Tensor], Hypotheses]  # (net, src (B, S), src_lens (B,)) -> hypotheses


@dataclass(frozen=True)
class SearchConfig:
    """How to decode: ``strategy`` greedy | beam, and the search limits (the ``decode:`` node of a model config)."""

    strategy: str = "greedy"  # greedy | beam
    beam_size: int = 4  # hypotheses kept per sentence (beam)
    length_penalty: float = 0.6  # GNMT alpha (beam); 0 ranks by raw log-probability
    max_steps: int = 50  # most output tokens per sentence, <eos> included
    use_cache: bool = True  # reuse past keys/values (Transformer) instead of recomputing the prefix

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"decode strategy={self.strategy!r} is not one of {list(STRATEGIES)}")
        _check_max_steps(self.max_steps)
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise ValueError(f"beam_size must be a positive int, got {self.beam_size!r}")
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {self.length_penalty}")

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None) -> SearchConfig:
        options = dict(options or {})
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown decode options {unknown}; allowed: {[f.name for f in fields(cls)]}")
        return cls(**options)

    def build(self) -> Search:
        """The search function ``search(net, src, src_lens) -> Hypotheses`` these options describe."""
        searches = {
            "greedy": partial(greedy_decode, max_steps=self.max_steps, use_cache=self.use_cache),
            "beam": partial(
                beam_search, beam_size=self.beam_size, length_penalty=self.length_penalty,
                max_steps=self.max_steps, use_cache=self.use_cache,
            ),
        }
        return searches[self.strategy]
