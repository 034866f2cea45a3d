"""Pretrained BERT encoders: the one owner of the file a fine-tuning run starts from (torchtune's checkpointer).

:func:`read_pretrained` reads the file once and returns its three parts; the entry point (``attnlab-train``) hands
each out: the tokenizer to the DataModule, the architecture into the model config (so the run's own config
rebuilds the model without the file), the weights into the built encoder (:func:`load_encoder`). Two formats:

- an attnlab training checkpoint of a BERT run (pretraining, or an earlier fine-tuning): the tokenizer its
  DataModule saved, the encoder's node of its run config and the encoder's weights;
- a Hugging Face ``BertForPreTraining``/``BertModel`` state dict with ``tokenizer.json`` and ``config.json``
  beside it, as in a Hugging Face model directory: BERT's own architecture (post-norm LayerNorm, GELU, learned
  positions, scaled dot-product attention) with the sizes of ``config.json``.

An encoder is named by its path in the LightningModule (``net.bert``), which is also where its weights sit in
a run checkpoint's state dict (``net.bert.*``) and its node in the run config (``model.net.bert``).
"""
from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor, nn

from attnlab import MissingFileError
from attnlab.attention.scorers import ScaledDotProductScorer
from attnlab.data.tokenizers import TOKENIZER_KEY, TextTokenizer
from attnlab.layers.blocks import PostNormBlock
from attnlab.layers.positional import LearnedPositionalEncoding
from attnlab.models.bert import BertForPretraining, BertModel
from attnlab.models.bert_interop import HF_LAYER_NORM_EPS, HF_PREFIX, from_hf_state_dict
from attnlab.training.checkpoint import CONFIG_KEY, load_checkpoint

log = logging.getLogger(__name__)

HF_WORD_EMBEDDING = "embeddings.word_embeddings.weight"  # in every Hugging Face BERT state dict (maybe under bert.)
HF_TOKENIZER_FILE = "tokenizer.json"  # what a Hugging Face model directory holds beside its weights
HF_CONFIG_FILE = "config.json"
HF_SIZES = {  # BertConfig field -> our encoder argument
    "hidden_size": "d_model",
    "num_attention_heads": "num_heads",
    "num_hidden_layers": "num_layers",
    "intermediate_size": "d_ff",
}
# encoder arguments that are not the architecture: the data (tokenizer, max_len) and the fine-tuning decide them
NOT_ARCHITECTURE = {"vocab_size", "pad_id", "max_len", "dropout"}


class PretrainedEncoder(NamedTuple):
    tokenizer: TextTokenizer  # the tokenizer the encoder was pretrained with
    architecture: dict[str, Any]  # BertModel arguments as config values (sizes, parts), minus NOT_ARCHITECTURE
    state: dict[str, Tensor]  # its weights, by BertModel's state-dict names
    source: str  # the file, for messages


def encoder_config(model_config: Mapping, encoder: str) -> Mapping:
    """The config node of the encoder at path ``encoder`` of the model (``net.bert``: ``model_config.net.bert``).
    Configs written before the encoder had a node of its own keep its arguments in the nearest node above."""
    node = model_config
    for name in encoder.split("."):
        child = node.get(name)
        if not isinstance(child, Mapping):
            break
        node = child
    return node


def _architecture(config: Mapping) -> dict[str, Any]:
    """``BertModel``'s arguments in an encoder node, minus what the data and the fine-tuning decide; the blocks'
    dropout is pointed back at the encoder's (the fine-tuning's), as a fresh config has it."""
    arguments = inspect.signature(BertModel).parameters
    architecture = {key: value for key, value in config.items() if key in arguments and key not in NOT_ARCHITECTURE}
    if isinstance(architecture.get("block"), Mapping):
        architecture["block"] = {**architecture["block"], "dropout": "${..dropout}"}
    return architecture


