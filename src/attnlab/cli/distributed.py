"""DDP inside a Hydra multirun.

Lightning's ``strategy=ddp`` launches ranks 1..N-1 by re-running the command line (``sys.argv``) with
``hydra.run.dir=<HydraConfig run.dir>`` appended. In a multirun that command is the whole sweep (``-m``,
comma lists, or an Optuna search that sets ``hydra.mode: MULTIRUN``), and ``run.dir`` is not the job's dir,
so every child would start a sweep of its own in the wrong place. The next job then breaks twice over: the
process group of the last job is still up, and the ``LOCAL_RANK``, ``MASTER_PORT``... that Lightning left in
``os.environ`` make it believe an external launcher started the ranks, so it waits for ranks that never come.

``job_relaunchable_by_ddp`` fixes this for each job: while the job runs, ``sys.argv`` holds only this job's
overrides in run mode and ``hydra.run.dir`` is the job's output dir; afterwards the argv and the environment
are restored and the process group is destroyed, so the next job launches ranks of its own.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from attnlab.cli.resolvers import in_multirun

_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_SWEEP_ONLY = ("hydra.mode=", "hydra.sweep.", "hydra/sweeper", "hydra.sweeper.", "hydra/launcher", "hydra.launcher.")


def single_job_argv(argv0: str) -> list[str]:
    """The command line that runs exactly this multirun job alone: its task overrides, the user's hydra
    overrides that matter for one run, and run mode (Lightning appends ``hydra.run.dir``)."""
    overrides = HydraConfig.get().overrides
    kept_hydra = [o for o in overrides.hydra if not o.lstrip("~+").startswith(_SWEEP_ONLY)]
    return [argv0, *overrides.task, *kept_hydra, "hydra.mode=RUN"]


@contextmanager
def job_relaunchable_by_ddp() -> Iterator[None]:
    """No-op outside a multirun and in the processes Lightning launched (``LOCAL_RANK`` > 0 run in run mode)."""
    if not in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    saved_argv, saved_env = sys.argv, {key: os.environ.get(key) for key in _LAUNCHER_ENV}
    sys.argv = single_job_argv(sys.argv[0])
    with read_write(hydra_cfg.run):  # Hydra composes a fresh config for each job: nothing to restore
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
