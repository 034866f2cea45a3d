"""A requeued SLURM job resumes from the checkpoint Lightning wrote when the requeue signal came.

Lightning names it ``<run dir>/hpc_ckpt_<n>.ckpt`` (n counts up per requeue) and would load it by itself
when ``fit`` gets no checkpoint under SLURM; the entry point takes it up front instead, so the data
module's tokenizers and the W&B run id are restored from it as from any ``ckpt_path``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from lightning_fabric.plugins.environments import SLURMEnvironment

log = logging.getLogger(__name__)

_HPC_CHECKPOINT = re.compile(r"hpc_ckpt_(\d+)\.ckpt")


def requeued_checkpoint(run_dir: str | Path) -> str | None:
    """Under SLURM, the newest ``hpc_ckpt_<n>.ckpt`` of ``run_dir``; None elsewhere or when there is none."""
    if not SLURMEnvironment.detect() or not Path(run_dir).is_dir():
        return None
    numbered = {int(m.group(1)): path for path in Path(run_dir).iterdir() if (m := _HPC_CHECKPOINT.fullmatch(path.name))}
    if not numbered:
        return None
    newest = str(numbered[max(numbered)])
    log.info("requeued SLURM job %s: resuming from %s", SLURMEnvironment.job_id(), newest)
    return newest
