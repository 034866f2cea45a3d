"""BERT's input format (Devlin et al., 2019, sec. 3.2; d2l 15.8), shared by pretraining and fine-tuning.

Shape legend: N examples, T max_len, S sentences, G paragraphs.

A sequence is ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, with segment 0 for ``[CLS] A [SEP]`` and 1 for
``B [SEP]``; sentences come from an :class:`EncodedCorpus` and are assembled with whole-tensor operations.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from attnlab.data.ragged import ChunkedRagged, RaggedIds, offsets_from_lengths
from attnlab.data.tokenizers import TextTokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class SpecialIds(NamedTuple):
    """Ids of the special tokens; ``[UNK]`` counts as special, so it is never a prediction target."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @classmethod
    def from_tokenizer(cls, tokenizer: TextTokenizer) -> SpecialIds:
        missing = [token for token in SPECIAL_TOKENS if token not in tokenizer.specials]
        if missing:
            raise ValueError(f"tokenizer lacks the special tokens {missing}; train it with specials {SPECIAL_TOKENS}")
        return cls(*(tokenizer.token_to_id(token) for token in SPECIAL_TOKENS))

    def replacement_ids(self, vocab_size: int) -> Tensor:
        """Every non-special id: the pool the 10 % random replacements are drawn from."""
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[list(self)] = False
        return keep.nonzero().squeeze(1)  # (V - 5,)


class EncodedCorpus(NamedTuple):
    """Paragraphs of encoded sentences: the sentences' token rows (in memory, or read from mapped token shards)
    and, small beside them, where each paragraph starts."""

    sentences: RaggedIds | ChunkedRagged  # S rows of token ids
    paragraph_offsets: Tensor  # (G + 1,) paragraph g is sentences paragraph_offsets[g]:paragraph_offsets[g + 1]

    @classmethod
    def encode(cls, paragraphs: Sequence[Sequence[str]], tokenizer: TextTokenizer) -> EncodedCorpus:
        """Encode every sentence with one call to the tokenizer's batch API."""
        sentences = RaggedIds.from_lists(tokenizer.encode_batch(list(chain.from_iterable(paragraphs))))
        sizes = np.fromiter(map(len, paragraphs), dtype=np.int64, count=len(paragraphs))
        return cls(sentences, torch.from_numpy(offsets_from_lengths(sizes)))

    @property
    def num_sentences(self) -> int:
        return len(self.sentences)

    @property
    def num_paragraphs(self) -> int:
        return len(self.paragraph_offsets) - 1

    def sentence_lengths(self) -> Tensor:
        return torch.from_numpy(self.sentences.lengths().astype(np.int64))  # (S,)

    def sentence(self, index: int) -> list[int]:
        return self.sentences[index].tolist()

    def tokens(self, sentence: Tensor, position: Tensor) -> Tensor:
        """``(N, T)`` int64: token ``position[n, t]`` of sentence ``sentence[n]``; positions outside the sentence
        read some other id, for the caller to mask."""
        return torch.from_numpy(self.sentences.gather(sentence.numpy(), position.numpy()).astype(np.int64))


class SentencePairs(NamedTuple):
    """Sentence pairs for next-sentence prediction, as indices into an :class:`EncodedCorpus`."""

    first: Tensor  # (N,) sentence index of A
    second: Tensor  # (N,) sentence index of B
    first_len: Tensor  # (N,) tokens of A kept (after truncation)
    second_len: Tensor  # (N,) tokens of B kept
    is_next: Tensor  # (N,) bool, True when B follows A in the text


def truncate_longest_first(first_len: Tensor, second_len: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """Closed form of BERT's ``truncate_seq_pair``: drop a token from the longer side (B on ties) until it fits.

    B keeps at most ``floor(budget / 2)`` tokens unless A leaves it more; A keeps what B leaves, and B what A
    leaves. Tokens are cut from the end of a sentence.
    """
    first = torch.minimum(first_len, budget - second_len.clamp_max(budget // 2))
    return first, torch.minimum(second_len, budget - first)


def _cls_sentence_sep(corpus: EncodedCorpus, sentence: Tensor, length: Tensor, t: Tensor, ids: SpecialIds) -> Tensor:
    """``[CLS] A [SEP]`` then padding, ``(N, T)``: A is the first ``length`` (N, 1) tokens of ``sentence`` (N,)."""
    from_a = corpus.tokens(sentence, (t - 1).expand(len(sentence), -1))  # (N, T)
    tokens = torch.where((t >= 1) & (t <= length), from_a, ids.pad)
    tokens[:, 0] = ids.cls
    return torch.where(t == length + 1, ids.sep, tokens)


def assemble_pairs(
    corpus: EncodedCorpus, pairs: SentencePairs, max_len: int, ids: SpecialIds
) -> tuple[Tensor, Tensor, Tensor]:
    """``[CLS] A [SEP] B [SEP]`` padded to ``max_len``: tokens (N, T), segments (N, T), valid_lens (N,)."""
    t = torch.arange(max_len).unsqueeze(0)  # (1, T)
    len_a, len_b = pairs.first_len.unsqueeze(1), pairs.second_len.unsqueeze(1)  # (N, 1)
    tokens = _cls_sentence_sep(corpus, pairs.first, len_a, t, ids)  # (N, T)
    in_b = (t >= len_a + 2) & (t <= len_a + len_b + 1)
    tokens = torch.where(in_b, corpus.tokens(pairs.second, t - len_a - 2), tokens)
    tokens = torch.where(t == len_a + len_b + 2, ids.sep, tokens)
    segments = ((t >= len_a + 2) & (t <= len_a + len_b + 2)).long()  # (N, T)
    return tokens, segments, (len_a + len_b + 3).squeeze(1)


def assemble_singles(
    corpus: EncodedCorpus, lengths: Tensor, max_len: int, ids: SpecialIds
) -> tuple[Tensor, Tensor, Tensor]:
    """``[CLS] A [SEP]`` padded to ``max_len`` for sentence ``i`` of ``corpus`` (its first ``lengths[i]`` tokens):
    tokens (N, T), segments (N, T) all 0, valid_lens (N,)."""
    t = torch.arange(max_len).unsqueeze(0)  # (1, T)
    tokens = _cls_sentence_sep(corpus, torch.arange(len(lengths)), lengths.unsqueeze(1), t, ids)  # (N, T)
    return tokens, torch.zeros_like(tokens), lengths + 2
