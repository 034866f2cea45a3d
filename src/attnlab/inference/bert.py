"""Loaded BERT models: the pretrained encoder with its heads (features, fill-mask, next sentence) and a fine-tuned
classifier (predict); both give the encoder's self-attention of every layer and head.

Shape legend: B batch, T tokens ([CLS] A [SEP] (B [SEP]), cut to max_len), D model dim, V vocabulary, C classes.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

import torch
from torch import Tensor

from attnlab.data.bert_inputs import SPECIAL_TOKENS
from attnlab.data.classification_inputs import ClassificationBatch, encode_texts, normalize
from attnlab.data.tokenizers import TextTokenizer
from attnlab.inference.loaded import LoadedModel, Texts, chunks, layer_maps, paired_batch, text_batch
from attnlab.inference.restore import RestoredRun
from attnlab.inference.results import (
    AttentionMap, AttentionResult, NextSentence, Prediction, TokenFeatures, TokenProbability,
)
from attnlab.models.bert import BertModel, BertOutput

Candidates = list[TokenProbability]  # at one [MASK], best first
MASK = "[MASK]"
IS_NEXT = 1  # the NSP head's class for "B follows A" (attnlab.models.bert.PretrainingOutput)


class BertInputs(NamedTuple):
    batch: ClassificationBatch  # tokens, segments (B, T) cut to the longest input; valid_lens (B,)
    tokens: list[list[str]]  # each input's real tokens
    truncated: list[bool]  # which inputs were cut to max_len


class BertReader:
    """Texts as the model's data read them: normalised (lowercased; punctuation split where the data did),
    ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, cut to ``max_len`` as the data cut them (a pair longest-first).
    Special tokens written in a text (``[MASK]``) are kept as they are."""

    def __init__(self, tokenizer: TextTokenizer, max_len: int, *, lowercase: bool, split_punctuation: bool = False):
        self.tokenizer, self.max_len = tokenizer, max_len
        self.lowercase, self.split_punctuation = lowercase, split_punctuation
        self.specials = re.compile("(" + "|".join(re.escape(token) for token in SPECIAL_TOKENS) + ")")

    def normalize(self, text: str) -> str:
        parts = (part if part in SPECIAL_TOKENS else normalize(part, self.lowercase, self.split_punctuation)
                 for part in self.specials.split(text))
        return " ".join(part for part in parts if part)

    def encode(self, texts_a: list[str], texts_b: list[str] | None = None) -> BertInputs:
        given = [texts_a] if texts_b is None else [texts_a, texts_b]
        columns = [[self.normalize(text) for text in column] for column in given]
        lengths = [list(map(len, self.tokenizer.encode_batch(column))) for column in columns]
        full = [sum(row) + len(columns) + 1 for row in zip(*lengths)]  # with [CLS] and the [SEP]s
        batch = encode_texts(self.tokenizer, columns, self.max_len)
        longest = int(batch.valid_lens.max())
        batch = batch._replace(tokens=batch.tokens[:, :longest], segments=batch.segments[:, :longest])  # (B, T)
        tokens = [[self.tokenizer.id_to_token(t) for t in row[:n].tolist()]
                  for row, n in zip(batch.tokens, batch.valid_lens.tolist())]
        return BertInputs(batch, tokens, [n > self.max_len for n in full])


class LoadedBert(LoadedModel):
    """The encoder under ``net.bert`` and the reader of its data: token features and self-attention."""

    reader: BertReader

    @property
    def bert(self) -> BertModel:
        return self.net.bert

    @property
    def max_len(self) -> int:
        return self.bert.max_len

    def details(self) -> dict[str, Any]:
        bert = self.bert
        return {"vocab_size": bert.vocab_size, "d_model": bert.d_model, "num_heads": bert.num_heads,
                "num_layers": len(bert.encoder.blocks)}

    def _read(self, texts: Texts, texts_b: Texts | None) -> tuple[list[BertInputs], bool]:
        """The inputs, encoded ``batch_size`` at a time, and whether a single one was given."""
        batch_a, single = text_batch(texts, "text")
        batch_b = paired_batch(texts_b, batch_a, single, "text_b")
        return [self.reader.encode(a, b) for a, b in chunks(self.batch_size, batch_a, batch_b)], single

    def _encode(self, inputs: BertInputs, need_weights: bool = False) -> BertOutput:
        batch = inputs.batch
        return self.bert(batch.tokens.to(self.device), batch.segments.to(self.device), batch.valid_lens.to(self.device),
                         need_weights=need_weights)

    def features(self, text: Texts, text_b: Texts | None = None) -> TokenFeatures | list[TokenFeatures]:
        """Each token's contextual vector (last layer) and the pooled [CLS] vector of a text or a text pair
        (d2l 15.8.4, "BERT features")."""
        batches, single = self._read(text, text_b)
        results = []
        with torch.inference_mode():
            for inputs in batches:
                encoded = self._encode(inputs)
                results += [
                    TokenFeatures(tokens, encoded.hidden[i, : len(tokens)].float().cpu(),
                                  encoded.pooled[i].float().cpu(), inputs.batch.segments[i, : len(tokens)].clone(),
                                  inputs.truncated[i])
                    for i, tokens in enumerate(inputs.tokens)
                ]
        return results[0] if single else results

    def attention(self, text: Texts, text_b: Texts | None = None) -> AttentionResult | list[AttentionResult]:
        """The encoder's self-attention, every layer and head, over the tokens of a text or a text pair."""
        batches, single = self._read(text, text_b)
        results = []
        with torch.inference_mode():
            for inputs in batches:
                encoded = self._encode(inputs, need_weights=True)
                outputs = self._outputs(encoded)
                for i, tokens in enumerate(inputs.tokens):
                    weights = layer_maps(encoded.attention_weights, i, len(tokens), len(tokens))
                    results.append(AttentionResult({"self": AttentionMap("self", tokens, tokens, weights)}, outputs[i],
                                                   inputs.truncated[i]))
        return results[0] if single else results

    def _outputs(self, encoded: BertOutput) -> list[str | None]:
        """What the model makes of each input, named in its attention result."""
        return [None] * encoded.hidden.shape[0]


