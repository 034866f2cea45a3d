import math

import pytest
import torch

from attnlab.attention import (
    AdditiveScorer,
    Attention,
    DotProductScorer,
    GeneralScorer,
    ScaledDotProductScorer,
)


def test_dot_and_scaled_dot_match_formula():
    q, k = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    expected = torch.einsum("bqd,bkd->bqk", q, k)
    torch.testing.assert_close(DotProductScorer(8, 8)(q, k), expected)
    torch.testing.assert_close(ScaledDotProductScorer(8, 8)(q, k), expected / math.sqrt(8))


def test_additive_matches_formula_with_unequal_sizes():
    scorer = AdditiveScorer(query_dim=20, key_dim=2, hidden_dim=8)
    q, k = torch.randn(2, 1, 20), torch.randn(2, 10, 2)
    scores = scorer(q, k)
    assert scores.shape == (2, 1, 10)
    wq, wk, wv = scorer.query_proj.weight, scorer.key_proj.weight, scorer.score_proj.weight
    b, i, j = 1, 0, 7
    expected = wv @ torch.tanh(wq @ q[b, i] + wk @ k[b, j])
    torch.testing.assert_close(scores[b, i, j], expected.squeeze())


def test_general_matches_bilinear_formula():
    scorer = GeneralScorer(query_dim=4, key_dim=6)
    q, k = torch.randn(1, 2, 4), torch.randn(1, 3, 6)
    w = scorer.key_proj.weight  # (4, 6)
    torch.testing.assert_close(scorer(q, k), q @ w @ k.transpose(1, 2))


def test_dot_scorer_rejects_unequal_sizes():
    with pytest.raises(ValueError, match="query_dim=4, key_dim=6"):
        ScaledDotProductScorer(4, 6)


def test_attention_gives_no_weight_to_padding_and_pools_values():
    attention = Attention(AdditiveScorer(20, 2, 8), dropout=0.0).eval()
    q, k = torch.randn(2, 1, 20), torch.randn(2, 10, 2)
    v = torch.arange(40, dtype=torch.float32).reshape(1, 10, 4).repeat(2, 1, 1)
    out = attention(q, k, v, valid_lens=torch.tensor([2, 6]))
    assert out.weights[0, 0, 2:].eq(0).all() and out.weights[1, 0, 6:].eq(0).all()
    torch.testing.assert_close(out.output, out.weights @ v)
    with pytest.raises(ValueError, match="batch sizes differ"):
        attention(q, k[:1], v[:1])
