"""``transformers.BertForPreTraining`` at attnlab's BERT sizes, in its standard usage (masked-LM logits at
every position, the loss from ``labels``) and with the masked-LM head applied to the gathered positions only.

Shape legend: B batch, T length, P prediction slots, D model dim, V vocabulary.
"""
from __future__ import annotations

from torch import Tensor, nn

from bench.harness import Skip

IGNORE = -100  # the label transformers' loss skips


def bert_for_pretraining(
    vocab_size: int, pad_id: int, max_len: int, d_model: int, num_heads: int, num_layers: int, d_ff: int,
    dropout: float, activation: str,
) -> nn.Module:
    """A randomly initialised ``BertForPreTraining`` with SDPA attention; Skip when transformers is absent."""
    try:
        from transformers import BertConfig, BertForPreTraining
    except ImportError as error:
        raise Skip(f"transformers is not installed ({error}); pip install 'attnlab[bench]'") from error
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=d_model, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=d_ff, hidden_act=activation, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, max_position_embeddings=max_len, type_vocab_size=2,
        pad_token_id=pad_id, layer_norm_eps=1e-5,
    )
    return BertForPreTraining._from_config(config, attn_implementation="sdpa")


def standard_loss(model: nn.Module, tokens: Tensor, segments: Tensor, attention_mask: Tensor, labels: Tensor,
                  next_sentence: Tensor) -> Tensor:
    """The documented usage: ``labels`` (B, T) hold the original id at predicted positions and -100 elsewhere;
    the model scores all T positions against the vocabulary. ``next_sentence`` uses HF's 0 = "is next"."""
    return model(input_ids=tokens, token_type_ids=segments, attention_mask=attention_mask, labels=labels,
                 next_sentence_label=next_sentence).loss


def gathered_logits(model: nn.Module, tokens: Tensor, segments: Tensor, attention_mask: Tensor,
                    positions: Tensor) -> tuple[Tensor, Tensor]:
    """Encoder once, then the masked-LM head only at ``positions`` (B, P): logits (B, P, V) and NSP (B, 2)."""
    hidden, pooled = model.bert(input_ids=tokens, token_type_ids=segments, attention_mask=attention_mask)[:2]
    index = positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])  # (B, P, D)
    return model.cls.predictions(hidden.gather(1, index)), model.cls.seq_relationship(pooled)
