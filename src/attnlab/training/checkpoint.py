"""The one owner of what a checkpoint file means: reading (``torch.load(weights_only=True)`` only, errors that name
the file), writing (every run checkpoint is stamped with the run config and its format version) and migrating.

A checkpoint written by ``attnlab-train`` embeds the resolved run config (``attnlab_config``) with the class paths
of its ``_target_`` nodes, and its format version (``attnlab_format``; none: version 0, everything written
before versions). Reading an older one brings it to today's format (as Lightning's migration index does):

- ``MIGRATIONS[n]`` takes a version-``n`` checkpoint dict to version ``n + 1``, a pure function that may change the
  config's layout and the state dict's keys (it sees the class paths as the file wrote them); they run in order,
  and a file newer than the code is an error;
- ``RENAMES``: one table, old dotted path -> new dotted path (a module or a class), applied to every ``_target_`` of
  the config after the migrations, whatever its version, so a moved class needs one line here and no alias left
  behind at its old path.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from attnlab import BadFileError, MissingFileError

CONFIG_KEY = "attnlab_config"  # the resolved run config, embedded by attnlab.training.callbacks.EmbedConfig
FORMAT_KEY = "attnlab_format"  # the format version the checkpoint was written in (absent: 0)

Checkpoint = dict[str, Any]
Migration = Callable[[Checkpoint], Checkpoint]

RENAMES: dict[str, str] = {  # old dotted path -> new one; a module's entry covers everything inside it
    # the run machinery moved from attnlab.lit to attnlab.training (219b02a)
    **{f"attnlab.lit.{name}": f"attnlab.training.{name}" for name in (
        "averaging", "callbacks", "checkpoint", "divergence", "loggers", "notices", "optim", "precision",
        "preemption", "pruning", "strategies", "studies")},
    "attnlab.lit.budget": "attnlab.training.horizon",  # and the budget became one horizon component
    "attnlab.training.horizon.TimeBudgetHorizon": "attnlab.training.horizon.ScheduleHorizon",
    # the corpora left the translation module when the data package was split by concept
    "attnlab.data.translation.FraEngCorpus": "attnlab.data.corpora.FraEngCorpus",
    "attnlab.data.translation.ParallelCorpus": "attnlab.data.corpora.ParallelCorpus",
    "attnlab.attention.kernels.EpanechikovKernel": "attnlab.attention.kernels.EpanechnikovKernel",  # misspelt
    "attnlab.layers.norm.LayerNorm": "torch.nn.LayerNorm",  # attnlab's own norms gave way to PyTorch's
    "attnlab.layers.norm.RMSNorm": "torch.nn.RMSNorm",
}


def renamed(path: str, renames: Mapping[str, str] = RENAMES) -> str:
    """``path`` with its longest renamed prefix (whole dotted components) replaced, until no entry applies."""
    for _ in range(len(renames) + 1):
        parts = path.split(".")
        prefixes = (".".join(parts[:end]) for end in range(len(parts), 0, -1))
        old = next((prefix for prefix in prefixes if prefix in renames), None)
        if old is None:
            return path
        path = renames[old] + path[len(old) :]
    raise ValueError(f"the rename table loops on {path!r}")


def rename_targets(node: Any, renames: Mapping[str, str] = RENAMES) -> Any:
    """A copy of a config (nested dicts and lists) with every ``_target_`` renamed by ``renames``."""
    if isinstance(node, Mapping):
        return {key: renamed(value, renames) if key == "_target_" and isinstance(value, str)
                else rename_targets(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [rename_targets(item, renames) for item in node]
    return node


def rename_state_dict(checkpoint: Checkpoint, rename: Callable[[str], str]) -> Checkpoint:
    """A copy of ``checkpoint`` whose state-dict keys are ``rename(key)``: for migrations that move weights."""
    return {**checkpoint, "state_dict": {rename(key): value for key, value in checkpoint["state_dict"].items()}}


# --- migrations: each a pure function from version n to n + 1 --------------------------------------------------------

_BLOCKS = {"post": "attnlab.layers.blocks.PostNormBlock", "pre": "attnlab.layers.blocks.PreNormBlock"}
_BLOCK_KEYS = ("d_ff", "scorer", "norm", "dropout", "activation", "bias")  # flat in version 0, the block's in 1
_BERT_HEADS = {"attnlab.models.bert.BertForPretraining", "attnlab.models.bert_classifier.BertClassifier"}
_BERT_DEFAULTS = {  # BertModel's defaults in version 0, for configs that left an argument out
    "d_model": 128, "num_heads": 2, "num_layers": 2, "d_ff": 256, "dropout": 0.1, "activation": "gelu",
    "scorer": {"_target_": "attnlab.attention.scorers.ScaledDotProductScorer", "_partial_": True},
    "pos_encoding": {"_target_": "attnlab.layers.positional.LearnedPositionalEncoding", "_partial_": True},
    "norm": {"_target_": "torch.nn.LayerNorm", "_partial_": True}, "placement": "post",
}
_ENCODER_KEYS = ("vocab_size", "pad_id", "max_len", "d_model", "num_heads", "num_layers", "dropout", "activation",
                 "pos_encoding", "norm")
_TRANSFORMER_DEFAULTS = {"placement": "post", "d_ff": 64, "dropout": 0.2, "activation": "relu", "bias": True}


def _block_node(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The block ``partial`` node of flat arguments that include ``placement`` and the block's own."""
    return {"_target_": _BLOCKS[flat["placement"]], "_partial_": True} | {k: flat[k] for k in _BLOCK_KEYS if k in flat}


