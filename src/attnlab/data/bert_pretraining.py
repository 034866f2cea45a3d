"""WikiText-2 as BERT pretraining batches (d2l 15.9): a DataModule over :mod:`attnlab.data.pretraining_examples`."""
from __future__ import annotations

import os
from collections.abc import Callable
from itertools import chain
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from attnlab.data.bert_inputs import SPECIAL_TOKENS, EncodedCorpus, SpecialIds
from attnlab.data.corpus_store import PreparedCorpus
from attnlab.data.examples import TensorExamples
from attnlab.data.paragraph_shards import read_corpus, write_paragraphs
from attnlab.data.pretraining_examples import (
    LONG_PAIR_POLICIES, OBJECTIVES, PretrainingBatch, cut_prediction_slots, draw_examples, epoch_generators,
)
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.samplers import BucketBatchSampler, SeededPermutation, rank_world
from attnlab.data.shards import ShardStore, ShardWriter
from attnlab.data.spec import EncoderText, TextSpec
from attnlab.data.tokenizer_state import TOKENIZER_KEY
from attnlab.data.tokenizers import TextTokenizer
from attnlab.data.text_io import text_files
from attnlab.data.wikitext import WIKITEXT2_SPLITS, read_wikitext2, split_documents, wikitext2_file


class WikiText2DataModule(pl.LightningDataModule):
    """WikiText-2 (``wiki.{train,valid,test}.tokens``) as BERT pretraining batches.

    The tokenizer is trained on the training split only and the sentences of all three splits are encoded once
    into token shards under ``cache_dir`` (:class:`~attnlab.data.corpus_store.PreparedCorpus`; ``attnlab-prepare``
    or :meth:`prepare_data`), which every rank maps: a process holds the paragraph offsets, not the token ids.
    Without a ``cache_dir`` the same tables are prepared in memory and read the same way. Training examples are
    drawn afresh every epoch as a function of ``(seed, split, epoch, rank)``: Lightning's ``set_epoch`` on the
    training loader's batch sampler (:class:`EpochDraws`) draws them, the rank is torch.distributed's. A trainer
    that overfits a few batches (``overfit_batches``, ``debug=overfit``) gets epoch 0's draw every epoch, so the
    batches it memorises stay the same. Validation and test examples are drawn once, the same on
    every rank and epoch, so their losses compare.

    Batches: ``batch_size`` pairs each, cut to their longest pair and to the prediction slots they use. With
    ``bucket_size=None`` they follow the drawn (random) order; with a ``bucket_size`` every chunk of that many
    examples is sorted by length before it is cut into batches (:class:`~attnlab.data.samplers.BucketBatchSampler`,
    seeded by ``(seed, epoch)``), so a batch holds pairs of similar length and little padding. Under DDP every
    rank draws the same pairs in the same order and its own masks, and takes every ``world_size``-th batch: the
    trainer needs ``use_distributed_sampler=False`` (``experiment=bert_pretrain`` sets it).

    ``objective``: the negatives of the sentence-pair task, ``nsp`` (a random sentence of another paragraph,
    BERT) or ``sop`` (the true pair swapped, ALBERT's sentence-order prediction).

    ``text``: one's own raw text instead of WikiText-2, a file or a directory of files (paragraphs are blocks of
    non-blank lines, :func:`~attnlab.data.wikitext.split_documents`), its valid and test splits carved out of it.
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
        if long_pairs not in LONG_PAIR_POLICIES:
            raise ValueError(f"long_pairs must be one of {LONG_PAIR_POLICIES}, got {long_pairs!r}")
        if max_len < 5 or not 0.0 < mask_prob < 1.0:
            raise ValueError(f"need max_len >= 5 and 0 < mask_prob < 1, got max_len={max_len}, mask_prob={mask_prob}")
        if bucket_size is not None and bucket_size < batch_size:
            raise ValueError(f"bucket_size must be None or >= batch_size={batch_size}, got {bucket_size}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.build_tokenizer = tokenizer
        self.data_dir = Path(data_dir)
        self.text = None if text is None else Path(text)
        self.batch_size, self.max_len, self.long_pairs, self.mask_prob = batch_size, max_len, long_pairs, mask_prob
        self.num_workers, self.seed, self.bucket_size, self.objective = num_workers, seed, bucket_size, objective
        config = {"special_tokens": SPECIAL_TOKENS} | ({} if text is None else {"text_split_seed": seed})
        self.prepared = PreparedCorpus(  # the carved splits of one's own text depend on the seed
            "wikitext2" if text is None else "text", [TOKENIZER_KEY], tokenizer, config, self._files, self._fill,
            cache_dir,
        )
        self.corpora: dict[str, EncodedCorpus] | None = None
        self._eval_examples: dict[str, PretrainingBatch] = {}
        self._draws: EpochDraws | None = None  # the training examples of the epoch drawn last

    # ---- preparation ----------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Fetch the files and write the shards once per node (Lightning calls this on one process), so that the
        ranks only map them."""
        self.prepared.prepare()

    def shard_store(self) -> ShardStore:
        return self.prepared.store()

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """Trained in setup (or by whoever prepared the shards), or restored by ``load_state_dict``."""
        return None if self.prepared.tokenizers is None else self.prepared.tokenizers[TOKENIZER_KEY]

    def setup(self, stage: str | None = None) -> None:
        if self.corpora is None:
            shards = self.prepared.load()
            self.corpora = {split: read_corpus(shards, split) for split in WIKITEXT2_SPLITS}
            self._eval_examples.clear()
            self._draws = None
        self.special_ids = SpecialIds.from_tokenizer(self.tokenizer)
        self.replacement_ids = self.special_ids.replacement_ids(self.tokenizer.vocab_size)

    def _files(self) -> list[Path]:
        if self.text is not None:
            return text_files(self.text)
        return [wikitext2_file(self.data_dir, split) for split in WIKITEXT2_SPLITS]

    def _paragraphs(self) -> dict[str, list[list[str]]]:
        if self.text is not None:
            return split_documents(self.text, self.seed)
        return {split: read_wikitext2(self.data_dir, split) for split in WIKITEXT2_SPLITS}

    def _fill(self, writer: ShardWriter, tokenizers: dict[str, TextTokenizer] | None) -> dict[str, TextTokenizer]:
        """Read the splits, train the tokenizer on the training split (unless given), encode the paragraphs."""
        paragraphs = self._paragraphs()
        if tokenizers is None:
            tokenizers = {TOKENIZER_KEY: self.build_tokenizer().train(chain.from_iterable(paragraphs["train"]),
                                                                      SPECIAL_TOKENS)}
        for split in WIKITEXT2_SPLITS:
            write_paragraphs(writer, split, paragraphs[split], tokenizers[TOKENIZER_KEY])
        return tokenizers

    def spec(self) -> TextSpec:
        """Vocabulary, padding id and positions. A checkpoint's tokenizer (:meth:`load_state_dict`) gives it at
        once; otherwise the corpus is prepared first (the tokenizer is trained on it), once: Lightning's own
        ``prepare_data``/``setup`` then find the work done."""
        if self.tokenizer is None:
            self.prepare_data()
            self.setup()
        pad = SpecialIds.from_tokenizer(self.tokenizer).pad
        return TextSpec(vocab_size=self.tokenizer.vocab_size, pad_id=pad, max_len=self.max_len)

    def task_text(self) -> EncoderText:
        """The tokenizer and a fixed validation input (:meth:`val_example`), for the task's attention plots."""
        if self.tokenizer is None:
            raise RuntimeError("task_text() needs the tokenizer: call spec() first")
        return EncoderText(self.tokenizer, self.val_example)

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
            self.max_len, self.long_pairs, self.mask_prob, self.objective,
        )

    def batches(
        self, examples: PretrainingBatch, epoch: int = 0, rank: int = 0, world_size: int = 1
    ) -> list[list[int]]:
        """This rank's batches of one epoch's ``examples``, as index lists: in the drawn order, or length-bucketed
        (``bucket_size``); a function of ``(seed, epoch, rank)``, so a mid-epoch checkpoint resumes at the next
        batch of the same list."""
        count = len(examples.valid_lens)
        bucketed = self.bucket_size is not None
        lengths = examples.valid_lens.numpy() if bucketed else np.zeros(count)  # equal lengths keep the order
        sampler = BucketBatchSampler(
            SeededPermutation(count, shuffle=bucketed, seed=self.seed), lengths, batch_size=self.batch_size,
            bucket_size=self.bucket_size or max(1, count), rank=rank, world_size=world_size,
        )
        sampler.set_epoch(epoch)
        return list(sampler)  # fixed here: Lightning's set_epoch cannot reorder them (overfitting keeps epoch 0)

    def _loader(self, dataset: TensorExamples, batch_sampler: Sampler[list[int]] | list[list[int]]) -> DataLoader:
        return ResumableDataLoader(dataset, batch_sampler=batch_sampler, num_workers=self.num_workers,
                                   collate_fn=cut_prediction_slots)

    def train_dataloader(self) -> DataLoader:
        """New pairs and masks every epoch (:class:`EpochDraws`); epoch 0's every epoch under ``overfit_batches``."""
        frozen = self.trainer is not None and self.trainer.overfit_batches > 0
        if self._draws is None or self._draws.frozen != frozen:  # one draw held, whichever loader Lightning keeps
            self._draws = EpochDraws(self, frozen)
        return self._loader(self._draws.dataset, self._draws)

    def _fixed_examples(self, split: str) -> PretrainingBatch:
        """The examples of an evaluation split, drawn once: the same every epoch."""
        if split not in self._eval_examples:
            self._eval_examples[split] = self.examples(split)
        return self._eval_examples[split]

    def _fixed_loader(self, split: str) -> DataLoader:
        examples = self._fixed_examples(split)
        rank, world_size = rank_world()
        return self._loader(TensorExamples(examples), self.batches(examples, 0, rank, world_size))

    def val_example(self) -> tuple[Tensor, Tensor]:
        """The first validation pair with its masked tokens put back: ``(token ids (T,), segments (T,))``, a fixed
        input to show the encoder's attention on."""
        example = self._fixed_examples("valid")
        length, slots = int(example.valid_lens[0]), example.mlm_mask[0]
        tokens = example.tokens[0].index_put((example.mlm_positions[0][slots],), example.mlm_labels[0][slots])
        return tokens[:length], example.segments[0, :length]

    def val_dataloader(self) -> DataLoader:
        return self._fixed_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._fixed_loader("test")

    # ---- checkpointed state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return self.prepared.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt a checkpoint's tokenizer; a corpus already encoded with another one is encoded again."""
        if self.prepared.load_state_dict(state_dict) and self.corpora is not None:
            self.corpora = None
            self.setup()


