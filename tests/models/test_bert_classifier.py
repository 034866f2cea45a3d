"""BertClassifier: pretrained encoder weights arrive unchanged (attnlab checkpoints and Hugging Face state dicts),
pretraining heads are dropped, mismatches are clear errors, a frozen encoder gets no gradient."""
import pytest
import torch
from tiny_models import tiny_bert

from attnlab.models.bert import BertForPretraining, BertModel
from attnlab.models.bert_classifier import BertClassifier, ClassifierOutput, load_pretrained_encoder
from attnlab.models.bert_interop import to_hf_state_dict

SIZES = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.1)
VOCAB, PAD, MAX_LEN = 30, 0, 12


def pretrained_model(max_len=MAX_LEN, vocab=VOCAB, **sizes):
    torch.manual_seed(1)
    return BertForPretraining(tiny_bert(vocab, pad_id=PAD, max_len=max_len, **{**SIZES, **sizes}))


def save_run_checkpoint(path, model: BertForPretraining, tokenizer_json="{}"):
    """What attnlab-train writes for a pretraining run: LightningModule weights under net., config, tokenizer."""
    torch.save({
        "state_dict": {f"net.{key}": value for key, value in model.state_dict().items()},
        "attnlab_config": {"model": {"net": {"_target_": "attnlab.models.bert.BertForPretraining", **SIZES}}},
        "WikiText2DataModule": {"tokenizer": tokenizer_json},
    }, path)
    return path


def classifier(max_len=MAX_LEN, vocab=VOCAB, num_classes=3, **sizes):
    torch.manual_seed(2)
    return BertClassifier(tiny_bert(vocab, pad_id=PAD, max_len=max_len, **{**SIZES, **sizes}), num_classes=num_classes)


def assert_encoder_equals(encoder: BertModel, reference: BertModel):
    ours, theirs = encoder.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_run_checkpoint_encoder_arrives_unchanged_and_heads_are_dropped(tmp_path):
    pretrained = pretrained_model()
    path = save_run_checkpoint(tmp_path / "last.ckpt", pretrained, tokenizer_json='{"v": 1}')
    model = classifier()
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    loaded = load_pretrained_encoder(model.bert, path)
    assert_encoder_equals(model.bert, pretrained.bert)
    assert loaded.tokenizer_json == '{"v": 1}'
    assert all(torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())  # the new layer stays new
    assert not any(key.startswith(("mlm_head", "nsp_head")) for key in model.state_dict())
    output = model.eval()(torch.tensor([[2, 5, 6, 3]]))
    assert isinstance(output, ClassifierOutput) and output.logits.shape == (1, 3)
    assert torch.allclose(output.pooled, pretrained.bert.eval()(torch.tensor([[2, 5, 6, 3]])).pooled)


@pytest.mark.parametrize("layout", ["pretraining", "encoder"])
def test_hugging_face_state_dict_encoder_arrives_unchanged(tmp_path, layout):
    pretrained = pretrained_model()
    source = pretrained if layout == "pretraining" else pretrained.bert
    torch.save(to_hf_state_dict(source), tmp_path / "pytorch_model.bin")
    model = classifier()
    assert load_pretrained_encoder(model.bert, tmp_path / "pytorch_model.bin").tokenizer_json is None
    assert_encoder_equals(model.bert, pretrained.bert)


def test_longer_position_table_keeps_its_first_rows_and_a_shorter_one_is_an_error(tmp_path):
    pretrained = pretrained_model(max_len=20)
    path = save_run_checkpoint(tmp_path / "last.ckpt", pretrained)
    model = classifier(max_len=8)
    load_pretrained_encoder(model.bert, path)
    table = pretrained.bert.embeddings.position.embedding.weight
    assert torch.equal(model.bert.embeddings.position.embedding.weight, table[:8])
    with pytest.raises(ValueError, match=r"has 20 positions, fewer than max_len=32; set data.max_len <= 20"):
        load_pretrained_encoder(classifier(max_len=32).bert, path)


def test_vocabulary_mismatch_is_a_clear_error(tmp_path):
    path = save_run_checkpoint(tmp_path / "last.ckpt", pretrained_model(vocab=40))
    with pytest.raises(ValueError, match=r"tokenizer/vocabulary mismatch: .* embeds 40 tokens but the data's tokenizer has 30"):
        load_pretrained_encoder(classifier(vocab=30).bert, path)


def test_architecture_mismatch_names_the_differing_weights(tmp_path):
    path = save_run_checkpoint(tmp_path / "last.ckpt", pretrained_model(num_layers=1))
    with pytest.raises(ValueError, match=r"architecture differs.*missing \['encoder.blocks.1"):
        load_pretrained_encoder(classifier(num_layers=2).bert, path)
    path = save_run_checkpoint(tmp_path / "wide.ckpt", pretrained_model(d_ff=64))
    with pytest.raises(ValueError, match=r"architecture differs.*feed_forward.inner.weight \(64, 16\) vs \(32, 16\)"):
        load_pretrained_encoder(classifier().bert, path)


def test_a_checkpoint_without_bert_weights_is_refused(tmp_path):
    torch.save({"state_dict": {"net.kernel.w": torch.zeros(1)}, "attnlab_config": {"model": {"net": {"_target_": "NW"}}}},
               tmp_path / "nw.ckpt")
    with pytest.raises(ValueError, match=r"without BERT encoder weights \(net.bert.\*\); its model is NW"):
        load_pretrained_encoder(classifier().bert, tmp_path / "nw.ckpt")


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode():
    model = classifier()
    model.freeze_encoder()
    model.train()
    assert not model.bert.training and model.head.training
    tokens = torch.randint(5, VOCAB, (4, 7))
    first, second = model(tokens).pooled, model(tokens).pooled
    assert torch.equal(first, second)  # no dropout in the frozen encoder: the same features every time
    torch.nn.functional.cross_entropy(model(tokens).logits, torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is None for p in model.bert.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())


def test_unfrozen_encoder_gets_gradient_and_segments_change_the_prediction():
    model = classifier().eval()
    tokens = torch.randint(5, VOCAB, (2, 7))
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1]] * 2)
    assert not torch.allclose(model(tokens, segments).logits, model(tokens).logits)
    model(tokens, segments).logits.sum().backward()
    assert model.bert.embeddings.segment_embedding.weight.grad[1].abs().sum() > 0


def test_fewer_than_two_classes_is_rejected():
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        classifier(num_classes=1)
