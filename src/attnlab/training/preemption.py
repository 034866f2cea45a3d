"""Preemption on SLURM: Lightning owns it.

SLURM sends ``signal`` shortly before a job's time limit (``sbatch --signal=USR1@<seconds>``; attnlab's
submitit launcher config asks for it). Lightning's SLURM environment then writes
``<default_root_dir>/hpc_ckpt_<n>.ckpt`` from every rank (rank 0 writes the file) and rank 0 runs
``scontrol requeue <job id>``; the requeued job runs the same command in the same run dir and resumes from
that checkpoint (:mod:`attnlab.training.requeue`), if the checkpoint holds this job's id (:class:`RecordSlurmJob`).
submitit's own handler listens on USR2, which is then never sent.
"""
from __future__ import annotations

import signal as signals
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment

_ALLOWED = ("SIGUSR1", "SIGUSR2")  # SIGTERM is SLURM's own kill signal, which Lightning handles apart
JOB_KEY = "slurm_job_id"  # in every checkpoint: the SLURM job that wrote it (None outside SLURM)


def slurm_requeue(signal: str = "SIGUSR1", auto_requeue: bool = True) -> list[SLURMEnvironment]:
    """Trainer ``plugins``: under a SLURM batch job, a SLURM environment that checkpoints and requeues on
    ``signal``; elsewhere none (Lightning picks its environment as usual)."""
    if signal not in _ALLOWED:
        raise ValueError(f"requeue signal {signal!r} is not one of {', '.join(_ALLOWED)}")
    if not SLURMEnvironment.detect():
        return []
    return [SLURMEnvironment(auto_requeue=auto_requeue, requeue_signal=signals.Signals[signal])]


class RecordSlurmJob(pl.Callback):
    """Stores the SLURM job id in every checkpoint, so that a requeued job resumes only its own hpc checkpoint."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[JOB_KEY] = SLURMEnvironment.job_id() if SLURMEnvironment.detect() else None
