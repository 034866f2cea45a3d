"""Callbacks for the DDP tests, loaded by the training subprocesses from this dir (PYTHONPATH)."""
from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer


class SkewAndRecordHorizon(pl.Callback):
    """Moves rank 1's budget clock ``skew`` seconds ahead (so its own estimate of the run differs from rank 0's)
    and writes every rank's schedule horizon, step by step, to ``<out>-rank<r>.json`` at the end."""

    def __init__(self, out: str, skew: float):
        self.out, self.skew, self.horizons = out, skew, []

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_rank == 1:
            next(c for c in trainer.callbacks if isinstance(c, Timer))._offset += self.skew

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.horizons.append(trainer.lr_scheduler_configs[0].scheduler.total_steps)

    def on_train_end(self, trainer, pl_module) -> None:
        Path(f"{self.out}-rank{trainer.global_rank}.json").write_text(json.dumps(self.horizons))


class PerturbRank1(pl.Callback):
    """Scales rank 1's parameters by ``factor`` before the strategy wraps the model: DDP must start every rank
    from rank 0's weights and keep them equal, or the run leaves the single-process trajectory."""

    def __init__(self, factor: float):
        self.factor = factor

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.global_rank == 1:
            for parameter in pl_module.parameters():
                parameter.data.mul_(self.factor)
