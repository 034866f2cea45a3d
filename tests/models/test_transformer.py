"""The encoder-decoder Transformer: shapes, no causal or padding leaks, cached == recomputed decoding, tying."""
from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_transformer
from torch import nn

from attnlab.attention.scorers import AdditiveScorer, DotProductScorer, GeneralScorer, ScaledDotProductScorer
from attnlab.layers.norm import MaskedBatchNorm
from attnlab.layers.positional import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from attnlab.models.decoding import beam_search, greedy_decode
from attnlab.models.transformer import Transformer

PAD, BOS, EOS = 1, 2, 3
VOCAB = 13
ENCODINGS = [SinusoidalPositionalEncoding, LearnedPositionalEncoding, RotaryPositionalEncoding, NoPositionalEncoding]
SCORERS = [DotProductScorer, ScaledDotProductScorer, AdditiveScorer, GeneralScorer]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention
    yield
    torch.set_num_threads(threads)


def make_net(scorer=ScaledDotProductScorer, pos_encoding=SinusoidalPositionalEncoding, norm=nn.LayerNorm,
             placement="post", **overrides) -> Transformer:
    options = dict(pad_id=PAD, bos_id=BOS, eos_id=EOS, max_len=64) | overrides
    return tiny_transformer(VOCAB, options.pop("tgt_vocab_size", VOCAB), scorer=scorer, pos_encoding=pos_encoding,
                            norm=norm, placement=placement, **options)


def batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, VOCAB, (3, 6), generator=generator)
    src_lens = torch.tensor([6, 4, 2])
    src[1, 4:] = PAD
    src[2, 2:] = PAD
    tgt_in = torch.randint(4, VOCAB, (3, 5), generator=generator)
    tgt_in[:, 0] = BOS
    return src, src_lens, tgt_in


def test_shapes_and_named_outputs():
    net = make_net().eval()
    src, src_lens, tgt_in = batch()
    out = net(src, src_lens, tgt_in)
    assert out.logits.shape == (3, 5, VOCAB)
    assert all(w is None for w in [*out.encoder_self_weights, *out.decoder_self_weights, *out.cross_weights])
    out = net(src, src_lens, tgt_in, need_weights=True)
    assert [w.shape for w in out.encoder_self_weights] == [(3, 2, 6, 6)] * 2
    assert [w.shape for w in out.decoder_self_weights] == [(3, 2, 5, 5)] * 2
    assert [w.shape for w in out.cross_weights] == [(3, 2, 5, 6)] * 2
    torch.testing.assert_close(out.cross_weights[0].sum(-1), torch.ones(3, 2, 5))
    assert out.cross_weights[1][2, :, :, 2:].eq(0).all()  # no weight on source padding
    assert out.encoder_self_weights[0][1, :, :, 4:].eq(0).all()
    assert torch.triu(out.decoder_self_weights[1], diagonal=1).eq(0).all()  # nor on future targets


@pytest.mark.parametrize("pos_encoding", ENCODINGS)
@pytest.mark.parametrize("scorer", [ScaledDotProductScorer, AdditiveScorer])
def test_changing_a_future_target_token_leaves_earlier_logits(scorer, pos_encoding):
    net = make_net(scorer, pos_encoding).eval()
    src, src_lens, tgt_in = batch()
    changed = tgt_in.clone()
    changed[:, 3] = (changed[:, 3] + 1 - 4) % (VOCAB - 4) + 4
    before, after = net(src, src_lens, tgt_in).logits, net(src, src_lens, changed).logits
    torch.testing.assert_close(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])


@pytest.mark.parametrize("norm", [nn.LayerNorm, nn.RMSNorm, MaskedBatchNorm])
@pytest.mark.parametrize("placement", ["post", "pre"])
def test_padding_tokens_do_not_change_the_outputs(norm, placement):
    net = make_net(norm=norm, placement=placement).train()  # dropout 0; batch norm on batch statistics
    src, src_lens, tgt_in = batch()
    tgt_in[2, 3:] = PAD
    other_src = src.clone()
    other_src[1, 4:] = torch.tensor([5, 9])  # garbage where the source is padding
    other_src[2, 2:] = 7
    logits = net(src, src_lens, tgt_in).logits
    other = net(other_src, src_lens, tgt_in).logits
    torch.testing.assert_close(logits, other)
    wider_src = torch.cat([src, torch.full((3, 3), PAD)], 1)  # extra padding columns on both sides
    wider_tgt = torch.cat([tgt_in, torch.full((3, 2), PAD)], 1)
    real = tgt_in != PAD
    torch.testing.assert_close(net(wider_src, src_lens, wider_tgt).logits[:, :5][real], logits[real])


def test_position_information_reaches_the_encoder_only_through_the_encoding():
    src, src_lens, _ = batch()
    src, src_lens = src[:1], src_lens[:1]
    permuted = src[:, torch.tensor([3, 1, 0, 2, 5, 4])]
    bag = make_net(pos_encoding=NoPositionalEncoding).eval()
    memory, permuted_memory = bag.encode(src, src_lens).memory, bag.encode(permuted, src_lens).memory
    torch.testing.assert_close(memory.sort(1).values, permuted_memory.sort(1).values)  # a bag of tokens
    for encoding in (SinusoidalPositionalEncoding, LearnedPositionalEncoding, RotaryPositionalEncoding):
        net = make_net(pos_encoding=encoding).eval()
        assert not torch.allclose(net.encode(src, src_lens).memory.sort(1).values,
                                  net.encode(permuted, src_lens).memory.sort(1).values)


