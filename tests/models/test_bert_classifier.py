"""BertClassifier: one new output layer on the pooled [CLS] or the tokens' mean; a frozen encoder gets no gradient,
segments matter.
(Pretrained weights: tests/lit/test_pretrained.py.)"""
import pytest
import torch
from tiny_models import tiny_bert

from attnlab.models.bert_classifier import BertClassifier, ClassifierOutput, ClsPooling, MeanPooling

SIZES = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.1)
VOCAB, PAD, MAX_LEN = 30, 0, 12


def classifier(max_len=MAX_LEN, vocab=VOCAB, num_classes=3, **sizes):
    torch.manual_seed(2)
    return BertClassifier(tiny_bert(vocab, pad_id=PAD, max_len=max_len, **{**SIZES, **sizes}), num_classes=num_classes)


def test_output_is_the_head_over_the_pooled_cls_vector():
    model = classifier().eval()
    output = model(torch.tensor([[2, 5, 6, 3]]))
    assert isinstance(output, ClassifierOutput) and output.logits.shape == (1, 3)
    assert torch.allclose(output.pooled, model.bert(torch.tensor([[2, 5, 6, 3]])).pooled)
    assert torch.allclose(output.logits, model.head.output(output.pooled))  # dropout is off in eval mode


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


def test_mean_pooling_averages_the_real_tokens_final_vectors_only():
    model = BertClassifier(tiny_bert(VOCAB, pad_id=PAD, max_len=MAX_LEN, **SIZES), num_classes=2,
                           pooling=MeanPooling()).eval()
    tokens = torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 8, 9, 10, 3]])
    output = model(tokens, valid_lens=torch.tensor([4, 6]))
    hidden = model.bert(tokens, valid_lens=torch.tensor([4, 6])).hidden
    torch.testing.assert_close(output.pooled, torch.stack([hidden[0, :4].mean(0), hidden[1].mean(0)]))
    garbage = tokens.clone()
    garbage[0, 4:] = 11  # what sits past a row's valid length never reaches its mean
    torch.testing.assert_close(model(garbage, valid_lens=torch.tensor([4, 6])).pooled, output.pooled)
    torch.testing.assert_close(output.logits, model.head.output(output.pooled))


def test_pooling_choices_share_state_dict_names_and_both_train_frozen():
    cls, mean = classifier(), BertClassifier(classifier().bert, num_classes=3, pooling=MeanPooling())
    assert isinstance(cls.pooling, ClsPooling) and list(cls.state_dict()) == list(mean.state_dict())
    for model in (cls, mean):
        model.freeze_encoder()
        model(torch.randint(5, VOCAB, (2, 6))).logits.sum().backward()
        assert all(p.grad is not None for p in model.head.parameters())
