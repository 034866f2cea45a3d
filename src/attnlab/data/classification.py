"""Labelled texts for fine-tuning BERT (Devlin et al., 2019, sec. 4; d2l 16.6-16.7): SST-2 single sentences, SNLI pairs.

Shape legend: N examples in a split, B batch, T length (``max_len`` at most; batches are cut to their longest row).

Every example becomes BERT's input exactly as in pretraining (:mod:`attnlab.data.bert_inputs` assembles
it): ``[CLS] A [SEP]`` for a single text, ``[CLS] A [SEP] B [SEP]`` for a pair with segment 0 for
``[CLS] A [SEP]`` and 1 for ``B [SEP]``; pairs are truncated longest-first, single texts from their end.

The tokenizer must be the one the encoder was pretrained with, so by default it is read from the pretrained
checkpoint (``tokenizer_from``); the same file tells the encoder's architecture, which :meth:`net_kwargs`
forwards into the model config, so a fine-tuned checkpoint's config rebuilds the classifier without it.
With no pretrained model (``tokenizer_from=null``) a tokenizer is trained on the training split.
"""
from __future__ import annotations

import json
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

from attnlab.checkpoint import CONFIG_KEY, load_checkpoint
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
from attnlab.data.text_io import LabelledTexts, read_labelled_tsv
from attnlab.data.tokenizer_state import TokenizerState
from attnlab.data.tokenizers import TextTokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
HF_EMBEDDING_KEYS = ("bert.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight")
HF_TOKENIZER_FILE = "tokenizer.json"  # what a Hugging Face model directory holds beside its weights
HF_CONFIG_FILE = "config.json"
# Hugging Face BertConfig field -> our encoder argument
HF_ARCHITECTURE = {
    "hidden_size": "d_model",
    "num_attention_heads": "num_heads",
    "num_hidden_layers": "num_layers",
    "intermediate_size": "d_ff",
}
# keys of a pretrained net config that are not the encoder's architecture: the data or the fine-tuning decide them
NOT_ARCHITECTURE = {"_target_", "_partial_", "vocab_size", "pad_id", "max_len", "dropout", "num_classes"}
_PUNCTUATION = re.compile(r"""\s*([.,!?;:"()])\s*""")


class ClassificationBatch(NamedTuple):
    tokens: Tensor  # (B, T) [CLS] A [SEP] (B [SEP]) [PAD]...
    segments: Tensor  # (B, T) 0 for [CLS] A [SEP] and padding, 1 for B [SEP]
    valid_lens: Tensor  # (B,) tokens before the padding
    labels: Tensor  # (B,) class index; -1 where unknown (texts to predict)


class PretrainedSource(NamedTuple):
    """What a pretrained model file tells the fine-tuning data: its tokenizer and its encoder's architecture."""

    tokenizer: TextTokenizer
    architecture: dict[str, Any]  # encoder arguments (d_model, num_heads, ..., scorer, norm, ...) as plain config


# ---- reading -----------------------------------------------------------------------------------------------------
def normalize(text: str, lowercase: bool = False, split_punctuation: bool = False) -> str:
    """Strip; optionally lowercase and put spaces around ``. , ! ? ; : " ( )`` so that a word vocabulary
    learnt on tokenized text (WikiText-2, SST-2) sees ``guitar .`` rather than an unknown ``guitar.``."""
    if lowercase:
        text = text.lower()
    if split_punctuation:
        text = " ".join(_PUNCTUATION.sub(r" \1 ", text).split())
    return text.strip()


