"""Run configs of the earlier flat layout (BERT's and the Transformer's arguments all in ``model.net``, attnlab's
own norms) are migrated to today's nested one, which builds the same architecture under the same state-dict names."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from tiny_models import tiny_bert, tiny_transformer
from torch import nn

from attnlab.layers.norm import MaskedBatchNorm
from attnlab.models.bert import BertForPretraining
from attnlab.models.bert_classifier import BertClassifier
from attnlab.training.checkpoint import nest_flat_net, rename_targets


def partial_node(target: str, **arguments) -> dict:
    return {"_target_": target, "_partial_": True, **arguments}


SCALED_DOT = partial_node("attnlab.attention.scorers.ScaledDotProductScorer")
NORMS = {  # as conf/norm/*.yaml named them then, and the module they build now
    "layernorm": (partial_node("attnlab.layers.norm.LayerNorm", eps=1e-5), nn.LayerNorm),
    "rmsnorm": (partial_node("attnlab.layers.norm.RMSNorm", eps=1e-6), nn.RMSNorm),
    "batchnorm": (partial_node("attnlab.layers.norm.MaskedBatchNorm", eps=1e-5, momentum=0.1), MaskedBatchNorm),
}
BERT_SIZES = dict(vocab_size=30, pad_id=0, max_len=12, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.1)


def legacy_bert(target: str, norm: str, placement: str, **extra) -> dict:
    """``model.net`` as attnlab-train resolved and saved it before the encoder had a node of its own."""
    return {
        "_target_": target, **BERT_SIZES, "activation": "gelu", "scorer": SCALED_DOT, "placement": placement,
        "pos_encoding": partial_node("attnlab.layers.positional.LearnedPositionalEncoding"), "norm": NORMS[norm][0],
        **extra,
    }


def upgrade_net_config(net: dict) -> dict:
    """What loading a checkpoint does to its ``model.net``: the version 0 -> 1 migration, then the rename table."""
    return rename_targets(nest_flat_net(net))


def assert_same_weights(ours: nn.Module, reference: nn.Module):
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert list(ours_state) == list(reference_state)
    for key, value in ours_state.items():
        assert torch.equal(value, reference_state[key]), key


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("placement", ["post", "pre"])
def test_flat_bert_pretraining_config_builds_the_same_model(norm, placement):
    upgraded = upgrade_net_config(legacy_bert("attnlab.models.bert.BertForPretraining", norm, placement))
    assert set(upgraded) == {"_target_", "bert"} and upgraded["bert"]["block"]["d_ff"] == 32
    torch.manual_seed(0)
    model = instantiate(upgraded)
    torch.manual_seed(0)
    sizes = {key: value for key, value in BERT_SIZES.items() if key != "vocab_size"}
    reference = BertForPretraining(tiny_bert(30, **sizes, norm=NORMS[norm][1], placement=placement))
    assert_same_weights(model, reference)
    assert type(model.bert.encoder.blocks[0]).__name__ == f"{placement.capitalize()}NormBlock"


def test_flat_bert_classifier_config_keeps_its_head_and_dropout():
    upgraded = upgrade_net_config(
        legacy_bert("attnlab.models.bert_classifier.BertClassifier", "layernorm", "post", num_classes=3)
    )
    assert upgraded["num_classes"] == 3 and upgraded["dropout"] == upgraded["bert"]["dropout"] == 0.1
    torch.manual_seed(0)
    model = instantiate(upgraded)
    torch.manual_seed(0)
    sizes = {key: value for key, value in BERT_SIZES.items() if key != "vocab_size"}
    assert_same_weights(model, BertClassifier(tiny_bert(30, **sizes), num_classes=3, dropout=0.1))


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_flat_transformer_config_builds_the_same_model(placement):
    legacy = {
        "_target_": "attnlab.models.transformer.Transformer", "src_vocab_size": 13, "tgt_vocab_size": 13,
        "pad_id": 1, "bos_id": 2, "eos_id": 3, "scorer": SCALED_DOT, "norm": NORMS["rmsnorm"][0],
        "pos_encoding": partial_node("attnlab.layers.positional.SinusoidalPositionalEncoding"),
        "placement": placement, "d_model": 16, "num_heads": 2, "num_encoder_layers": 2, "num_decoder_layers": 1,
        "d_ff": 32, "dropout": 0.2, "activation": "gelu", "max_len": 64, "tie_output": True,
        "share_embeddings": False, "bias": True,
    }
    upgraded = upgrade_net_config(legacy)
    assert "placement" not in upgraded and upgraded["block"]["activation"] == "gelu"
    torch.manual_seed(0)
    model = instantiate(upgraded)
    torch.manual_seed(0)
    reference = tiny_transformer(13, 13, pad_id=1, bos_id=2, eos_id=3, d_ff=32, norm=nn.RMSNorm, placement=placement,
                                 activation="gelu", num_decoder_layers=1, dropout=0.2, max_len=64)
    assert_same_weights(model, reference)


def test_todays_configs_and_other_models_pass_through():
    today = upgrade_net_config(legacy_bert("attnlab.models.bert.BertForPretraining", "layernorm", "post"))
    assert upgrade_net_config(today) == today
    kernel = {"_target_": "attnlab.models.nadaraya_watson.NadarayaWatson", "kernel": {"_target_": "x"}}
    assert upgrade_net_config(kernel) == kernel


def test_a_checkpoint_of_the_flat_layout_restores(tmp_path):
    from attnlab.training.checkpoint import CONFIG_KEY
    from attnlab.inference.restore import restore_run

    torch.manual_seed(1)
    sizes = {key: value for key, value in BERT_SIZES.items() if key != "vocab_size"}
    trained = BertForPretraining(tiny_bert(30, **sizes, placement="pre"))
    config = {
        "model": {
            "_target_": "attnlab.lit.pretraining.PretrainingModule",
            "net": legacy_bert("attnlab.models.bert.BertForPretraining", "layernorm", "pre"),
            "optimizer": partial_node("torch.optim.AdamW", lr=1e-3),
        },
        "data": {"_target_": "attnlab.data.synthetic.NWSyntheticDataModule"},  # any DataModule: not under test
    }
    state = {f"net.{key}": value for key, value in trained.state_dict().items()}
    torch.save({"state_dict": state, CONFIG_KEY: config}, tmp_path / "old.ckpt")
    restored = restore_run(tmp_path / "old.ckpt")
    assert_same_weights(restored.module.net, trained)
    assert "bert" in restored.config.model.net

