"""Every config composes and validates; every option of the swappable groups instantiates and obeys its contract."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from attnlab.cli.validate import ConfigError, check_no_missing, fill_missing, validate_targets
from attnlab.layers.norm import real_tokens


def test_every_experiment_composes_and_validates(compose, experiment_option):
    cfg = compose(f"experiment={experiment_option}")
    assert cfg.task_name
    validate_targets(cfg)


def test_every_attention_option_scores(compose, attention_option):
    factory = instantiate(compose(f"attention={attention_option}").attention)
    scores = factory(8, 8)(torch.randn(2, 3, 3, 8), torch.randn(2, 3, 5, 8))  # (B, H, Tq, Dh) x (B, H, Tk, Dh)
    assert scores.shape == (2, 3, 3, 5)


def test_every_pos_encoding_option_keeps_shapes(compose, pos_encoding_option):
    pe = instantiate(compose(f"pos_encoding={pos_encoding_option}").pos_encoding)(16, 2, 32)
    assert pe(torch.zeros(2, 5, 16)).shape == (2, 5, 16)
    assert pe.rotate(torch.zeros(2, 2, 5, 8)).shape == (2, 2, 5, 8)


def test_every_norm_option_normalises(compose, norm_option):
    cfg = compose(f"norm={norm_option}")
    layer = instantiate(cfg.norm.layer)(8)
    with real_tokens(torch.ones(4, 5, dtype=torch.bool)):
        out = layer(torch.randn(4, 5, 8) * 10 + 3)
    assert out.shape == (4, 5, 8) and out.abs().mean() < 3
    assert cfg.norm.placement in ("post", "pre")


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_norm_placement_selects_the_block_class(compose, placement):
    cfg = compose("experiment=transformer_mt", f"norm.placement={placement}")
    assert cfg.model.net.block._target_ == f"attnlab.layers.blocks.{placement.capitalize()}NormBlock"
    cfg = compose("experiment=transformer_mt", "norm.placement=middle")
    with pytest.raises(Exception, match="placement='middle' is not one of"):
        validate_targets(cfg)


def test_data_values_fill_the_missing_leaves_wherever_they_sit(compose):
    cfg = compose("experiment=bert_finetune_sst2", "model.pretrained=null")
    data = {"vocab_size": 50, "pad_id": 0, "max_len": 16, "num_classes": 3, "d_model": 999}
    assert sorted(fill_missing(cfg.model, data)) == ["net.bert.max_len", "net.bert.pad_id", "net.bert.vocab_size",
                                                     "net.num_classes"]
    assert cfg.model.net.bert.vocab_size == 50 and cfg.model.net.num_classes == 3
    assert cfg.model.net.bert.d_model == 128  # a value the config sets is not the data's to change
    check_no_missing(cfg.model)
    cfg = compose("experiment=bert_pretrain")
    fill_missing(cfg.model, {"vocab_size": 50})
    with pytest.raises(ConfigError, match=r"missing \(\?\?\?\): model.net.bert.max_len, model.net.bert.pad_id;"):
        check_no_missing(cfg.model)


def test_every_kernel_option_scores(compose, kernel_option):
    scores, support = instantiate(compose(f"kernel={kernel_option}").kernel)(torch.rand(1, 4), torch.rand(1, 6))
    assert scores.shape == support.shape == (1, 4, 6)


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug"])
def test_every_option_of_the_run_groups_composes(compose, config_options, group):
    for option in config_options(group):
        validate_targets(compose(f"{group}={option}"))


def test_every_pooling_option_reaches_the_classifier(compose, pooling_option):
    cfg = compose("experiment=bert_finetune_sst2", "model.pretrained=null", f"pooling={pooling_option}")
    validate_targets(cfg)
    assert cfg.model.net.pooling._target_.lower().endswith(f"{pooling_option}pooling")
    assert type(instantiate(cfg.model.net.pooling)).__name__.lower() == f"{pooling_option}pooling"


def test_validation_names_bad_key_and_allowed_arguments(compose):
    cfg = compose("experiment=nw_parametric", "+model.net.kernal=3")
    with pytest.raises(ConfigError, match=r"model.net.kernal is not an argument of .*NadarayaWatson; allowed: kernel"):
        validate_targets(cfg)


def test_validation_names_wrong_type(compose):
    cfg = compose("experiment=nw_parametric", "data.num_train=many")
    with pytest.raises(ConfigError, match=r"data.num_train='many' has type str; .* expects int"):
        validate_targets(cfg)


def test_validation_names_missing_required_argument(compose):
    cfg = compose("experiment=nw_parametric", "~model.net.kernel")
    with pytest.raises(ConfigError, match=r"model.net.kernel is required by .*NadarayaWatson"):
        validate_targets(cfg)


def test_every_tokenizer_option_composes_with_every_experiment(compose, experiment_option, tokenizer_option):
    validate_targets(compose(f"experiment={experiment_option}", f"tokenizer={tokenizer_option}"))


@pytest.mark.parametrize("experiment", ["transformer_mt", "bert_pretrain"])
def test_every_ablation_preset_changes_one_axis_of_the_experiment(compose, ablation_option, experiment):
    base = compose(f"experiment={experiment}", "+ablation=baseline")
    cfg = compose(f"experiment={experiment}", f"+ablation={ablation_option}")
    validate_targets(cfg)
    changed = [axis for axis in ("attention", "pos_encoding", "norm") if cfg[axis] != base[axis]]
    if experiment == "transformer_mt":  # its recipe: scaled_dot, sinusoidal, post-LayerNorm, all of which a preset moves
        assert len(changed) == (0 if ablation_option == "baseline" else 1), changed
    assert len(changed) <= 1, changed  # BERT's recipe already has learned positions: pos_learned leaves it as is
    written, base_written = (OmegaConf.to_container(c) for c in (cfg, base))  # ${attention} stays unresolved
    assert {k: v for k, v in written.items() if k not in changed} == \
        {k: v for k, v in base_written.items() if k not in changed}  # nothing else moved
