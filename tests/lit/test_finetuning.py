"""Fine-tuning module: a pretrained encoder fine-tunes (or, frozen, never changes), a resumed checkpoint wins over
the pretrained weights, encoder/head learning rates and decay groups, metrics, identical predictions after a reload."""
import functools

import pytest
import pytorch_lightning as pl
import torch
from tiny_models import tiny_bert

from attnlab.data.classification import ClassificationDataModule
from attnlab.data.tokenizers import word
from attnlab.lit.classification import ClassificationModule
from attnlab.training.optim import linear_warmup_decay
from attnlab.lit.predictions import read_predictions
from attnlab.lit.pretrained import load_encoder, read_pretrained
from attnlab.models.bert import BertForPretraining
from attnlab.models.bert_classifier import BertClassifier, ClsPooling, MeanPooling

SIZES = dict(d_model=16, num_heads=2, num_layers=1, d_ff=32)
GOOD, BAD = ["good", "great", "fine"], ["bad", "dull", "awful"]


def write_sst2(directory, num_train=48):
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["sentence\tlabel"]
    for i in range(num_train):
        word_ = (GOOD if i % 2 else BAD)[i % 3]
        rows.append(f"the film was {word_} and long \t{i % 2}")
    (directory / "train.tsv").write_text("\n".join(rows) + "\n")
    (directory / "dev.tsv").write_text("sentence\tlabel\na good film \t1\na dull film \t0\nan awful film \t0\n")
    return directory


def save_pretraining_run(path, tokenizer, max_len=12):
    torch.manual_seed(1)
    model = BertForPretraining(tiny_bert(tokenizer.vocab_size, pad_id=0, max_len=max_len, **SIZES))
    torch.save({
        "state_dict": {f"net.{key}": value for key, value in model.state_dict().items()},
        "attnlab_config": {"model": {"net": {"_target_": "attnlab.models.bert.BertForPretraining", **SIZES}}},
        "WikiText2DataModule": {"tokenizer": tokenizer.to_str()},
    }, path)
    return model


@pytest.fixture
def data(tmp_path):
    directory = write_sst2(tmp_path / "sst2")
    module = ClassificationDataModule(
        directory / "train.tsv", directory / "dev.tsv", ["sentence"], {"0": "negative", "1": "positive"},
        val_fraction=0.25, tokenizer=functools.partial(word, min_freq=1), max_len=12, batch_size=8, seed=0,
    )
    module.setup("fit")
    return module


def module_for(data, pretrained=None, freeze=False, lr=1e-2, scale=0.1, scheduler=None, pooling=None):
    """The module as attnlab-train builds it; with ``pretrained`` its encoder is filled from that file first."""
    torch.manual_seed(0)
    spec = data.spec()
    encoder = tiny_bert(spec.vocab_size, pad_id=spec.pad_id, max_len=spec.max_len, **SIZES)
    net = BertClassifier(encoder, num_classes=spec.num_classes, dropout=0.0, pooling=pooling)
    if pretrained is not None:
        load_encoder(net.bert, read_pretrained(pretrained), data.tokenizer)
    optimizer = functools.partial(torch.optim.AdamW, lr=lr)
    return ClassificationModule(net, optimizer, scheduler, pretrained=None if pretrained is None else str(pretrained),
                                freeze_encoder=freeze, encoder_lr_scale=scale,
                                plot_attention=False)  # no run dir here: plots would land in the working directory


def trainer(**overrides):
    kwargs = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, max_steps=6, limit_val_batches=1,
    ) | overrides
    return pl.Trainer(**kwargs)


def snapshot(module):
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_a_pretrained_encoder_fine_tunes_all_of_it(data, tmp_path):
    pretrained = save_pretraining_run(tmp_path / "last.ckpt", data.tokenizer)
    module = module_for(data, tmp_path / "last.ckpt")
    trainer(max_steps=1).fit(module, datamodule=data)
    # one AdamW step moves each weight by ~lr: the encoder started at the pretrained weights, not at random ones
    start = pretrained.bert.embeddings.token_embedding.weight
    assert (module.net.bert.embeddings.token_embedding.weight - start).abs().max() < 0.01
    before = snapshot(module.net)
    trainer(max_steps=4).fit(module, datamodule=data)
    after = module.net.state_dict()
    assert not torch.equal(after["bert.encoder.blocks.0.feed_forward.inner.weight"], before["bert.encoder.blocks.0.feed_forward.inner.weight"])
    assert not torch.equal(after["head.output.weight"], before["head.output.weight"])


def test_a_resumed_checkpoint_wins_over_the_pretrained_weights(data, tmp_path):
    save_pretraining_run(tmp_path / "last.ckpt", data.tokenizer)
    run = trainer(max_steps=3, default_root_dir=tmp_path)
    run.fit(module_for(data, tmp_path / "last.ckpt"), datamodule=data)
    run.save_checkpoint(tmp_path / "resume.ckpt", weights_only=False)
    saved = torch.load(tmp_path / "resume.ckpt", weights_only=True)["state_dict"]
    resumed = module_for(data, tmp_path / "last.ckpt")  # attnlab-train fills the encoder again, then fit resumes
    trainer(max_steps=3).fit(resumed, datamodule=data, ckpt_path=tmp_path / "resume.ckpt", weights_only=True)
    for key, value in resumed.state_dict().items():
        assert torch.equal(value, saved[key]), key


