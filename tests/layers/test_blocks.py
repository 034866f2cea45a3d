import pytest
import torch

from attnlab.attention import ScaledDotProductScorer
from attnlab.layers import LayerNorm, MaskedBatchNorm, RMSNorm, TransformerBlock
from attnlab.layers.blocks import BlockCache
from attnlab.layers.stack import TransformerStack


@pytest.mark.parametrize("norm", [LayerNorm, RMSNorm, MaskedBatchNorm])
@pytest.mark.parametrize("placement", ["post", "pre"])
def test_block_padding_does_not_leak(norm, placement):
    block = TransformerBlock(16, 4, 32, ScaledDotProductScorer, norm, placement, dropout=0.0)
    block.train()  # batch norm uses batch statistics: padding must stay out of them too
    x = torch.randn(2, 5, 16)
    padding = torch.tensor([[True, True, True, False, False], [True] * 5])
    y = x.clone()
    y[0, 3:] = 50 * torch.randn(2, 16)
    torch.testing.assert_close(block(x, padding).hidden[padding], block(y, padding).hidden[padding])


def test_post_and_pre_norm_differ_and_pre_norm_stack_has_final_norm():
    post = TransformerStack(2, 16, 4, 32, ScaledDotProductScorer, LayerNorm, "post", dropout=0.0)
    pre = TransformerStack(2, 16, 4, 32, ScaledDotProductScorer, LayerNorm, "pre", dropout=0.0)
    pre.load_state_dict(post.state_dict(), strict=False)
    x = torch.randn(1, 4, 16)
    assert not torch.allclose(post(x).hidden, pre(x).hidden)
    assert isinstance(pre.final_norm, LayerNorm)
    with pytest.raises(ValueError, match="placement='middle'"):
        TransformerBlock(16, 4, 32, ScaledDotProductScorer, LayerNorm, "middle")


def test_decoder_block_cached_steps_equal_full_pass():
    block = TransformerBlock(16, 4, 32, ScaledDotProductScorer, LayerNorm, "pre", dropout=0.0, cross_attention=True).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    memory_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    full = block(x, causal=True, memory=memory, memory_padding_mask=memory_mask, need_weights=True)
    assert full.cross_weights[0, :, :, 4:].eq(0).all()
    cache = BlockCache()
    steps = [
        block(x[:, t : t + 1], causal=True, memory=memory, memory_padding_mask=memory_mask, cache=cache).hidden
        for t in range(5)
    ]
    torch.testing.assert_close(torch.cat(steps, 1), full.hidden, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="needs the encoder memory"):
        block(x)


def test_ffn_activation_choice_is_validated():
    with pytest.raises(ValueError, match="activation='swish'"):
        TransformerBlock(16, 4, 32, ScaledDotProductScorer, LayerNorm, activation="swish")
