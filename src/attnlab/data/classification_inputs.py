"""What a BERT classifier reads (Devlin et al., 2019, sec. 4; d2l 16.6): raw texts as ``[CLS] A [SEP] (B [SEP])``
batches and the labels option as classes; shared by the fine-tuning data and ``attnlab-predict``.

Shape legend: N texts (pairs), T ``max_len``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, NamedTuple

import torch
from torch import Tensor

from attnlab.data.bert_inputs import (
    EncodedCorpus, SentencePairs, SpecialIds, assemble_pairs, assemble_singles, truncate_longest_first,
)
from attnlab.data.tokenizers import TextTokenizer

_PUNCTUATION = re.compile(r"""\s*([.,!?;:"()])\s*""")


class ClassificationBatch(NamedTuple):
    tokens: Tensor  # (B, T) [CLS] A [SEP] (B [SEP]) [PAD]...
    segments: Tensor  # (B, T) 0 for [CLS] A [SEP] and padding, 1 for B [SEP]
    valid_lens: Tensor  # (B,) tokens before the padding
    labels: Tensor  # (B,) class index; -1 where unknown (texts to predict)


def normalize(text: str, lowercase: bool = False, split_punctuation: bool = False) -> str:
    """Strip; optionally lowercase and put spaces around ``. , ! ? ; : " ( )`` so that a word vocabulary
    learnt on tokenized text (WikiText-2, SST-2) sees ``guitar .`` rather than an unknown ``guitar.``."""
    if lowercase:
        text = text.lower()
    if split_punctuation:
        text = " ".join(_PUNCTUATION.sub(r" \1 ", text).split())
    return text.strip()


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
    return ClassificationBatch(tokens, segments, valid_lens, labels)  # (N, T) (N, T) (N,) (N,)


def label_classes(
    labels: Mapping[Any, Any] | Sequence[Any] | None, source: str | os.PathLike = "data.labels"
) -> tuple[list[str] | None, list[str] | None]:
    """``(labels as written in the files, names to print)`` of a ``labels`` option (or of the training file, the
    ``source``): a mapping file label -> name, a list of file labels (their own names), or None (both None)."""
    if labels is None:
        return None, None
    if isinstance(labels, Mapping):
        values, names = [str(key) for key in labels], [str(name) for name in labels.values()]
    elif isinstance(labels, Sequence) and not isinstance(labels, str):
        values = names = [str(label) for label in labels]
    else:
        raise ValueError(f"labels must be a list of file labels, a mapping file label -> name, or null; got {labels!r}")
    if len(values) < 2 or len(set(values)) != len(values):
        raise ValueError(f"{source}: labels {values}; a classifier needs two or more distinct labels")
    return values, list(names)
