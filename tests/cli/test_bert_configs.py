"""The BERT configs compose, and every option of attention=, pos_encoding= and norm= builds a working BERT."""
import pytest
import torch
from hydra.utils import instantiate

from attnlab.cli.validate import fill_missing, validate_targets
from attnlab.data.pretraining_examples import PretrainingBatch
from attnlab.lit.pretraining import PretrainingModule, pretraining_losses
from attnlab.models.bert import BertForPretraining

NET_KWARGS = {"vocab_size": 50, "pad_id": 0, "max_len": 16}  # what WikiText2DataModule.spec() supplies


@pytest.fixture
def compose_bert(compose):
    """Composes ``experiment=bert_pretrain`` plus overrides, as the app sees it, with the data's sizes filled in."""

    def _compose(*overrides):
        cfg = compose("experiment=bert_pretrain", *overrides)
        validate_targets(cfg)
        fill_missing(cfg.model, NET_KWARGS)
        return cfg

    return _compose


def batch():
    tokens = torch.randint(5, 50, (4, 10))
    return PretrainingBatch(
        tokens=tokens, segments=(torch.arange(10) >= 5).long().expand(4, -1), valid_lens=torch.tensor([10, 9, 8, 7]),
        mlm_positions=torch.tensor([[1, 2]] * 4), mlm_labels=tokens[:, 1:3], mlm_mask=torch.ones(4, 2, dtype=torch.bool),
        nsp_labels=torch.tensor([1, 0, 1, 0]),
    )


def test_experiment_is_bert_with_post_norm_gelu_and_learned_positions(compose_bert):
    cfg = compose_bert()
    assert cfg.task_name == "bert_pretrain" and cfg.monitor == "val/mlm_loss"
    assert cfg.data._target_.endswith("WikiText2DataModule")
    assert cfg.trainer.reload_dataloaders_every_n_epochs == 1
    net = cfg.model.net.bert
    assert (net.d_model, net.num_heads, net.num_layers, net.block.d_ff, net.dropout) == (128, 2, 2, 256, 0.2)
    assert net.activation == net.block.activation == "gelu" and net.block._target_.endswith("PostNormBlock")
    assert net.pos_encoding._target_.endswith("LearnedPositionalEncoding")
    assert net.norm._target_ == net.block.norm._target_ == "torch.nn.LayerNorm"
    assert net.max_len == NET_KWARGS["max_len"]  # the data's, never the config's
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW"


@pytest.mark.parametrize("group", ["attention", "pos_encoding", "norm"])
def test_every_group_option_builds_a_bert_that_trains(compose_bert, config_options, group):
    for option in config_options(group):
        cfg = compose_bert(f"{group}={option}", "model.net.bert.d_model=16", "model.net.bert.block.d_ff=32")
        module: PretrainingModule = instantiate(cfg.model)
        assert isinstance(module.net, BertForPretraining)
        output = module(batch())
        assert output.mlm_logits.shape == (8, 50) and torch.isfinite(output.mlm_logits).all(), option  # 4 x 2 real slots
        (output.mlm_logits.logsumexp(-1).mean() + output.nsp_logits.sum()).backward()
        assert module.net.bert.embeddings.token_embedding.weight.grad.abs().sum() > 0, option


@pytest.mark.parametrize(
    ("model", "sizes"),
    [("bert_small", (256, 4, 4, 1024)), ("bert_base", (768, 12, 12, 3072))],
)
def test_larger_model_configs(compose_bert, model, sizes):
    cfg = compose_bert(f"model={model}")
    net = cfg.model.net.bert
    assert (net.d_model, net.num_heads, net.num_layers, net.block.d_ff) == sizes
    assert net.block.activation == "gelu" and net.block.scorer._target_.endswith("ScaledDotProductScorer")
    if model == "bert_small":
        assert isinstance(instantiate(cfg.model).net, BertForPretraining)


def test_experiment_tokenizer_is_d2ls_and_every_tokenizer_option_replaces_it_whole(compose_bert, config_options):
    cfg = compose_bert()
    assert cfg.tokenizer._target_.endswith("tokenizers.word") and cfg.tokenizer.min_freq == 5  # d2l 15.9
    for option in config_options("tokenizer"):
        cfg = compose_bert(f"tokenizer={option}")  # validates: no key of another tokenizer left behind
        build = instantiate(cfg.data.tokenizer)
        assert build().config == instantiate(cfg.tokenizer)().config, option
    assert "min_freq" not in compose_bert("tokenizer=wordpiece").tokenizer


def test_compile_switch_reaches_the_module(compose_bert):
    assert compose_bert().model.compile is False
    module = instantiate(compose_bert("model.compile=true", "model.net.bert.d_model=16", "model.net.bert.block.d_ff=32").model)
    assert module.hparams.compile is True



def test_wikitext_pairs_of_up_to_128_tokens_train(compose, tmp_path):
    """``data.max_len=128``: pairs longer than 64 tokens are kept, the learned positions follow, and a step trains."""
    directory = tmp_path / "wikitext-2"
    directory.mkdir()
    for split in ("train", "valid", "test"):
        paragraphs = [" " + " . ".join(" ".join(f"w{(p + s + i) % 30}" for i in range(20 + 10 * s)) for s in range(4))
                      + " . \n" for p in range(12)]
        (directory / f"wiki.{split}.tokens").write_text(" = heading = \n" + "".join(paragraphs))
    cfg = compose("experiment=bert_pretrain", "data.max_len=128", f"paths.data_dir={tmp_path}", "tokenizer.min_freq=1",
                  "data.batch_size=8", "data.cache_dir=null", "model.net.bert.d_model=16", "model.net.bert.block.d_ff=32")
    data = instantiate(cfg.data)
    data.setup("fit")
    fill_missing(cfg.model, data.spec().as_dict())
    module: PretrainingModule = instantiate(cfg.model)
    assert module.net.bert.embeddings.position.embedding.num_embeddings == 128
    batch = max(data.train_dataloader(), key=lambda b: b.tokens.shape[1])
    assert 64 < batch.tokens.shape[1] <= 128
    output = module(batch)
    loss = pretraining_losses(output, batch).total
    loss.backward()
    beyond_64 = module.net.bert.embeddings.position.embedding.weight.grad[64 : batch.tokens.shape[1]]
    assert torch.isfinite(loss) and beyond_64.abs().sum() > 0
