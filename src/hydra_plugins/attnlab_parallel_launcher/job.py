"""One job of the parallel launcher in its own process: ``python -m hydra_plugins.attnlab_parallel_launcher.job
SPEC CPUS``. It binds itself to CPUS (its thread count came in the environment) before it imports the app, runs the
job as Hydra's own launchers do and pickles ``(JobReturn, what it saw)`` beside SPEC."""
from __future__ import annotations

import importlib
import os
import pickle
import sys
from pathlib import Path


def main(spec_path: str, cpus: str) -> int:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import JobRuntime, JobStatus, run_job, setup_globals
    from hydra.types import HydraContext
    from omegaconf import OmegaConf

    spec = pickle.loads(Path(spec_path).read_bytes())
    setup_globals()
    JobRuntime.instance().set("name", spec["job_name"])
    module, name = spec["task"]
    task_function = getattr(importlib.import_module(module), name)
    ret = run_job(
        hydra_context=HydraContext(config_loader=None, callbacks=Callbacks(spec["config"])),
        task_function=task_function, config=spec["config"], job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    seen = {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
    }
    ret.cfg, ret.hydra_cfg = (OmegaConf.create(OmegaConf.to_container(c)) for c in (ret.cfg, ret.hydra_cfg))  # plain:
    try:                                                      # structured nodes' classes do not pickle by name
        payload = pickle.dumps((ret, seen))
    except Exception:  # an exception that does not pickle travels as its text
        ret.return_value = RuntimeError(f"{type(ret._return_value).__name__}: {ret._return_value}")
        payload = pickle.dumps((ret, seen))
    Path(spec_path).with_name("return.pkl").write_bytes(payload)
    return 0 if ret.status == JobStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
