"""A callback for the resumption test, loaded by the training subprocess from this dir (PYTHONPATH)."""
from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl


class PauseAtStep(pl.Callback):
    """Halts training before optimizer step ``step`` (the checkpoint of the step before is fully written) and
    writes ``marker``, so a test can SIGKILL the process at a known point in the middle of an epoch."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            Path(self.marker).write_text(f"{trainer.global_step} {batch_idx}")
            time.sleep(3600)
