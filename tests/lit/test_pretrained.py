"""The pretrained-file owner: an attnlab run checkpoint or a Hugging Face directory is read once into tokenizer,
architecture (enough to rebuild the encoder) and weights; weights arrive unchanged; every mismatch is a clear error."""
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from attnlab.data.bert_inputs import SPECIAL_TOKENS
from attnlab.data.tokenizers import word
from attnlab.lit.pretrained import encoder_config, load_encoder, read_pretrained
from attnlab.models.bert import BertForPretraining, BertModel
from attnlab.models.bert_interop import to_hf_state_dict
from attnlab.training.checkpoint import nest_flat_net
from tiny_models import tiny_bert

SIZES = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32)
SCORER = {"_target_": "attnlab.attention.scorers.ScaledDotProductScorer", "_partial_": True}
PARTS = {  # the run config's resolved parts, as an earlier attnlab-train embedded them (flat)
    "scorer": SCORER, "activation": "gelu", "placement": "post",
    "pos_encoding": {"_target_": "attnlab.layers.positional.LearnedPositionalEncoding", "_partial_": True},
    "norm": {"_target_": "attnlab.layers.norm.LayerNorm", "_partial_": True, "eps": 1e-5},
}
TOKENS = torch.tensor([[2, 5, 6, 3, 7, 8, 3]])


class NotPlainData:
    pass


@pytest.fixture
def tokenizer():
    return word(min_freq=1).train(["a crane flew over the river bank", "money in the bank"], SPECIAL_TOKENS)


def pretrained_model(tokenizer, max_len=12, **sizes) -> BertForPretraining:
    torch.manual_seed(1)
    return BertForPretraining(tiny_bert(tokenizer.vocab_size, pad_id=0, max_len=max_len, **{**SIZES, **sizes}))


def save_run(path, tokenizer, max_len=12, nested: bool = True, **sizes) -> tuple[Path, BertForPretraining]:
    """What attnlab-train writes for a pretraining run: weights under ``net.``, the run config (the encoder's own
    node ``model.net.bert``, or, ``nested=False``, the flat ``model.net`` of earlier runs), the tokenizer."""
    model = pretrained_model(tokenizer, max_len, **sizes)
    flat = {"vocab_size": tokenizer.vocab_size, "pad_id": 0, "max_len": max_len, **SIZES, **sizes, "dropout": 0.2, **PARTS}
    net = {"_target_": "attnlab.models.bert.BertForPretraining"}
    net = nest_flat_net(net | flat) if nested else net | flat
    torch.save({
        "state_dict": {f"net.{key}": value for key, value in model.state_dict().items()},
        "attnlab_config": {"model": {"_target_": "attnlab.lit.pretraining.PretrainingModule", "net": net}},
        "WikiText2DataModule": {"tokenizer": tokenizer.to_str()},
    }, path)
    return path, model


def encoder_from(pretrained, vocab_size, max_len=12) -> BertModel:
    """The encoder the fine-tuning config builds once the architecture is merged in (the data adds the rest)."""
    config = {"_target_": "attnlab.models.bert.BertModel", "vocab_size": vocab_size, "pad_id": 0, "max_len": max_len,
              "dropout": 0.0}
    return instantiate({**config, **pretrained.architecture})


def assert_same_weights(encoder: torch.nn.Module, reference: torch.nn.Module):
    ours, theirs = encoder.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("nested", [True, False], ids=["encoder_node", "flat_net_of_earlier_runs"])
def test_run_checkpoint_gives_tokenizer_architecture_and_weights_that_rebuild_the_encoder(tmp_path, tokenizer, nested):
    path, model = save_run(tmp_path / "last.ckpt", tokenizer, nested=nested, num_layers=1, d_ff=24)
    pretrained = read_pretrained(path, "net.bert")
    assert pretrained.tokenizer == tokenizer
    architecture = pretrained.architecture
    assert (architecture["num_layers"], architecture["block"]["d_ff"], architecture["d_model"]) == (1, 24, 16)
    assert not {"vocab_size", "pad_id", "max_len", "dropout"} & set(architecture)  # the data's and fine-tuning's
    assert architecture["block"]["dropout"] == "${..dropout}"  # the blocks follow the fine-tuning's dropout
    encoder = encoder_from(pretrained, tokenizer.vocab_size)
    load_encoder(encoder, pretrained, tokenizer)
    assert_same_weights(encoder, model.bert)
    assert torch.equal(encoder.eval()(TOKENS).hidden, model.bert.eval()(TOKENS).hidden)


@pytest.mark.parametrize("layout", ["pretraining", "encoder"])
def test_hugging_face_directory_gives_bert_architecture_and_weights(tmp_path, tokenizer, layout):
    model = pretrained_model(tokenizer)
    torch.save(to_hf_state_dict(model if layout == "pretraining" else model.bert), tmp_path / "pytorch_model.bin")
    tokenizer.save(tmp_path / "tokenizer.json")
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 32,
        "layer_norm_eps": 1e-12, "vocab_size": tokenizer.vocab_size,
    }))
    pretrained = read_pretrained(tmp_path / "pytorch_model.bin")
    assert pretrained.tokenizer == tokenizer
    architecture = pretrained.architecture
    norm = instantiate(architecture["norm"])(16)
    assert isinstance(norm, torch.nn.LayerNorm) and norm.eps == 1e-12
    assert architecture["activation"] == "gelu" and architecture["block"]["scorer"] == SCORER
    assert architecture["block"]["_target_"] == "attnlab.layers.blocks.PostNormBlock"
    encoder = encoder_from(pretrained, tokenizer.vocab_size)
    load_encoder(encoder, pretrained, tokenizer)
    assert_same_weights(encoder, model.bert)
    assert torch.allclose(encoder.eval()(TOKENS).hidden, model.bert.eval()(TOKENS).hidden, atol=1e-4)  # eps differs


