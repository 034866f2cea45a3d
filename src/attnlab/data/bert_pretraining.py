"""WikiText-2 as BERT pretraining batches (d2l 15.9): a DataModule over :mod:`attnlab.data.pretraining_examples`."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from itertools import chain
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab.data.bert_inputs import SPECIAL_TOKENS, EncodedCorpus, SpecialIds
from attnlab.data.cache import tokenizer_identity
from attnlab.data.examples import TensorExamples
from attnlab.data.paragraph_shards import read_corpus, write_paragraphs
from attnlab.data.pretraining_examples import (
    LONG_PAIR_POLICIES, OBJECTIVES, PretrainingBatch, cut_prediction_slots, draw_examples, epoch_generators,
)
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.samplers import BucketBatchSampler, SeededPermutation
from attnlab.data.shards import Shards, ShardStore, ShardWriter
from attnlab.data.spec import EncoderText, TextSpec
from attnlab.data.tokenizer_state import TokenizerState
from attnlab.data.tokenizers import TextTokenizer
from attnlab.data.text_io import text_files
from attnlab.data.wikitext import WIKITEXT2_SPLITS, read_wikitext2, split_documents, wikitext2_file

log = logging.getLogger(__name__)


class WikiText2DataModule(TokenizerState, pl.LightningDataModule):
    """WikiText-2 (``wiki.{train,valid,test}.tokens``) as BERT pretraining batches.

    The tokenizer is trained on the training split only and the sentences of all three splits are encoded once
    into token shards under ``cache_dir`` (:meth:`shard_store`; ``attnlab-prepare`` or :meth:`prepare_data`),
    which every rank maps: a process holds the paragraph offsets, not the token ids. Without a ``cache_dir`` the
    same tables are prepared in memory and read the same way. Training examples are drawn afresh every epoch in
    :meth:`train_dataloader`, which reads the attached trainer's ``current_epoch`` and ``global_rank``: the
    trainer must run with ``reload_dataloaders_every_n_epochs=1`` so that it asks for a new loader each epoch.
    A trainer that overfits a few batches (``overfit_batches``, ``debug=overfit``) gets epoch 0's draw every
    epoch, so the batches it memorises stay the same. Validation and test examples are drawn once, the same on
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
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.tokenizer: TextTokenizer | None = None  # trained in setup, or restored by load_state_dict
        self.restored_tokenizer: TextTokenizer | None = None  # a checkpoint's: then it, not the config, keys the shards
        self.corpora: dict[str, EncodedCorpus] | None = None
        self._eval_examples: dict[str, PretrainingBatch] = {}

    # ---- preparation ----------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Fetch the files and write the shards once per node (Lightning calls this on one process), so that the
        ranks only map them."""
        self._files()
        if self.cache_dir is not None and not self.shard_store().exists():
            self._load_or_encode()

    def setup(self, stage: str | None = None) -> None:
        if self.corpora is None:
            self.tokenizer, self.corpora = self._load_or_encode()
            self._eval_examples.clear()
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

    def shard_store(self) -> ShardStore:
        """``<cache_dir>/wikitext2-<digest>/``, keyed by the split files' path, size and content and by the tokenizer
        (what changes the ids): its config; or, for a checkpoint's tokenizer other than the one the config's shards
        hold, that tokenizer's JSON (a resumed run maps the shards it trained on, a foreign tokenizer gets its own)."""
        if self.cache_dir is None:
            raise ValueError("cache_dir is None: token shards need a directory (paths.cache_dir, env ATTNLAB_CACHE)")
        store = self._store(self.build_tokenizer())
        if self.restored_tokenizer is None or store.holds({"tokenizer": self.restored_tokenizer.to_str()}):
            return store
        return self._store(self.restored_tokenizer)

    def _store(self, tokenizer: TextTokenizer) -> ShardStore:
        config = {"special_tokens": SPECIAL_TOKENS, "tokenizer": tokenizer_identity(tokenizer)}
        if self.text is not None:  # the carved splits depend on the seed
            config["text_split_seed"] = self.seed
        return ShardStore(self.cache_dir, "wikitext2" if self.text is None else "text", config, self._files())

    def _load_or_encode(self) -> tuple[TextTokenizer, dict[str, EncodedCorpus]]:
        """The shards mapped from ``cache_dir`` (written first when missing), or prepared in memory without one.
        Preparing reads the splits and trains the tokenizer on the training split (unless one was restored)."""
        store = None if self.cache_dir is None else self.shard_store()
        tokenizer = self.tokenizer
        with nullcontext() if store is None else store.preparing():  # one preparer; the others map its shards
            shards = None if store is None else store.open()
            if shards is not None:
                log.info("WikiText2DataModule: shards mapped from %s", store.path)
            else:
                paragraphs = self._paragraphs()
                if tokenizer is None:
                    tokenizer = self.build_tokenizer().train(chain.from_iterable(paragraphs["train"]), SPECIAL_TOKENS)

                def fill(writer: ShardWriter) -> Shards:
                    for split in WIKITEXT2_SPLITS:
                        write_paragraphs(writer, split, paragraphs[split], tokenizer)
                    return writer.finish({"tokenizer": tokenizer.to_str()})

                shards = fill(ShardWriter(None)) if store is None else store.write(fill)
        if tokenizer is None or tokenizer.to_str() != shards.meta["tokenizer"]:  # the store's, whoever prepared it
            tokenizer = TextTokenizer.from_str(shards.meta["tokenizer"])
        return tokenizer, {split: read_corpus(shards, split) for split in WIKITEXT2_SPLITS}

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

    def _loader(self, examples: PretrainingBatch, epoch: int = 0) -> DataLoader:
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        return ResumableDataLoader(
            TensorExamples(examples), batch_sampler=self.batches(examples, epoch, rank, world_size),
            num_workers=self.num_workers, collate_fn=cut_prediction_slots,
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
            overfitting = self.trainer.overfit_batches > 0  # memorise the same few batches: epoch 0's draw
            epoch, rank = 0 if overfitting else self.trainer.current_epoch, self.trainer.global_rank
        return self._loader(self.examples("train", epoch, rank), epoch)

    def _fixed_examples(self, split: str) -> PretrainingBatch:
        """The examples of an evaluation split, drawn once: the same every epoch."""
        if split not in self._eval_examples:
            self._eval_examples[split] = self.examples(split)
        return self._eval_examples[split]

    def _fixed_loader(self, split: str) -> DataLoader:
        return self._loader(self._fixed_examples(split))

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
    def _reencode(self) -> None:
        self.restored_tokenizer = self.tokenizer
        if self.corpora is not None:
            self.corpora = None
            self.setup()
