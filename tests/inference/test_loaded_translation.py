"""``attnlab.load`` on tiny Transformer and Bahdanau runs: translations as ``attnlab-translate`` prints them, and
every attention map over the real tokens only."""
from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.cli.translate import main as translate_main
from attnlab.inference import AttentionMap, AttentionResult, cross_alignment

SENTENCES = ["i see the red cat", "we like a big dog", "she"]


def assert_rows_sum_to_one(result: AttentionResult) -> None:
    for attention in result.maps.values():
        torch.testing.assert_close(attention.weights.sum(-1), torch.ones(attention.weights.shape[:-1]))


def test_translate_is_what_attnlab_translate_prints_for_the_run_dir(transformer_run, capsys):
    loaded = attnlab.load(transformer_run)
    assert loaded.family == "translation" and loaded.max_len == 8
    translations = loaded.translate(SENTENCES)
    assert isinstance(translations, list) and all(isinstance(t, str) for t in translations)
    assert loaded.translate(SENTENCES[0]) == translations[0]
    translate_main([f"ckpt_path={transformer_run}", *(f"text={s}" for s in SENTENCES)])
    assert capsys.readouterr().out.splitlines() == translations
    beams = loaded.translate(SENTENCES, strategy="beam", beam_size=3)
    translate_main([f"ckpt_path={transformer_run}", *(f"text={s}" for s in SENTENCES), "decode.strategy=beam", "decode.beam_size=3"])
    assert capsys.readouterr().out.splitlines() == beams


def test_transformer_attention_has_every_layer_and_head_over_the_real_tokens(transformer_run):
    loaded = attnlab.load(transformer_run)
    result = loaded.attention("i see the red cat")
    assert list(result.maps) == ["encoder_self", "decoder_self", "cross"]
    assert result.output == loaded.translate("i see the red cat") and not result.truncated
    source = ["i", "see", "the", "red", "cat", "<eos>"]
    tokenizer = loaded.data.tgt_tokenizer
    target = ["<bos>", *(tokenizer.id_to_token(i) for i in tokenizer.encode_batch([result.output])[0])]
    layers, heads = 2, 2
    expected = {"encoder_self": (source, source), "decoder_self": (target, target), "cross": (target, source)}
    for kind, (queries, keys) in expected.items():
        attention = result.maps[kind]
        assert (attention.kind, attention.query_tokens, attention.key_tokens) == (kind, queries, keys)
        assert attention.weights.shape == (layers, heads, len(queries), len(keys))
        assert attention.weights.dtype == torch.float32 and attention.weights.device.type == "cpu"
    assert_rows_sum_to_one(result)
    decoder = result.maps["decoder_self"].weights
    assert torch.all(decoder.triu(1) == 0)  # no query sees a later target token


def test_a_batch_pads_but_no_weight_reaches_the_padding(transformer_run):
    """In a batch the shorter sentences are padded; each one's maps equal those it gets alone."""
    loaded = attnlab.load(transformer_run)
    loaded.batch_size = 2  # two batches: the last one of a single sentence
    batch = loaded.attention(SENTENCES)
    assert [result.output for result in batch] == loaded.translate(SENTENCES)
    for sentence, result in zip(SENTENCES, batch):
        alone = loaded.attention(sentence)
        assert result.output == alone.output
        for kind, attention in alone.maps.items():
            assert result.maps[kind].query_tokens == attention.query_tokens
            torch.testing.assert_close(result.maps[kind].weights, attention.weights, atol=1e-5, rtol=1e-5)
        assert_rows_sum_to_one(result)


def test_a_given_target_is_teacher_forced_and_unknown_words_are_unk(transformer_run):
    loaded = attnlab.load(transformer_run)
    result = loaded.attention("i see the zebra", tgt="je vois le zèbre")
    assert result.output == "je vois le zèbre"
    assert result.maps["cross"].key_tokens == ["i", "see", "the", "<unk>", "<eos>"]
    assert result.maps["cross"].query_tokens == ["<bos>", "je", "vois", "le", "<unk>"]
    alignment = loaded.alignment("i see the zebra", "je vois le zèbre")
    assert sorted(target for _, target in alignment) == [0, 1, 2, 3]  # one source token per target token
    assert all(0 <= source < 4 for source, _ in alignment)  # never the source <eos>
    assert loaded.alignment(["i see", "we"], ["je vois", "nous"])[1] == [(0, 0)]


def test_inputs_longer_than_max_len_are_cut_and_flagged(transformer_run):
    loaded = attnlab.load(transformer_run)
    long = "i see the red cat and the big dog"  # 9 tokens; max_len=8 keeps 7 and <eos>
    result = loaded.attention(long)
    assert result.truncated and result.maps["encoder_self"].key_tokens == ["i", "see", "the", "red", "cat", "<unk>", "the", "<eos>"]
    assert not loaded.attention("i see").truncated
    assert loaded.attention("i see", tgt="je vois le rouge chat et le grand chien").truncated


def test_empty_text_and_mismatched_targets_are_errors(transformer_run):
    loaded = attnlab.load(transformer_run)
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        loaded.translate(["i see", "  "])
    with pytest.raises(ValueError, match="src is empty"):
        loaded.attention("")
    with pytest.raises(ValueError, match="tgt must match the first texts: 2 texts, got 1 text"):
        loaded.attention(["i see", "we"], "je vois")
    with pytest.raises(ValueError, match="decode strategy='sample' is not one of"):
        loaded.translate("i see", strategy="sample")


def test_bahdanau_gives_its_additive_attention(bahdanau_run):
    loaded = attnlab.load(bahdanau_run)
    assert loaded.describe()["attention"] == ["additive"]
    results = loaded.attention(["i see the red cat", "we"])
    for sentence, result in zip(["i see the red cat", "we"], results):
        (attention,) = result.maps.values()
        assert attention.kind == "additive" and attention.key_tokens == [*sentence.split(), "<eos>"]
        assert attention.weights.shape == (1, 1, len(attention.query_tokens), len(attention.key_tokens))
        assert_rows_sum_to_one(result)
        torch.testing.assert_close(attention.weights, loaded.attention(sentence).maps["additive"].weights)
    assert loaded.alignment("i see the red cat") == cross_alignment(results[0])


def test_cross_alignment_reads_the_last_layer_and_skips_bos_and_eos():
    """Target token t is aligned by the query that predicts it (row t); the source <eos> is no word."""
    cross = torch.zeros(2, 2, 4, 3)  # (L, H, <bos> y1 y2 y3, x1 x2 <eos>)
    cross[0, :, :, 0] = 1.0  # the first layer points at x1 everywhere: ignored
    cross[1, 0] = torch.tensor([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.1, 0.7], [0.0, 0.0, 1.0]])
    cross[1, 1] = torch.tensor([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.0, 0.0, 1.0]])
    result = AttentionResult({"cross": AttentionMap("cross", ["<bos>", "a", "b", "c"], ["x", "y", "<eos>"], cross)}, None, False)
    assert cross_alignment(result) == [(0, 1), (0, 2), (1, 0)]
