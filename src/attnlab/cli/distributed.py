"""DDP inside a Hydra multirun.

Lightning's ``strategy=ddp`` launches ranks 1..N-1 by re-running the command line (``sys.argv``) with
``hydra.run.dir=<HydraConfig run.dir>`` appended. In a multirun that command is the whole sweep (``-m``,
comma lists, or an Optuna search that sets ``hydra.mode: MULTIRUN``), and ``run.dir`` is not the job's dir,
so every child would start a sweep of its own in the wrong place. The next job then breaks twice over: the
process group of the last job is still up, and the ``LOCAL_RANK``, ``MASTER_PORT``... that Lightning left in
``os.environ`` make it believe an external launcher started the ranks, so it waits for ranks that never come.

``ddp_job`` fixes this for each job: while the job runs, ``sys.argv`` holds only this job's overrides in run
mode and ``hydra.run.dir`` is the job's output dir; afterwards the argv and the environment are restored, so
the next job launches ranks of its own.

In every mode it also ends the job's ranks cleanly. Each rank destroys its process group: a gloo group left to
the interpreter's exit can abort the process ("terminate called without an active exception"). The launching
process then waits for the ranks it started, so no rank outlives its job: in a sweep, a rank of job k that died
late would make Lightning kill the launcher while job k+1's ranks, orphaned, wait for it forever.
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from typing import Iterator

import pytorch_lightning as pl
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from attnlab.cli.resolvers import in_multirun

_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
RANK_EXIT_SECONDS = 120  # a rank that has left the job only tears down its loggers and exits
_SWEEP_ONLY = ("hydra.mode=", "hydra.sweep.", "hydra/sweeper", "hydra.sweeper.", "hydra/launcher", "hydra.launcher.")


def single_job_argv(argv0: str) -> list[str]:
    """The command line that runs exactly this multirun job alone: its task overrides, the user's hydra
    overrides that matter for one run, and run mode (Lightning appends ``hydra.run.dir``)."""
    overrides = HydraConfig.get().overrides
    kept_hydra = [o for o in overrides.hydra if not o.lstrip("~+").startswith(_SWEEP_ONLY)]
    return [argv0, *overrides.task, *kept_hydra, "hydra.mode=RUN"]


@contextmanager
def ddp_job(trainer: pl.Trainer) -> Iterator[None]:
    """Run one job's fit/test under ``trainer``: relaunchable by DDP inside a multirun (not in the processes
    Lightning launched, which run in run mode), and leaving no process group and no running rank behind. A rank
    that failed is an error unless the job is already raising one (a pruned trial, a failure of its own)."""
    relaunchable = _single_job_command() if in_multirun() else nullcontext()
    try:
        with relaunchable:
            yield
    except BaseException:
        _end_ranks(trainer, check=False)
        raise
    _end_ranks(trainer, check=True)


def _end_ranks(trainer: pl.Trainer, *, check: bool) -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    failed = wait_for_launched_ranks(trainer)
    if failed and check:
        raise RuntimeError(f"DDP ranks did not end cleanly: {'; '.join(failed)}; see train_ddp_process_<rank>.log "
                           "in the run dir")


def wait_for_launched_ranks(trainer: pl.Trainer, timeout: float = RANK_EXIT_SECONDS) -> list[str]:
    """Wait for the rank processes this process launched, killing one still running after ``timeout`` seconds;
    returns what went wrong, a line per rank (Lightning's observer may kill this process for a failed rank first)."""
    launcher = trainer.strategy.launcher
    procs = launcher.procs if isinstance(launcher, _SubprocessScriptLauncher) else []
    failed = []
    for rank, proc in enumerate(procs, start=1):
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            failed.append(f"rank {rank} (pid {proc.pid}) was still running {timeout:g} s after its job ended: killed")
            continue
        if code != 0:
            failed.append(f"rank {rank} (pid {proc.pid}) exited with code {code}")
    return failed


@contextmanager
def _single_job_command() -> Iterator[None]:
    """``sys.argv`` runs this job alone and ``hydra.run.dir`` is its dir; both, and the launcher's environment,
    are restored afterwards."""
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