@pytest.mark.parametrize("pooling", [ClsPooling(), MeanPooling()], ids=["cls", "mean"])
def test_frozen_encoder_weights_do_not_change_while_the_head_learns(data, tmp_path, pooling):
    pretrained = save_pretraining_run(tmp_path / "last.ckpt", data.tokenizer)
    module = module_for(data, tmp_path / "last.ckpt", freeze=True, pooling=pooling)
    trainer().fit(module, datamodule=data)
    for key, value in module.net.bert.state_dict().items():
        assert torch.equal(value, pretrained.bert.state_dict()[key]), key
    assert not torch.equal(module.net.head.output.weight, module_for(data).net.head.output.weight)
    assert all(not p.requires_grad for p in module.net.bert.parameters())


def test_encoder_learns_at_a_scaled_rate_only_when_pretrained_and_decay_skips_biases_and_norms(data, tmp_path):
    save_pretraining_run(tmp_path / "last.ckpt", data.tokenizer)
    module = module_for(data, tmp_path / "last.ckpt", lr=1e-3, scale=0.1)
    trainer(max_steps=1).fit(module, datamodule=data)
    groups = {group["name"]: group for group in module.optimizers().optimizer.param_groups}
    assert sorted(groups) == ["encoder/decay", "encoder/no_decay", "head/decay", "head/no_decay"]
    assert groups["encoder/decay"]["lr"] == pytest.approx(1e-4) and groups["head/decay"]["lr"] == 1e-3
    assert groups["encoder/no_decay"]["weight_decay"] == 0.0 and groups["head/decay"]["weight_decay"] == 0.01
    assert all(p.dim() < 2 for p in groups["encoder/no_decay"]["params"])  # biases and norm gains
    assert any(p is module.net.bert.embeddings.norm.weight for p in groups["encoder/no_decay"]["params"])
    scratch = module_for(data, None, lr=1e-3, scale=0.1)  # a new encoder learns as fast as the new layer
    scratch.trainer = trainer()
    groups = {group["name"]: group for group in scratch.configure_optimizers().param_groups}
    assert groups["encoder/decay"]["lr"] == groups["head/decay"]["lr"] == 1e-3
    frozen = module_for(data, tmp_path / "last.ckpt", freeze=True)
    assert sorted(g["name"] for g in frozen.configure_optimizers().param_groups) == ["head/decay", "head/no_decay"]


def test_warmup_then_linear_decay_over_the_run(data):
    module = module_for(data, lr=1e-3, scheduler=functools.partial(linear_warmup_decay, warmup_steps=2))
    fit = trainer(max_steps=6)
    fit.fit(module, datamodule=data)
    scheduler = fit.lr_scheduler_configs[0].scheduler
    assert scheduler.factor(1) == 1.0 and scheduler.factor(4) == pytest.approx(0.5)  # total = 6 steps


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # what trainer.precision=auto picks, either way
def test_metrics_are_logged_per_stage(data, precision, tmp_path):
    module = module_for(data)
    fit = trainer(max_steps=-1, max_epochs=1, limit_val_batches=None, precision=precision,
                  default_root_dir=tmp_path)  # the test writes predictions/test.tsv there
    fit.fit(module, datamodule=data)
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "val/f1"} <= set(fit.callback_metrics)
    fit.test(module, datamodule=data, verbose=False)
    metrics = fit.callback_metrics
    assert {"test/acc", "test/f1", "test/loss"} <= set(metrics)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):  # as the test step ran
        logits = module.eval()(next(iter(data.test_dataloader()))).logits
    accuracy = (logits.argmax(-1) == torch.tensor([1, 0, 0])).float().mean()
    assert metrics["test/acc"] == pytest.approx(float(accuracy))
    labels, predicted = read_predictions(tmp_path / "predictions" / "test.tsv")  # what attnlab-report resamples
    assert labels == ["1", "0", "0"] and predicted == [str(i) for i in logits.argmax(-1).tolist()]


def test_a_checkpoint_reloads_to_the_same_predictions(data, tmp_path):
    module = module_for(data)
    fit = trainer(max_steps=4)
    fit.fit(module, datamodule=data)
    fit.save_checkpoint(tmp_path / "fine.ckpt", weights_only=True)
    batch = data.encode(["a good film", "a dull film of many words that get cut"])
    expected = module.eval().predict_proba(batch)

    checkpoint = torch.load(tmp_path / "fine.ckpt", weights_only=True)
    reloaded = module_for(data, lr=1.0)  # fresh weights, then the checkpoint's
    reloaded.load_state_dict(checkpoint["state_dict"])
    restored_data = ClassificationDataModule(
        "absent", "absent", ["sentence"], {"0": "negative", "1": "positive"}, tokenizer=word, max_len=12,
    )
    restored_data.load_state_dict(checkpoint[ClassificationDataModule.__qualname__])
    probabilities = reloaded.eval().predict_proba(restored_data.encode(["a good film", "a dull film of many words that get cut"]))
    assert torch.allclose(probabilities, expected, atol=1e-6)
    assert torch.allclose(probabilities.sum(-1), torch.ones(2))
