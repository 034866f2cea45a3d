"""Callbacks the training CLI attaches to every run."""
from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl

from attnlab.data.resumable import ResumableDataLoader
from attnlab.lit.checkpoint import CONFIG_KEY


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


class ResumeTrainLoader(pl.Callback):
    """Resumes a mid-epoch checkpoint at the next batch: stores the position of a
    :class:`~attnlab.data.resumable.ResumableDataLoader` in each checkpoint and restores it when training
    starts, after everything else is restored and before the first batch is drawn. (Lightning's own
    loader-state restore is skipped when the module built the loader while configuring its optimizers.)"""

    KEY = "attnlab_train_loader"

    def __init__(self):
        self._pending: int | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        loader = trainer.train_dataloader
        if isinstance(loader, ResumableDataLoader):
            # batches trained on, not handed out: a checkpoint written mid-step (Lightning's SLURM requeue
            # signal handler) holds a batch that was fetched but not trained on
            trained = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            checkpoint[self.KEY] = {"batches_served": trained}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(self.KEY, {}).get("batches_served")

    def on_train_start(self, trainer, pl_module) -> None:
        served, self._pending = self._pending, None
        loader = trainer.train_dataloader
        # an epoch-end checkpoint (all batches served) starts the next epoch from its beginning
        if served and isinstance(loader, ResumableDataLoader) and served < trainer.num_training_batches:
            loader.resume_at(served)
