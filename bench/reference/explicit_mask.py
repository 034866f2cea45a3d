"""attnlab's Transformer fed the way it was before issue 12: decoder self-attention got the target padding mask
as a key mask, so the causal mask had to be built explicitly and combined with it, and SDPA ran with a
(B, 1, T, T) ``attn_mask`` instead of its ``is_causal`` path. Same modules, same weights, same math at every
real (non-padding) target position.

Shape legend: B batch, S source length, T target length, V target vocabulary.
"""
from __future__ import annotations

from torch import Tensor

from attnlab.layers.blocks import BlockInputs
from attnlab.models.transformer import Transformer


def explicit_mask_logits(net: Transformer, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
    """Teacher-forced logits (B, T, V) with the target padding mask passed to decoder self-attention."""
    encoded = net.encode(src, src_lens)
    target_mask = tgt_in != net.pad_id  # (B, T)
    inputs = BlockInputs(
        padding_mask=target_mask, causal=True, memory=encoded.memory, memory_padding_mask=encoded.padding_mask,
        rotate=net.tgt_embed.positions.rotate, norm_mask=target_mask,
    )
    return net.output_proj(net.decoder(net.tgt_embed(tgt_in), inputs).hidden)
