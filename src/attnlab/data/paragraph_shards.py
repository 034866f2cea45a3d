"""Paragraphs of sentences (a BERT pretraining corpus) as token shards (:mod:`attnlab.data.shards`), one row a sentence.

Shape legend: S sentences, G paragraphs.

A split has two columns: ``ids`` (``list<int32>``, the sentence's token ids) and ``opens`` (bool, True for the
first sentence of a paragraph). Read back, it is an :class:`~attnlab.data.bert_inputs.EncodedCorpus` whose token
rows stay in the shards (memory-mapped, or the in-memory tables without a store); a process holds only the
paragraph offsets, 8 bytes a paragraph.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from attnlab.data.bert_inputs import EncodedCorpus
from attnlab.data.shards import Shards, ShardWriter
from attnlab.data.tokenizers import TextTokenizer

PART_PARAGRAPHS = 50_000  # paragraphs encoded and written at a time: bounds the memory of preparing a large corpus


def write_paragraphs(
    writer: ShardWriter, split: str, paragraphs: Sequence[Sequence[str]], tokenizer: TextTokenizer
) -> None:
    """Encode ``paragraphs`` (each a list of one or more sentences) part by part into ``split`` of ``writer``."""
    if empty := [g for g, paragraph in enumerate(paragraphs) if not paragraph]:
        raise ValueError(f"{split}: paragraphs {empty[:5]} have no sentence; each needs one or more")
    for start in range(0, max(len(paragraphs), 1), PART_PARAGRAPHS):  # an empty split: one empty part
        corpus = EncodedCorpus.encode(paragraphs[start : start + PART_PARAGRAPHS], tokenizer)
        opens = np.zeros(corpus.num_sentences, dtype=bool)  # (S,)
        opens[corpus.paragraph_offsets[:-1].numpy()] = True
        writer.add(split, {"ids": corpus.sentences, "opens": opens})


def read_corpus(shards: Shards, split: str) -> EncodedCorpus:
    """The paragraphs of ``split``; its token rows are read from the shards as they are used."""
    opens = shards.array(split, "opens")  # (S,)
    offsets = np.append(np.flatnonzero(opens), len(opens))  # (G + 1,)
    return EncodedCorpus(shards.ragged(split, "ids"), torch.from_numpy(offsets.astype(np.int64)))
