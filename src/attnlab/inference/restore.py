"""Rebuild a trained run from its checkpoint alone: the LightningModule and the datamodule with its tokenizer.

A checkpoint written by ``attnlab-train`` embeds the resolved run config (``attnlab_config``, data-dependent
sizes filled in) and the datamodule's state (tokenizers), so ``attnlab.load``, ``attnlab-eval`` and the tools on
``attnlab.load`` need nothing else. Loading is weights-only (``attnlab.training.checkpoint``), once; the model config
of an older run is first brought to today's layout (``attnlab.models.legacy_config``). A run dir stands for the
checkpoint its ``checkpoints/selected.json`` names (:func:`attnlab.training.averaging.selected_checkpoint`).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from attnlab.inference.targets import validate_targets
from attnlab.training.averaging import selected_checkpoint
from attnlab.training.checkpoint import CONFIG_KEY, load_run_checkpoint
from attnlab.models.bert_interop import rename_residual_keys
from attnlab.models.legacy_config import upgrade_net_config


class RestoredRun(NamedTuple):
    module: pl.LightningModule  # weights loaded, in eval mode, on the CPU
    datamodule: pl.LightningDataModule  # tokenizer/vocabulary restored; not set up (no data read yet)
    config: DictConfig  # the run's resolved config (with any data overrides)
    checkpoint_path: Path  # the file read (a run dir's selected checkpoint)


def restore_datamodule(config: DictConfig, checkpoint: Mapping[str, Any]) -> pl.LightningDataModule:
    """Instantiate ``config.data`` and hand it the checkpoint's datamodule state (its tokenizers)."""
    datamodule = instantiate(config.data)
    datamodule.load_state_dict(checkpoint.get(type(datamodule).__qualname__, {}))  # Lightning's key
    return datamodule


def restore_module(config: DictConfig, checkpoint: Mapping[str, Any]) -> pl.LightningModule:
    """Instantiate ``config.model`` (sizes already resolved) and load the checkpoint's weights strictly."""
    module = instantiate(config.model)
    module.load_state_dict(rename_residual_keys(checkpoint["state_dict"]))
    return module.eval()


def checkpoint_file(path: str | Path) -> Path:
    """``path`` itself, or the checkpoint a run dir stands for."""
    path = Path(path)
    return selected_checkpoint(path) if path.is_dir() else path


def restore_run(path: str | Path, data_overrides: Mapping[str, Any] | None = None) -> RestoredRun:
    """Module + datamodule of the run that wrote ``path`` (a checkpoint or a run dir); ``data_overrides`` (e.g. a
    moved corpus path) are merged over the checkpoint's data config."""
    ckpt_path = checkpoint_file(path)
    checkpoint = load_run_checkpoint(ckpt_path)
    config = OmegaConf.create(checkpoint[CONFIG_KEY])
    if "net" in config.get("model", {}):
        config.model.net = upgrade_net_config(OmegaConf.to_container(config.model.net))
    if data_overrides:
        config.data = OmegaConf.merge(config.data, OmegaConf.create(dict(data_overrides)))
    for part in ("model", "data"):  # a config an older attnlab wrote fails here, naming the key that no longer fits
        validate_targets(config[part], part)
    module, datamodule = restore_module(config, checkpoint), restore_datamodule(config, checkpoint)
    return RestoredRun(module, datamodule, config, Path(ckpt_path))
