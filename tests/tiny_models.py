"""Tiny models for the tests, wired as the configs wire them: a block ``partial`` (its class is the norm
placement) inside the model, BERT's heads on a built encoder. Every size and part can be overridden."""
from __future__ import annotations

from functools import partial

from torch import nn

from attnlab.attention.scorers import ScaledDotProductScorer
from attnlab.layers.blocks import BlockFactory, placement_block
from attnlab.layers.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from attnlab.models.bert import BertModel
from attnlab.models.transformer import Transformer


def block(placement: str = "post", *, d_ff: int = 32, scorer=ScaledDotProductScorer, norm=nn.LayerNorm,
          dropout: float = 0.0, activation: str = "relu") -> BlockFactory:
    return partial(placement_block(placement), d_ff=d_ff, scorer=scorer, norm=norm, dropout=dropout, activation=activation)


def tiny_bert(vocab_size: int = 40, *, pad_id: int = 0, max_len: int = 12, d_model: int = 16, num_heads: int = 2,
              num_layers: int = 2, d_ff: int = 32, dropout: float = 0.0, activation: str = "gelu",
              scorer=ScaledDotProductScorer, pos_encoding=LearnedPositionalEncoding, norm=nn.LayerNorm,
              placement: str = "post") -> BertModel:
    layer = block(placement, d_ff=d_ff, scorer=scorer, norm=norm, dropout=dropout, activation=activation)
    return BertModel(
        vocab_size, pad_id=pad_id, max_len=max_len, block=layer, pos_encoding=pos_encoding, norm=norm,
        d_model=d_model, num_heads=num_heads, num_layers=num_layers, dropout=dropout, activation=activation,
    )


def tiny_transformer(src_vocab_size: int, tgt_vocab_size: int, *, pad_id: int, bos_id: int, eos_id: int,
                     d_ff: int = 32, scorer=ScaledDotProductScorer, norm=nn.LayerNorm, placement: str = "post",
                     activation: str = "relu", pos_encoding=SinusoidalPositionalEncoding, **sizes) -> Transformer:
    """``sizes``: the Transformer's own keywords (d_model, num_heads, layers, dropout, max_len, tying)."""
    sizes = {"d_model": 16, "num_heads": 2, "num_encoder_layers": 2, "num_decoder_layers": 2, "dropout": 0.0} | sizes
    layer = block(placement, d_ff=d_ff, scorer=scorer, norm=norm, dropout=sizes["dropout"], activation=activation)
    return Transformer(
        src_vocab_size, tgt_vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id, block=layer,
        pos_encoding=pos_encoding, **sizes,
    )
