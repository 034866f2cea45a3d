"""OmegaConf resolvers the configs use to read Hydra's runtime without Hydra leaking into ``lit/``.

- ``${multirun_group:${task_name}}``: in a multirun, ``<task_name>-<sweep dir name>`` (one W&B group per
  sweep); in a single run, null.
- ``${optuna_direction:${optimized_metric},${monitor},${monitor_mode}}``: Optuna's ``minimize``/``maximize`` for
  the optimized metric (:func:`attnlab.cli.directions.optimization_direction`).
- ``${placement_block:${norm.placement}}``: ``post``/``pre`` as the ``_target_`` of that Transformer block class.
"""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from attnlab.cli.directions import optimization_direction


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def multirun_group(task_name: str) -> str | None:
    if not in_multirun():
        return None
    return f"{task_name}-{Path(HydraConfig.get().sweep.dir).name}"


def placement_block_target(placement: str) -> str:
    from attnlab.layers.blocks import placement_block  # torch: only when a config resolves it, not for --help

    block = placement_block(placement)
    return f"{block.__module__}.{block.__qualname__}"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("multirun_group", multirun_group, replace=True)
    OmegaConf.register_new_resolver("optuna_direction", optimization_direction, replace=True)
    OmegaConf.register_new_resolver("placement_block", placement_block_target, replace=True)
