"""A Hydra launcher that runs a multirun's jobs N at a time on this machine, each in a fresh process pinned to its
share of it: its own GPU(s) (``CUDA_VISIBLE_DEVICES``) on a GPU box, its own CPU cores (``sched_setaffinity``
where the OS has it) and thread count (``OMP_NUM_THREADS``, which torch's intra-op pool follows) everywhere.

Why not Hydra's joblib launcher: its loky workers are reused from job to job, and CUDA and OpenMP fix the visible
devices and the thread pool once per process, so a job cannot be given its own; a job that kills its interpreter
also takes the worker down. Here the parent composes each job's config, the child (:mod:`.job`) pins itself before
it imports anything heavy, runs Hydra's ``run_job`` and pickles the ``JobReturn`` back. A job that fails or dies is
a FAILED return and the others go on; each job's ``launch.yaml`` (in its run dir) records its slot, what the job saw
and how it ended, and ``launch.log`` holds its output.
"""
import logging  # no `from __future__ import annotations`: Hydra's plugin scan loads this module outside sys.modules,
#                 where dataclasses cannot resolve string annotations
import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)

LAUNCH_RECORD = "launch.yaml"  # in each job's run dir: slot, what the job saw, status, error, seconds
LAUNCH_LOG = "launch.log"  # in each job's run dir: the job process's stdout and stderr
POLL_S = 0.2


@dataclass(frozen=True)
class Slot:
    """One job's share of the machine."""

    cpus: tuple[int, ...]  # cores it is bound to
    threads: int  # OMP_NUM_THREADS / torch intra-op threads
    gpus: tuple[str, ...] | None  # its CUDA_VISIBLE_DEVICES entries; () hides every GPU; None leaves the variable

    def env(self) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