def read_pretrained(path: str | os.PathLike, encoder: str = "net.bert") -> PretrainedEncoder:
    """Tokenizer, architecture and weights of the encoder in ``path`` (at ``encoder`` in an attnlab run).

    Raises FileNotFoundError for a missing file (or a Hugging Face file's missing neighbours) and ValueError,
    naming the file, for one that is corrupt, not weights-only loadable, or neither format.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"pretrained model file not found: {path} (expected an attnlab checkpoint such as "
            f"outputs/bert_pretrain/<run>/checkpoints/last.ckpt, or a Hugging Face BERT state dict)"
        )
    checkpoint = load_checkpoint(path)
    if CONFIG_KEY in checkpoint and "state_dict" in checkpoint:
        return _from_run_checkpoint(path, checkpoint, encoder)
    if HF_WORD_EMBEDDING in checkpoint or HF_PREFIX + HF_WORD_EMBEDDING in checkpoint:
        return _from_hf_directory(path, checkpoint)
    raise ValueError(
        f"{path} is neither an attnlab training checkpoint (no {CONFIG_KEY!r}) nor a Hugging Face BERT state dict "
        f"(no {HF_WORD_EMBEDDING!r}); keys: {sorted(checkpoint)[:8]}"
    )


def _from_run_checkpoint(path: Path, checkpoint: dict, encoder: str) -> PretrainedEncoder:
    model_config = encoder_config(checkpoint[CONFIG_KEY].get("model", {}), encoder)  # read in today's format
    prefix = encoder + "."
    state = {key[len(prefix) :]: value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)}
    if not state:
        raise ValueError(
            f"{path} is an attnlab checkpoint without BERT encoder weights ({prefix}*); "
            f"its model is {model_config.get('_target_')}"
        )
    tokenizers = [state[TOKENIZER_KEY] for state in checkpoint.values() if isinstance(state, dict) and TOKENIZER_KEY in state]
    if not tokenizers:
        raise ValueError(f"{path} holds no tokenizer: it was not trained by an attnlab text DataModule")
    return PretrainedEncoder(TextTokenizer.from_str(tokenizers[0]), _architecture(model_config), state, str(path))


def _partial(factory: type, **arguments: Any) -> dict[str, Any]:
    """The config node of ``functools.partial(factory, **arguments)``."""
    return {"_target_": f"{factory.__module__}.{factory.__qualname__}", "_partial_": True, **arguments}


def _from_hf_directory(path: Path, checkpoint: dict) -> PretrainedEncoder:
    files = [path.parent / HF_TOKENIZER_FILE, path.parent / HF_CONFIG_FILE]
    absent = [str(file) for file in files if not file.is_file()]
    if absent:
        raise MissingFileError(
            f"{path} is a Hugging Face state dict, which holds neither its tokenizer nor its head count; "
            f"{' and '.join(absent)} must lie beside it, as in a Hugging Face model directory"
        )
    config = json.loads(files[1].read_text(encoding="utf-8"))
    missing = [field for field in HF_SIZES if field not in config]
    if missing:
        raise ValueError(f"{files[1]} lacks {missing}, which BERT's architecture needs")
    sizes = {ours: config[theirs] for theirs, ours in HF_SIZES.items()}
    eps = config.get("layer_norm_eps", HF_LAYER_NORM_EPS)
    try:
        model = from_hf_state_dict(checkpoint, num_heads=sizes["num_heads"], norm_eps=eps)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: cannot read it as a Hugging Face BERT state dict: {error}") from error
    bert = model.bert if isinstance(model, BertForPretraining) else model
    norm = _partial(nn.LayerNorm, eps=eps)
    block = _partial(PostNormBlock, d_ff=sizes.pop("d_ff"), scorer=_partial(ScaledDotProductScorer), norm=norm,
                     dropout="${..dropout}", activation="gelu")  # the blocks follow the fine-tuning's dropout
    architecture = sizes | {  # what from_hf_state_dict builds: BERT's own parts with the sizes of config.json
        "activation": "gelu", "pos_encoding": _partial(LearnedPositionalEncoding), "norm": norm, "block": block,
    }
    return PretrainedEncoder(TextTokenizer.load(files[0]), architecture, bert.state_dict(), str(path))


def load_encoder(encoder: BertModel, pretrained: PretrainedEncoder, tokenizer: TextTokenizer | None = None) -> None:
    """Copy the pretrained weights into ``encoder`` unchanged, after checking that the data's ``tokenizer`` is the
    one they were pretrained with. Learned position tables longer than the encoder's keep their first rows (exact
    for inputs up to that length); any other difference is an error naming the weights."""
    source = pretrained.source
    if tokenizer is not None and tokenizer != pretrained.tokenizer:
        raise ValueError(
            f"tokenizer mismatch: the data is tokenized with a different tokenizer than {source} was pretrained "
            f"with (a resumed run keeps its own tokenizer: resume with the pretrained= it was started with)"
        )
    names = {module: name + "." for name, module in encoder.named_modules()}
    token_weight = names[encoder.embeddings.token_embedding] + "weight"
    own, state = encoder.state_dict(), dict(pretrained.state)
    if token_weight in state and state[token_weight].shape[0] != encoder.vocab_size:
        raise ValueError(
            f"tokenizer/vocabulary mismatch: {source} embeds {state[token_weight].shape[0]} tokens but the data's "
            f"tokenizer has {encoder.vocab_size}; fine-tune with the tokenizer it was pretrained with"
        )
    positions = names[encoder.embeddings.position]
    for key, value in state.items():
        if key.startswith(positions) and key in own and value.shape[1:] == own[key].shape[1:]:
            if value.shape[0] < own[key].shape[0]:
                raise ValueError(
                    f"{source} has {value.shape[0]} positions, fewer than max_len={own[key].shape[0]}; "
                    f"set data.max_len <= {value.shape[0]}"
                )
            state[key] = value[: own[key].shape[0]]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source} does not fit the model's encoder (architecture differs): missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}, shapes (pretrained vs model) {wrong[:4]}"
        )
    encoder.load_state_dict(state)
    log.info("encoder loaded from %s", source)
