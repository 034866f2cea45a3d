"""``ddp_job`` ends a job's ranks: every process destroys its process group (a gloo group left to the interpreter's
exit can abort it), and the launching process waits for the ranks it started, so none outlives its job."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch.distributed as dist
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from attnlab.cli.distributed import ddp_job, wait_for_launched_ranks


def trainer_with_ranks(*commands: str) -> SimpleNamespace:
    """A stand-in trainer whose Lightning launcher started one Python process per command (ranks 1, 2, ...)."""
    launcher = _SubprocessScriptLauncher.__new__(_SubprocessScriptLauncher)
    launcher.procs = [subprocess.Popen([sys.executable, "-c", command]) for command in commands]
    return SimpleNamespace(strategy=SimpleNamespace(launcher=launcher))


def test_the_job_destroys_its_process_group_and_waits_for_its_ranks(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    trainer = trainer_with_ranks("import time; time.sleep(1.5)")
    with ddp_job(trainer):
        assert dist.is_initialized()
    assert not dist.is_initialized()
    assert trainer.strategy.launcher.procs[0].returncode == 0  # waited for, not left running


def test_a_rank_that_failed_after_the_job_is_an_error_naming_it():
    trainer = trainer_with_ranks("pass", "raise SystemExit(3)")
    with pytest.raises(RuntimeError, match=r"rank 2 \(pid \d+\) exited with code 3; see train_ddp_process_<rank>"):
        with ddp_job(trainer):
            pass


def test_a_job_that_raised_keeps_its_error_and_still_waits():
    trainer = trainer_with_ranks("raise SystemExit(3)")
    with pytest.raises(KeyError, match="the job's own"):
        with ddp_job(trainer):
            raise KeyError("the job's own")
    assert trainer.strategy.launcher.procs[0].returncode == 3


def test_a_rank_still_running_after_the_timeout_is_killed():
    trainer = trainer_with_ranks("import time; time.sleep(60)")
    (line,) = wait_for_launched_ranks(trainer, timeout=0.5)
    assert line.startswith("rank 1 (pid ") and "still running 0.5 s after its job ended: killed" in line
    assert trainer.strategy.launcher.procs[0].returncode == -9


def test_without_launched_ranks_there_is_nothing_to_wait_for():
    assert wait_for_launched_ranks(SimpleNamespace(strategy=SimpleNamespace(launcher=None))) == []
