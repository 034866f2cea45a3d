"""The Bahdanau GRU encoder-decoder: shapes, masking, decoding contract."""
import pytest
import torch

from attnlab.attention import AdditiveScorer, DotProductScorer, GeneralScorer, ScaledDotProductScorer
from attnlab.models.decoding import beam_search, greedy_decode
from attnlab.models.seq2seq import BahdanauSeq2Seq

PAD, BOS, EOS = 0, 1, 2


def _model(scorer=AdditiveScorer):
    return BahdanauSeq2Seq(20, 22, pad_id=PAD, bos_id=BOS, eos_id=EOS, scorer=scorer, embed_size=16, hidden_size=16, num_layers=2, dropout=0.0).eval()


def _batch():
    src = torch.randint(3, 20, (3, 6))
    src_lens = torch.tensor([6, 3, 1])
    src[1, 3:] = PAD
    src[2, 1:] = PAD
    return src, src_lens, torch.randint(3, 22, (3, 5))


@pytest.mark.parametrize("scorer", [AdditiveScorer, DotProductScorer, ScaledDotProductScorer, GeneralScorer])
def test_shapes_and_no_attention_on_padding(scorer):
    src, src_lens, tgt = _batch()
    out = _model(scorer)(src, src_lens, tgt, need_weights=True)
    assert out.logits.shape == (3, 5, 22)
    weights = out.cross_weights[0]  # (B, 1, T, S)
    assert weights.shape == (3, 1, 5, 6)
    assert weights[1, 0, :, 3:].eq(0).all() and weights[2, 0, :, 1:].eq(0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 1, 5))


def test_padding_tokens_do_not_change_the_output():
    model = _model()
    src, src_lens, tgt = _batch()
    other = src.clone()
    other[1, 3:] = 7  # garbage beyond the valid length
    torch.testing.assert_close(model(src, src_lens, tgt).logits[1], model(other, src_lens, tgt).logits[1])


def test_teacher_forcing_equals_stepwise_decoding():
    model = _model()
    src, src_lens, tgt = _batch()
    full = model(src, src_lens, tgt).logits
    state = model.start_decoding(src, src_lens)
    steps = []
    for t in range(tgt.shape[1]):
        logits, state = model.decode_step(state, tgt[:, t])
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full)


def test_beam_of_one_equals_greedy():
    model = _model()
    src, src_lens, _ = _batch()
    greedy = greedy_decode(model, src, src_lens, max_steps=8)
    beam = beam_search(model, src, src_lens, beam_size=1, length_penalty=0.0, max_steps=8)
    assert torch.equal(greedy.tokens, beam.tokens) and torch.equal(greedy.lengths, beam.lengths)


def test_loss_falls_on_a_copy_task():
    torch.manual_seed(0)
    model = _model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    src = torch.randint(3, 20, (16, 5))
    src_lens = torch.full((16,), 5)
    tgt_in = torch.cat([torch.full((16, 1), BOS), src], 1)
    tgt_out = torch.cat([src, torch.full((16, 1), EOS)], 1)
    losses = []
    for _ in range(40):
        logits = model(src, src_lens, tgt_in).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 22), tgt_out.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_bad_ids_are_rejected():
    with pytest.raises(ValueError, match="eos_id=30 is outside the target vocabulary of size 22"):
        BahdanauSeq2Seq(20, 22, pad_id=PAD, bos_id=BOS, eos_id=30, scorer=AdditiveScorer)
