"""One training run from built parts: which checkpoint it starts from, then fit and test.

The entry point (:mod:`attnlab.cli.train`) builds the data, the model and the trainer from the composed config and
hands them over with plain values (:class:`RunPlan`); what happens between ``fit`` and ``test`` is decided here:
an Optuna trial pruned while it trained is not tested, a run that averaged checkpoints tests the better of the
averaged and the last weights, and a requeued SLURM run tests its final weights, never a stale hpc checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl

from attnlab import MissingFileError
from attnlab.training.averaging import AverageCheckpoints
from attnlab.training.pruning import pruned_trial
from attnlab.training.requeue import final_weights_checkpoint, requeued_checkpoint


@dataclass(frozen=True)
class RunPlan:
    """What a run does after its parts are built (the root keys of the training config)."""

    fit: bool = True  # ``train``
    test: bool = True
    monitor: str = "val/loss"  # the metric that picks the best checkpoint, and the averaged-or-last weights
    monitor_mode: str = "min"


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | Path, task_root: str | Path) -> str | None:
    """``last``: ``output_dir``'s last.ckpt, else the newest last.ckpt under ``task_root`` (this task's runs); else a
    path, which must exist. None: the checkpoint of a requeued SLURM job, if this is one."""
    if ckpt_path is None:
        return requeued_checkpoint(output_dir)
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise MissingFileError(f"ckpt_path={ckpt_path} does not exist")
        return str(ckpt_path)
    own = Path(output_dir) / "checkpoints" / "last.ckpt"
    if own.is_file():
        return str(own)
    candidates = sorted(Path(task_root).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise MissingFileError(f"ckpt_path=last: no last.ckpt under {own.parent} or {task_root}")
    return str(candidates[-1])


def callback_metrics(trainer: pl.Trainer) -> dict[str, float]:
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def fit_and_test(plan: RunPlan, trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule,
                 ckpt_path: str | None) -> dict[str, float]:
    """Fit (from ``ckpt_path`` when given) and test; returns every metric logged last, plus each averaging
    candidate's score as ``<monitor>_<name>``. Raises the :class:`optuna.TrialPruned` of a pruned trial on rank 0."""
    metrics: dict[str, float] = {}
    tested = ckpt_path or ""  # evaluate-only: the given checkpoint; after fit the best, or the averaging's choice
    if plan.fit:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update(callback_metrics(trainer))
        if (pruned := pruned_trial(trainer)) is not None:  # an Optuna trial stopped early: no test
            if trainer.is_global_zero:
                raise pruned  # the sweeper records the trial as pruned
            return metrics  # other DDP ranks end cleanly (a failed child makes Lightning kill every rank)
        tested = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        averaging = next((c for c in trainer.callbacks if isinstance(c, AverageCheckpoints) and c.candidates), None)
        if averaging is not None:  # averaged vs last weights on validation: the better is tested
            choice = averaging.choose(trainer, model, datamodule, monitor=plan.monitor, mode=plan.monitor_mode)
            # the chosen weights were validated last: their val/* metrics, and each candidate's score
            metrics.update(callback_metrics(trainer))
            metrics.update({f"{plan.monitor}_{name}": score for name, score in choice.scores.items()})
            tested = str(choice.path)
        if plan.test and not tested:  # the final weights, never a stale hpc checkpoint
            tested = final_weights_checkpoint(trainer) or ""
    if plan.test:
        trainer.test(model, datamodule=datamodule, ckpt_path=tested or None, weights_only=True)
        metrics.update(callback_metrics(trainer))
    return metrics
