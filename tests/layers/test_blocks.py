from functools import partial

import pytest
import torch
from torch import nn

from attnlab.attention import ScaledDotProductScorer
from attnlab.layers import BlockInputs, MaskedBatchNorm, PostNormBlock, PreNormBlock, placement_block
from attnlab.layers.blocks import BlockCache
from attnlab.layers.stack import TransformerStack

NORMS = [nn.LayerNorm, nn.RMSNorm, MaskedBatchNorm]
BLOCKS = [PostNormBlock, PreNormBlock]


def make_block(block=PreNormBlock, norm=nn.LayerNorm, **options):
    return block(16, 4, d_ff=32, scorer=ScaledDotProductScorer, norm=norm, dropout=0.0, **options)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("block", BLOCKS)
def test_block_padding_does_not_leak(norm, block):
    layer = make_block(block, norm).train()  # batch norm uses batch statistics: padding must stay out of them too
    x = torch.randn(2, 5, 16)
    padding = torch.tensor([[True, True, True, False, False], [True] * 5])
    y = x.clone()
    y[0, 3:] = 50 * torch.randn(2, 16)
    inputs = BlockInputs(padding_mask=padding, norm_mask=padding)
    torch.testing.assert_close(layer(x, inputs).hidden[padding], layer(y, inputs).hidden[padding])


def test_post_norm_block_is_norm_of_sum_and_pre_norm_block_sum_of_normed_sublayers():
    post, pre = make_block(PostNormBlock), make_block(PreNormBlock)
    pre.load_state_dict(post.state_dict())  # the same sublayers under the same names
    x = torch.randn(2, 4, 16)
    h = post.self_norm(x + post.self_attention(x, x, x).output)
    expected_post = post.ffn_norm(h + post.feed_forward(h))
    torch.testing.assert_close(post(x).hidden, expected_post)
    n = pre.self_norm(x)
    h = x + pre.self_attention(n, n, n).output
    torch.testing.assert_close(pre(x).hidden, h + pre.feed_forward(pre.ffn_norm(h)))


def test_pre_norm_stack_has_final_norm_and_post_norm_stack_none():
    post = TransformerStack(partial(make_block, PostNormBlock), 2)
    pre = TransformerStack(partial(make_block, PreNormBlock), 2)
    assert isinstance(pre.final_norm, nn.LayerNorm) and isinstance(post.final_norm, nn.Identity)
    pre.load_state_dict(post.state_dict(), strict=False)
    x = torch.randn(1, 4, 16)
    assert not torch.allclose(post(x).hidden, pre(x).hidden)
    assert placement_block("post") is PostNormBlock and placement_block("pre") is PreNormBlock
    with pytest.raises(ValueError, match="placement='middle'"):
        placement_block("middle")


def test_causal_self_attention_ignores_later_padding_without_a_key_mask():
    """Right-padded decoder inputs need no key mask under causal attention: real positions see real keys only."""
    layer = make_block(cross_attention=True).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    y = x.clone()
    y[0, 3:] = 100 * torch.randn(2, 16)  # garbage in row 0's padding
    inputs = BlockInputs(causal=True, memory=memory)
    torch.testing.assert_close(layer(x, inputs).hidden[0, :3], layer(y, inputs).hidden[0, :3])
    explicit = BlockInputs(causal=True, memory=memory, padding_mask=torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(layer(x, inputs).hidden, layer(x, explicit).hidden)  # is_causal == explicit mask


@pytest.mark.parametrize("block", BLOCKS)
def test_decoder_block_cached_steps_equal_full_pass(block):
    layer = make_block(block, cross_attention=True).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    memory_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    full = layer(x, BlockInputs(causal=True, memory=memory, memory_padding_mask=memory_mask, need_weights=True))
    assert full.cross_weights[0, :, :, 4:].eq(0).all()
    cache = BlockCache()
    inputs = BlockInputs(causal=True, memory=memory, memory_padding_mask=memory_mask)
    steps = [layer(x[:, t : t + 1], inputs, cache).hidden for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, 1), full.hidden, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="needs the encoder memory"):
        layer(x)


def test_ffn_activation_choice_is_validated():
    with pytest.raises(ValueError, match="activation='swish'"):
        make_block(activation="swish")


@pytest.mark.parametrize("block", BLOCKS)
def test_batch_norm_block_recomputed_by_activation_checkpointing_gives_the_same_gradients(block):
    """The block marks its real tokens itself, so the backward pass's recomputation counts the same tokens."""
    torch.manual_seed(0)
    layer = make_block(block, MaskedBatchNorm).train()
    x = torch.randn(2, 5, 16, requires_grad=True)
    padding = torch.tensor([[True, True, True, False, False], [True] * 5])
    inputs = BlockInputs(padding_mask=padding, norm_mask=padding)
    (expected,) = torch.autograd.grad(layer(x, inputs).hidden[padding].square().sum(), x)
    recomputed = torch.utils.checkpoint.checkpoint(layer, x, inputs, use_reentrant=False).hidden
    (got,) = torch.autograd.grad(recomputed[padding].square().sum(), x)
    torch.testing.assert_close(got, expected)