# ---- the pretrained model's tokenizer and architecture -----------------------------------------------------------
def read_pretrained(path: str | os.PathLike) -> PretrainedSource:
    """Tokenizer and encoder architecture of a pretrained model file.

    - an attnlab training checkpoint (BERT pretraining, or an earlier fine-tuning): the tokenizer its
      DataModule saved and the architecture in its run config;
    - a Hugging Face ``BertForPreTraining``/``BertModel`` state dict: ``tokenizer.json`` (and, for the sizes,
      ``config.json``) from the same directory, as a Hugging Face model directory holds them;
    - a tokenizer ``.json`` alone: just the tokenizer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained model file not found: {path} (expected an attnlab checkpoint such as "
            f"outputs/bert_pretrain/<run>/checkpoints/last.ckpt, or a Hugging Face BERT state dict)"
        )
    if path.suffix == ".json":
        return PretrainedSource(TextTokenizer.load(path), {})
    checkpoint = load_checkpoint(path)
    if CONFIG_KEY in checkpoint:
        return _from_run_checkpoint(path, checkpoint)
    if any(key in checkpoint for key in HF_EMBEDDING_KEYS):
        return _from_hf_directory(path)
    raise ValueError(
        f"{path} is neither an attnlab training checkpoint (no {CONFIG_KEY!r}) nor a Hugging Face BERT state dict "
        f"(none of {list(HF_EMBEDDING_KEYS)}); keys: {sorted(checkpoint)[:8]}"
    )


def _from_run_checkpoint(path: Path, checkpoint: dict) -> PretrainedSource:
    states = [value for value in checkpoint.values() if isinstance(value, dict) and "tokenizer" in value]
    if not states:
        raise ValueError(f"{path} holds no tokenizer: it was not trained by an attnlab text DataModule")
    net = checkpoint[CONFIG_KEY].get("model", {}).get("net", {})
    architecture = {key: value for key, value in net.items() if key not in NOT_ARCHITECTURE}
    return PretrainedSource(TextTokenizer.from_str(states[0]["tokenizer"]), architecture)


def _from_hf_directory(path: Path) -> PretrainedSource:
    tokenizer_file = path.parent / HF_TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise FileNotFoundError(
            f"{path} is a Hugging Face state dict, which holds no tokenizer, and there is no {tokenizer_file} beside "
            f"it; save the model's tokenizer there (tokenizer.save('{tokenizer_file}')) or set data.tokenizer_from"
        )
    architecture = {}
    config_file = path.parent / HF_CONFIG_FILE
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        architecture = {ours: config[theirs] for theirs, ours in HF_ARCHITECTURE.items() if theirs in config}
    return PretrainedSource(TextTokenizer.load(tokenizer_file), architecture)


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
    if corpus.token_ids.numel() == 0:  # every text empty: keep the gathers below in range
        corpus = corpus._replace(token_ids=torch.tensor([ids.pad]))
    lengths = corpus.sentence_offsets.diff()  # (N,) or (2N,)
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
    split serves as the test set). The tokenizer comes from ``tokenizer_from`` (see :func:`read_pretrained`),
    else ``tokenizer()`` is trained on the training split with BERT's specials. It is saved in checkpoints via
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
        tokenizer_from: str | None = None,
        tokenizer: Callable[[], TextTokenizer] | None = None,
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
        if tokenizer_from is None and tokenizer is None:
            raise ValueError("give tokenizer_from (a pretrained model's tokenizer) or tokenizer (one to train)")
        self.files = {"train": Path(train_file), "val": None if val_file is None else Path(val_file), "test": Path(test_file)}
        self.text_columns, self.label_column = list(text_columns), label_column
        # labels as written in the files (position = class index) and the names attnlab-predict prints; None
        # until setup infers them from the training file, or load_state_dict restores them from a checkpoint
        self.label_values, self.label_names = label_classes(labels)
        self.val_fraction, self.how_to_get = val_fraction, how_to_get
        self.tokenizer_from = tokenizer_from
        self.build_tokenizer = tokenizer
        self.lowercase, self.split_punctuation = lowercase, split_punctuation
        self.max_len, self.batch_size, self.num_workers, self.seed = max_len, batch_size, num_workers, seed
        self.tokenizer: TextTokenizer | None = None  # from tokenizer_from or trained in setup, or load_state_dict
        self.architecture: dict[str, Any] = {}  # the pretrained encoder's, forwarded by net_kwargs
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
                raise FileNotFoundError(f"no such file: {path}. How to get it: {self.how_to_get or 'see the data config'}")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.prepare_data()
        texts = self._read_splits()
        if self.tokenizer_from is not None:
            source = read_pretrained(self.tokenizer_from)
            self.architecture = source.architecture
            if self.tokenizer is None:
                self.tokenizer = source.tokenizer
        elif self.tokenizer is None:
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
                raise ValueError(f"{self.files['train'].absolute()}: labels {train.classes}; a classifier needs two or more")
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

    def _normalize(self, text: str) -> str:
        return normalize(text, self.lowercase, self.split_punctuation)

    def net_kwargs(self) -> dict:
        """Vocabulary, padding id, positions and classes; with a pretrained encoder also its architecture, which
        overrides the model config's sizes. Valid after ``setup``."""
        if self.splits is None:
            raise RuntimeError("net_kwargs() needs the tokenizer: call setup() first")
        ids = SpecialIds.from_tokenizer(self.tokenizer)
        data = {"vocab_size": self.tokenizer.vocab_size, "pad_id": ids.pad, "max_len": self.max_len}
        return {**self.architecture, **data, "num_classes": self.num_classes}

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
