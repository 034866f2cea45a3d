from functools import partial

import pytest
import torch

from attnlab.attention import (
    AdditiveScorer,
    DotProductScorer,
    GeneralScorer,
    KVCache,
    MultiHeadAttention,
    ScaledDotProductScorer,
)

SCORERS = [DotProductScorer, ScaledDotProductScorer, AdditiveScorer, GeneralScorer]


def _inputs(batch=2, length=5, d_model=16):
    x = torch.randn(batch, length, d_model)
    padding = torch.tensor([[True] * 3 + [False] * (length - 3), [True] * length])
    return x, padding


@pytest.mark.parametrize("scorer", SCORERS)
def test_shapes_and_no_weight_on_padding_or_future(scorer):
    mha = MultiHeadAttention(16, 4, scorer).eval()
    x, padding = _inputs()
    out = mha(x, x, x, key_padding_mask=padding, is_causal=True, need_weights=True)
    assert out.output.shape == (2, 5, 16) and out.weights.shape == (2, 4, 5, 5)
    assert out.weights[0, :, :, 3:].eq(0).all()  # padding
    assert torch.triu(torch.ones(5, 5, dtype=torch.bool), 1).expand(2, 4, 5, 5)[out.weights > 0].sum() == 0  # future
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(2, 4, 5))


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("scorer", [DotProductScorer, ScaledDotProductScorer])
def test_fused_path_equals_explicit_path(scorer, is_causal):
    mha = MultiHeadAttention(16, 4, scorer).eval()
    x, padding = _inputs()
    memory = torch.randn(2, 7, 16)
    for query, key, mask in [(x, x, padding), (x, x, None), (x, memory, None)]:
        causal = is_causal and key is x
        fused = mha(query, key, key, key_padding_mask=mask, is_causal=causal)
        explicit = mha(query, key, key, key_padding_mask=mask, is_causal=causal, need_weights=True)
        assert fused.weights is None
        torch.testing.assert_close(fused.output, explicit.output, atol=1e-5, rtol=1e-5)


def test_padding_keys_do_not_change_outputs():
    mha = MultiHeadAttention(16, 4, ScaledDotProductScorer).eval()
    x, padding = _inputs()
    y = x.clone()
    y[0, 3:] = torch.randn(2, 16)
    a = mha(x, x, x, key_padding_mask=padding).output
    b = mha(y, y, y, key_padding_mask=padding).output
    torch.testing.assert_close(a[0, :3], b[0, :3])


def test_causal_no_leakage_from_future_tokens():
    mha = MultiHeadAttention(16, 2, AdditiveScorer).eval()
    x = torch.randn(1, 6, 16)
    y = x.clone()
    y[0, 4:] = torch.randn(2, 16)
    torch.testing.assert_close(mha(x, x, x, is_causal=True).output[0, :4], mha(y, y, y, is_causal=True).output[0, :4])


@pytest.mark.parametrize("scorer", [ScaledDotProductScorer, AdditiveScorer])
def test_incremental_cache_equals_full_causal_pass(scorer):
    mha = MultiHeadAttention(16, 4, scorer).eval()
    x = torch.randn(2, 6, 16)
    full = mha(x, x, x, is_causal=True).output
    cache = KVCache()
    steps = [mha(x[:, t : t + 1], x[:, t : t + 1], x[:, t : t + 1], is_causal=True, cache=cache).output for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 6


def test_static_cache_reuses_memory_projection():
    mha = MultiHeadAttention(16, 4, ScaledDotProductScorer).eval()
    q, memory = torch.randn(2, 1, 16), torch.randn(2, 7, 16)
    cache = KVCache(static=True)
    first = mha(q, memory, memory, cache=cache).output
    again = mha(q, torch.zeros_like(memory), torch.zeros_like(memory), cache=cache).output  # memory not re-read
    torch.testing.assert_close(first, again)
    cache.reorder(torch.tensor([1, 1]))
    assert torch.equal(cache.keys[0], cache.keys[1])


def test_fully_padded_sequence_gives_finite_output():
    mha = MultiHeadAttention(16, 4, ScaledDotProductScorer).eval()
    x = torch.randn(1, 3, 16)
    none_real = torch.zeros(1, 3, dtype=torch.bool)
    for need_weights in (False, True):
        assert torch.isfinite(mha(x, x, x, key_padding_mask=none_real, need_weights=need_weights).output).all()


def test_errors_name_the_sizes():
    with pytest.raises(ValueError, match="num_heads=3 must be positive and divide d_model=16"):
        MultiHeadAttention(16, 3, ScaledDotProductScorer)
    mha = MultiHeadAttention(16, 4, ScaledDotProductScorer)
    with pytest.raises(ValueError, match="batch sizes differ: query 2, key 3"):
        mha(torch.randn(2, 4, 16), torch.randn(3, 4, 16), torch.randn(3, 4, 16))
    with pytest.raises(ValueError, match="covers 5 keys, attention has 4"):
        mha(torch.randn(2, 4, 16), torch.randn(2, 4, 16), torch.randn(2, 4, 16), key_padding_mask=torch.ones(2, 5).bool())


def test_unfused_scorer_takes_the_explicit_path_with_the_same_result():
    torch.manual_seed(0)
    fused = MultiHeadAttention(16, 4, ScaledDotProductScorer).train()
    explicit = MultiHeadAttention(16, 4, partial(ScaledDotProductScorer, fused=False)).train()
    explicit.load_state_dict(fused.state_dict())
    x, padding = _inputs()
    assert fused.fused_scale is not None and explicit.fused_scale is None
    expected = fused(x, x, x, key_padding_mask=padding, is_causal=True).output
    got = explicit(x, x, x, key_padding_mask=padding, is_causal=True).output
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