def test_hugging_face_state_dict_needs_its_tokenizer_and_config_beside_it(tmp_path, tokenizer):
    torch.save(to_hf_state_dict(pretrained_model(tokenizer)), tmp_path / "model.bin")
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json and .*config\.json must lie beside it"):
        read_pretrained(tmp_path / "model.bin")
    tokenizer.save(tmp_path / "tokenizer.json")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 16}))
    with pytest.raises(ValueError, match=r"config\.json lacks \['num_attention_heads', 'num_hidden_layers'"):
        read_pretrained(tmp_path / "model.bin")


def test_missing_corrupt_and_foreign_files_are_clear_errors_naming_them(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="pretrained model file not found: .*nope.ckpt"):
        read_pretrained(tmp_path / "nope.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"corrupt.ckpt is not a loadable checkpoint"):
        read_pretrained(tmp_path / "corrupt.ckpt")
    torch.save({"state_dict": {}, "hook": NotPlainData()}, tmp_path / "pickled.ckpt")
    with pytest.raises(ValueError, match=r"pickled.ckpt is not a loadable checkpoint .*weights_only=True refuses"):
        read_pretrained(tmp_path / "pickled.ckpt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt is neither an attnlab training checkpoint .* nor a Hugging Face"):
        read_pretrained(tmp_path / "other.pt")
    torch.save({"state_dict": {"net.kernel.w": torch.zeros(1)},
                "attnlab_config": {"model": {"net": {"_target_": "NW", "kernel": {}}}}}, tmp_path / "nw.ckpt")
    with pytest.raises(ValueError, match=r"nw.ckpt is an attnlab checkpoint without BERT encoder weights \(net.bert.\*\); its model is NW"):
        read_pretrained(tmp_path / "nw.ckpt")
    checkpoint = torch.load(save_run(tmp_path / "last.ckpt", tokenizer)[0], weights_only=True)
    del checkpoint["WikiText2DataModule"]
    torch.save(checkpoint, tmp_path / "untokenized.ckpt")
    with pytest.raises(ValueError, match="untokenized.ckpt holds no tokenizer"):
        read_pretrained(tmp_path / "untokenized.ckpt")


def test_longer_position_table_keeps_its_first_rows_and_a_shorter_one_is_an_error(tmp_path, tokenizer):
    path, model = save_run(tmp_path / "last.ckpt", tokenizer, max_len=20)
    pretrained = read_pretrained(path)
    encoder = encoder_from(pretrained, tokenizer.vocab_size, max_len=8)
    load_encoder(encoder, pretrained)
    table = model.bert.embeddings.position.embedding.weight
    assert torch.equal(encoder.embeddings.position.embedding.weight, table[:8])
    with pytest.raises(ValueError, match=r"has 20 positions, fewer than max_len=32; set data.max_len <= 20"):
        load_encoder(encoder_from(pretrained, tokenizer.vocab_size, max_len=32), pretrained)


def test_tokenizer_vocabulary_and_architecture_mismatches_are_clear_errors(tmp_path, tokenizer):
    pretrained = read_pretrained(save_run(tmp_path / "last.ckpt", tokenizer)[0])
    other = word(min_freq=1).train([" ".join(f"w{i}" for i in range(tokenizer.vocab_size - 5))], SPECIAL_TOKENS)
    assert other.vocab_size == tokenizer.vocab_size  # same size: only the tokenizer itself tells them apart
    with pytest.raises(ValueError, match=r"tokenizer mismatch: .* than .*last.ckpt was pretrained with"):
        load_encoder(encoder_from(pretrained, tokenizer.vocab_size), pretrained, other)
    with pytest.raises(ValueError, match=rf"tokenizer/vocabulary mismatch: .* embeds {tokenizer.vocab_size} tokens but the data's tokenizer has 40"):
        load_encoder(encoder_from(pretrained, 40), pretrained)
    deeper = tiny_bert(tokenizer.vocab_size, pad_id=0, max_len=12, **{**SIZES, "num_layers": 3})
    with pytest.raises(ValueError, match=r"architecture differs.*missing \['encoder.blocks.2"):
        load_encoder(deeper, pretrained)
    wider = tiny_bert(tokenizer.vocab_size, pad_id=0, max_len=12, **{**SIZES, "d_ff": 64})
    with pytest.raises(ValueError, match=r"architecture differs.*feed_forward.inner.weight \(32, 16\) vs \(64, 16\)"):
        load_encoder(wider, pretrained)


def test_encoder_config_is_the_encoders_node_or_the_nearest_one_above():
    encoder = {"_target_": "BertModel", "d_model": 8}
    assert encoder_config({"net": {"_target_": "BertClassifier", "bert": encoder}}, "net.bert") is encoder
    flat = {"_target_": "BertClassifier", "d_model": 8, "num_classes": 2}
    assert encoder_config({"net": flat}, "net.bert") is flat
