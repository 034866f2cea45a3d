"""State-dict interop: our BERT <-> the ``transformers`` ``BertForPreTraining`` / ``BertModel`` layout (attnlab's
own older layouts are migrated by :mod:`attnlab.training.checkpoint`).

Plain tensors in, plain tensors out: ``transformers`` is never imported. Only BERT's own architecture has a
Hugging Face layout, so export insists on learned positions, post-norm LayerNorm, scaled dot-product attention
with biases and GELU. NSP labels differ: ours is 1 = "B follows A", Hugging Face's is 0 = "is next", so the two
rows of the NSP classifier are swapped on the way in and out.
"""
from __future__ import annotations

import re
from functools import partial

import torch
from torch import Tensor, nn

from attnlab.attention.scorers import ScaledDotProductScorer
from attnlab.layers.blocks import PostNormBlock
from attnlab.layers.positional import LearnedPositionalEncoding
from attnlab.models.bert import BertForPretraining, BertModel

HF_LAYER_NORM_EPS = 1e-12  # BertConfig.layer_norm_eps
HF_PREFIX = "bert."  # BertForPreTraining nests the BertModel under this prefix
HF_TIED_BIAS = "cls.predictions.decoder.bias"  # Hugging Face's alias of cls.predictions.bias
HF_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # non-weights some versions save
NSP_KEY = "nsp_head.classifier."

# (our name, Hugging Face name) for the encoder, relative to BertModel; applied in order, first match wins.
_ENCODER_RULES = [
    (r"embeddings\.token_embedding\.", "embeddings.word_embeddings."),
    (r"embeddings\.segment_embedding\.", "embeddings.token_type_embeddings."),
    (r"embeddings\.position\.embedding\.", "embeddings.position_embeddings."),
    (r"embeddings\.norm\.", "embeddings.LayerNorm."),
    (r"encoder\.blocks\.(\d+)\.self_attention\.query_proj\.", r"encoder.layer.\1.attention.self.query."),
    (r"encoder\.blocks\.(\d+)\.self_attention\.key_proj\.", r"encoder.layer.\1.attention.self.key."),
    (r"encoder\.blocks\.(\d+)\.self_attention\.value_proj\.", r"encoder.layer.\1.attention.self.value."),
    (r"encoder\.blocks\.(\d+)\.self_attention\.out_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"encoder\.blocks\.(\d+)\.self_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"encoder\.blocks\.(\d+)\.feed_forward\.inner\.", r"encoder.layer.\1.intermediate.dense."),
    (r"encoder\.blocks\.(\d+)\.feed_forward\.outer\.", r"encoder.layer.\1.output.dense."),
    (r"encoder\.blocks\.(\d+)\.ffn_norm\.", r"encoder.layer.\1.output.LayerNorm."),
    (r"pooler\.dense\.", "pooler.dense."),
]
_HEAD_RULES = [
    (r"mlm_head\.dense\.", "cls.predictions.transform.dense."),
    (r"mlm_head\.norm\.", "cls.predictions.transform.LayerNorm."),
    (r"mlm_head\.decoder_weight$", "cls.predictions.decoder.weight"),
    (r"mlm_head\.bias$", "cls.predictions.bias"),
    (r"nsp_head\.classifier\.", "cls.seq_relationship."),
]


def _hf_name(name: str) -> str:
    """Hugging Face key of one of our state-dict keys (BertForPretraining or BertModel)."""
    if name.startswith("bert."):
        return HF_PREFIX + _hf_name(name[len("bert.") :])
    for pattern, replacement in _ENCODER_RULES + _HEAD_RULES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name, count=1)
    raise ValueError(f"parameter {name!r} has no counterpart in the Hugging Face BERT layout")


def _flip_nsp(name: str, tensor: Tensor) -> Tensor:
    """Swap the two NSP classes: our row 1 ("is next") is Hugging Face's row 0, and back."""
    return tensor.flip(0) if name.startswith(NSP_KEY) else tensor


def _check_hf_compatible(model: BertModel) -> None:
    """Raise if the model is not BERT's exact architecture (so the HF layout could not express it)."""
    problems = []
    if not isinstance(model.embeddings.position, LearnedPositionalEncoding):
        problems.append(f"positional encoding is {type(model.embeddings.position).__name__}, needs learned")
    blocks = model.encoder.blocks
    norms = [model.embeddings.norm, *(norm for block in blocks for norm in (block.self_norm, block.ffn_norm))]
    if any(not isinstance(norm, nn.LayerNorm) or norm.bias is None for norm in norms):
        problems.append("norms must be LayerNorm with a bias (norm=layernorm)")
    for block in blocks:
        attention = block.self_attention
        if type(block) is not PostNormBlock:
            problems.append(f"block is {type(block).__name__}, needs post-norm (PostNormBlock)")
        if type(attention.scorer) is not ScaledDotProductScorer:
            problems.append(f"attention scorer is {type(attention.scorer).__name__}, needs scaled dot product")
        if attention.query_proj.bias is None:
            problems.append("attention projections need biases")
        if not isinstance(block.feed_forward.activation, nn.GELU) or block.feed_forward.activation.approximate != "none":
            problems.append("feed-forward activation must be exact GELU")
    if problems:
        raise ValueError("model has no Hugging Face BERT layout: " + "; ".join(dict.fromkeys(problems)))


