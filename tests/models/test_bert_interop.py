"""Hugging Face interop: the BertForPreTraining / BertModel state-dict layout, both ways; older attnlab layouts renamed."""
from functools import partial

import pytest
import torch
from tiny_models import tiny_bert, tiny_transformer
from torch import nn

from attnlab.layers import RotaryPositionalEncoding
from attnlab.models.bert import BertForPretraining, BertModel
from attnlab.models.bert_interop import from_hf_state_dict, load_hf_state_dict, to_hf_state_dict
from attnlab.training.checkpoint import CONFIG_KEY, FORMAT_KEY, migrate

V, PAD, MAX_LEN, D, H, LAYERS, D_FF = 30, 0, 16, 16, 2, 2, 24


def encoder(**overrides) -> BertModel:
    sizes = dict(d_model=D, num_heads=H, num_layers=LAYERS, d_ff=D_FF, dropout=0.1, norm=partial(nn.LayerNorm, eps=1e-12))
    return tiny_bert(V, pad_id=PAD, max_len=MAX_LEN, **(sizes | overrides))


def ours(model_class=BertForPretraining, **overrides):
    model = BertForPretraining(encoder(**overrides)) if model_class is BertForPretraining else encoder(**overrides)
    with torch.no_grad():  # BERT's init leaves biases 0 and norm gains 1: make every tensor matter
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def expected_hf_keys(prefix: str, heads: bool) -> set[str]:
    keys = {f"{prefix}embeddings.{name}.weight" for name in ("word_embeddings", "position_embeddings", "token_type_embeddings")}
    keys |= {f"{prefix}embeddings.LayerNorm.{p}" for p in ("weight", "bias")}
    keys |= {f"{prefix}pooler.dense.{p}" for p in ("weight", "bias")}
    for i in range(LAYERS):
        layer = f"{prefix}encoder.layer.{i}."
        for module in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                       "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            keys |= {f"{layer}{module}.weight", f"{layer}{module}.bias"}
    if heads:
        for module in ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                       "cls.predictions.decoder", "cls.seq_relationship"):
            keys |= {f"{module}.weight", f"{module}.bias"}
        keys.add("cls.predictions.bias")
    return keys


def batch():
    tokens = torch.randint(1, V, (2, 9))
    tokens[1, 6:] = PAD
    segments = (torch.arange(9) >= 4).long().expand(2, -1).clone()
    return tokens, segments, torch.tensor([9, 6])


def test_export_uses_the_hf_pretraining_layout():
    model = ours()
    state = to_hf_state_dict(model)
    assert set(state) == expected_hf_keys("bert.", heads=True)
    assert state["bert.encoder.layer.1.attention.self.key.weight"].shape == (D, D)
    assert state["bert.encoder.layer.0.intermediate.dense.weight"].shape == (D_FF, D)
    torch.testing.assert_close(state["cls.predictions.decoder.weight"], model.bert.embeddings.token_embedding.weight)
    torch.testing.assert_close(state["cls.predictions.decoder.bias"], state["cls.predictions.bias"])
    # HF's NSP class 0 is "is next", ours is 1: rows swapped
    torch.testing.assert_close(state["cls.seq_relationship.weight"], model.nsp_head.classifier.weight.flip(0))
    torch.testing.assert_close(state["cls.seq_relationship.bias"], model.nsp_head.classifier.bias.flip(0))
    state["bert.pooler.dense.bias"].add_(1.0)  # a copy: the model is untouched
    assert not torch.allclose(state["bert.pooler.dense.bias"], model.bert.pooler.dense.bias)


@pytest.mark.parametrize("model_class", [BertForPretraining, BertModel])
def test_round_trip_ours_to_hf_to_ours(model_class):
    model = ours(model_class)
    state = to_hf_state_dict(model)
    if model_class is BertModel:
        assert set(state) == expected_hf_keys("", heads=False)
    back = from_hf_state_dict(state, num_heads=H).eval()
    assert type(back) is model_class
    assert back.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    tokens, segments, valid_lens = batch()
    for a, b in zip(model(tokens, segments, valid_lens), back(tokens, segments, valid_lens)):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b)


