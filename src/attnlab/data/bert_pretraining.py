"""BERT pretraining examples (Devlin et al., 2019, sec. 3.1; d2l 15.9): next-sentence pairs and masked-LM targets.

Shape legend: N examples in an epoch, B batch, T max_len, P prediction slots per sequence, L corpus tokens,
S sentences, G paragraphs.

A corpus is encoded once (cached on disk); every epoch then draws fresh pairs from ``(seed, split, epoch)``
and masks from ``(seed, split, epoch, rank)`` with whole-array torch operations (no per-token Python), so an
epoch of WikiText-2 takes about a second on one CPU core.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab.data.examples import TensorExamples, already_batched
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.tokenizer_state import TokenizerState
from attnlab.data.tokenizers import TextTokenizer
from attnlab.data.wikitext import WIKITEXT2_SPLITS, read_wikitext2, wikitext2_file

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
LONG_PAIR_POLICIES = ("drop", "truncate")
SPLIT_STREAMS = {split: index for index, split in enumerate(WIKITEXT2_SPLITS)}  # separates the splits' RNG streams
CACHE_FORMAT = 1  # bump when the preparation or the cache layout changes


class SpecialIds(NamedTuple):
    """Ids of the special tokens; ``[UNK]`` counts as special, so it is never a prediction target."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @classmethod
    def from_tokenizer(cls, tokenizer: TextTokenizer) -> SpecialIds:
        missing = [token for token in SPECIAL_TOKENS if token not in tokenizer.specials]
        if missing:
            raise ValueError(f"tokenizer lacks the special tokens {missing}; train it with specials {SPECIAL_TOKENS}")
        return cls(*(tokenizer.token_to_id(token) for token in SPECIAL_TOKENS))

    def replacement_ids(self, vocab_size: int) -> Tensor:
        """Every non-special id: the pool the 10 % random replacements are drawn from."""
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[list(self)] = False
        return keep.nonzero().squeeze(1)  # (V - 5,)


class EncodedCorpus(NamedTuple):
    """Paragraphs of encoded sentences, stored flat (the cache format)."""

    token_ids: Tensor  # (L,) every sentence's ids, concatenated
    sentence_offsets: Tensor  # (S + 1,) sentence s is token_ids[sentence_offsets[s]:sentence_offsets[s + 1]]
    paragraph_offsets: Tensor  # (G + 1,) paragraph g is sentences paragraph_offsets[g]:paragraph_offsets[g + 1]

    @classmethod
    def encode(cls, paragraphs: Sequence[Sequence[str]], tokenizer: TextTokenizer) -> EncodedCorpus:
        """Encode every sentence with one call to the tokenizer's batch API."""
        sentences = list(chain.from_iterable(paragraphs))
        encoded = tokenizer.encode_batch(sentences)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        token_ids = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        sizes = np.fromiter(map(len, paragraphs), dtype=np.int64, count=len(paragraphs))
        return cls(torch.from_numpy(token_ids), _offsets(lengths), _offsets(sizes))

    @property
    def num_sentences(self) -> int:
        return len(self.sentence_offsets) - 1

    @property
    def num_paragraphs(self) -> int:
        return len(self.paragraph_offsets) - 1

    def sentence(self, index: int) -> list[int]:
        return self.token_ids[self.sentence_offsets[index] : self.sentence_offsets[index + 1]].tolist()


def _offsets(lengths: np.ndarray) -> Tensor:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return torch.from_numpy(offsets)


