"""BERT (Devlin et al., 2019; d2l 15.8): embeddings, the shared Transformer encoder, and the two pretraining heads.

Shape legend: B batch, T sequence length, D model dim, H heads, V vocabulary, P masked-LM prediction slots,
N real prediction slots of the batch.

The encoder is :class:`attnlab.layers.stack.TransformerStack` of an injected block factory (the Transformer's own
blocks); scorer, positional encoding and norm are injected too, so ``attention=``, ``pos_encoding=`` and ``norm=``
swap them. The heads take the built :class:`BertModel`. With post-norm LayerNorm, GELU and learned positions this
is exactly BERT (``attnlab.models.bert_interop`` loads Hugging Face weights into it).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.attention.functional import sequence_mask
from attnlab.layers.blocks import BlockFactory, BlockInputs
from attnlab.layers.feedforward import ACTIVATIONS
from attnlab.layers.norm import NormFactory, real_tokens
from attnlab.layers.positional import LearnedPositionalEncoding, PositionalEncodingFactory
from attnlab.layers.stack import TransformerStack

INIT_STD = 0.02  # BERT's truncated-normal initializer range (we use a plain normal)
NUM_SEGMENTS = 2  # sentence A and sentence B


class BertOutput(NamedTuple):
    hidden: Tensor  # (B, T, D) contextual vector of every token
    pooled: Tensor  # (B, D) tanh(W h_[CLS] + b), the sequence summary NSP (and by default classifiers) read
    attention_weights: list[Tensor | None]  # per layer (B, H, T, T) when asked for
    padding_mask: Tensor | None = None  # (B, T) True at real tokens


class PretrainingOutput(NamedTuple):
    hidden: Tensor  # (B, T, D)
    pooled: Tensor  # (B, D)
    mlm_logits: Tensor  # (N, V) at the real slots, in mlm_labels[mlm_mask] order; (B, T, V) without positions
    nsp_logits: Tensor  # (B, 2); class 1 = "B is the next sentence", class 0 = "B is random"


def init_bert_weights(module: nn.Module) -> None:
    """BERT's initialisation: N(0, 0.02) matrices, zero biases, zero padding embedding; norms keep ones/zeros."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


class BertEmbeddings(nn.Module):
    """Token + segment + position embeddings, then norm and dropout (Devlin et al., 2019, fig. 2)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        *,
        num_heads: int,
        max_len: int,
        pad_id: int,
        pos_encoding: PositionalEncodingFactory,
        norm: NormFactory,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.segment_embedding = nn.Embedding(NUM_SEGMENTS, d_model)
        self.position = pos_encoding(d_model, num_heads, max_len)  # adds positions, or rotates Q/K (rotary)
        self.norm = norm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, segments: Tensor) -> Tensor:
        x = self.position(self.token_embedding(tokens) + self.segment_embedding(segments))  # (B, T, D)
        return self.dropout(self.norm(x))


class BertPooler(nn.Module):
    """``tanh(W h_[CLS] + b)``: the [CLS] summary that NSP (and sentence-level fine-tuning) reads (sec. 3.1)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, D)


class BertModel(nn.Module):
    """The BERT encoder: embeddings, ``num_layers`` blocks built as ``block(d_model, num_heads)`` (bidirectional:
    no causal mask), pooler.

    ``norm`` and ``activation`` are BERT's own (Hugging Face's ``layer_norm_eps`` and ``hidden_act``): the
    embeddings and the heads use them, and the configs give the blocks the same ones. ``dropout`` is the
    embeddings' (the blocks have their own).
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        pad_id: int,
        max_len: int,
        block: BlockFactory,
        pos_encoding: PositionalEncodingFactory = LearnedPositionalEncoding,
        norm: NormFactory = nn.LayerNorm,
        d_model: int = 128,
        num_heads: int = 2,
        num_layers: int = 2,
        dropout: float = 0.1,
        activation: str = "gelu",
    ):
        super().__init__()
        if vocab_size < 1 or not 0 <= pad_id < vocab_size or max_len < 1:
            raise ValueError(
                f"need vocab_size >= 1, 0 <= pad_id < vocab_size and max_len >= 1; "
                f"got vocab_size={vocab_size}, pad_id={pad_id}, max_len={max_len}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.vocab_size, self.pad_id, self.max_len = vocab_size, pad_id, max_len
        self.d_model, self.num_heads, self.activation, self.norm_factory = d_model, num_heads, activation, norm
        self.embeddings = BertEmbeddings(
            vocab_size, d_model, num_heads=num_heads, max_len=max_len, pad_id=pad_id, pos_encoding=pos_encoding,
            norm=norm, dropout=dropout,
        )
        self.encoder = TransformerStack(partial(block, d_model, num_heads), num_layers)
        self.pooler = BertPooler(d_model)
        self.apply(init_bert_weights)

    def forward(
        self,
        tokens: Tensor,
        segments: Tensor | None = None,
        valid_lens: Tensor | None = None,
        need_weights: bool = False,
    ) -> BertOutput:
        """``tokens``/``segments`` (B, T), ``valid_lens`` (B,); without ``valid_lens``, ``pad_id`` marks padding."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (batch, length), got shape {tuple(tokens.shape)}")
        if segments is None:
            segments = torch.zeros_like(tokens)
        elif segments.shape != tokens.shape:
            raise ValueError(f"segments {tuple(segments.shape)} must match tokens {tuple(tokens.shape)}")
        if valid_lens is None:
            padding_mask = tokens != self.pad_id  # (B, T) True = real token
        else:
            padding_mask = sequence_mask(valid_lens, tokens.shape[1])  # (B, T)
        with real_tokens(padding_mask):  # batch norm's statistics (the ablation) count real tokens only
            x = self.embeddings(tokens, segments)  # (B, T, D)
        inputs = BlockInputs(
            padding_mask=padding_mask, rotate=self.embeddings.position.rotate, norm_mask=padding_mask,
            need_weights=need_weights,
        )
        encoded = self.encoder(x, inputs)
        return BertOutput(encoded.hidden, self.pooler(encoded.hidden), encoded.self_weights, padding_mask)