def test_hf_pretraining_dict_loads_into_a_bert_model_encoder():
    model = ours()
    bert = encoder().eval()
    load_hf_state_dict(bert, to_hf_state_dict(model))
    tokens, segments, valid_lens = batch()
    torch.testing.assert_close(bert(tokens, segments, valid_lens).hidden, model.bert(tokens, segments, valid_lens).hidden)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pos_encoding": RotaryPositionalEncoding}, "needs learned"),
        ({"placement": "pre"}, "needs post-norm"),
        ({"norm": nn.RMSNorm}, "LayerNorm"),
        ({"activation": "relu"}, "GELU"),
    ],
)
def test_export_refuses_architectures_hf_cannot_express(overrides, message):
    with pytest.raises(ValueError, match=message):
        to_hf_state_dict(ours(**overrides))


def test_import_names_missing_and_unexpected_keys():
    state = to_hf_state_dict(ours())
    with pytest.raises(ValueError, match="lacks .*layer.1.output.dense.weight"):
        load_hf_state_dict(ours(), {k: v for k, v in state.items() if k != "bert.encoder.layer.1.output.dense.weight"})
    with pytest.raises(ValueError, match=r"cannot hold.*encoder\.layer\.1\."):
        load_hf_state_dict(ours(num_layers=1), state)
    with pytest.raises(ValueError, match="not a Hugging Face BERT state dict"):
        from_hf_state_dict({"weight": torch.zeros(1)}, num_heads=H)
    untied = dict(state, **{"cls.predictions.decoder.weight": torch.zeros(V, D)})
    with pytest.raises(ValueError, match="tied"):
        from_hf_state_dict(untied, num_heads=H)


# ---- against transformers itself (optional `bench` extra) ------------------------------------------------------

def _hf_config(transformers):
    return transformers.BertConfig(
        vocab_size=V, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=H, intermediate_size=D_FF,
        max_position_embeddings=MAX_LEN, type_vocab_size=2, pad_token_id=PAD, hidden_act="gelu",
    )


def _perturbed(module):
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return module.eval()


def test_loaded_hf_model_gives_the_same_mlm_and_nsp_logits():
    transformers = pytest.importorskip("transformers")
    hf = _perturbed(transformers.BertForPreTraining(_hf_config(transformers)))
    model = from_hf_state_dict(hf.state_dict(), num_heads=H).eval()
    tokens, segments, valid_lens = batch()
    attention_mask = (torch.arange(9) < valid_lens.unsqueeze(1)).long()
    with torch.no_grad():
        expected = hf(input_ids=tokens, token_type_ids=segments, attention_mask=attention_mask)
        full = model(tokens, segments, valid_lens)
        positions = torch.tensor([[1, 5, 7], [2, 3, 0]])
        gathered = model(tokens, segments, valid_lens, positions).mlm_logits
    real = attention_mask.bool()
    torch.testing.assert_close(full.mlm_logits[real], expected.prediction_logits[real], rtol=0, atol=1e-4)
    torch.testing.assert_close(full.nsp_logits, expected.seq_relationship_logits.flip(-1), rtol=0, atol=1e-4)
    torch.testing.assert_close(gathered, torch.cat([expected.prediction_logits[b, positions[b]] for b in range(2)]),
                               rtol=0, atol=1e-4)


def test_exported_model_loads_strictly_into_hf_and_agrees():
    transformers = pytest.importorskip("transformers")
    model = ours()
    hf = transformers.BertForPreTraining(_hf_config(transformers)).eval()
    hf.load_state_dict(to_hf_state_dict(model), strict=True)
    tokens, segments, valid_lens = batch()
    attention_mask = (torch.arange(9) < valid_lens.unsqueeze(1)).long()
    with torch.no_grad():
        expected = hf(input_ids=tokens, token_type_ids=segments, attention_mask=attention_mask)
        ours_out = model(tokens, segments, valid_lens)
    real = attention_mask.bool()
    torch.testing.assert_close(ours_out.mlm_logits[real], expected.prediction_logits[real], rtol=0, atol=1e-4)
    torch.testing.assert_close(ours_out.nsp_logits, expected.seq_relationship_logits.flip(-1), rtol=0, atol=1e-4)


