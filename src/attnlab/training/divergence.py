"""Stopping a diverged run at once, instead of training, averaging and testing NaN weights to the end.

A loss that stops being finite never becomes finite again under plain SGD-style updates: the NaN reaches the
weights in the same step. So the run ends with :class:`TrainingDiverged`, naming the step, the last finite loss
and what usually helps. Under fp16 mixed precision Lightning's ``GradScaler`` already skips a step whose gradients
overflow and halves its scale; there the run only stops once ``fp16_skips`` steps in a row were non-finite (from
the default scale of 2**16, that many halvings reach 1: scaling can no longer help).
"""
from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.trainer.states import TrainerFn

from attnlab import TrainingDiverged

ADVICE = ("try a lower learning rate (model.optimizer.lr), gradient clipping (trainer.gradient_clip_val=1.0) "
          "or full precision (trainer.precision=32-true)")


class StopOnNonFinite(pl.Callback):
    """Raises :class:`TrainingDiverged` at the first training step whose loss is NaN or infinite on any rank (under
    an fp16 ``GradScaler``: after ``fp16_skips`` such steps in a row), and at a validation during ``fit`` that logs a
    non-finite ``val/*`` metric; every rank raises together."""

    def __init__(self, fp16_skips: int = 16):
        if fp16_skips < 1:
            raise ValueError(f"fp16_skips must be >= 1, got {fp16_skips}")
        self.fp16_skips = fp16_skips
        self._last_finite: tuple[int, float] | None = None  # (step, loss) of the latest finite training loss
        self._non_finite = 0  # non-finite training losses in a row
        self._step = 0  # the optimizer step of the current batch, as the logged train/loss_step rows count it

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return  # the step was skipped (manual optimization, or a module that returned None)
        finite = bool(torch.isfinite(loss.detach()).all())
        if not trainer.strategy.reduce_boolean_decision(not finite, all=False):
            self._last_finite, self._non_finite = (self._step, float(loss)), 0
            return
        self._non_finite += 1
        scaled = isinstance(trainer.precision_plugin, MixedPrecision) and trainer.precision_plugin.scaler is not None
        if scaled and self._non_finite < self.fp16_skips:
            return  # the GradScaler skipped this step and lowered its scale
        last = "none" if self._last_finite is None else f"{self._last_finite[1]:.6g} at step {self._last_finite[0]}"
        raise TrainingDiverged(
            f"training diverged: the loss is {float(loss)} at step {self._step} "
            f"({self._non_finite} non-finite step(s) in a row; last finite loss: {last}); {ADVICE}"
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        bad = {name: float(value) for name, value in trainer.callback_metrics.items()
               if name.startswith("val/") and not math.isfinite(float(value))}
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            raise TrainingDiverged(
                f"training diverged: validation at step {trainer.global_step} logged non-finite "
                f"{', '.join(f'{name}={value}' for name, value in sorted(bad.items())) or 'metrics on another rank'}; "
                f"{ADVICE}"
            )
