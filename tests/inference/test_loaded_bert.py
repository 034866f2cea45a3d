"""``attnlab.load`` on a tiny pretrained BERT and a classifier fine-tuned from it: features, fill-mask, next
sentence, predictions, and the encoder's self-attention over the real tokens."""
from __future__ import annotations

import pytest
import torch

import attnlab


def test_fill_mask_finds_the_word_the_tiny_corpus_always_has_there(bert_run):
    loaded = attnlab.load(bert_run)
    assert loaded.family == "bert_pretraining" and loaded.max_len == 24
    (candidates,) = loaded.fill_mask("the [MASK] sat on the mat", top_k=3)
    assert [c.token for c in candidates][0] == "cat"
    probs = [c.prob for c in candidates]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    both = loaded.fill_mask(["The cat sat on the [MASK]", "a bird [MASK] over the [MASK]"], top_k=2)
    assert [len(masks) for masks in both] == [1, 2]  # a list per [MASK]; input lowercased, [MASK] kept
    assert both[0][0][0].token == "mat" and [masks[0].token for masks in both[1]] == ["flew", "house"]
    with pytest.raises(ValueError, match=r"holds no \[MASK\]"):
        loaded.fill_mask("the cat sat")


def test_features_and_next_sentence(bert_run):
    loaded = attnlab.load(bert_run)
    features = loaded.features("the cat sat", "a zebra flew")
    assert features.tokens == ["[CLS]", "the", "cat", "sat", "[SEP]", "a", "[UNK]", "flew", "[SEP]"]
    assert features.hidden.shape == (9, 32) and features.pooled.shape == (32,)
    assert features.segments.tolist() == [0] * 5 + [1] * 4 and not features.truncated
    batch = loaded.features(["the cat sat", "the dog ran in the park", "a bird"])
    loaded.batch_size = 2
    for one, chunked in zip(batch, loaded.features(["the cat sat", "the dog ran in the park", "a bird"])):
        assert one.tokens == chunked.tokens
        torch.testing.assert_close(one.hidden, chunked.hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch[0].hidden, loaded.features("the cat sat").hidden, atol=1e-5, rtol=1e-5)
    follows = loaded.next_sentence(["the cat sat on the mat", "the cat"], ["the dog ran in the park", "sat"])
    assert all(isinstance(r.is_next, bool) and 0 <= r.prob <= 1 and r.is_next == (r.prob > 0.5) for r in follows)


def test_attention_rows_sum_to_one_over_the_real_tokens(bert_run):
    loaded = attnlab.load(bert_run)
    texts = ["the cat sat on the mat", "the dog"]
    results = loaded.attention(texts, ["the sun rose", "a bird flew over the house"])
    for (a, b), result in zip([("the cat sat on the mat", "the sun rose"), ("the dog", "a bird flew over the house")], results):
        (attention,) = result.maps.values()
        tokens = ["[CLS]", *a.split(), "[SEP]", *b.split(), "[SEP]"]
        assert attention.kind == "self" and attention.query_tokens == attention.key_tokens == tokens
        assert attention.weights.shape == (2, 2, len(tokens), len(tokens))
        torch.testing.assert_close(attention.weights.sum(-1), torch.ones(2, 2, len(tokens)))
        alone = loaded.attention(a, b).maps["self"].weights  # no padding: the batch's padding took no weight
        torch.testing.assert_close(attention.weights, alone, atol=1e-5, rtol=1e-5)
    long = loaded.attention(" ".join(["the cat sat on the mat"] * 5))
    assert long.truncated and len(long.maps["self"].query_tokens) == 24
    with pytest.raises(ValueError, match="text_b must match the first texts"):
        loaded.attention(["a", "b"], ["c"])


def test_classifier_predicts_named_labels_and_its_attention_names_the_prediction(classifier_run):
    loaded = attnlab.load(classifier_run)
    assert loaded.family == "bert_classifier" and loaded.describe()["labels"] == ["negative", "positive"]
    predictions = loaded.predict(["the cat sat good", "a dog ran bad park"])
    for prediction in predictions:
        assert set(prediction.probs) == {"negative", "positive"} and sum(prediction.probs.values()) == pytest.approx(1)
        assert prediction.label == max(prediction.probs, key=prediction.probs.get)
    alone = loaded.predict("the cat sat good")
    assert alone.label == predictions[0].label and alone.probs == pytest.approx(predictions[0].probs, abs=1e-5)
    result = loaded.attention("the cat sat good")
    assert result.output == predictions[0].label
    assert result.maps["self"].query_tokens == ["[CLS]", "the", "cat", "sat", "good", "[SEP]"]
    with pytest.raises(ValueError, match="this classifier reads single texts"):
        loaded.predict("a", "b")


def test_training_plots_every_heads_attention_on_a_fixed_unmasked_validation_pair(bert_run, classifier_run):
    """After each validation the BERT tasks leave plots/attention_self.png, as the Transformer leaves its maps."""
    for run in (bert_run, classifier_run):
        assert (run / "plots" / "attention_self.png").stat().st_size > 0
    data = attnlab.load(bert_run).data
    data.setup()
    tokens, segments = data.val_example()
    first = data.tokenizer.id_to_token
    assert first(int(tokens[0])) == "[CLS]" and first(int(tokens[-1])) == "[SEP]"
    assert data.tokenizer.token_to_id("[MASK]") not in tokens.tolist()  # the masked tokens are put back
    assert segments.tolist() == sorted(segments.tolist()) and set(segments.tolist()) == {0, 1}
    again, _ = data.val_example()
    assert torch.equal(tokens, again)


def test_a_checkpoint_written_before_the_residual_holder_went_restores_with_equal_outputs(bert_run, tmp_path):
    """Checkpoints of before issue 23 name each block norm ``<sublayer>_residual.norm``: ``attnlab.load``,
    Lightning's loading (``on_load_checkpoint``) and fine-tuning's ``pretrained=`` reader rename them."""
    from attnlab.inference.restore import restore_run
    from attnlab.lit.pretrained import read_pretrained
    from attnlab.training.checkpoint import FORMAT_KEY

    today = bert_run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(today, weights_only=True)
    old = {key.replace("_norm.", "_residual.norm.") if ".blocks." in key else key: value
           for key, value in checkpoint["state_dict"].items()}
    assert "net.bert.encoder.blocks.0.self_residual.norm.weight" in old and not any("self_norm" in key for key in old)
    checkpoint[FORMAT_KEY] = 1  # the format those checkpoints were written in
    torch.save(checkpoint | {"state_dict": old}, tmp_path / "old.ckpt")
    text = "the cat sat on the mat"
    expected = attnlab.load(today).features(text).hidden
    torch.testing.assert_close(attnlab.load(tmp_path / "old.ckpt").features(text).hidden, expected)
    module = restore_run(today).module
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
    resumed = checkpoint | {"state_dict": dict(old)}
    module.on_load_checkpoint(resumed)  # what Lightning calls before it loads the state dict
    module.load_state_dict(resumed["state_dict"])
    torch.testing.assert_close(module.state_dict(), restore_run(today).module.state_dict())
    pretrained, before = read_pretrained(today), read_pretrained(tmp_path / "old.ckpt")
    torch.testing.assert_close(before.state, pretrained.state)
