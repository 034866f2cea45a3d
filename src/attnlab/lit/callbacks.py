"""Callbacks the training CLI attaches to every run."""
from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl

from attnlab.checkpoint import CONFIG_KEY


class EmbedConfig(pl.Callback):
    """Stores the resolved run config (plain dict) in every checkpoint, so a checkpoint rebuilds its model."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config


class Throughput(pl.Callback):
    """Logs ``train/tokens_per_s`` for modules whose ``training_step`` returns ``{"loss": ..., "num_tokens": n}``
    (useful, non-padding tokens); the rate shows in the progress bar."""

    def __init__(self):
        self._start = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens = outputs.get("num_tokens") if isinstance(outputs, dict) else None
        if tokens and self._start is not None:
            rate = tokens / max(time.perf_counter() - self._start, 1e-9)
            pl_module.log("train/tokens_per_s", float(rate), prog_bar=True, on_step=True, on_epoch=False, batch_size=1)
