"""Callbacks the training CLI attaches to every run."""
from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping

from attnlab.data.resumable import ResumableDataLoader
from attnlab.training.checkpoint import stamp


class EmbedConfig(pl.Callback):
    """Stores the resolved run config (plain dict) and the format version in every checkpoint, so a checkpoint
    rebuilds its model (:mod:`attnlab.training.checkpoint` reads it back)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        stamp(checkpoint, self.config)


def early_stopping(monitor: str, mode: Any, patience: int | None = None, min_delta: float = 0.0) -> EarlyStopping | None:
    """Lightning's ``EarlyStopping`` on the run's ``monitor`` (``mode`` min|max): training stops once the metric has
    not improved by more than ``min_delta`` for ``patience`` validations in a row. ``patience=None``: no early
    stopping (the callback is left out)."""
    mode = getattr(mode, "value", mode)  # the schema's MonitorMode enum or a plain string
    if mode not in ("min", "max"):
        raise ValueError(f"early stopping mode must be min or max, got {mode!r}")
    if patience is None:
        return None
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"early stopping patience must be an int >= 1 or null (off), got {patience!r}")
    if min_delta < 0:
        raise ValueError(f"early stopping min_delta must be >= 0, got {min_delta}")
    return EarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta)


class Throughput(pl.Callback):
    """Logs ``train/tokens_per_s`` for modules whose ``training_step`` returns ``{"loss": ..., "num_tokens": n}``
    (useful, non-padding tokens; the rate shows in the progress bar), and ``train/elapsed_s``, the wall time since
    this fit started (validation included), so that curves can be drawn against time as well as steps."""

    def __init__(self):
        self._start = None
        self._fit_start = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens = outputs.get("num_tokens") if isinstance(outputs, dict) else None
        if tokens and self._start is not None:
            rate = tokens / max(time.perf_counter() - self._start, 1e-9)
            pl_module.log("train/tokens_per_s", float(rate), prog_bar=True, on_step=True, on_epoch=False, batch_size=1)
        if self._fit_start is not None:
            elapsed = time.perf_counter() - self._fit_start
            pl_module.log("train/elapsed_s", elapsed, on_step=True, on_epoch=False, batch_size=1)


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
