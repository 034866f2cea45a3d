"""The config translated for the run machinery (:mod:`attnlab.training`): built callbacks and loggers, the time
budget and the precision written into the trainer's node, the plain values of a run, and the pretrained file a
model starts from."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Mapping

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from attnlab import ConfigError
from attnlab.lit.pretrained import PretrainedEncoder, read_pretrained
from attnlab.training.horizon import budget_limits
from attnlab.training.precision import resolve_precision
from attnlab.training.run import RunPlan, resolve_ckpt_path

RUN_CALLBACKS = "run"  # callbacks.run (conf/callbacks/run): the run's bookkeeping, which callbacks=none keeps


def instantiate_all(nodes: Mapping[str, Any] | None) -> list[Any]:
    """The built nodes, leaving out null nodes and those whose builder returns None (a callback switched off)."""
    built = [hydra.utils.instantiate(node) for node in (nodes or {}).values() if node is not None]
    return [item for item in built if item is not None]


def build_callbacks(nodes: DictConfig | None, resolved: dict[str, Any]) -> list[pl.Callback]:
    """The callbacks of ``callbacks.*``, then the run's bookkeeping of ``callbacks.run.*``, where a partial (the
    config embedding) is called with the run's ``resolved`` config."""
    nodes = nodes or {}
    chosen = instantiate_all({name: node for name, node in nodes.items() if name != RUN_CALLBACKS})
    bookkeeping = instantiate_all(nodes.get(RUN_CALLBACKS))
    return chosen + [item(config=resolved) if isinstance(item, partial) else item for item in bookkeeping]


def apply_budget(cfg: DictConfig) -> None:
    """``budget=<minutes>``: the run's length is that time (``trainer.max_time``, no epoch limit)."""
    if cfg.budget is not None:
        with open_dict(cfg):
            cfg.trainer.update(budget_limits(cfg.budget))


def resolve_auto_precision(trainer: DictConfig) -> None:
    """``trainer.precision=auto`` (the default) becomes this machine's choice, logged (:mod:`attnlab.training.precision`)."""
    with open_dict(trainer):
        trainer.precision = resolve_precision(trainer.get("precision", "32-true"), trainer.get("accelerator", "auto"))


def ckpt_path_of(cfg: DictConfig) -> str | None:
    """The checkpoint this run starts from (``ckpt_path``: a path, ``last``, or a requeued job's own)."""
    return resolve_ckpt_path(cfg.ckpt_path, cfg.paths.output_dir, Path(cfg.paths.log_root) / cfg.task_name)


def run_plan(cfg: DictConfig) -> RunPlan:
    return RunPlan(fit=cfg.train, test=cfg.test, monitor=cfg.monitor,
                   monitor_mode=getattr(cfg.monitor_mode, "value", cfg.monitor_mode))


def read_model_pretrained(cfg: DictConfig) -> PretrainedEncoder | None:
    """The pretrained file the model starts from (``model.pretrained``, where the model has one), read once."""
    try:
        path = OmegaConf.select(cfg, "model.pretrained", default=None, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise ConfigError(
            "model.pretrained is required: a pretrained model file (an attnlab BERT checkpoint, or a Hugging Face "
            "BERT state dict with tokenizer.json and config.json beside it), or null to train from scratch"
        ) from error
    return None if path is None else read_pretrained(path, cfg.pretrained_encoder)
