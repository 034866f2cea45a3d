"""Typed schema of the root training config, registered in Hydra's ConfigStore as ``train_schema``.

Hydra checks these types on composition: ``seed=abc`` fails naming the key before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


class MonitorMode(str, Enum):
    min = "min"
    max = "max"


@dataclass
class TrainSchema:
    task_name: str = "train"
    seed: int = 42
    train: bool = True
    test: bool = True
    ckpt_path: Optional[str] = None
    pretrained_encoder: str = "net.bert"
    monitor: str = "val/loss"
    monitor_mode: MonitorMode = MonitorMode.min
    optimized_metric: Optional[str] = None
    budget: Optional[float] = None
    paths: Any = field(default_factory=dict)
    trainer: Any = field(default_factory=dict)
    logger: Any = field(default_factory=dict)
    callbacks: Any = field(default_factory=dict)
    attention: Any = field(default_factory=dict)
    pos_encoding: Any = field(default_factory=dict)
    norm: Any = field(default_factory=dict)
    kernel: Any = field(default_factory=dict)
    pooling: Any = field(default_factory=dict)
    tokenizer: Any = field(default_factory=dict)
    model: Any = field(default_factory=dict)
    data: Any = field(default_factory=dict)


def register_schemas() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)
