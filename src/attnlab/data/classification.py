"""Labelled texts for fine-tuning BERT (Devlin et al., 2019, sec. 4; d2l 16.6-16.7): SST-2 single sentences, SNLI pairs.

Shape legend: N examples in a split, B batch, T length (``max_len`` at most; batches are cut to their longest row).
Each example is BERT's pretraining input, as :mod:`attnlab.data.classification_inputs` assembles it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import TypeVar

import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab.data.bert_inputs import SPECIAL_TOKENS, SpecialIds
from attnlab.data.classification_inputs import ClassificationBatch, encode_texts, label_classes, normalize
from attnlab.data.corpora import split_indices
from attnlab.data.examples import TensorExamples, already_batched
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.samplers import SeededPermutation
from attnlab.data.spec import EncoderText, TextSpec
from attnlab.data.text_io import LabelledTexts, existing_file, read_labelled_tsv
from attnlab.data.tokenizers import TOKENIZER_KEY, TextTokenizer

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
Known = TypeVar("Known")


class ClassificationDataModule(pl.LightningDataModule):
    """Labelled TSV files (a header row; one or two text columns and a label column) as BERT classification batches.

    ``val_file=null`` holds out a seeded ``val_fraction`` of the training file (SST-2, whose dev split is the test
    set). ``tokenizer`` is the pretrained encoder's, used as it is (``attnlab-train`` reads it from the model file),
    or a factory of one to train on the training split. ``labels`` lists the file's labels (``[neg, pos]``) or maps
    each to a printed name; null infers them from the training file (sorted, logged). Checkpoints keep the tokenizer
    and the labels (:meth:`state_dict`): ``attnlab-predict`` reads new text without any file.
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
            raise ValueError(f"text_columns must name one column (single texts) or two (pairs), got {text_columns}")
        if val_file is None and not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when val_file is null, got {val_fraction}")
        if max_len < 2 + len(text_columns) or batch_size < 1 or num_workers < 0 or seed < 0:
            raise ValueError(f"need max_len >= {2 + len(text_columns)}, batch_size >= 1, num_workers >= 0, seed >= 0; "
                             f"got {max_len}, {batch_size}, {num_workers}, {seed}")
        trained = isinstance(tokenizer, TextTokenizer)
        if tokenizer is None or (trained and not tokenizer.is_trained):
            raise ValueError(f"tokenizer must be a trained tokenizer (a pretrained model's) or a factory of one to "
                             f"train, got {tokenizer!r}")
        self.files = {"train": Path(train_file), "val": None if val_file is None else Path(val_file),
                      "test": Path(test_file)}
        self.text_columns, self.label_column = list(text_columns), label_column
        # labels as written in the files (position = class index) and the names attnlab-predict prints; None
        # until setup infers them from the training file, or load_state_dict restores them from a checkpoint
        self.label_values, self.label_names = label_classes(labels)
        self.val_fraction, self.how_to_get = val_fraction, how_to_get
        self.tokenizer: TextTokenizer | None = tokenizer if trained else None  # else trained in setup, or loaded
        self.build_tokenizer = None if trained else tokenizer
        self.lowercase, self.split_punctuation = lowercase, split_punctuation
        self.max_len, self.batch_size, self.num_workers, self.seed = max_len, batch_size, num_workers, seed
        self.splits: dict[str, ClassificationBatch] | None = None

    @property
    def num_classes(self) -> int:
        return len(_known(self.label_values, "num_classes"))

    def prepare_data(self) -> None:
        """Fail early, naming the path and how to get it, when a file is missing."""
        for path in filter(None, self.files.values()):
            existing_file(path, self.how_to_get or "see the data config")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        train = self._read("train")
        if self.label_values is None:
            self.label_values, self.label_names = label_classes(train.classes, source=self.files["train"].absolute())
            log.info("labels (none configured) from %s, sorted: %s", self.files["train"], self.label_values)
        texts = {"test": self._read("test")}
        if self.files["val"] is not None:
            texts |= {"train": train, "val": self._read("val")}
        else:
            held_out = split_indices(len(train.labels), {"val": self.val_fraction}, self.seed)
            if not all(len(indices) for indices in held_out.values()):
                raise ValueError(f"val_fraction={self.val_fraction} of {len(train.labels)} training examples leaves an "
                                 f"empty split")
            texts |= {split: train.take(indices) for split, indices in held_out.items()}
        if self.tokenizer is None:
            train_texts = (self._normalize(text) for text in chain.from_iterable(texts["train"].columns))
            self.tokenizer = self.build_tokenizer().train(train_texts, SPECIAL_TOKENS)
        self.splits = {split: self.encode(*texts[split].columns, labels=texts[split].labels) for split in SPLITS}
        log.info("examples: %s", {split: len(batch.labels) for split, batch in self.splits.items()})

    def _read(self, split: str) -> LabelledTexts:
        path = self.files[split]
        return read_labelled_tsv(path, self.text_columns, self.label_column, self.label_values, self.how_to_get)

    def encode(
        self, texts_a: Sequence[str], texts_b: Sequence[str] | None = None, labels: Tensor | None = None
    ) -> ClassificationBatch:
        """Model inputs for raw texts (normalised as the training data was); needs the tokenizer, not the files."""
        pairs = len(self.text_columns) == 2
        if (texts_b is not None) != pairs:
            raise ValueError(f"this task reads {'text pairs' if pairs else 'single texts'} ({self.text_columns}); "
                             f"got {'pairs' if texts_b is not None else 'single texts'}")
        columns = [[self._normalize(text) for text in column] for column in (texts_a, texts_b) if column is not None]
        return encode_texts(_known(self.tokenizer, "encode()"), columns, self.max_len, labels)

    def _normalize(self, text: str) -> str:
        return normalize(text, self.lowercase, self.split_punctuation)

    def val_example(self) -> tuple[Tensor, Tensor]:
        """The first validation input, ``(token ids (T,), segments (T,))``: the attention plots' fixed input."""
        batch = _known(self.splits, "val_example()")["val"]
        length = int(batch.valid_lens[0])
        return batch.tokens[0, :length], batch.segments[0, :length]

    def spec(self) -> TextSpec:
        """Vocabulary, padding id, positions and classes; the files are read first (once) unless a given or
        checkpointed tokenizer and the labels tell."""
        if self.tokenizer is None or self.label_values is None:
            self.prepare_data()
            self.setup()
        pad = SpecialIds.from_tokenizer(self.tokenizer).pad
        return TextSpec(vocab_size=self.tokenizer.vocab_size, pad_id=pad, max_len=self.max_len,
                        num_classes=self.num_classes)

    def task_text(self) -> EncoderText:
        """The tokenizer and a fixed validation input (:meth:`val_example`), for the task's attention plots."""
        return EncoderText(_known(self.tokenizer, "task_text()"), self.val_example)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """Batches in an order fixed by ``(seed, epoch)``: a mid-epoch checkpoint resumes at the next batch."""
        examples = TensorExamples(_known(self.splits, f"{split}_dataloader()")[split])
        sampler = SeededPermutation(len(examples), shuffle, self.seed)
        return ResumableDataLoader(examples, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                                   collate_fn=already_batched)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def state_dict(self) -> dict:
        """The tokenizer and, once known, the labels: a checkpoint names its classes without the files."""
        state = {} if self.tokenizer is None else {TOKENIZER_KEY: self.tokenizer.to_str()}
        if self.label_values is not None:
            state |= {"labels": list(self.label_values), "label_names": list(self.label_names)}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt the checkpoint's labels (the classifier's outputs are indexed by them) and tokenizer; splits
        encoded with other ones are encoded again."""
        stale = False
        labels = (list(state_dict["labels"]), list(state_dict["label_names"])) if "labels" in state_dict else None
        if labels is not None and labels != (self.label_values, self.label_names):
            (self.label_values, self.label_names), stale = labels, True
        tokenizer = state_dict.get(TOKENIZER_KEY)
        if tokenizer is not None and (self.tokenizer is None or tokenizer != self.tokenizer.to_str()):
            self.tokenizer, stale = TextTokenizer.from_str(tokenizer), True
        if stale and self.splits is not None:
            self.splits = None
            self.setup()


def _known(value: Known | None, what: str) -> Known:
    """``value``, once set up."""
    if value is None:
        raise RuntimeError(f"{what} needs the data set up: call setup() first (or load_state_dict(), for the "
                           f"tokenizer and the labels)")
    return value
