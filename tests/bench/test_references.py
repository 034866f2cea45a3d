"""The benchmark's baselines compute what attnlab computes, with as many parameters, so only the attention and
padding handling differ; and the harness interleaves, takes medians and sees allocations."""
from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_bert, tiny_transformer

from attnlab.models.bert import BertForPretraining
from attnlab.models.transformer import Transformer
from bench.harness import MIB, Contender, Goal, Figure, Row, loglog_slope, measure, peak_allocated
from bench.reference.explicit import masked_softmax
from bench.reference.explicit_bert import ExplicitBertForPretraining
from bench.reference.explicit_transformer import ExplicitTransformer
from bench.reference.torch_transformer import TorchTransformerMT

PAD = 1
MT = dict(d_model=32, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=16, dropout=0.0)
BERT = dict(d_model=32, num_heads=4, num_layers=2, d_ff=16, dropout=0.0, activation="gelu")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def attnlab_transformer() -> Transformer:
    return tiny_transformer(40, 50, pad_id=PAD, bos_id=2, eos_id=3, **MT)


def padded_pair():
    src = torch.randint(4, 40, (3, 7))
    src_lens = torch.tensor([7, 4, 2])
    src[torch.arange(7) >= src_lens[:, None]] = PAD
    tgt = torch.randint(4, 50, (3, 6))
    tgt[1, 4:] = PAD
    return src, src_lens, tgt


def test_explicit_transformer_matches_attnlab_with_its_weights():
    net = attnlab_transformer().eval()
    explicit = ExplicitTransformer(40, 50, PAD, **MT).eval()
    explicit.load_state_dict(net.state_dict())  # same names, same shapes: nothing missing or left over
    src, src_lens, tgt = padded_pair()
    real = tgt != PAD
    expected = net(src, src_lens, tgt).logits
    torch.testing.assert_close(explicit(src, src_lens, tgt)[real], expected[real], atol=1e-5, rtol=1e-5)


def test_mt_references_have_attnlabs_parameter_count():
    assert count(ExplicitTransformer(40, 50, PAD, **MT)) == count(attnlab_transformer())
    assert count(TorchTransformerMT(40, 50, PAD, **MT)) == count(attnlab_transformer())


def test_torch_transformer_is_causal():
    model = TorchTransformerMT(40, 50, PAD, **MT).eval()
    src, src_lens, tgt = padded_pair()
    changed = tgt.clone()
    changed[:, -1] = 5
    torch.testing.assert_close(model(src, src_lens, changed)[:, :-1], model(src, src_lens, tgt)[:, :-1])


def bert_batch():
    tokens = torch.randint(5, 60, (3, 12))
    valid_lens = torch.tensor([12, 8, 5])
    tokens[torch.arange(12) >= valid_lens[:, None]] = 0
    segments = (torch.arange(12) >= 4).long().expand(3, 12)
    positions = torch.tensor([[1, 6], [2, 5], [1, 3]])
    return tokens, segments, valid_lens, positions


def test_explicit_bert_matches_attnlab_with_its_weights():
    net = BertForPretraining(tiny_bert(60, pad_id=0, max_len=12, **BERT)).eval()
    explicit = ExplicitBertForPretraining(60, 0, 12, **BERT).eval()
    explicit.load_state_dict(net.state_dict())
    assert count(explicit) == count(net)
    tokens, segments, valid_lens, positions = bert_batch()
    expected = net(tokens, segments, valid_lens, positions)
    got = explicit(tokens, segments, valid_lens, positions)
    torch.testing.assert_close(got.mlm_logits.flatten(0, 1), expected.mlm_logits, atol=1e-5, rtol=1e-5)  # every slot
    torch.testing.assert_close(got.nsp_logits, expected.nsp_logits, atol=1e-5, rtol=1e-5)


def test_hf_bert_has_attnlabs_size_and_its_gathered_head_equals_the_standard_one():
    pytest.importorskip("transformers")
    from bench.reference.hf_bert import bert_for_pretraining, gathered_logits

    hf = bert_for_pretraining(60, 0, 12, **BERT).eval()
    assert count(hf) == count(BertForPretraining(tiny_bert(60, pad_id=0, max_len=12, **BERT)))
    tokens, segments, valid_lens, positions = bert_batch()
    mask = (tokens != 0).long()
    full = hf(input_ids=tokens, token_type_ids=segments, attention_mask=mask).prediction_logits  # (B, T, V)
    picked = full.gather(1, positions[..., None].expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(gathered_logits(hf, tokens, segments, mask, positions)[0], picked)


def test_explicit_masked_softmax_fills_past_valid_lengths():
    weights = masked_softmax(torch.randn(2, 3, 5), torch.tensor([2, 4]))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert weights[0, :, 2:].max() < 1e-30 and weights[1, :, 4:].max() < 1e-30


def test_measure_interleaves_rounds_after_warmup():
    calls = []
    contenders = [Contender(name, lambda name=name: calls.append(name) or 2.0, probe_memory=False) for name in "AB"]
    results = measure(contenders, warmup=1, repeats=3)
    assert calls == ["A", "B", "A", "B", "A", "B", "A", "B"]  # warm-up A, B; then rounds A B, A B, A B
    assert len(results["A"].seconds) == 3 and results["A"].work == [2.0, 2.0, 2.0]


def test_a_step_may_report_its_own_seconds():
    results = measure([Contender("epoch", lambda: (1, 0.25), probe_memory=False)], warmup=0, repeats=3)
    assert results["epoch"].time == 0.25 and results["epoch"].rate == 4.0


def test_peak_allocated_sees_a_temporary_and_ignores_what_existed_before():
    before = torch.empty(64 * 2**18)  # 64 MiB that exist already
    peak = peak_allocated(lambda: torch.ones(4 * 2**18).sum())  # a 4 MiB temporary
    assert 4 * MIB <= peak < 8 * MIB
    del before


def test_growth_exponent_and_goals():
    lengths = [128, 256, 512]
    assert loglog_slope(lengths, [n**2 for n in lengths]) == pytest.approx(2.0)
    row = Row("case", "setting", "tokens/s", Figure("attnlab", 30.0), [Figure("ref", 10.0)],
              [Goal(">= 2x", ">=", 2.0, "ref"), Goal("<= 20", "<=", 20.0)])
    assert row.ratio("ref") == 3.0
    assert [goal.met(row) for goal in row.goals] == [True, False]


def test_bert_reference_without_transformers_is_a_skip(monkeypatch):
    from bench.harness import Skip
    from bench.reference.hf_bert import bert_for_pretraining

    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(Skip, match="transformers is not installed"):
        bert_for_pretraining(60, 0, 12, **BERT)