class LoadedBertPretraining(LoadedBert):
    """A pretrained BERT with its masked-LM and next-sentence heads (Devlin et al., 2019, sec. 3.1)."""

    family = "bert_pretraining"

    def __init__(self, run: RestoredRun, device: str | torch.device = "cpu"):
        super().__init__(run, device)
        self.reader = BertReader(self.data.tokenizer, self.max_len, lowercase=True)  # WikiText-2 is lowercased (d2l)

    def fill_mask(self, text: Texts, top_k: int = 5) -> list[Candidates] | list[list[Candidates]]:
        """The ``top_k`` most probable tokens at each ``[MASK]`` of a text (a list per mask, best first)."""
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        batches, single = self._read(text, None)
        mask_id, tokenizer = self.data.tokenizer.token_to_id(MASK), self.data.tokenizer
        results = []
        for inputs in batches:
            masked = inputs.batch.tokens == mask_id  # (B, T)
            for tokens, row in zip(inputs.tokens, masked):
                if not row.any():
                    raise ValueError(f"text {tokens} holds no {MASK} (after cutting to max_len={self.max_len})")
            with torch.inference_mode():
                logits = self.net.mlm_head(self._encode(inputs).hidden)  # (B, T, V)
            best = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)  # (B, T, k)
            indices, values = best.indices.cpu(), best.values.cpu()
            results += [
                [[TokenProbability(tokenizer.id_to_token(t), p)
                  for t, p in zip(indices[i, pos].tolist(), values[i, pos].tolist())]
                 for pos in row.nonzero().squeeze(1).tolist()]  # a list per [MASK]
                for i, row in enumerate(masked)
            ]
        return results[0] if single else results

    def next_sentence(self, a: Texts, b: Texts) -> NextSentence | list[NextSentence]:
        """Whether ``b`` follows ``a``, by the next-sentence head on the pooled [CLS] vector."""
        batches, single = self._read(a, b)
        results = []
        with torch.inference_mode():
            for inputs in batches:
                probs = self.net.nsp_head(self._encode(inputs).pooled).float().softmax(-1)[:, IS_NEXT].cpu()  # (B,)
                results += [NextSentence(p > 0.5, p) for p in probs.tolist()]
        return results[0] if single else results


class LoadedBertClassifier(LoadedBert):
    """A fine-tuned BERT classifier (Devlin et al., 2019, sec. 4.1) and the labels of its task."""

    family = "bert_classifier"

    def __init__(self, run: RestoredRun, device: str | torch.device = "cpu"):
        super().__init__(run, device)
        data = self.data
        self.labels: list[str] = list(data.label_names)
        self.pairs = len(data.text_columns) == 2
        self.reader = BertReader(data.tokenizer, self.max_len, lowercase=data.lowercase,
                                 split_punctuation=data.split_punctuation)

    def details(self) -> dict[str, Any]:
        return super().details() | {"labels": self.labels, "text_pairs": self.pairs}

    def _read(self, texts, texts_b):
        if (texts_b is not None) != self.pairs:
            wanted = 'text pairs: give texts_b' if self.pairs else 'single texts: no texts_b'
            raise ValueError(f"this classifier reads {wanted} (its task's columns: {list(self.data.text_columns)})")
        return super()._read(texts, texts_b)

    def _probs(self, encoded: BertOutput) -> Tensor:
        return self.net.head(self.net.pooling(encoded)).float().softmax(-1).cpu()  # (B, C)

    def _outputs(self, encoded: BertOutput) -> list[str | None]:
        return [self.labels[c] for c in self._probs(encoded).argmax(-1).tolist()]

    def predict(self, texts: Texts, texts_b: Texts | None = None) -> Prediction | list[Prediction]:
        """The most probable label and every label's probability, for a text (pair) or each of a list."""
        batches, single = self._read(texts, texts_b)
        results = []
        with torch.inference_mode():
            for inputs in batches:
                probs = self._probs(self._encode(inputs))
                results += [Prediction(self.labels[int(row.argmax())], dict(zip(self.labels, row.tolist())), cut)
                            for row, cut in zip(probs, inputs.truncated)]
        return results[0] if single else results
