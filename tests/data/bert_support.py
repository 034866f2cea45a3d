"""Helpers for the BERT data tests: toy corpora whose ids tell where each token came from."""
import random

import torch

from attnlab.data.bert_inputs import EncodedCorpus, SpecialIds
from attnlab.data.pretraining_examples import epoch_generators

IDS = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)


class IntTokenizer:
    """Reads sentences written as space-separated ids."""

    def encode_batch(self, texts):
        return [[int(token) for token in text.split()] for text in texts]


def corpus_of(paragraphs):
    return EncodedCorpus.encode([[" ".join(map(str, s)) for s in p] for p in paragraphs], IntTokenizer())


def unique_paragraphs(num_paragraphs, seed=0, max_sentences=5, max_words=9):
    """Every id occurs once (ids from 5 on), so any token tells which sentence it came from."""
    rng, next_id, paragraphs = random.Random(seed), 5, []
    for _ in range(num_paragraphs):
        paragraph = []
        for _ in range(rng.randint(2, max_sentences)):
            length = rng.randint(1, max_words)
            paragraph.append(list(range(next_id, next_id + length)))
            next_id += length
        paragraphs.append(paragraph)
    return paragraphs


def generators(seed=0, epoch=0, rank=0, split="train"):
    return epoch_generators(seed, split, epoch, rank)


def paragraph_of(corpus):
    return torch.repeat_interleave(torch.arange(corpus.num_paragraphs), corpus.paragraph_offsets.diff())