class SentencePairs(NamedTuple):
    """Sentence pairs for next-sentence prediction, as indices into an :class:`EncodedCorpus`."""

    first: Tensor  # (N,) sentence index of A
    second: Tensor  # (N,) sentence index of B
    first_len: Tensor  # (N,) tokens of A kept (after truncation)
    second_len: Tensor  # (N,) tokens of B kept
    is_next: Tensor  # (N,) bool, True when B follows A in the text


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
    """Generators fixed by ``(seed, split, epoch)`` for the pairs and by ``(seed, split, epoch, rank)`` for the masks.

    Every epoch draws anew, reproducibly. Pairs are shared across ranks so that all ranks hold the same number
    of examples (unequal batch counts would hang DDP) and the distributed sampler hands each rank a disjoint
    share of them; each rank masks with its own generator.
    """
    if min(seed, epoch, rank) < 0:
        raise ValueError(f"seed, epoch and rank must be >= 0, got seed={seed}, epoch={epoch}, rank={rank}")

    def generator(purpose: int, of_rank: int) -> torch.Generator:
        entropy = [seed, SPLIT_STREAMS[split], epoch, purpose, of_rank]
        state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)
        return torch.Generator().manual_seed(int(state[0]))

    return EpochGenerators(pairs=generator(0, 0), masks=generator(1, rank))


def truncate_longest_first(first_len: Tensor, second_len: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """Closed form of BERT's ``truncate_seq_pair``: drop a token from the longer side (B on ties) until it fits.

    The shorter side is untouched while it fits in half the budget; otherwise A keeps ``ceil(budget / 2)``
    tokens and B ``floor(budget / 2)``. Tokens are cut from the end of a sentence.
    """
    half_up, half_down = (budget + 1) // 2, budget // 2
    over = first_len + second_len > budget
    first_fits = 2 * first_len <= budget  # A short: only B shrinks
    second_fits = 2 * second_len <= budget  # B short: only A shrinks
    new_first = torch.where(second_fits, budget - second_len, torch.full_like(first_len, half_up))
    new_second = torch.where(first_fits, budget - first_len, torch.full_like(second_len, half_down))
    new_first = torch.where(first_fits, first_len, new_first)
    new_second = torch.where(second_fits & ~first_fits, second_len, new_second)
    return torch.where(over, new_first, first_len), torch.where(over, new_second, second_len)


def sample_sentence_pairs(
    corpus: EncodedCorpus, generator: torch.Generator, max_len: int, long_pairs: str = "drop"
) -> SentencePairs:
    """One pair per consecutive sentence pair (A, A+1) of a paragraph; B stays the true successor with
    probability 1/2, else it is drawn uniformly from the sentences of *other* paragraphs (d2l may draw
    from A's own paragraph). Pairs longer than ``max_len`` with [CLS] and two [SEP] are dropped or
    truncated longest-first, per ``long_pairs``.
    """
    if long_pairs not in LONG_PAIR_POLICIES:
        raise ValueError(f"long_pairs must be one of {LONG_PAIR_POLICIES}, got {long_pairs!r}")
    if max_len < 5:
        raise ValueError(f"max_len must leave room for [CLS] A [SEP] B [SEP] (>= 5), got {max_len}")
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
    second = torch.where(is_next, first + 1, random_second)

    lengths = corpus.sentence_offsets.diff()  # (S,)
    first_len, second_len = lengths[first], lengths[second]
    budget = max_len - 3
    if long_pairs == "truncate":
        first_len, second_len = truncate_longest_first(first_len, second_len, budget)
        return SentencePairs(first, second, first_len, second_len, is_next)
    fits = first_len + second_len <= budget
    return SentencePairs(first[fits], second[fits], first_len[fits], second_len[fits], is_next[fits])


def assemble_pairs(
    corpus: EncodedCorpus, pairs: SentencePairs, max_len: int, ids: SpecialIds
) -> tuple[Tensor, Tensor, Tensor]:
    """``[CLS] A [SEP] B [SEP]`` padded to ``max_len``: tokens (N, T), segments (N, T), valid_lens (N,)."""
    t = torch.arange(max_len).unsqueeze(0)  # (1, T)
    len_a, len_b = pairs.first_len.unsqueeze(1), pairs.second_len.unsqueeze(1)  # (N, 1)
    in_a = (t >= 1) & (t <= len_a)  # (N, T)
    in_b = (t >= len_a + 2) & (t <= len_a + len_b + 1)
    source = torch.where(in_a, corpus.sentence_offsets[pairs.first].unsqueeze(1) + t - 1, 0)
    source = torch.where(in_b, corpus.sentence_offsets[pairs.second].unsqueeze(1) + t - len_a - 2, source)
    tokens = torch.where(in_a | in_b, corpus.token_ids[source], ids.pad)  # (N, T)
    tokens[:, 0] = ids.cls
    is_sep = (t == len_a + 1) | (t == len_a + len_b + 2)
    tokens = torch.where(is_sep, ids.sep, tokens)
    segments = ((t >= len_a + 2) & (t <= len_a + len_b + 2)).long()  # (N, T)
    valid_lens = (len_a + len_b + 3).squeeze(1)  # (N,)
    return tokens, segments, valid_lens


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
) -> PretrainingBatch:
    """One epoch of pretraining examples in a random order: pairs and order, then masks."""
    pairs = sample_sentence_pairs(corpus, generators.pairs, max_len, long_pairs)
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


