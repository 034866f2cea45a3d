"""BERT pretraining examples (Devlin et al., 2019, sec. 3.1; d2l 15.9): next-sentence pairs and masked-LM targets.

Shape legend: N examples in an epoch, B batch, T max_len, P prediction slots per sequence, S sentences,
G paragraphs.

Every epoch draws fresh pairs and masks (:func:`epoch_generators`) with whole-array torch operations (no per-token
Python), so an epoch of WikiText-2 takes about a second on one CPU core.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from attnlab.data.bert_inputs import EncodedCorpus, SentencePairs, SpecialIds, assemble_pairs, truncate_longest_first
from attnlab.data.wikitext import WIKITEXT2_SPLITS

LONG_PAIR_POLICIES = ("drop", "truncate")
OBJECTIVES = ("nsp", "sop")  # negatives: a random sentence of another paragraph (NSP) or the true pair swapped (SOP)
SPLIT_STREAMS = {split: index for index, split in enumerate(WIKITEXT2_SPLITS)}  # separates the splits' RNG streams


def check_options(max_len: int, long_pairs: str, objective: str, mask_prob: float = 0.15) -> None:
    """A ValueError naming the first option that examples cannot be drawn with."""
    if long_pairs not in LONG_PAIR_POLICIES:
        raise ValueError(f"long_pairs must be one of {LONG_PAIR_POLICIES}, got {long_pairs!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if max_len < 5:
        raise ValueError(f"max_len must leave room for [CLS] A [SEP] B [SEP] (>= 5), got {max_len}")
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got mask_prob={mask_prob}")


class MaskedTokens(NamedTuple):
    """Masked-LM inputs and gathered targets (only the P slots are predicted, not all T positions)."""

    tokens: Tensor  # (N, T) with chosen positions replaced (80 % [MASK], 10 % random, 10 % unchanged)
    positions: Tensor  # (N, P) chosen positions, ascending; 0 in padding slots
    labels: Tensor  # (N, P) original ids at those positions; pad id in padding slots
    mask: Tensor  # (N, P) bool, True for a real prediction slot


class PretrainingBatch(NamedTuple):
    tokens: Tensor  # (B, T) [CLS] A [SEP] B [SEP] [PAD]..., after masking
    segments: Tensor  # (B, T) 0 for [CLS] A [SEP] (and padding), 1 for B [SEP]
    valid_lens: Tensor  # (B,) len(A) + len(B) + 3
    mlm_positions: Tensor  # (B, P) positions to predict
    mlm_labels: Tensor  # (B, P) original ids there
    mlm_mask: Tensor  # (B, P) bool, False for padding slots: they must not count in the loss
    nsp_labels: Tensor  # (B,) 1 when B is A's next sentence, 0 when drawn from another paragraph


class EpochGenerators(NamedTuple):
    pairs: torch.Generator  # pairs and their order: the same on every rank
    masks: torch.Generator  # masks: this rank's own


def epoch_generators(seed: int, split: str, epoch: int, rank: int) -> EpochGenerators:
    """Generators fixed by ``(seed, split, epoch)`` for the pairs and by ``(seed, split, epoch, rank)`` for the masks:
    every rank holds the same pairs (unequal batch counts would hang DDP) and takes its own share of their batches."""
    if min(seed, epoch, rank) < 0:
        raise ValueError(f"seed, epoch and rank must be >= 0, got seed={seed}, epoch={epoch}, rank={rank}")
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {WIKITEXT2_SPLITS}, got {split!r}")

    def generator(purpose: int, of_rank: int) -> torch.Generator:
        entropy = [seed, SPLIT_STREAMS[split], epoch, purpose, of_rank]
        state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)
        return torch.Generator().manual_seed(int(state[0]))

    return EpochGenerators(pairs=generator(0, 0), masks=generator(1, rank))


def sample_sentence_pairs(
    corpus: EncodedCorpus, generator: torch.Generator, max_len: int, long_pairs: str = "drop", objective: str = "nsp"
) -> SentencePairs:
    """One pair per consecutive sentence pair (A, A+1) of a paragraph; B stays the true successor with
    probability 1/2. Otherwise, for next-sentence prediction (``objective="nsp"``), B is drawn uniformly from the
    sentences of *other* paragraphs (d2l may draw from A's own paragraph); for sentence-order prediction
    (``"sop"``, Lan et al., 2020, ALBERT) the pair is the same two sentences in swapped order (A+1, A).
    ``is_next`` is True for the true pair in its order. Pairs longer than ``max_len`` with [CLS] and two [SEP]
    are dropped or truncated longest-first, per ``long_pairs``.
    """
    check_options(max_len, long_pairs, objective)
    if corpus.num_paragraphs < 2:
        raise ValueError(f"need >= 2 paragraphs to draw random next sentences, got {corpus.num_paragraphs}")
    sizes = corpus.paragraph_offsets.diff()  # (G,)
    paragraph_of = torch.repeat_interleave(torch.arange(corpus.num_paragraphs), sizes)  # (S,)
    ends = corpus.paragraph_offsets[1:][paragraph_of]  # (S,) one past each sentence's paragraph
    first = (torch.arange(corpus.num_sentences) + 1 < ends).nonzero().squeeze(1)  # (N,) sentences with a successor
    paragraph = paragraph_of[first]
    start, size = corpus.paragraph_offsets[paragraph], sizes[paragraph]

    is_next = torch.rand(len(first), generator=generator) < 0.5
    outside = torch.rand(len(first), generator=generator, dtype=torch.float64) * (corpus.num_sentences - size)
    outside = outside.long().clamp_max(corpus.num_sentences - size - 1)  # uniform over the S - size others
    random_second = outside + (outside >= start) * size  # skip A's own paragraph
    if objective == "sop":
        first, second = torch.where(is_next, first, first + 1), torch.where(is_next, first + 1, first)
    else:
        second = torch.where(is_next, first + 1, random_second)

    lengths = corpus.sentence_lengths()  # (S,)
    first_len, second_len = lengths[first], lengths[second]
    budget = max_len - 3
    if long_pairs == "truncate":
        first_len, second_len = truncate_longest_first(first_len, second_len, budget)
        return SentencePairs(first, second, first_len, second_len, is_next)
    fits = first_len + second_len <= budget
    return SentencePairs(first[fits], second[fits], first_len[fits], second_len[fits], is_next[fits])


def num_prediction_slots(max_len: int, mask_prob: float) -> int:
    """P: the most predictions a sequence of ``max_len`` (at most ``max_len - 3`` ordinary tokens) can get."""
    return max(1, round(mask_prob * (max_len - 3)))


def mask_tokens(
    tokens: Tensor,
    candidates: Tensor,
    generator: torch.Generator,
    mask_id: int,
    replacement_ids: Tensor,
    pad_id: int,
    mask_prob: float = 0.15,
    num_slots: int | None = None,
) -> MaskedTokens:
    """Choose ``max(1, round(mask_prob * #candidates))`` candidate positions per row, uniformly without
    replacement; replace 80 % of them by [MASK], 10 % by a random non-special token, keep 10 % (BERT sec. 3.1).

    ``candidates`` (N, T) bool marks the positions that may be chosen (ordinary tokens); every row needs one.
    Targets come back gathered into ``num_slots`` slots (default: the largest count in the batch).
    """
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
    num_candidates = candidates.sum(1)  # (N,)
    if bool((num_candidates == 0).any()):
        raise ValueError(f"{int((num_candidates == 0).sum())} rows have no maskable token")
    counts = torch.round(mask_prob * num_candidates).long().clamp_min(1)  # (N,)
    most = int(counts.max()) if len(counts) else 0
    num_slots = most if num_slots is None else num_slots
    if most > num_slots:
        raise ValueError(f"a row needs {most} prediction slots, only num_slots={num_slots} given")

    keys = torch.rand(tokens.shape, generator=generator).masked_fill(~candidates, 2.0)  # non-candidates sort last
    order = keys.argsort(dim=1)[:, :num_slots]  # (N, P) a uniform random ordering of each row's candidates
    slot_mask = torch.arange(num_slots).unsqueeze(0) < counts.unsqueeze(1)  # (N, P)
    positions = torch.where(slot_mask, order, tokens.shape[1]).sort(dim=1).values  # (N, P) padding slots last
    positions = positions.masked_fill(~slot_mask, 0)
    labels = tokens.gather(1, positions)  # (N, P)

    roll = torch.rand(positions.shape, generator=generator)
    random_ids = replacement_ids[torch.randint(len(replacement_ids), positions.shape, generator=generator)]
    inputs = torch.where(roll < 0.8, mask_id, torch.where(roll < 0.9, random_ids, labels))  # (N, P)
    rows, slots = slot_mask.nonzero(as_tuple=True)  # real slots only: padding slots also point at position 0
    masked = tokens.clone()
    masked[rows, positions[rows, slots]] = inputs[rows, slots]
    return MaskedTokens(masked, positions, labels.masked_fill(~slot_mask, pad_id), slot_mask)


def draw_examples(
    corpus: EncodedCorpus,
    ids: SpecialIds,
    replacement_ids: Tensor,
    generators: EpochGenerators,
    max_len: int,
    long_pairs: str = "drop",
    mask_prob: float = 0.15,
    objective: str = "nsp",
) -> PretrainingBatch:
    """One epoch of pretraining examples in a random order: pairs and order, then masks."""
    pairs = sample_sentence_pairs(corpus, generators.pairs, max_len, long_pairs, objective)
    tokens, segments, valid_lens = assemble_pairs(corpus, pairs, max_len, ids)
    candidates = ~torch.isin(tokens, torch.tensor(list(ids)))  # (N, T) ordinary tokens only
    has_candidate = candidates.any(1)  # a pair of [UNK]-only (or empty) sentences has nothing to predict
    order = has_candidate.nonzero().squeeze(1)
    order = order[torch.randperm(len(order), generator=generators.pairs)]
    tokens, segments, valid_lens, candidates = tokens[order], segments[order], valid_lens[order], candidates[order]
    slots = num_prediction_slots(max_len, mask_prob)
    masked = mask_tokens(tokens, candidates, generators.masks, ids.mask, replacement_ids, ids.pad, mask_prob, slots)
    return PretrainingBatch(
        masked.tokens, segments, valid_lens, masked.positions, masked.labels, masked.mask, pairs.is_next[order].long()
    )


def cut_prediction_slots(batch: PretrainingBatch) -> PretrainingBatch:
    """Drop the prediction-slot columns no row of ``batch`` uses (padding slots sit last in every row), so the
    masked-LM head projects no padding slots in a batch of short pairs."""
    used = int(batch.mlm_mask.sum(1).max()) if len(batch.mlm_mask) else 0
    return batch._replace(mlm_positions=batch.mlm_positions[:, :used], mlm_labels=batch.mlm_labels[:, :used],
                          mlm_mask=batch.mlm_mask[:, :used])  # (B, P')
