"""BERT for classification (Devlin et al., 2019, sec. 4.1 and fig. 4; d2l 16.6): a pretrained encoder plus one new
output layer on the pooled ``[CLS]`` vector.

Shape legend: B batch, T sequence length, D model dim, C classes.

The point of the paper's fine-tuning recipe is that the only new parameters are that output layer; every
encoder weight starts from pretraining and is either fine-tuned with it or, for feature-based transfer
(ELMo-style), frozen (:meth:`BertClassifier.freeze_encoder`). :func:`load_pretrained_encoder` fills the
encoder from an attnlab BERT checkpoint or a Hugging Face ``BertForPreTraining``/``BertModel`` state dict;
pretraining heads (masked LM, next sentence) are dropped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from torch import Tensor, nn

from attnlab.checkpoint import CONFIG_KEY, load_checkpoint
from attnlab.models.bert import BertForPretraining, BertModel, init_bert_weights
from attnlab.models.bert_interop import HF_PREFIX, from_hf_state_dict

# where an attnlab run checkpoint keeps BERT encoder weights: pretraining (BertForPretraining.bert) and
# fine-tuning (BertClassifier.bert) both nest it as `bert` inside the LightningModule's `net`
RUN_ENCODER_PREFIX = "net.bert."
TOKEN_EMBEDDING = "embeddings.token_embedding.weight"
POSITION_PREFIX = "embeddings.position."
HF_WORD_EMBEDDING = "embeddings.word_embeddings.weight"


class ClassifierOutput(NamedTuple):
    logits: Tensor  # (B, C)
    pooled: Tensor  # (B, D) the pooled [CLS] vector the output layer reads


class ClassificationHead(nn.Module):
    """The new output layer: dropout, then one linear map from the pooled [CLS] vector to class scores."""

    def __init__(self, d_model: int, num_classes: int, *, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(d_model, num_classes)
        init_bert_weights(self.output)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.output(self.dropout(pooled))  # (B, C)


class BertClassifier(nn.Module):
    """A built :class:`BertModel` + :class:`ClassificationHead` with ``num_classes`` outputs and ``dropout``.

    The encoder sits under ``bert`` as in :class:`BertForPretraining`, so both share state-dict names.
    """

    def __init__(self, bert: BertModel, *, num_classes: int, dropout: float = 0.1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.bert = bert
        self.head = ClassificationHead(bert.d_model, num_classes, dropout=dropout)
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Feature-based transfer: the encoder gets no gradient and stays in eval mode (no dropout, fixed
        norm statistics), so it computes the same features for a text at every step; only the head learns."""
        self.bert.requires_grad_(False)
        self.encoder_frozen = True
        self.bert.eval()

    def train(self, mode: bool = True) -> BertClassifier:
        super().train(mode)
        if self.encoder_frozen:
            self.bert.eval()
        return self

    def forward(self, tokens: Tensor, segments: Tensor | None = None, valid_lens: Tensor | None = None) -> ClassifierOutput:
        """``tokens``/``segments`` (B, T), ``valid_lens`` (B,) as for :class:`BertModel`."""
        pooled = self.bert(tokens, segments, valid_lens).pooled  # (B, D)
        return ClassifierOutput(self.head(pooled), pooled)


# ---- pretrained weights ------------------------------------------------------------------------------------------
class PretrainedEncoder(NamedTuple):
    state: dict[str, Tensor]  # BertModel state dict (our names)
    tokenizer_json: str | None  # the tokenizer it was pretrained with, when the file carries one (attnlab runs)


def read_pretrained_encoder(path: str | os.PathLike, num_heads: int) -> PretrainedEncoder:
    """BERT encoder weights of an attnlab run checkpoint (``net.bert.*``) or of a Hugging Face state dict
    (``num_heads`` is needed to rebuild the latter, as the head count is not in its weights)."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if CONFIG_KEY in checkpoint and "state_dict" in checkpoint:
        state = {
            key[len(RUN_ENCODER_PREFIX) :]: value
            for key, value in checkpoint["state_dict"].items()
            if key.startswith(RUN_ENCODER_PREFIX)
        }
        if not state:
            raise ValueError(
                f"{path} is an attnlab checkpoint without BERT encoder weights ({RUN_ENCODER_PREFIX}*); "
                f"its model is {checkpoint[CONFIG_KEY].get('model', {}).get('net', {}).get('_target_')}"
            )
        tokenizers = [v["tokenizer"] for v in checkpoint.values() if isinstance(v, dict) and "tokenizer" in v]
        return PretrainedEncoder(state, tokenizers[0] if tokenizers else None)
    if HF_WORD_EMBEDDING in checkpoint or HF_PREFIX + HF_WORD_EMBEDDING in checkpoint:
        try:
            model = from_hf_state_dict(checkpoint, num_heads=num_heads)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{path}: cannot read it as a Hugging Face BERT state dict: {error}") from error
        encoder = model.bert if isinstance(model, BertForPretraining) else model
        return PretrainedEncoder(encoder.state_dict(), None)
    raise ValueError(
        f"{path} is neither an attnlab training checkpoint nor a Hugging Face BERT state dict "
        f"(no {HF_WORD_EMBEDDING!r}); keys: {sorted(checkpoint)[:8]}"
    )


def load_encoder_state(encoder: BertModel, state: dict[str, Tensor], source: str = "the pretrained model") -> None:
    """Copy pretrained encoder weights in unchanged. Learned position tables longer than ``encoder.max_len`` keep
    their first rows (exact for inputs up to that length); any other difference in shape is an error."""
    own = encoder.state_dict()
    if TOKEN_EMBEDDING in state and state[TOKEN_EMBEDDING].shape[0] != encoder.vocab_size:
        raise ValueError(
            f"tokenizer/vocabulary mismatch: {source} embeds {state[TOKEN_EMBEDDING].shape[0]} tokens but the data's "
            f"tokenizer has {encoder.vocab_size}; fine-tune with the tokenizer it was pretrained with "
            f"(data.tokenizer_from=<the pretrained file>)"
        )
    state = dict(state)
    for key, value in state.items():
        if key.startswith(POSITION_PREFIX) and key in own and value.shape[1:] == own[key].shape[1:]:
            if value.shape[0] < own[key].shape[0]:
                raise ValueError(
                    f"{source} has {value.shape[0]} positions, fewer than max_len={own[key].shape[0]}; "
                    f"set data.max_len <= {value.shape[0]}"
                )
            state[key] = value[: own[key].shape[0]]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source} does not fit the classifier's encoder (architecture differs): missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}, shapes (pretrained vs classifier) {wrong[:4]}"
        )
    encoder.load_state_dict(state)


def load_pretrained_encoder(encoder: BertModel, path: str | os.PathLike) -> PretrainedEncoder:
    """:func:`read_pretrained_encoder`, then :func:`load_encoder_state`; returns what was read."""
    pretrained = read_pretrained_encoder(path, encoder.num_heads)
    load_encoder_state(encoder, pretrained.state, str(path))
    return pretrained
