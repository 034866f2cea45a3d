"""Labelled texts for fine-tuning BERT (Devlin et al., 2019, sec. 4; d2l 16.6-16.7): SST-2 single sentences, SNLI pairs.

Shape legend: N examples in a split, B batch, T length (``max_len`` at most; batches are cut to their longest row).

Every example becomes BERT's input exactly as in pretraining (:mod:`attnlab.data.bert_inputs` assembles
it): ``[CLS] A [SEP]`` for a single text, ``[CLS] A [SEP] B [SEP]`` for a pair with segment 0 for
``[CLS] A [SEP]`` and 1 for ``B [SEP]``; pairs are truncated longest-first, single texts from their end.

The tokenizer must be the one the encoder was pretrained with, so the DataModule takes a trained tokenizer when
one is handed to it (``attnlab-train`` reads it from the pretrained model file, :mod:`attnlab.lit.pretrained`);
without a pretrained model it trains one on the training split.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab import MissingFileError
from attnlab.data.bert_inputs import (
    SPECIAL_TOKENS,
    EncodedCorpus,
    SentencePairs,
    SpecialIds,
    assemble_pairs,
    assemble_singles,
    truncate_longest_first,
)
from attnlab.data.corpora import split_indices
from attnlab.data.examples import TensorExamples, already_batched
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.samplers import SeededPermutation
from attnlab.data.spec import EncoderText, TextSpec
from attnlab.data.text_io import LabelledTexts, read_labelled_tsv
from attnlab.data.tokenizer_state import TokenizerState
from attnlab.data.tokenizers import TextTokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_PUNCTUATION = re.compile(r"""\s*([.,!?;:"()])\s*""")


class ClassificationBatch(NamedTuple):
    tokens: Tensor  # (B, T) [CLS] A [SEP] (B [SEP]) [PAD]...
    segments: Tensor  # (B, T) 0 for [CLS] A [SEP] and padding, 1 for B [SEP]
    valid_lens: Tensor  # (B,) tokens before the padding
    labels: Tensor  # (B,) class index; -1 where unknown (texts to predict)


# ---- reading -----------------------------------------------------------------------------------------------------
def normalize(text: str, lowercase: bool = False, split_punctuation: bool = False) -> str:
    """Strip; optionally lowercase and put spaces around ``. , ! ? ; : " ( )`` so that a word vocabulary
    learnt on tokenized text (WikiText-2, SST-2) sees ``guitar .`` rather than an unknown ``guitar.``."""
    if lowercase:
        text = text.lower()
    if split_punctuation:
        text = " ".join(_PUNCTUATION.sub(r" \1 ", text).split())
    return text.strip()




# ---- assembling model inputs ---------------------------------------------------------------------------------------
def encode_texts(
    tokenizer: TextTokenizer, columns: Sequence[Sequence[str]], max_len: int, labels: Tensor | None = None
) -> ClassificationBatch:
    """BERT inputs for single texts (one column) or pairs (two columns), truncated to ``max_len`` tokens with the
    specials: a single text keeps its first ``max_len - 2`` tokens, a pair is cut longest-first to ``max_len - 3``."""
    if len(columns) not in (1, 2):
        raise ValueError(f"need one text column (single texts) or two (pairs), got {len(columns)}")
    if len(columns) == 2 and len(columns[0]) != len(columns[1]):
        raise ValueError(f"pairs need as many texts B as texts A, got {len(columns[0])} and {len(columns[1])}")
    if max_len < 2 + len(columns):
        raise ValueError(f"max_len={max_len} leaves no room for a token besides [CLS] and [SEP]")
    ids = SpecialIds.from_tokenizer(tokenizer)
    n = len(columns[0])
    corpus = EncodedCorpus.encode([list(chain.from_iterable(columns))], tokenizer)  # A texts, then B texts
    lengths = corpus.sentence_lengths()  # (N,) or (2N,)
    if len(columns) == 1:
        tokens, segments, valid_lens = assemble_singles(corpus, lengths.clamp_max(max_len - 2), max_len, ids)
    else:
        first_len, second_len = truncate_longest_first(lengths[:n], lengths[n:], max_len - 3)
        index = torch.arange(n)
        pairs = SentencePairs(index, index + n, first_len, second_len, torch.zeros(n, dtype=torch.bool))
        tokens, segments, valid_lens = assemble_pairs(corpus, pairs, max_len, ids)
    labels = torch.full((n,), -1) if labels is None else labels
    return ClassificationBatch(tokens, segments, valid_lens, labels)


def label_classes(labels: Mapping[Any, Any] | Sequence[Any] | None) -> tuple[list[str] | None, list[str] | None]:
    """``(labels as written in the files, names to print)`` of a ``labels`` option: a mapping file label -> name,
    a list of file labels (their own names), or None (both None: inferred from the training file)."""
    if labels is None:
        return None, None
    if isinstance(labels, Mapping):
        values, names = [str(key) for key in labels], [str(name) for name in labels.values()]
    elif isinstance(labels, Sequence) and not isinstance(labels, str):
        values = names = [str(label) for label in labels]
    else:
        raise ValueError(f"labels must be a list of file labels, a mapping file label -> name, or null; got {labels!r}")
    if len(values) < 2 or len(set(values)) != len(values):
        raise ValueError(f"labels must name two or more distinct file labels, got {values}")
    return values, list(names)


class ClassificationDataModule(TokenizerState, pl.LightningDataModule):
    """Labelled TSV files (a header row; one or two text columns and a label column) as BERT classification batches.

    ``val_file=null`` holds out a seeded ``val_fraction`` of the training file as validation (SST-2, whose dev
    split serves as the test set). ``tokenizer`` is a trained tokenizer, used as it is (a pretrained encoder's),
    or a factory of one to train on the training split with BERT's specials. It is saved in checkpoints via
    :meth:`state_dict`, so a fine-tuned checkpoint tokenizes new text (``attnlab-predict``) without any file.
    ``labels`` lists the file's labels (``[neg, pos]``) or maps each to a printed name; null infers them from the
    training file (sorted, logged). The labels are saved in the checkpoint with the tokenizer.
    """

    def __init__(
        self,
        train_file: str | os.PathLike,
        test_file: str | os.PathLike,
        text_columns: Sequence[str],
        labels: Mapping[str, str] | Sequence[str] | None = None,
        label_column: str = "label",
        val_file: str | os.PathLike | None = None,
        val_fraction: float = 0.02,
        how_to_get: str = "",
        tokenizer: TextTokenizer | Callable[[], TextTokenizer] | None = None,
        lowercase: bool = False,
        split_punctuation: bool = False,
        max_len: int = 64,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if len(text_columns) not in (1, 2):
            raise ValueError(f"text_columns must name one column (single texts) or two (pairs), got {list(text_columns)}")
        if val_file is None and not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when val_file is null, got {val_fraction}")
        if max_len < 2 + len(text_columns) or batch_size < 1 or num_workers < 0 or seed < 0:
            raise ValueError(
                f"need max_len >= {2 + len(text_columns)}, batch_size >= 1, num_workers >= 0, seed >= 0; "
                f"got {max_len}, {batch_size}, {num_workers}, {seed}"
            )
        trained = isinstance(tokenizer, TextTokenizer)
        if tokenizer is None or (trained and not tokenizer.is_trained):
            raise ValueError(f"tokenizer must be a trained tokenizer (a pretrained model's) or a factory of one to "
                             f"train, got {tokenizer!r}")
        self.files = {"train": Path(train_file), "val": None if val_file is None else Path(val_file), "test": Path(test_file)}
        self.text_columns, self.label_column = list(text_columns), label_column
        # labels as written in the files (position = class index) and the names attnlab-predict prints; None
        # until setup infers them from the training file, or load_state_dict restores them from a checkpoint
        self.label_values, self.label_names = label_classes(labels)
        self.val_fraction, self.how_to_get = val_fraction, how_to_get
        self.build_tokenizer = None if trained else tokenizer
        self.lowercase, self.split_punctuation = lowercase, split_punctuation
        self.max_len, self.batch_size, self.num_workers, self.seed = max_len, batch_size, num_workers, seed
        self.tokenizer: TextTokenizer | None = tokenizer if trained else None  # else trained in setup, or loaded
        self.splits: dict[str, ClassificationBatch] | None = None

    @property
    def num_classes(self) -> int:
        if self.label_values is None:
            raise RuntimeError("the classes are read from the training file: call setup() or load_state_dict() first")
        return len(self.label_values)

    # ---- preparation ----------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Fail early, naming the path and how to get it, when a file is missing."""
        for path in self.files.values():
            if path is not None and not path.is_file():
                raise MissingFileError(f"no such file: {path}. How to get it: {self.how_to_get or 'see the data config'}")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.prepare_data()
        texts = self._read_splits()
        if self.tokenizer is None:
            train_texts = (self._normalize(text) for text in chain.from_iterable(texts["train"].columns))
            self.tokenizer = self.build_tokenizer().train(train_texts, SPECIAL_TOKENS)
        self.splits = {split: self.encode(*split_texts.columns, labels=split_texts.labels) for split, split_texts in texts.items()}
        log.info("examples: %s", {split: len(batch.labels) for split, batch in self.splits.items()})

    def _read(self, path: Path) -> LabelledTexts:
        labels = None if self.label_values is None else {value: index for index, value in enumerate(self.label_values)}
        return read_labelled_tsv(path, self.text_columns, self.label_column, labels, self.how_to_get)

    def _read_splits(self) -> dict[str, LabelledTexts]:
        train = self._read(self.files["train"])
        if self.label_values is None:
            if len(train.classes) < 2:
                where = self.files["train"].absolute()
                raise ValueError(f"{where}: labels {train.classes}; a classifier needs two or more")
            self.label_values, self.label_names = label_classes(train.classes)
            log.info("labels (none configured) from %s, sorted: %s", self.files["train"], self.label_values)
        test = self._read(self.files["test"])
        if self.files["val"] is not None:
            return {"train": train, "val": self._read(self.files["val"]), "test": test}
        held_out = split_indices(len(train.labels), {"val": self.val_fraction}, self.seed)
        if len(held_out["val"]) == 0 or len(held_out["train"]) == 0:
            raise ValueError(
                f"val_fraction={self.val_fraction} of {len(train.labels)} training examples leaves an empty split"
            )

        def subset(indices) -> LabelledTexts:
            columns = [[column[i] for i in indices] for column in train.columns]
            return LabelledTexts(columns, train.labels[indices], train.classes)

        return {"train": subset(held_out["train"]), "val": subset(held_out["val"]), "test": test}

    def encode(self, texts_a: Sequence[str], texts_b: Sequence[str] | None = None, labels: Tensor | None = None) -> ClassificationBatch:
        """Model inputs for raw texts (normalised as the training data was); needs the tokenizer, not the files."""
        if self.tokenizer is None:
            raise RuntimeError("encode() needs the tokenizer: call setup() or load_state_dict() first")
        if (texts_b is not None) != (len(self.text_columns) == 2):
            raise ValueError(
                f"this task reads {'text pairs' if len(self.text_columns) == 2 else 'single texts'} "
                f"({self.text_columns}); got {'pairs' if texts_b is not None else 'single texts'}"
            )
        columns = [texts_a] if texts_b is None else [texts_a, texts_b]
        columns = [[self._normalize(text) for text in column] for column in columns]
        return encode_texts(self.tokenizer, columns, self.max_len, labels)

    def val_example(self) -> tuple[Tensor, Tensor]:
        """The first validation text (pair): ``(token ids (T,), segments (T,))``, a fixed input to show the
        encoder's attention on. Valid after ``setup``."""
        if self.splits is None:
            raise RuntimeError("val_example() needs the encoded data: call setup() first")
        batch = self.splits["val"]
        length = int(batch.valid_lens[0])
        return batch.tokens[0, :length], batch.segments[0, :length]

    def _normalize(self, text: str) -> str:
        return normalize(text, self.lowercase, self.split_punctuation)

    def spec(self) -> TextSpec:
        """Vocabulary, padding id, positions and classes. A given or checkpointed tokenizer with known labels gives
        it at once; otherwise the files are read first (labels, a tokenizer to train), once: Lightning's own
        ``prepare_data``/``setup`` then find the work done."""
        if self.tokenizer is None or self.label_values is None:
            self.prepare_data()
            self.setup()
        pad = SpecialIds.from_tokenizer(self.tokenizer).pad
        return TextSpec(vocab_size=self.tokenizer.vocab_size, pad_id=pad, max_len=self.max_len,
                        num_classes=self.num_classes)

    def task_text(self) -> EncoderText:
        """The tokenizer and a fixed validation input (:meth:`val_example`), for the task's attention plots."""
        if self.tokenizer is None:
            raise RuntimeError("task_text() needs the tokenizer: call spec() first")
        return EncoderText(self.tokenizer, self.val_example)

    # ---- loaders --------------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """Batches in an order fixed by ``(seed, epoch)`` (Lightning calls the sampler's ``set_epoch``), so a
        mid-epoch checkpoint resumes at the next batch of the same order."""
        if self.splits is None:
            raise RuntimeError(f"{split}_dataloader() needs the encoded data: call setup() first")
        examples = TensorExamples(self.splits[split])
        return ResumableDataLoader(
            examples, batch_size=self.batch_size, sampler=SeededPermutation(len(examples), shuffle, self.seed),
            num_workers=self.num_workers, collate_fn=already_batched,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # ---- checkpointed state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The tokenizer and, once known, the labels: a checkpoint names its classes without the files."""
        state = super().state_dict()
        if self.label_values is not None:
            state |= {"labels": list(self.label_values), "label_names": list(self.label_names)}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt the checkpoint's labels (the classifier's outputs are indexed by them), then its tokenizer."""
        if "labels" in state_dict:
            labels = (list(state_dict["labels"]), list(state_dict["label_names"]))
            if labels != (self.label_values, self.label_names):
                self.label_values, self.label_names = labels
                self._reencode()
        super().load_state_dict(state_dict)

    def _reencode(self) -> None:
        if self.splits is not None:
            self.splits = None
            self.setup()
