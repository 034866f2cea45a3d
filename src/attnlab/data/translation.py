"""Sentence-pair translation data (d2l 10.5): one DataModule over an injected corpus (``fra_eng``, ``parallel``).

Shape legend: B batch, S source length (tokens + <eos>).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab.data.corpora import SPLITS, Corpus
from attnlab.data.corpus_store import PreparedCorpus, PreparedCorpusHooks
from attnlab.data.pairs import PairDataset, collate_pairs
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.samplers import BucketBatchSampler, SeededPermutation, rank_world
from attnlab.data.spec import TextSpec, TranslationText
from attnlab.data.tokenizers import TextTokenizer, word
from attnlab.data.translation_prep import TOKENIZER_KEYS, PairPreparation, PreparedPairs, check_positive


def special_ids(tokenizer: TextTokenizer) -> dict[str, int]:
    """``pad_id``, ``bos_id``, ``eos_id`` of a target tokenizer: what collation pads and wraps with, and the model's."""
    return {f"{name}_id": tokenizer.token_to_id(f"<{name}>") for name in ("pad", "bos", "eos")}


class TranslationDataModule(PreparedCorpusHooks, pl.LightningDataModule):
    """Translation pairs from an injected ``corpus``, tokenized, cached and batched for seq2seq models.

    Preparing the pairs is :class:`~attnlab.data.translation_prep.PairPreparation`, the life of their shards
    :class:`~attnlab.data.corpus_store.PreparedCorpus`; this class adds the hooks and the loaders. Batches are
    length-bucketed and, under DDP, sharded by rank (:class:`~attnlab.data.samplers.BucketBatchSampler`); each
    carries every pair's ``index`` into :meth:`texts`, so hypotheses are gathered in corpus order and scored against
    the raw references.

    Args:
        corpus, tokenizer (a builder), joint_vocab, preprocess, val/test_fraction, num_train/val/test, max_len,
            length_policy, split_seed: how the pairs are prepared, :class:`~.translation_prep.PairPreparation`.
        batch_size / max_tokens: rows per batch, or (when max_tokens is set, which wins) a padded-token budget.
        bucket_size: examples per length-sorting chunk (larger: less padding, less randomness).
        cache_dir: root of the token shards, written once and memory-mapped by every rank (None: in memory).
        output_dir: where tokenizer_src.json / tokenizer_tgt.json are written (None: the working directory).
        seed: fixes the batch order of every epoch.
        examples: fixed (source, reference) pairs that a model translates and scores with d2l's BLEU after
            testing (fra-eng: d2l's four sentences), unless the model is given its own.
    """

    def __init__(
        self, corpus: Corpus, tokenizer: Callable[[], TextTokenizer] = word, joint_vocab: bool = False,
        preprocess: bool = True, val_fraction: float = 0.05, test_fraction: float = 0.05,
        num_train: int | None = None, num_val: int | None = None, num_test: int | None = None,
        max_len: int | None = None, length_policy: str = "truncate",
        batch_size: int | None = 64, max_tokens: int | None = None, bucket_size: int = 4096, num_workers: int = 0,
        cache_dir: str | os.PathLike | None = None, output_dir: str | os.PathLike | None = None,
        seed: int = 0, examples: Sequence[Sequence[str]] = (), split_seed: int = 0,
    ):
        super().__init__()
        self.examples = tuple(tuple(str(text) for text in pair) for pair in examples)
        if bad := [pair for pair in self.examples if len(pair) != 2]:
            raise ValueError(f"examples must be [source, reference] pairs, got {bad}")
        self.preparation = PairPreparation(
            corpus, tokenizer, joint_vocab=joint_vocab, preprocess=preprocess, val_fraction=val_fraction,
            test_fraction=test_fraction, num_train=num_train, num_val=num_val, num_test=num_test, max_len=max_len,
            length_policy=length_policy, split_seed=split_seed,
        )
        check_positive(batch_size=batch_size, max_tokens=max_tokens)
        if batch_size is None and max_tokens is None:
            raise ValueError("set batch_size or max_tokens (both are None)")
        if bucket_size < 1 or num_workers < 0:
            raise ValueError(f"need bucket_size >= 1 and num_workers >= 0, got {bucket_size}, {num_workers}")
        self.batch_size = None if max_tokens is not None else batch_size
        self.max_tokens, self.bucket_size, self.num_workers, self.seed = max_tokens, bucket_size, num_workers, seed
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.prepared = PreparedCorpus(f"translation-{corpus.name}", TOKENIZER_KEYS, tokenizer,
                                       self.preparation.config(), corpus.files, self.preparation.write, cache_dir)
        self._pairs: PreparedPairs | None = None

    # -- Lightning hooks (prepare_data and the checkpointed tokenizers: PreparedCorpusHooks) ----------------------
    def setup(self, stage: str | None = None) -> None:
        """Map (or prepare) the shards; rank 0 writes the tokenizers beside the run."""
        if self._pairs is None:
            self._pairs = PreparedPairs(self.prepared.load())
            if rank_world()[0] == 0:
                directory = self.output_dir or Path.cwd()
                self.src_tokenizer.save(directory / "tokenizer_src.json")
                self.tgt_tokenizer.save(directory / "tokenizer_tgt.json")

    def _unload(self) -> bool:
        loaded, self._pairs = self._pairs is not None, None
        return loaded

    def train_dataloader(self) -> DataLoader:
        """Reshuffled every epoch; in corpus order under ``overfit_batches`` (``debug=overfit``), as Lightning's own
        samplers are then, so the few batches a run memorises are the same every epoch."""
        overfitting = self.trainer is not None and self.trainer.overfit_batches > 0
        return self._loader("train", shuffle=not overfitting, equal_shards=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, equal_shards=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, equal_shards=False)

    # -- what models, tasks and inference read (the tokenizers after setup or load_state_dict) -------------------
    @property
    def src_tokenizer(self) -> TextTokenizer:
        return self.prepared.tokenizer("tokenizer_src")

    @property
    def tgt_tokenizer(self) -> TextTokenizer:
        return self.prepared.tokenizer("tokenizer_tgt")

    @property
    def datasets(self) -> dict[str, PairDataset]:
        return self._ready().datasets

    def spec(self) -> TextSpec:
        """Vocabulary sizes and the target's special ids (the data is prepared first unless they are known)."""
        self.prepare_tokenizers()
        src, tgt = self.src_tokenizer, self.tgt_tokenizer
        return TextSpec(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, **special_ids(tgt))

    def task_text(self) -> TranslationText:
        """What the translation task reads of this data; after :meth:`spec`."""
        return TranslationText(self.src_tokenizer, self.tgt_tokenizer, source_ids=self.encode_source,
                               detokenize=self.decode_target, references=self.texts, examples=self.examples)

    def encode_source(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Source sentences as the model sees them: ``(src (B, S), src_lens (B,))``, truncated to max_len."""
        rows = self.preparation.source_rows(self.src_tokenizer, texts)
        empty = torch.empty(0, dtype=torch.int32)
        batch = self._collate()([(i, torch.tensor(row, dtype=torch.int32), empty) for i, row in enumerate(rows)])
        return batch.src, batch.src_lens

    def decode_target(self, ids: Tensor | Sequence[Sequence[int]]) -> list[str]:
        """Target text of each row of ids, cut at the first <eos>; <bos>/<pad>/<unk> are dropped."""
        rows = ids.tolist() if isinstance(ids, Tensor) else [list(row) for row in ids]
        eos = self.tgt_tokenizer.token_to_id("<eos>")
        return self.tgt_tokenizer.decode_batch([row[: row.index(eos)] if eos in row else row for row in rows])

    def texts(self, split: str) -> tuple[list[str], list[str]]:
        """``(sources, references)`` of a split in corpus order, normalised (``preprocess``) but never tokenized
        or truncated: the references of scoring. Entry i is the pair that batches carry as ``index == i``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return self._ready().texts(split)

    def val_examples(self, n: int) -> list[tuple[str, str]]:
        """The first ``n`` validation pairs (source, target as in :meth:`texts`): fixed sentences for heatmaps."""
        sources, targets = self.texts("val")
        return list(zip(sources[:n], targets[:n]))

    # -- internals ----------------------------------------------------------------------------------------------
    def _ready(self) -> PreparedPairs:
        if self._pairs is None:
            raise ValueError(f"{type(self).__name__} is not set up yet: call setup() first")
        return self._pairs

    def _collate(self) -> Callable[[Sequence[tuple[int, Tensor, Tensor]]], Any]:
        return partial(collate_pairs, **special_ids(self.tgt_tokenizer))

    def _loader(self, split: str, shuffle: bool, equal_shards: bool) -> DataLoader:
        """This rank's length-bucketed batches; ``equal_shards``: the same step count on every rank (training),
        else each pair on exactly one rank (evaluation). A mid-epoch checkpoint resumes at the next batch."""
        dataset = self.datasets[split]
        rank, world_size = rank_world()
        sampler = BucketBatchSampler(
            SeededPermutation(len(dataset), shuffle=shuffle, seed=self.seed), dataset.lengths(),
            batch_size=self.batch_size, max_tokens=self.max_tokens, bucket_size=self.bucket_size, rank=rank,
            world_size=world_size, equal_shards=equal_shards,
        )
        return ResumableDataLoader(dataset, batch_sampler=sampler, collate_fn=self._collate(),
                                   num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