def to_hf_state_dict(model: BertForPretraining | BertModel) -> dict[str, Tensor]:
    """Our weights under ``transformers``' ``BertForPreTraining`` keys (``BertModel`` keys for a BertModel),
    loadable with ``load_state_dict(strict=True)``; tensors are detached copies."""
    encoder = model.bert if isinstance(model, BertForPretraining) else model
    if not isinstance(encoder, BertModel):
        raise ValueError(f"expected BertForPretraining or BertModel, got {type(model).__name__}")
    _check_hf_compatible(encoder)
    state = {_hf_name(name): _flip_nsp(name, t.detach().clone()) for name, t in model.state_dict().items()}
    if isinstance(model, BertForPretraining):
        state[HF_TIED_BIAS] = state["cls.predictions.bias"].clone()
    return state


def load_hf_state_dict(model: BertForPretraining | BertModel, state_dict: dict[str, Tensor]) -> None:
    """Copy Hugging Face weights into a model of ours with the same sizes (e.g. one built from a config)."""
    encoder = model.bert if isinstance(model, BertForPretraining) else model
    _check_hf_compatible(encoder)
    if encoder is model and any(key.startswith(HF_PREFIX) for key in state_dict):  # encoder of a pretraining dict
        state_dict = {k[len(HF_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(HF_PREFIX)}
    names = {name: _hf_name(name) for name in model.state_dict()}
    missing = sorted(hf for hf in names.values() if hf not in state_dict)
    if missing:
        raise ValueError(f"Hugging Face state dict lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    ignorable = set(HF_BUFFERS) | {HF_PREFIX + b for b in HF_BUFFERS} | {HF_TIED_BIAS}
    unexpected = sorted(set(state_dict) - set(names.values()) - ignorable)
    if unexpected:
        raise ValueError(
            f"Hugging Face state dict has keys this model cannot hold: {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''} (different architecture or number of layers?)"
        )
    decoder = state_dict.get("cls.predictions.decoder.weight")
    embedding = state_dict.get(HF_PREFIX + "embeddings.word_embeddings.weight")
    if decoder is not None and embedding is not None and not torch.equal(decoder, embedding):
        raise ValueError("cls.predictions.decoder.weight differs from the word embeddings; ours are tied")
    model.load_state_dict({name: _flip_nsp(name, state_dict[hf]) for name, hf in names.items()})


def from_hf_state_dict(
    state_dict: dict[str, Tensor],
    *,
    num_heads: int,
    pad_id: int = 0,
    dropout: float = 0.1,
    norm_eps: float = HF_LAYER_NORM_EPS,
) -> BertForPretraining | BertModel:
    """Build our model from a ``transformers`` ``BertForPreTraining`` state dict (a ``BertForPretraining``),
    or from a ``BertModel`` one (keys without ``bert.``, no heads: a ``BertModel``).

    Sizes come from the tensor shapes; the head count is not in the weights, so it is an argument.
    """
    with_heads = any(key.startswith((HF_PREFIX, "cls.")) for key in state_dict)
    prefix = HF_PREFIX if with_heads else ""
    embedding_key = prefix + "embeddings.word_embeddings.weight"
    if embedding_key not in state_dict:
        raise ValueError(f"not a Hugging Face BERT state dict: no {embedding_key!r} (keys: {sorted(state_dict)[:5]})")
    vocab_size, d_model = state_dict[embedding_key].shape
    max_len = state_dict[prefix + "embeddings.position_embeddings.weight"].shape[0]
    num_segments = state_dict[prefix + "embeddings.token_type_embeddings.weight"].shape[0]
    if num_segments != 2:
        raise ValueError(f"type_vocab_size={num_segments}; ours has 2 segments (sentence A and B)")
    layer = re.compile(re.escape(prefix) + r"encoder\.layer\.(\d+)\.")
    num_layers = len({match.group(1) for key in state_dict if (match := layer.match(key))})
    d_ff = state_dict[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[0]
    norm = partial(nn.LayerNorm, eps=norm_eps)
    block = partial(PostNormBlock, d_ff=d_ff, scorer=ScaledDotProductScorer, norm=norm, dropout=dropout, activation="gelu")
    bert = BertModel(
        vocab_size, pad_id=pad_id, max_len=max_len, block=block, pos_encoding=LearnedPositionalEncoding, norm=norm,
        d_model=d_model, num_heads=num_heads, num_layers=num_layers, dropout=dropout, activation="gelu",
    )
    model = BertForPretraining(bert) if with_heads else bert
    load_hf_state_dict(model, state_dict)
    return model