class EpochDraws(Sampler[list[int]]):
    """The training loader's batch sampler: each epoch (Lightning's ``set_epoch``) draws that epoch's examples
    with this rank's masks into ``dataset`` and batches them, so the order is a function of ``(seed, epoch,
    rank)`` and a mid-epoch checkpoint resumes at the next batch of the same list. ``frozen`` keeps epoch 0's."""

    def __init__(self, datamodule: WikiText2DataModule, frozen: bool = False):
        self.datamodule, self.frozen = datamodule, frozen
        self.dataset = TensorExamples(None)
        self.epoch, self._drawn, self._batches = 0, None, []
        self.sampler = self  # Lightning calls set_epoch on a loader's sampler and its batch sampler's sampler

    def set_epoch(self, epoch: int) -> None:
        self.epoch = 0 if self.frozen else epoch

    def _draw(self) -> list[list[int]]:
        """This epoch's batches, drawn on first use (before the loader's workers copy ``dataset``)."""
        rank, world_size = rank_world()
        if self._drawn != (self.epoch, rank, world_size):
            self.dataset.examples = self._batches = None  # the last epoch's examples go before the next are drawn
            self.dataset.examples = self.datamodule.examples("train", self.epoch, rank)
            self._batches = self.datamodule.batches(self.dataset.examples, self.epoch, rank, world_size)
            self._drawn = (self.epoch, rank, world_size)
        return self._batches

    def __iter__(self):
        return iter(self._draw())

    def __len__(self) -> int:
        return len(self._draw())
