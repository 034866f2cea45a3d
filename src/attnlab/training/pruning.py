"""Pruning an Optuna trial from inside its training run.

optuna-integration's ``PyTorchLightningPruningCallback`` subclasses ``lightning.pytorch.Callback`` (the
unified ``lightning`` package, a second copy of the framework next to ``pytorch_lightning``), and its DDP
mode needs RDB storage; this callback is the same idea for ``pytorch_lightning`` and any Optuna storage.
"""
from __future__ import annotations

import optuna
import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from attnlab.training.studies import reopen_trial


class OptunaPruning(pl.Callback):
    """After each validation, reports ``monitor`` to trial ``trial_number`` of the stored study at the
    global step, and stops training when ``pruner`` says so; :func:`pruned_trial` then holds the
    :class:`optuna.TrialPruned` for the entry point to raise once every rank has left ``fit``.

    The Optuna sweeper adds this callback to each trial's config, so it is rebuilt in whatever process runs
    the job (a SLURM node, every DDP rank); the trial is reopened from storage by number. Rank 0 reports and
    asks the pruner, and the decision is broadcast so that every rank stops together. (Raising inside
    ``fit`` would end the DDP ranks with an error, and Lightning's launcher then kills the whole sweep.)
    """

    def __init__(self, *, study_name: str, storage: str, trial_number: int, monitor: str,
                 pruner: optuna.pruners.BasePruner | None = None):
        self.study_name, self.storage, self.trial_number = study_name, storage, trial_number
        self.monitor, self.pruner = monitor, pruner
        self._trial: optuna.Trial | None = None
        self.pruned: optuna.TrialPruned | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero and self._trial is None:
            self._trial = reopen_trial(self.study_name, self.storage, self.trial_number, self.pruner)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        value = trainer.callback_metrics.get(self.monitor)  # synced across ranks, so every rank can check it
        if value is None:
            logged = ", ".join(sorted(trainer.callback_metrics))
            raise ValueError(f"pruning monitor {self.monitor!r} was not logged at validation; logged: {logged}")
        prune = False
        if trainer.is_global_zero:
            self._trial.report(float(value), step=trainer.global_step)
            prune = self._trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned = optuna.TrialPruned(
                f"trial {self.trial_number} pruned at step {trainer.global_step}: {self.monitor}={float(value):.6g}"
            )
            trainer.should_stop = True


def pruned_trial(trainer: pl.Trainer) -> optuna.TrialPruned | None:
    """The ``TrialPruned`` of a run that an :class:`OptunaPruning` callback stopped, else None."""
    return next((cb.pruned for cb in trainer.callbacks if isinstance(cb, OptunaPruning) and cb.pruned), None)
