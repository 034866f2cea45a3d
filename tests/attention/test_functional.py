import pytest
import torch

from attnlab.attention.functional import causal_mask, masked_softmax, sequence_mask


def test_sequence_mask():
    mask = sequence_mask(torch.tensor([0, 2, 4]), 4)
    assert mask.tolist() == [[False] * 4, [True, True, False, False], [True] * 4]


def test_causal_mask_with_offset():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # one new query at absolute position 2 sees keys 0..2
    assert causal_mask(1, 3, offset=2).tolist() == [[True, True, True]]


def test_masked_softmax_matches_hand_computation():
    scores = torch.tensor([[[1.0, 2.0, 3.0], [0.5, 0.5, 9.0]]])  # (1, 2, 3)
    weights = masked_softmax(scores, valid_lens=torch.tensor([2]))
    e1, e2 = torch.exp(torch.tensor(1.0)), torch.exp(torch.tensor(2.0))
    expected_row0 = torch.tensor([e1 / (e1 + e2), e2 / (e1 + e2), 0.0])
    torch.testing.assert_close(weights[0, 0], expected_row0)
    torch.testing.assert_close(weights[0, 1], torch.tensor([0.5, 0.5, 0.0]))


def test_masked_softmax_per_query_lengths_and_fully_masked_row():
    scores = torch.randn(2, 2, 4)
    weights = masked_softmax(scores, valid_lens=torch.tensor([[0, 3], [4, 1]]))
    assert torch.all(weights[0, 0] == 0)  # no valid key: zeros, not NaN, not uniform
    assert not torch.isnan(weights).any()
    assert weights[0, 1, 3] == 0 and weights[1, 1, 1:].eq(0).all()
    torch.testing.assert_close(weights[0, 1].sum(), torch.tensor(1.0))
    torch.testing.assert_close(weights[1, 0], torch.softmax(scores[1, 0], -1))


def test_masked_softmax_combines_lengths_and_mask_and_keeps_gradients_finite():
    scores = torch.randn(1, 3, 3, requires_grad=True)
    weights = masked_softmax(scores, valid_lens=torch.tensor([2]), mask=causal_mask(3))
    assert weights[0, 0].tolist()[1:] == [0.0, 0.0]
    assert weights[0, 2, 2] == 0
    weights.sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_masked_softmax_four_dims_and_errors():
    scores = torch.randn(2, 3, 4, 5)  # (B, H, Tq, Tk)
    weights = masked_softmax(scores, valid_lens=torch.tensor([1, 5]))
    assert weights[0, :, :, 1:].eq(0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="batch size 3"):
        masked_softmax(torch.randn(2, 3, 4), valid_lens=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="boolean"):
        masked_softmax(torch.randn(2, 3, 4), mask=torch.ones(2, 3, 4))