def test_hf_bert_model_state_dict_gives_our_bert_model():
    transformers = pytest.importorskip("transformers")
    hf = _perturbed(transformers.BertModel(_hf_config(transformers)))
    model = from_hf_state_dict(hf.state_dict(), num_heads=H).eval()
    assert type(model) is BertModel
    tokens, segments, valid_lens = batch()
    attention_mask = (torch.arange(9) < valid_lens.unsqueeze(1)).long()
    with torch.no_grad():
        expected = hf(input_ids=tokens, token_type_ids=segments, attention_mask=attention_mask)
        out = model(tokens, segments, valid_lens)
    real = attention_mask.bool()
    torch.testing.assert_close(out.hidden[real], expected.last_hidden_state[real], rtol=0, atol=1e-4)
    torch.testing.assert_close(out.pooled, expected.pooler_output, rtol=0, atol=1e-4)


# The block norm keys main (219b02a) wrote for a one-layer pre-norm Transformer, before the Residual holder went.
OLD_BLOCK_NORM_KEYS = [
    "encoder.blocks.0.self_residual.norm.weight", "encoder.blocks.0.self_residual.norm.bias",
    "encoder.blocks.0.ffn_residual.norm.weight", "encoder.blocks.0.ffn_residual.norm.bias",
    "decoder.blocks.0.self_residual.norm.weight", "decoder.blocks.0.self_residual.norm.bias",
    "decoder.blocks.0.cross_residual.norm.weight", "decoder.blocks.0.cross_residual.norm.bias",
    "decoder.blocks.0.ffn_residual.norm.weight", "decoder.blocks.0.ffn_residual.norm.bias",
]


def migrated(state_dict: dict) -> dict:
    """The state dict of a format-1 checkpoint (before the ``Residual`` holder went), as loading migrates it."""
    return migrate({CONFIG_KEY: {}, FORMAT_KEY: 1, "state_dict": state_dict})["state_dict"]


def test_transformer_state_dict_of_the_residual_holder_layout_restores_with_equal_outputs():
    torch.manual_seed(0)
    written = tiny_transformer(11, 12, pad_id=0, bos_id=1, eos_id=2, num_encoder_layers=1, num_decoder_layers=1,
                               placement="pre").eval()
    with torch.no_grad():
        for parameter in written.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    state = written.state_dict()
    block_norms = [key for key in state if ".blocks." in key and "norm" in key]
    assert len(block_norms) == len(OLD_BLOCK_NORM_KEYS)
    old = {dict(zip(block_norms, OLD_BLOCK_NORM_KEYS)).get(key, key): value for key, value in state.items()}
    fresh = tiny_transformer(11, 12, pad_id=0, bos_id=1, eos_id=2, num_encoder_layers=1, num_decoder_layers=1,
                             placement="pre").eval()
    with pytest.raises(RuntimeError, match="self_residual"):
        fresh.load_state_dict(old)  # the old keys alone no longer fit
    renamed = migrated({"net." + key: value for key, value in old.items()})  # a task module's keys
    fresh.load_state_dict({key.removeprefix("net."): value for key, value in renamed.items()})
    src, tgt = torch.randint(3, 11, (2, 5)), torch.randint(3, 12, (2, 4))
    torch.testing.assert_close(fresh(src, torch.tensor([5, 3]), tgt).logits, written(src, torch.tensor([5, 3]), tgt).logits)
    assert migrated(state) == state  # today's keys stay as they are


def test_bert_state_dict_of_the_residual_holder_layout_restores_with_equal_outputs():
    written = ours()
    old = {key.replace("self_norm.", "self_residual.norm.").replace("ffn_norm.", "ffn_residual.norm."): value
           for key, value in written.state_dict().items()}
    assert "bert.encoder.blocks.1.ffn_residual.norm.bias" in old and "mlm_head.norm.bias" in old
    fresh = ours()
    fresh.load_state_dict(migrated(old))
    tokens = torch.randint(3, V, (2, 6))
    torch.testing.assert_close(fresh(tokens).mlm_logits, written(tokens).mlm_logits)
