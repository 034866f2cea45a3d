"""What a failed job leaves: a user's mistake (:class:`attnlab.UserError`) printed as its message alone, and no
run dir that holds nothing but the files Hydra wrote when the job started. The jobs of a sweep keep theirs: the
sweep's record of its jobs (the Optuna sweeper writes each trial's state into its dir)."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException

from attnlab import UserError
from attnlab.cli.resolvers import in_multirun

_HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}  # what Hydra saves in <run dir>/.hydra


class UserErrorMessage(CompactHydraException):
    """Hydra prints a compact exception's message without a traceback; with ``HYDRA_FULL_ERROR=1`` it re-raises
    it, and the traceback of the :class:`UserError` behind it comes along."""


def remove_empty_run_dir() -> None:
    """Delete this job's output dir when it holds Hydra's own files only: ``.hydra/`` and the job's log."""
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    if not run_dir.is_dir():
        return
    saved = run_dir / ".hydra"
    only_hydra = {path.name for path in run_dir.iterdir()} <= {saved.name, f"{hydra.job.name}.log"}
    if only_hydra and (not saved.is_dir() or {path.name for path in saved.iterdir()} <= _HYDRA_FILES):
        shutil.rmtree(run_dir)


@contextmanager
def reported_failures() -> Iterator[None]:
    """Around a job: a single run's failure before anything was written removes its run dir; a :class:`UserError`
    reaches Hydra as a :class:`UserErrorMessage`, any other exception unchanged."""
    try:
        yield
    except Exception as error:
        if not in_multirun():
            remove_empty_run_dir()
        if isinstance(error, UserError):
            raise UserErrorMessage(str(error)) from error
        raise
