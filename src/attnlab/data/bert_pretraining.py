"""WikiText-2 as BERT pretraining batches (d2l 15.9): a DataModule over :mod:`attnlab.data.pretraining_examples`."""
from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from itertools import chain
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab.data.bert_inputs import SPECIAL_TOKENS, EncodedCorpus, SpecialIds
from attnlab.data.corpus_store import PreparedCorpus, PreparedCorpusHooks
from attnlab.data.paragraph_shards import read_corpus, write_paragraphs
from attnlab.data.pretraining_examples import (
    PretrainingBatch, check_options, cut_prediction_slots, draw_examples, epoch_generators,
)
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.samplers import BucketBatchSampler, EpochDraws, SeededPermutation
from attnlab.data.shards import ShardWriter
from attnlab.data.spec import EncoderText, TextSpec
from attnlab.data.tokenizers import TOKENIZER_KEY, TextTokenizer
from attnlab.data.text_io import text_files
from attnlab.data.wikitext import WIKITEXT2_SPLITS, read_wikitext2, split_documents, wikitext2_file


class WikiText2DataModule(PreparedCorpusHooks, pl.LightningDataModule):
    """WikiText-2 (``wiki.{train,valid,test}.tokens``), or one's own ``text`` (a file or a directory, its valid and
    test splits carved out: :func:`~attnlab.data.wikitext.split_documents`), as BERT pretraining batches.

    The tokenizer is trained on the training split; the splits are encoded once into token shards under
    ``cache_dir`` (:class:`~attnlab.data.corpus_store.PreparedCorpus`; in memory without one) that every rank maps.
    Each loader draws its examples (:class:`~attnlab.data.samplers.EpochDraws`): training ones every epoch from
    ``(seed, split, epoch, rank)`` (epoch 0's under ``overfit_batches``), evaluation ones once, alike on every
    rank. Batches hold ``batch_size`` pairs in the drawn order or, with a ``bucket_size``, length-sorted by chunks
    of that many examples. Under DDP every rank draws the same pairs with its own masks and takes every
    ``world_size``-th batch: the trainer needs ``use_distributed_sampler=False``. ``objective``: the pair task's
    negatives, ``nsp`` (another paragraph's sentence, BERT) or ``sop`` (the pair swapped, ALBERT).
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
        bucket_size: int | None = None,
        objective: str = "nsp",
        text: str | os.PathLike | None = None,
    ):
        super().__init__()
        if not callable(tokenizer):
            raise ValueError(f"tokenizer must build an untrained TextTokenizer (_partial_: true), got {tokenizer!r}")
        if batch_size < 1 or num_workers < 0 or seed < 0:
            raise ValueError(
                f"need batch_size >= 1, num_workers >= 0, seed >= 0; got {batch_size}, {num_workers}, {seed}"
            )
        check_options(max_len, long_pairs, objective, mask_prob)
        if bucket_size is not None and bucket_size < batch_size:
            raise ValueError(f"bucket_size must be None or >= batch_size={batch_size}, got {bucket_size}")
        self.build_tokenizer, self.data_dir = tokenizer, Path(data_dir)
        self.text = None if text is None else Path(text)
        self.batch_size, self.max_len, self.long_pairs, self.mask_prob = batch_size, max_len, long_pairs, mask_prob
        self.num_workers, self.seed, self.bucket_size, self.objective = num_workers, seed, bucket_size, objective
        config = {"special_tokens": SPECIAL_TOKENS} | ({} if text is None else {"text_split_seed": seed})
        self.prepared = PreparedCorpus(  # the carved splits of one's own text depend on the seed
            "wikitext2" if text is None else "text", [TOKENIZER_KEY], tokenizer, config, self._files, self._fill,
            cache_dir,
        )
        self.corpora: dict[str, EncodedCorpus] | None = None
        self._draws: dict[str, EpochDraws] = {}  # each split's loader's, whichever loader Lightning keeps

    @property
    def tokenizer(self) -> TextTokenizer | None:
        return None if self.prepared.tokenizers is None else self.prepared.tokenizers[TOKENIZER_KEY]

    def setup(self, stage: str | None = None) -> None:
        if self.corpora is None:
            shards = self.prepared.load()
            self.corpora = {split: read_corpus(shards, split) for split in WIKITEXT2_SPLITS}
            self._draws.clear()
        self.special_ids = SpecialIds.from_tokenizer(self.tokenizer)
        self.replacement_ids = self.special_ids.replacement_ids(self.tokenizer.vocab_size)

    def _files(self) -> list[Path]:
        if self.text is not None:
            return text_files(self.text)
        return [wikitext2_file(self.data_dir, split) for split in WIKITEXT2_SPLITS]

    def _fill(self, writer: ShardWriter, tokenizers: dict[str, TextTokenizer] | None) -> dict[str, TextTokenizer]:
        """Read the splits, train the tokenizer on the training split (unless given), encode the paragraphs."""
        if self.text is not None:
            paragraphs = split_documents(self.text, self.seed)
        else:
            paragraphs = {split: read_wikitext2(self.data_dir, split) for split in WIKITEXT2_SPLITS}
        if tokenizers is None:
            trained = self.build_tokenizer().train(chain.from_iterable(paragraphs["train"]), SPECIAL_TOKENS)
            tokenizers = {TOKENIZER_KEY: trained}
        for split in WIKITEXT2_SPLITS:
            write_paragraphs(writer, split, paragraphs[split], tokenizers[TOKENIZER_KEY])
        return tokenizers

    def spec(self) -> TextSpec:
        """Vocabulary, padding id and positions: at once from a checkpoint's tokenizer, else after preparing the
        corpus (once: Lightning's ``prepare_data``/``setup`` then find the work done)."""
        self.prepare_tokenizers()
        pad = SpecialIds.from_tokenizer(self.tokenizer).pad
        return TextSpec(vocab_size=self.tokenizer.vocab_size, pad_id=pad, max_len=self.max_len)

    def task_text(self) -> EncoderText:
        if self.tokenizer is None:
            raise RuntimeError("task_text() needs the tokenizer: call spec() first")
        return EncoderText(self.tokenizer, self.val_example)

    def examples(self, split: str, epoch: int = 0, rank: int = 0) -> PretrainingBatch:
        """All examples of ``split`` for one epoch, in a random order; ``rank`` changes only the masks."""
        if self.corpora is None:
            raise RuntimeError("examples() needs the encoded corpus: call setup() first")
        generators = epoch_generators(self.seed, split, epoch, rank)
        return draw_examples(self.corpora[split], self.special_ids, self.replacement_ids, generators, self.max_len,
                             self.long_pairs, self.mask_prob, self.objective)

    def batches(
        self, examples: PretrainingBatch, epoch: int = 0, rank: int = 0, world_size: int = 1
    ) -> list[list[int]]:
        """This rank's batches of one epoch's ``examples`` as index lists, a function of ``(seed, epoch, rank)``."""
        count = len(examples.valid_lens)
        bucketed = self.bucket_size is not None
        lengths = examples.valid_lens.numpy() if bucketed else np.zeros(count)  # equal lengths keep the order
        sampler = BucketBatchSampler(
            SeededPermutation(count, shuffle=bucketed, seed=self.seed), lengths, batch_size=self.batch_size,
            bucket_size=self.bucket_size or max(1, count), rank=rank, world_size=world_size,
        )
        sampler.set_epoch(epoch)
        return list(sampler)  # fixed here: Lightning's set_epoch cannot reorder them (overfitting keeps epoch 0)

    def _draw(self, split: str, epoch: int, rank: int, world_size: int) -> tuple[PretrainingBatch, list[list[int]]]:
        """One epoch of ``split`` (this rank's masks in training, rank 0's in evaluation) and this rank's batches."""
        examples = self.examples(split, epoch, rank if split == "train" else 0)
        return examples, self.batches(examples, epoch, rank, world_size)

    def _epoch_draws(self, split: str) -> EpochDraws:
        """Training draws every epoch (epoch 0's under ``overfit_batches``), evaluation once."""
        frozen = split != "train" or (self.trainer is not None and self.trainer.overfit_batches > 0)
        if split not in self._draws or self._draws[split].frozen != frozen:
            self._draws[split] = EpochDraws(partial(self._draw, split), frozen)
        return self._draws[split]

    def _loader(self, split: str) -> DataLoader:
        draws = self._epoch_draws(split)
        return ResumableDataLoader(draws.dataset, batch_sampler=draws, num_workers=self.num_workers,
                                   collate_fn=cut_prediction_slots)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def val_example(self) -> tuple[Tensor, Tensor]:
        """The first validation pair with its masked tokens put back: ``(token ids (T,), segments (T,))``, a fixed
        input to show the encoder's attention on."""
        example = self._epoch_draws("valid").draw()
        length, slots = int(example.valid_lens[0]), example.mlm_mask[0]
        tokens = example.tokens[0].index_put((example.mlm_positions[0][slots],), example.mlm_labels[0][slots])
        return tokens[:length], example.segments[0, :length]

    def _unload(self) -> bool:
        loaded, self.corpora = self.corpora is not None, None
        return loaded