@pytest.mark.parametrize("pos_encoding", ENCODINGS)
@pytest.mark.parametrize("scorer", SCORERS)
@pytest.mark.parametrize("placement", ["post", "pre"])
def test_incremental_steps_equal_teacher_forcing(scorer, pos_encoding, placement):
    net = make_net(scorer, pos_encoding, placement=placement).eval()
    src, src_lens, tgt_in = batch()
    expected = net(src, src_lens, tgt_in).logits  # (B, T, V)
    for use_cache in (True, False):
        state = net.start_decoding(src, src_lens, use_cache=use_cache)
        steps = []
        for t in range(tgt_in.shape[1]):
            logits, state = net.decode_step(state, tgt_in[:, t])
            steps.append(logits)
        torch.testing.assert_close(torch.stack(steps, 1), expected, atol=1e-5, rtol=1e-4)
        assert (state.caches is not None) == use_cache


def test_cache_holds_one_entry_per_fed_token_and_reorders():
    net = make_net().eval()
    src, src_lens, tgt_in = batch()
    state = net.start_decoding(src, src_lens)
    for t in range(3):
        _, state = net.decode_step(state, tgt_in[:, t])
    assert all(cache.self_attention.length == 3 for cache in state.caches)  # no recomputation: one key per step
    assert all(cache.cross_attention.length == 6 for cache in state.caches)  # memory projected once
    order = torch.tensor([2, 0, 0])
    state.reorder(order)
    logits, _ = net.decode_step(state, tgt_in[order, 3])
    torch.testing.assert_close(logits, net(src[order], src_lens[order], tgt_in[order, :4]).logits[:, -1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("pos_encoding", [SinusoidalPositionalEncoding, RotaryPositionalEncoding])
def test_cached_decoding_equals_full_recomputation(pos_encoding):
    net = make_net(pos_encoding=pos_encoding).eval()
    src, src_lens, _ = batch()
    cached, recomputed = greedy_decode(net, src, src_lens, max_steps=8), greedy_decode(net, src, src_lens, max_steps=8, use_cache=False)
    assert torch.equal(cached.tokens, recomputed.tokens) and torch.equal(cached.lengths, recomputed.lengths)
    torch.testing.assert_close(cached.scores, recomputed.scores)
    cached = beam_search(net, src, src_lens, beam_size=3, max_steps=8)
    recomputed = beam_search(net, src, src_lens, beam_size=3, max_steps=8, use_cache=False)
    assert torch.equal(cached.tokens, recomputed.tokens)
    torch.testing.assert_close(cached.scores, recomputed.scores)


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
def test_beam_of_one_is_greedy(length_penalty):
    net = make_net().eval()
    src, src_lens, _ = batch(seed=3)
    greedy = greedy_decode(net, src, src_lens, max_steps=10)
    beam = beam_search(net, src, src_lens, beam_size=1, length_penalty=length_penalty, max_steps=10)
    assert torch.equal(beam.tokens, greedy.tokens) and torch.equal(beam.lengths, greedy.lengths)


def test_weight_tying_shares_parameters():
    tied = make_net()
    assert tied.output_proj.weight is tied.tgt_embed.embedding.weight
    assert tied.src_embed.embedding is not tied.tgt_embed.embedding
    shared = make_net(share_embeddings=True)
    assert shared.src_embed.embedding.weight is shared.tgt_embed.embedding.weight is shared.output_proj.weight
    untied = make_net(tie_output=False)
    assert untied.output_proj.weight is not untied.tgt_embed.embedding.weight
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(untied) - count(tied) == VOCAB * 16 and count(tied) - count(shared) == VOCAB * 16
    loss = tied(*batch()).logits.sum()
    loss.backward()  # the tied matrix gets gradient from both uses
    assert tied.tgt_embed.embedding.weight.grad is not None
    with pytest.raises(ValueError, match="src_vocab_size=13 != tgt_vocab_size=20"):
        make_net(share_embeddings=True, tgt_vocab_size=20)


def test_embeddings_are_scaled_and_padding_embeds_to_zero():
    net = make_net(pos_encoding=NoPositionalEncoding)
    tokens = torch.tensor([[4, PAD]])
    embedded = net.tgt_embed(tokens)
    torch.testing.assert_close(embedded[0, 0], net.tgt_embed.embedding.weight[4] * 4.0)  # sqrt(16)
    assert embedded[0, 1].eq(0).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="eos_id=13 is outside the target vocabulary of size 13"):
        make_net(eos_id=13)
    with pytest.raises(ValueError, match="placement='middle'"):
        make_net(placement="middle")
    with pytest.raises(ValueError, match="activation='swish'"):
        make_net(activation="swish")
    with pytest.raises(ValueError, match=r"expected src \(B, S\)"):
        make_net()(torch.zeros(4, dtype=torch.long), torch.tensor([4]), torch.zeros(1, 2, dtype=torch.long))


def test_decoder_training_takes_sdpa_is_causal_path_without_a_mask(monkeypatch):
    """Right-padded targets need no key mask under the causal mask, so decoder self-attention runs SDPA's
    ``is_causal`` kernel; the explicit (B, 1, T, T) mask is built only where padding must be masked."""
    import attnlab.attention.multihead as multihead

    calls = []
    sdpa = multihead.F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        calls.append((q.shape[-2], k.shape[-2], attn_mask is None, is_causal))
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale)

    monkeypatch.setattr(multihead.F, "scaled_dot_product_attention", recording)
    src, src_lens, tgt_in = batch()
    tgt_in[2, 3:] = PAD
    make_net(num_encoder_layers=1, num_decoder_layers=1).train()(src, src_lens, tgt_in)
    encoder_self, decoder_self, cross = calls
    assert encoder_self == (6, 6, False, False)  # source padding: explicit key mask
    assert decoder_self == (5, 5, True, True)  # target: is_causal, no mask
    assert cross == (5, 6, False, False)