def visible_gpus() -> list[str]:
    """This process's GPUs as ``CUDA_VISIBLE_DEVICES`` entries: the variable's own list when set, else 0..n-1."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [entry.strip() for entry in listed.split(",") if entry.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def plan_slots(n_jobs: int | None, cpus: Sequence[int], gpus: Sequence[str], gpus_per_job: int | None = None,
               threads_per_job: int | None = None) -> list[Slot]:
    """One slot per concurrent job. GPUs (when any are visible; ``gpus_per_job`` defaults to 1 then, and 0 hides
    them) are dealt out without overlap; cores are dealt out in consecutive runs of ``threads_per_job`` (default:
    an equal share), wrapping round when the jobs ask for more threads than there are cores."""
    if gpus_per_job is None:
        gpus_per_job = 1 if gpus else 0
    if gpus_per_job < 0 or (n_jobs is not None and n_jobs < 1) or (threads_per_job is not None and threads_per_job < 1):
        raise ValueError(f"need n_jobs >= 1 (or null), gpus_per_job >= 0 and threads_per_job >= 1 (or null); got "
                         f"n_jobs={n_jobs}, gpus_per_job={gpus_per_job}, threads_per_job={threads_per_job}")
    if n_jobs is None:
        n_jobs = len(gpus) // gpus_per_job if gpus_per_job else max(1, len(cpus) // (threads_per_job or 1))
    if n_jobs * gpus_per_job > len(gpus):
        raise ValueError(f"n_jobs={n_jobs} jobs of gpus_per_job={gpus_per_job} need {n_jobs * gpus_per_job} GPUs; "
                         f"visible: {len(gpus)} ({','.join(gpus) or 'none'})")
    threads = threads_per_job or max(1, len(cpus) // n_jobs)
    slots = []
    for k in range(n_jobs):
        cores = tuple(sorted({cpus[(k * threads + i) % len(cpus)] for i in range(threads)}))
        shown = tuple(gpus[k * gpus_per_job : (k + 1) * gpus_per_job]) if gpus else None
        slots.append(Slot(cpus=cores, threads=threads, gpus=shown))
    return slots


def task_reference(task_function: TaskFunction) -> tuple[str, str]:
    """Module and name under which a job process finds the app's task function (``@hydra.main`` passes a given
    config straight through to it)."""
    module = task_function.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:
            raise ValueError("the parallel launcher needs an importable app: run it as an installed script or with "
                             "`python -m package.module`, not as `python file.py`")
        module = spec.name
    return module, task_function.__qualname__


@dataclass
class _Running:
    index: int
    slot: int
    process: subprocess.Popen
    run_dir: Path
    config: DictConfig
    started: float


class ParallelLauncher(Launcher):
    """``n_jobs`` jobs at once (null: one per GPU group, or one per core), each in its own pinned process."""

    def __init__(self, *, n_jobs: int | None = None, gpus_per_job: int | None = None,
                 threads_per_job: int | None = None, pin_cpus: bool = True):
        self.slots = plan_slots(n_jobs, usable_cpus(), visible_gpus(), gpus_per_job, threads_per_job)
        self.pin_cpus = pin_cpus
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task: tuple[str, str] | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task = config, hydra_context, task_reference(task_function)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        log.info("Launching %d jobs, %d at a time: %s", len(job_overrides), len(self.slots),
                 "; ".join(f"cores {','.join(map(str, s.cpus))} x {s.threads} threads"
                           + (f", GPU {','.join(s.gpus) or 'none'}" if s.gpus is not None else "") for s in self.slots))
        waiting = list(enumerate(job_overrides, start=initial_job_idx))
        free, running, returns = list(range(len(self.slots))), [], {}
        try:
            while waiting or running:
                while waiting and free:
                    index, overrides = waiting.pop(0)
                    running.append(self._start(index, list(overrides), free.pop(0)))
                time.sleep(POLL_S)
                for job in [job for job in running if job.process.poll() is not None]:
                    running.remove(job)
                    free.append(job.slot)
                    returns[job.index] = self._finish(job)
        finally:  # interrupted (Ctrl-C) or failed here: no orphaned jobs
            for job in running:
                job.process.terminate()
        return [returns[index] for index in sorted(returns)]

    def _start(self, index: int, overrides: list[str], slot_index: int) -> _Running:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = index
        HydraConfig.instance().set_config(config)  # resolves ${hydra:...} and ${now:...} here, once, for the child
        run_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
        with read_write(config.hydra.sweep):
            config.hydra.sweep.dir, config.hydra.sweep.subdir = str(run_dir.parent), run_dir.name
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = run_dir / ".launcher" / "job.pkl"
        spec.parent.mkdir(exist_ok=True)
        spec.write_bytes(pickle.dumps({"config": config, "task": self.task, "job_name": JobRuntime.instance().get("name")}))
        slot = self.slots[slot_index]
        cpus = ",".join(map(str, slot.cpus)) if self.pin_cpus else ""
        log.info("\t#%d (cores %s, %s): %s", index, cpus or "any", slot.env(), " ".join(filter_overrides(overrides)))
        with (run_dir / LAUNCH_LOG).open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "hydra_plugins.attnlab_parallel_launcher.job", str(spec), cpus],
                env={**os.environ, **slot.env()}, stdout=output, stderr=subprocess.STDOUT,
            )
        return _Running(index, slot_index, process, run_dir, config, time.time())

    def _finish(self, job: _Running) -> JobReturn:
        """The child's ``JobReturn``, or a FAILED one when it died without writing it; its record in the run dir."""
        result = job.run_dir / ".launcher" / "return.pkl"
        seen: dict[str, Any] = {}
        if result.is_file():
            ret, seen = pickle.loads(result.read_bytes())
        else:
            ret = JobReturn(overrides=list(job.config.hydra.overrides.task), hydra_cfg=job.config,
                            status=JobStatus.FAILED)
            with read_write(ret.hydra_cfg.hydra.runtime), open_dict(ret.hydra_cfg.hydra.runtime):
                ret.hydra_cfg.hydra.runtime.output_dir = str(job.run_dir.resolve())
            ret.return_value = RuntimeError(f"job {job.index} exited with code {job.process.returncode} before it "
                                            f"returned; its output: {job.run_dir / LAUNCH_LOG}")
        failed = ret.status != JobStatus.COMPLETED
        slot = self.slots[job.slot]
        record = {
            "job": job.index, "status": ret.status.name, "exit_code": job.process.returncode,
            "seconds": round(time.time() - job.started, 1),
            "slot": {"cpus": list(slot.cpus), "threads": slot.threads, "gpus": None if slot.gpus is None else list(slot.gpus)},
            "seen": seen, "error": f"{type(ret._return_value).__name__}: {ret._return_value}" if failed else None,
        }
        (job.run_dir / LAUNCH_RECORD).write_text(yaml.safe_dump(record, sort_keys=False))
        (log.error if failed else log.info)("\t#%d %s in %.0f s%s", job.index, ret.status.name, record["seconds"],
                                            f": {record['error']}" if failed else "")
        return ret


def read_launch_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / LAUNCH_RECORD
    return yaml.safe_load(path.read_text()) if path.is_file() else None

