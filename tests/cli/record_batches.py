"""A callback for the overfitting test, loaded by the training subprocess from this dir (PYTHONPATH)."""
from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl


class RecordBatches(pl.Callback):
    """Writes the pairs (``batch.index``) of every training batch, epoch by epoch, to ``out`` (JSON) at the end."""

    def __init__(self, out: str):
        self.out, self.epochs = Path(out), []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.epochs[-1].append(batch.index.tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.write_text(json.dumps(self.epochs))
