"""A requeued SLURM job resumes from the checkpoint Lightning wrote when the requeue signal came, and never tests it.

Lightning names it ``<run dir>/hpc_ckpt_<n>.ckpt`` (n counts up per requeue) and, under SLURM, substitutes the
newest one whenever ``fit``, ``validate`` or ``test`` gets no checkpoint. So the entry point takes it up front
instead, so the data module's tokenizers and the W&B run id are restored from it as from any ``ckpt_path``; it takes
only one its own job wrote (:class:`attnlab.training.preemption.RecordSlurmJob` stamps the job id into every checkpoint),
and after training it gives ``test`` the weights the run ended with as an explicit checkpoint.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment

from attnlab import ConfigError
from attnlab.training.checkpoint import load_checkpoint
from attnlab.training.preemption import JOB_KEY

log = logging.getLogger(__name__)

_HPC_CHECKPOINT = re.compile(r"hpc_ckpt_(\d+)\.ckpt")


def _hpc_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """Under SLURM, ``{n: run_dir/hpc_ckpt_<n>.ckpt}``; empty elsewhere (Lightning then ignores them too)."""
    if not SLURMEnvironment.detect() or not Path(run_dir).is_dir():
        return {}
    return {int(m.group(1)): path for path in Path(run_dir).iterdir() if (m := _HPC_CHECKPOINT.fullmatch(path.name))}


def requeued_checkpoint(run_dir: str | Path) -> str | None:
    """Under SLURM, the newest ``hpc_ckpt_<n>.ckpt`` of ``run_dir``, which must come from this job; None elsewhere
    or when there is none. Another job's (a reused run dir) is refused: Lightning would resume it unasked."""
    numbered = _hpc_checkpoints(run_dir)
    if not numbered:
        return None
    newest = numbered[max(numbered)]
    job, written_by = SLURMEnvironment.job_id(), load_checkpoint(newest, mmap=True).get(JOB_KEY)
    if written_by != job:
        raise ConfigError(
            f"{newest} was written by SLURM job {written_by}, not by this job {job}: Lightning would resume it. "
            "Give this job a fresh run dir (hydra.run.dir), remove the hpc_ckpt_*.ckpt files, or resume it on "
            "purpose with ckpt_path=<file>"
        )
    log.info("requeued SLURM job %s: resuming from %s", job, newest)
    return str(newest)


def final_weights_checkpoint(trainer: pl.Trainer) -> str | None:
    """Where the run dir holds hpc checkpoints (under SLURM), save the weights the run ended with as the next
    ``hpc_ckpt_<n>.ckpt`` and return it, for ``test`` to get explicitly (given none, Lightning would test the newest
    older one: the weights at the preemption); a requeue during the test then resumes from the end of training.
    None elsewhere. Every rank calls it."""
    numbered = _hpc_checkpoints(trainer.default_root_dir)
    if not numbered:
        return None
    path = str(Path(trainer.default_root_dir) / f"hpc_ckpt_{max(numbered) + 1}.ckpt")
    trainer.save_checkpoint(path)
    log.info("the run dir holds hpc checkpoints: testing the final weights, saved as %s", path)
    return path