class MaskedLMHead(nn.Module):
    """Predicts the original token at masked positions: dense, activation, norm, then the output projection
    tied to the token embedding (Press & Wolf, 2017) plus an output bias of its own (sec. 3.1, task #1)."""

    def __init__(self, token_embedding: nn.Embedding, *, norm: NormFactory, activation: str = "gelu"):
        super().__init__()
        vocab_size, d_model = token_embedding.weight.shape
        self.dense = nn.Linear(d_model, d_model)
        self.activation = ACTIVATIONS[activation]()
        self.norm = norm(d_model)
        self.decoder_weight = token_embedding.weight  # (V, D): the very same Parameter, not a copy
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        init_bert_weights(self.dense)

    def forward(self, hidden: Tensor) -> Tensor:
        """Logits (..., V) of ``hidden`` (..., D): give it only the rows to predict (:func:`prediction_rows`)."""
        h = self.norm(self.activation(self.dense(hidden)))
        return nn.functional.linear(h, self.decoder_weight, self.bias)


def prediction_rows(hidden: Tensor, positions: Tensor, mask: Tensor | None = None) -> Tensor:
    """The rows of ``hidden`` (B, T, D) at the real prediction slots: (N, D), in the order of ``labels[mask]``.
    ``positions`` (B, P) is each slot's token index, ``mask`` (B, P) True at a real slot (None: every slot)."""
    batch, length = hidden.shape[:2]
    if positions.dim() != 2 or positions.shape[0] != batch:
        raise ValueError(f"positions must be (batch={batch}, slots), got shape {tuple(positions.shape)}")
    if mask is not None and mask.shape != positions.shape:
        raise ValueError(f"mlm mask {tuple(mask.shape)} must match positions {tuple(positions.shape)}")
    flat = positions + length * torch.arange(batch, device=positions.device).unsqueeze(1)  # (B, P) into B*T rows
    return hidden.flatten(0, 1).index_select(0, flat.flatten() if mask is None else flat[mask])  # (N, D)


class NextSentenceHead(nn.Module):
    """Two-way classifier on the pooled [CLS] vector: is B the sentence that follows A? (sec. 3.1, task #2)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.classifier = nn.Linear(d_model, 2)
        init_bert_weights(self.classifier)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.classifier(pooled)  # (B, 2)


class BertForPretraining(nn.Module):
    """A built :class:`BertModel` under ``bert`` with the masked-LM and next-sentence heads on top."""

    def __init__(self, bert: BertModel):
        super().__init__()
        self.bert = bert
        self.mlm_head = MaskedLMHead(bert.embeddings.token_embedding, norm=bert.norm_factory, activation=bert.activation)
        self.nsp_head = NextSentenceHead(bert.d_model)

    @property
    def vocab_size(self) -> int:
        return self.bert.vocab_size

    def forward(
        self,
        tokens: Tensor,
        segments: Tensor | None = None,
        valid_lens: Tensor | None = None,
        mlm_positions: Tensor | None = None,
        mlm_mask: Tensor | None = None,
    ) -> PretrainingOutput:
        """``mlm_positions`` (B, P) and ``mlm_mask`` (B, P, True = a real slot; None: all are) select the rows
        the MLM head predicts, so its norm and the V-way projection see real slots only (N of them); without
        positions it predicts at every position."""
        encoded = self.bert(tokens, segments, valid_lens)
        hidden = encoded.hidden if mlm_positions is None else prediction_rows(encoded.hidden, mlm_positions, mlm_mask)
        mlm_logits = self.mlm_head(hidden)  # (N, V), or (B, T, V)
        return PretrainingOutput(encoded.hidden, encoded.pooled, mlm_logits, self.nsp_head(encoded.pooled))
