"""Today's constructor arguments from those that older attnlab run configs recorded, so their checkpoints still
rebuild (``attnlab.inference.restore``) and their encoders still describe themselves (pretrained files).

Before the heads took a built encoder and the stacks a block factory, ``model.net`` of a BERT run held
``BertModel``'s arguments flat beside the head's (``d_ff``, ``scorer``, ``norm``, ``placement`` included), and a
Transformer's held its blocks' arguments flat; norms were ``attnlab.layers.norm.LayerNorm``/``RMSNorm``. The state
dicts did not change, only the configs. Plain dicts in, plain dicts out.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnlab.layers.blocks import placement_block

BERT_HEADS = {"attnlab.models.bert.BertForPretraining", "attnlab.models.bert_classifier.BertClassifier"}
TRANSFORMER = "attnlab.models.transformer.Transformer"
RENAMED_NORMS = {"attnlab.layers.norm.LayerNorm": "torch.nn.LayerNorm", "attnlab.layers.norm.RMSNorm": "torch.nn.RMSNorm"}
# the earlier constructors' defaults, for configs that left an argument out
BERT_DEFAULTS = {
    "d_model": 128, "num_heads": 2, "num_layers": 2, "d_ff": 256, "dropout": 0.1, "activation": "gelu",
    "scorer": {"_target_": "attnlab.attention.scorers.ScaledDotProductScorer", "_partial_": True},
    "pos_encoding": {"_target_": "attnlab.layers.positional.LearnedPositionalEncoding", "_partial_": True},
    "norm": {"_target_": "torch.nn.LayerNorm", "_partial_": True}, "placement": "post",
}
TRANSFORMER_DEFAULTS = {"placement": "post", "d_ff": 64, "dropout": 0.2, "activation": "relu", "bias": True}
BLOCK_KEYS = ("d_ff", "scorer", "norm", "dropout", "activation", "bias")  # flat then, in the block node now


def _norm(node: Any) -> Any:
    if isinstance(node, Mapping) and node.get("_target_") in RENAMED_NORMS:
        return {**node, "_target_": RENAMED_NORMS[node["_target_"]]}
    return node


def _block(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The block node of flat arguments that include ``placement`` and the block's own."""
    block = placement_block(flat["placement"])
    node = {"_target_": f"{block.__module__}.{block.__qualname__}", "_partial_": True}
    return node | {key: _norm(flat[key]) for key in BLOCK_KEYS if key in flat}


def upgrade_encoder_config(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A ``BertModel`` node from BERT's arguments as they were once written flat (the last attnlab layout, or a
    Hugging Face config's sizes plus BERT's parts); keys that are no ``BertModel`` concern are dropped."""
    flat = BERT_DEFAULTS | dict(flat)
    encoder = {"_target_": "attnlab.models.bert.BertModel"}
    for key in ("vocab_size", "pad_id", "max_len", "d_model", "num_heads", "num_layers", "dropout", "activation",
                "pos_encoding"):
        if key in flat:
            encoder[key] = flat[key]
    return encoder | {"norm": _norm(flat["norm"]), "block": _block(flat)}


def upgrade_net_config(net: Mapping[str, Any]) -> dict[str, Any]:
    """``model.net`` in today's layout: flat BERT and Transformer nodes become nested; any other node (and one
    already nested) comes back as it was."""
    net = dict(net)
    target = net.get("_target_")
    if target in BERT_HEADS and "bert" not in net:
        head = {key: net[key] for key in ("_target_", "num_classes", "dropout") if key in net}
        if target.endswith("BertForPretraining"):
            head.pop("dropout", None)
        return head | {"bert": upgrade_encoder_config(net)}
    if target == TRANSFORMER and "block" not in net:
        flat = TRANSFORMER_DEFAULTS | net
        kept = {key: value for key, value in flat.items() if key not in (*BLOCK_KEYS, "placement")}
        return kept | {"dropout": flat["dropout"], "block": _block(flat)}
    return net
