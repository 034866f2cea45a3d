"""BERT: shapes, the gathered MLM head, weight tying, padding invariance and every swappable part."""
from itertools import product

import pytest
import torch
from tiny_models import block, tiny_bert
from torch import nn

from attnlab.attention import AdditiveScorer, DotProductScorer, GeneralScorer, ScaledDotProductScorer
from attnlab.layers import (
    LearnedPositionalEncoding,
    MaskedBatchNorm,
    NoPositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from attnlab.layers.stack import TransformerStack
from attnlab.models.bert import BertForPretraining, BertModel

V, PAD, MAX_LEN, D, H = 40, 0, 12, 16, 2
SCORERS = [DotProductScorer, ScaledDotProductScorer, AdditiveScorer, GeneralScorer]
POSITIONS = [LearnedPositionalEncoding, SinusoidalPositionalEncoding, RotaryPositionalEncoding, NoPositionalEncoding]
NORMS = [nn.LayerNorm, nn.RMSNorm, MaskedBatchNorm]


def tiny(**overrides) -> BertForPretraining:
    sizes = dict(pad_id=PAD, max_len=MAX_LEN, d_model=D, num_heads=H) | overrides
    return BertForPretraining(tiny_bert(V, **sizes))


def inputs(batch=3, length=10):
    tokens = torch.randint(5, V, (batch, length))
    segments = (torch.arange(length) >= length // 2).long().expand(batch, -1).clone()
    valid_lens = torch.tensor([length, length - 3, 4][:batch])
    return tokens, segments, valid_lens


def test_output_shapes_and_gathered_positions():
    model = tiny().eval()
    tokens, segments, valid_lens = inputs()
    positions = torch.tensor([[1, 2, 5], [3, 4, 0], [1, 1, 0]])
    out = model(tokens, segments, valid_lens, positions)
    assert out.hidden.shape == (3, 10, D) and out.pooled.shape == (3, D)
    assert out.mlm_logits.shape == (9, V) and out.nsp_logits.shape == (3, 2)  # no mask: every slot is real
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    assert model(tokens, segments, valid_lens, positions, mask).mlm_logits.shape == (6, V)  # real slots only
    with pytest.raises(ValueError, match=r"positions must be \(batch=3, slots\)"):
        model(tokens, segments, valid_lens, positions[:2])
    assert model(tokens, segments, valid_lens).mlm_logits.shape == (3, 10, V)  # positions=None: every position


def test_gathered_mlm_head_equals_full_head_at_those_positions():
    model = tiny().eval()
    tokens, segments, valid_lens = inputs()
    positions = torch.tensor([[9, 0, 3], [6, 2, 2], [1, 3, 0]])
    gathered = model(tokens, segments, valid_lens, positions).mlm_logits  # (B * P, V)
    full = model(tokens, segments, valid_lens).mlm_logits  # (B, T, V)
    expected = torch.stack([full[b, positions[b]] for b in range(3)])  # (B, P, V)
    torch.testing.assert_close(gathered, expected.flatten(0, 1))
    mask = torch.tensor([[False, True, True], [True, False, True], [True, True, False]])
    torch.testing.assert_close(model(tokens, segments, valid_lens, positions, mask).mlm_logits, expected[mask])


def test_pooled_is_tanh_dense_of_cls_and_nsp_reads_it():
    model = tiny().eval()
    tokens, segments, valid_lens = inputs()
    out = model(tokens, segments, valid_lens)
    torch.testing.assert_close(out.pooled, torch.tanh(model.bert.pooler.dense(out.hidden[:, 0])))
    torch.testing.assert_close(out.nsp_logits, model.nsp_head.classifier(out.pooled))


def test_mlm_output_is_tied_to_token_embedding_with_its_own_bias():
    model = tiny()
    embedding = model.bert.embeddings.token_embedding.weight
    assert model.mlm_head.decoder_weight is embedding
    assert sum(p is embedding for p in model.parameters()) == 1  # one Parameter, counted and optimised once
    assert model.mlm_head.bias.shape == (V,)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    tokens, segments, valid_lens = inputs()
    model(tokens, segments, valid_lens, torch.tensor([[1], [2], [3]])).mlm_logits.sum().backward()
    optimizer.step()
    assert model.mlm_head.decoder_weight is model.bert.embeddings.token_embedding.weight
    reloaded = tiny()
    reloaded.load_state_dict(model.state_dict())
    assert reloaded.mlm_head.decoder_weight is reloaded.bert.embeddings.token_embedding.weight
    torch.testing.assert_close(reloaded.mlm_head.decoder_weight, embedding)


def test_bert_init_std_and_zero_padding_embedding():
    model = tiny(d_model=64, num_heads=4)
    embedding = model.bert.embeddings.token_embedding.weight
    assert embedding[PAD].abs().max() == 0
    assert 0.015 < embedding[1:].std() < 0.025
    assert model.bert.encoder.blocks[0].feed_forward.inner.bias.abs().max() == 0


def test_encoder_is_the_shared_transformer_stack_and_heads_reuse_the_built_encoder():
    model = tiny(activation="relu")
    assert isinstance(model.bert.encoder, TransformerStack)
    assert len(model.bert.encoder.blocks) == 2
    assert (model.bert.d_model, model.bert.num_heads) == (D, H)
    assert isinstance(model.mlm_head.activation, nn.ReLU) and isinstance(model.mlm_head.norm, nn.LayerNorm)
    assert model.nsp_head.classifier.in_features == D


@pytest.mark.parametrize(("scorer", "position", "norm"), list(product(SCORERS, POSITIONS, NORMS)))
def test_every_part_runs_and_padding_does_not_change_real_tokens(scorer, position, norm):
    model = tiny(scorer=scorer, pos_encoding=position, norm=norm)
    model.train()  # dropout is 0; batch norm uses batch statistics, which must exclude padding too
    tokens, segments, valid_lens = inputs()
    junk = tokens.clone()
    real = torch.arange(10) < valid_lens.unsqueeze(1)  # (B, T)
    junk[~real] = torch.randint(5, V, (int((~real).sum()),))
    positions = torch.tensor([[1, 2], [3, 4], [1, 2]])
    mask = torch.ones(3, 2, dtype=torch.bool)
    first = model(tokens, segments, valid_lens, positions, mask)
    second = model(junk, segments, valid_lens, positions, mask)
    torch.testing.assert_close(first.hidden[real], second.hidden[real])
    torch.testing.assert_close(first.mlm_logits, second.mlm_logits)
    torch.testing.assert_close(first.nsp_logits, second.nsp_logits)
    (first.mlm_logits.logsumexp(-1).mean() + first.nsp_logits.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_padded_sequence_equals_unpadded_one(placement):
    model = tiny(placement=placement).eval()
    tokens, segments, _ = inputs(batch=1, length=9)
    padded = torch.cat([tokens, torch.full((1, 3), PAD)], dim=1)  # (1, 12)
    padded_segments = torch.cat([segments, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    alone = model.bert(tokens, segments)
    together = model.bert(padded, padded_segments, torch.tensor([9]))
    torch.testing.assert_close(together.hidden[:, :9], alone.hidden)
    torch.testing.assert_close(together.pooled, alone.pooled)
    # without valid_lens, pad_id marks the padding
    torch.testing.assert_close(model.bert(padded, padded_segments).hidden[:, :9], alone.hidden)


@pytest.mark.parametrize("position", POSITIONS)
def test_positions_reach_the_encoder_only_when_there_are_any(position):
    """Permuting the input permutes the outputs of a bag-of-tokens model, and of no other (rotary included)."""
    model = tiny(pos_encoding=position).eval()
    tokens = torch.randint(5, V, (1, 8))
    permutation = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    hidden = model.bert(tokens).hidden
    permuted = model.bert(tokens[:, permutation]).hidden
    equivariant = torch.allclose(permuted, hidden[:, permutation], atol=1e-5)
    assert equivariant == (position is NoPositionalEncoding)


def test_segments_matter_and_default_to_zero():
    model = tiny().eval()
    tokens, segments, valid_lens = inputs()
    zeros = model.bert(tokens, torch.zeros_like(tokens), valid_lens).hidden
    torch.testing.assert_close(model.bert(tokens, None, valid_lens).hidden, zeros)
    assert not torch.allclose(model.bert(tokens, segments, valid_lens).hidden, zeros)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pad_id=40"):
        BertModel(V, pad_id=40, max_len=MAX_LEN, block=block())
    model = tiny()
    with pytest.raises(ValueError, match=r"tokens must be \(batch, length\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="segments"):
        model(torch.ones(2, 5, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len=12"):
        model(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="positions must be"):
        model(torch.ones(2, 5, dtype=torch.long), mlm_positions=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="activation='swish'"):
        tiny_bert(activation="swish")