class WikiText2DataModule(TokenizerState, pl.LightningDataModule):
    """WikiText-2 (``wiki.{train,valid,test}.tokens``) as BERT pretraining batches.

    The tokenizer is trained on the training split only and the encoded sentences of all three splits are
    cached in ``cache_dir`` (keyed by the tokenizer config, or a restored tokenizer's JSON, and the files'
    path, size and mtime). Training examples are drawn afresh every epoch in :meth:`train_dataloader`, which
    reads the attached trainer's ``current_epoch`` and ``global_rank``: the trainer must run with
    ``reload_dataloaders_every_n_epochs=1`` so that it asks for a new loader each epoch. Under DDP every rank
    draws the same pairs in the same order and its own masks, and Lightning's distributed sampler
    (``use_distributed_sampler``, on by default) gives each rank a disjoint share. Validation and test examples
    are drawn once, the same on every rank and epoch, so their losses compare.
    """

    def __init__(
        self,
        tokenizer: Callable[[], TextTokenizer],
        data_dir: str | os.PathLike = "data/wikitext-2",
        batch_size: int = 512,
        max_len: int = 64,
        long_pairs: str = "drop",
        mask_prob: float = 0.15,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        if not callable(tokenizer):
            raise ValueError(f"tokenizer must build an untrained TextTokenizer (_partial_: true), got {tokenizer!r}")
        if batch_size < 1 or num_workers < 0 or seed < 0:
            raise ValueError(
                f"need batch_size >= 1, num_workers >= 0, seed >= 0; got {batch_size}, {num_workers}, {seed}"
            )
        if long_pairs not in LONG_PAIR_POLICIES:
            raise ValueError(f"long_pairs must be one of {LONG_PAIR_POLICIES}, got {long_pairs!r}")
        if max_len < 5 or not 0.0 < mask_prob < 1.0:
            raise ValueError(f"need max_len >= 5 and 0 < mask_prob < 1, got max_len={max_len}, mask_prob={mask_prob}")
        self.build_tokenizer = tokenizer
        self.data_dir = Path(data_dir)
        self.batch_size, self.max_len, self.long_pairs, self.mask_prob = batch_size, max_len, long_pairs, mask_prob
        self.num_workers, self.seed = num_workers, seed
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.tokenizer: TextTokenizer | None = None  # trained in setup, or restored by load_state_dict
        self.corpora: dict[str, EncodedCorpus] | None = None
        self._eval_examples: dict[str, PretrainingBatch] = {}

    # ---- preparation ----------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Fetch the files and write the cache in one process per node, so that the other ranks only load them."""
        self._files()
        if self.cache_dir is not None:
            self._load_or_encode()

    def setup(self, stage: str | None = None) -> None:
        if self.corpora is None:
            self.tokenizer, self.corpora = self._load_or_encode()
            self._eval_examples.clear()
        self.special_ids = SpecialIds.from_tokenizer(self.tokenizer)
        self.replacement_ids = self.special_ids.replacement_ids(self.tokenizer.vocab_size)

    def _files(self) -> dict[str, Path]:
        return {split: wikitext2_file(self.data_dir, split) for split in WIKITEXT2_SPLITS}

    def _cache_path(self, files: dict[str, Path]) -> Path | None:
        if self.cache_dir is None:
            return None
        if self.tokenizer is None:
            tokenizer_key = self.build_tokenizer().config
        else:
            tokenizer_key = hashlib.sha256(self.tokenizer.to_str().encode()).hexdigest()
        stats = {split: (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for split, p in files.items()}
        key = json.dumps([CACHE_FORMAT, SPECIAL_TOKENS, tokenizer_key, stats], sort_keys=True)
        return self.cache_dir / f"wikitext2-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"

    def _load_or_encode(self) -> tuple[TextTokenizer, dict[str, EncodedCorpus]]:
        files = self._files()
        path = self._cache_path(files)
        if path is not None and path.is_file():
            state = torch.load(path, weights_only=True)
            tokenizer = self.tokenizer or TextTokenizer.from_str(state["tokenizer"])
            return tokenizer, {split: EncodedCorpus(**state[split]) for split in WIKITEXT2_SPLITS}
        paragraphs = {split: read_wikitext2(self.data_dir, split) for split in WIKITEXT2_SPLITS}
        tokenizer = self.tokenizer
        if tokenizer is None:
            tokenizer = self.build_tokenizer().train(chain.from_iterable(paragraphs["train"]), SPECIAL_TOKENS)
        corpora = {split: EncodedCorpus.encode(paragraphs[split], tokenizer) for split in WIKITEXT2_SPLITS}
        if path is not None:
            state = {"tokenizer": tokenizer.to_str(), **{split: c._asdict() for split, c in corpora.items()}}
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(state, partial)
            os.replace(partial, path)  # atomic: concurrent ranks never read a half-written cache
            log.info("cached encoded WikiText-2 at %s", path)
        return tokenizer, corpora

    def net_kwargs(self) -> dict:
        """Model sizes known only from the data; valid after ``setup``."""
        if self.corpora is None:
            raise RuntimeError("net_kwargs() needs the trained tokenizer: call setup() first")
        return {"vocab_size": self.tokenizer.vocab_size, "pad_id": self.special_ids.pad, "max_len": self.max_len}

    # ---- examples -------------------------------------------------------------------------------------------
    def examples(self, split: str, epoch: int = 0, rank: int = 0) -> PretrainingBatch:
        """All examples of ``split`` for one epoch, in a random order; ``rank`` changes only the masks."""
        if self.corpora is None:
            raise RuntimeError("examples() needs the encoded corpus: call setup() first")
        if split not in WIKITEXT2_SPLITS:
            raise ValueError(f"split must be one of {WIKITEXT2_SPLITS}, got {split!r}")
        generators = epoch_generators(self.seed, split, epoch, rank)
        return draw_examples(
            self.corpora[split], self.special_ids, self.replacement_ids, generators,
            self.max_len, self.long_pairs, self.mask_prob,
        )

    def _loader(self, examples: PretrainingBatch) -> DataLoader:
        """Batches in the drawn order, which ``(seed, split, epoch, rank)`` fixes, so a mid-epoch checkpoint
        resumes at the next batch of the same order."""
        return ResumableDataLoader(
            TensorExamples(examples), batch_size=self.batch_size, shuffle=False,  # examples come shuffled
            num_workers=self.num_workers, collate_fn=already_batched,
        )

    def train_dataloader(self) -> DataLoader:
        epoch, rank = 0, 0
        if self.trainer is not None:
            if self.trainer.reload_dataloaders_every_n_epochs != 1:
                raise ValueError(
                    "WikiText2DataModule draws new pairs and masks each epoch in train_dataloader(); run the trainer "
                    "with reload_dataloaders_every_n_epochs=1, got "
                    f"{self.trainer.reload_dataloaders_every_n_epochs}"
                )
            epoch, rank = self.trainer.current_epoch, self.trainer.global_rank
        return self._loader(self.examples("train", epoch, rank))

    def _fixed_loader(self, split: str) -> DataLoader:
        if split not in self._eval_examples:
            self._eval_examples[split] = self.examples(split)
        return self._loader(self._eval_examples[split])

    def val_dataloader(self) -> DataLoader:
        return self._fixed_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._fixed_loader("test")

    # ---- checkpointed state ---------------------------------------------------------------------------------
    def _reencode(self) -> None:
        if self.corpora is not None:
            self.corpora = None
            self.setup()