def nest_flat_net(net: Mapping[str, Any]) -> dict[str, Any]:
    """``model.net`` of version 0 in version 1's layout. Before the heads took a built encoder and the stacks a
    block factory, a BERT head's node held ``BertModel``'s arguments flat beside its own, and a Transformer's held
    its blocks' arguments flat; the state dicts were the same. Any other node (or one already nested) is kept."""
    net = dict(net)
    target = net.get("_target_")
    if target in _BERT_HEADS and "bert" not in net:
        flat = _BERT_DEFAULTS | net
        encoder = {"_target_": "attnlab.models.bert.BertModel"} | {k: flat[k] for k in _ENCODER_KEYS if k in flat}
        head = {k: net[k] for k in ("_target_", "num_classes", "dropout") if k in net}
        if target.endswith("BertForPretraining"):
            head.pop("dropout", None)
        return head | {"bert": encoder | {"block": _block_node(flat)}}
    if target == "attnlab.models.transformer.Transformer" and "block" not in net:
        flat = _TRANSFORMER_DEFAULTS | net
        kept = {key: value for key, value in flat.items() if key not in (*_BLOCK_KEYS, "placement")}
        return kept | {"dropout": flat["dropout"], "block": _block_node(flat)}
    return net


def nest_flat_configs(checkpoint: Checkpoint) -> Checkpoint:
    """Version 0 -> 1: the flat BERT and Transformer ``model.net`` nodes nested (:func:`nest_flat_net`)."""
    config = checkpoint[CONFIG_KEY]
    model = config.get("model") or {}
    if "net" not in model:
        return checkpoint
    return {**checkpoint, CONFIG_KEY: {**config, "model": {**model, "net": nest_flat_net(model["net"])}}}


# the forward-less ``Residual`` holder of each sublayer's norm and dropout was dropped: its norm is the block's
_RESIDUAL_NORMS = {"self_residual.norm.": "self_norm.", "cross_residual.norm.": "cross_norm.",
                   "ffn_residual.norm.": "ffn_norm."}
_RESIDUAL_KEY = re.compile(r"((?:^|\.)blocks\.\d+\.)(" + "|".join(map(re.escape, _RESIDUAL_NORMS)) + ")")


def drop_residual_holders(checkpoint: Checkpoint) -> Checkpoint:
    """Version 1 -> 2: ``blocks.<i>.<sublayer>_residual.norm.*`` became ``blocks.<i>.<sublayer>_norm.*`` (BERT and
    the Transformer alike)."""
    return rename_state_dict(checkpoint, lambda key: _RESIDUAL_KEY.sub(lambda m: m[1] + _RESIDUAL_NORMS[m[2]], key, count=1))


MIGRATIONS: list[Migration] = [nest_flat_configs, drop_residual_holders]  # MIGRATIONS[n]: version n -> n + 1


def format_version() -> int:
    """The format version this code writes: one past the last migration."""
    return len(MIGRATIONS)


def migrate(checkpoint: Checkpoint, source: str | Path = "checkpoint") -> Checkpoint:
    """A run checkpoint (one with an embedded config) in today's format: the migrations from its version on, then
    the rename table; ``source`` names it in the error for a version newer than this code reads."""
    version, current = checkpoint.get(FORMAT_KEY, 0), format_version()
    if not isinstance(version, int) or not 0 <= version <= current:
        raise BadFileError(
            f"{source} has checkpoint format version {version!r}, but this attnlab reads versions 0 to {current}: "
            f"it was written by a newer attnlab (update attnlab to read it)"
        )
    for step, migration in enumerate(MIGRATIONS[version:], start=version):
        try:
            checkpoint = migration(checkpoint)
        except (KeyError, TypeError, ValueError) as error:
            raise BadFileError(f"{source}: migrating it from checkpoint format version {step} to {step + 1} "
                               f"({getattr(migration, '__name__', migration)}) failed: {error!r}") from error
    return {**checkpoint, CONFIG_KEY: rename_targets(checkpoint[CONFIG_KEY]), FORMAT_KEY: current}


def stamp(checkpoint: Checkpoint, config: Mapping[str, Any]) -> None:
    """Embed the run config and today's format version in a checkpoint being saved (Lightning's dict, in place)."""
    checkpoint[CONFIG_KEY] = config
    checkpoint[FORMAT_KEY] = format_version()


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> Checkpoint:
    """Load a checkpoint on the CPU without unpickling code (weights only); a run checkpoint comes back migrated to
    today's format, any other dict (a plain state dict) as it is. ``mmap``: map its tensors from the file instead
    of reading them (to look at its other entries)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise BadFileError(
            f"{path} is not a loadable checkpoint (corrupt, truncated, or it holds objects other than tensors "
            f"and plain data, which weights_only=True refuses): {error}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise BadFileError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    if isinstance(checkpoint.get(CONFIG_KEY), Mapping):
        checkpoint = migrate(checkpoint, path)
    return checkpoint


def load_run_checkpoint(path: str | Path) -> Checkpoint:
    """Like ``load_checkpoint``, but insists on an attnlab training checkpoint (state dict + run config)."""
    checkpoint = load_checkpoint(path)
    missing = [key for key in ("state_dict", CONFIG_KEY) if key not in checkpoint]
    if missing:
        raise BadFileError(
            f"{path} is not an attnlab training checkpoint: it lacks {missing} "
            f"(found keys {sorted(checkpoint)[:10]}); use a last.ckpt/best-*.ckpt from an attnlab run dir"
        )
    return checkpoint


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write a checkpoint dict (one read by :func:`load_checkpoint`, so already in today's format) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path
