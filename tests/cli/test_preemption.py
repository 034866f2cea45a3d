"""Preemption on SLURM, without a cluster: Lightning owns the requeue signal. A training process that gets
it mid-epoch writes its checkpoint and runs ``scontrol requeue`` (a fake ``scontrol`` on PATH records the
call); the requeued job, the same command in the same run dir, resumes from that checkpoint and ends where
an uninterrupted run ends."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning_fabric.plugins.environments import SLURMEnvironment

from attnlab.training.requeue import requeued_checkpoint
from attnlab.cli.validate import ConfigError
from attnlab.training.preemption import JOB_KEY, slurm_requeue
from cli_support import BIN, cli_env, metric_history, run_attnlab, tiny_transformer_args, write_pairs

STEPS_PER_EPOCH = 6  # write_pairs: 48 training pairs, batches of 8
EPOCHS = 2
SIGNAL_STEP = 10  # epoch 1, its 5th batch fetched but not trained on; the last step checkpoint is step 9
JOB_ID = "4242"


def _slurm(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What SLURM sets for a one-task batch job, and a fake ``scontrol`` that records its arguments."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.calls"}\n')
    scontrol.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": JOB_ID,
            "SLURM_JOB_NAME": "attnlab", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1",
            "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost", **extra}


def _args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*tiny_transformer_args(data), "model.scheduler.warmup_steps=4", "model.scheduler.warmup_fraction=null", f"trainer.max_epochs={EPOCHS}",
            "callbacks.model_checkpoint.every_n_train_steps=3",  # last.ckpt: steps 3, 6, 9, 12
            "trainer.log_every_n_steps=1", "test=false", f"hydra.run.dir={run_dir}", *extra]


def _final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_sbatch_sends_the_signal_the_trainer_requeues_on(compose):
    """The submitit launcher's sbatch script asks for the trainer's requeue signal, not submitit's USR2."""
    slurm = pytest.importorskip("submitit.slurm.slurm", reason="the slurm extra (hydra-submitit-launcher)")
    cfg = compose("hydra/launcher=submitit_slurm", "experiment=nw_parametric", "hydra.launcher.signal_delay_s=300",
                  hydra_node=True)
    params = instantiate(cfg.hydra.launcher).params  # as the launcher hands them to submitit
    sbatch = slurm._make_sbatch_string(command="true", folder="/tmp", signal_delay_s=params["signal_delay_s"],
                                       additional_parameters=params["additional_parameters"])
    signals = [line for line in sbatch.splitlines() if line.startswith("#SBATCH --signal=")]
    assert signals == [f"#SBATCH --signal={cfg.trainer.plugins.signal.removeprefix('SIG')}@300"]
    assert cfg.trainer.plugins.signal == "SIGUSR1"


def test_slurm_requeue_plugin_only_under_slurm(compose, monkeypatch, tmp_path: Path):
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    assert slurm_requeue() == []
    for key, value in _slurm(tmp_path).items():
        monkeypatch.setenv(key, value)
    (environment,) = instantiate(compose("experiment=nw_parametric").trainer.plugins)
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue
    assert environment.requeue_signal == signal.SIGUSR1
    with pytest.raises(ValueError, match="'SIGKILL' is not one of SIGUSR1, SIGUSR2"):
        slurm_requeue("SIGKILL")


def test_requeued_job_takes_the_newest_hpc_checkpoint_under_slurm_only(monkeypatch, tmp_path: Path):
    for name in ("hpc_ckpt_2.ckpt", "hpc_ckpt_10.ckpt", "hpc_ckpt_x.ckpt", "last.ckpt"):
        torch.save({JOB_KEY: int(JOB_ID)}, tmp_path / name)
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    assert requeued_checkpoint(tmp_path) is None  # not a SLURM job: a run dir's checkpoints are not resumed
    for key, value in _slurm(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert requeued_checkpoint(tmp_path) == str(tmp_path / "hpc_ckpt_10.ckpt")  # numbered, not sorted as text
    assert requeued_checkpoint(tmp_path / "fresh") is None


def test_a_reused_run_dir_does_not_resume_another_jobs_hpc_checkpoint(monkeypatch, tmp_path: Path):
    """Run dir reused by job 4242 (e.g. hydra.run.dir=outputs/mt): Lightning would resume job 4241's checkpoint."""
    torch.save({JOB_KEY: 4241}, tmp_path / "hpc_ckpt_1.ckpt")
    for key, value in _slurm(tmp_path).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=rf"hpc_ckpt_1.ckpt was written by SLURM job 4241, not by this job {JOB_ID}: "
                                          r"Lightning would resume it. Give this job a fresh run dir"):
        requeued_checkpoint(tmp_path)


def _signalled_job(command: list[str], outputs: Path, tmp_path: Path, step: int) -> None:
    """Run ``command`` as SLURM job ``JOB_ID`` paused at ``step``, send it the requeue signal, wait for its
    ``scontrol requeue`` and kill it, as SLURM does."""
    marker, calls, log = tmp_path / "paused", tmp_path / "scontrol.calls", tmp_path / "job.log"
    pause = f"+callbacks.pause={{_target_:pause_callback.PauseAtStep,step:{step},marker:'{marker}'}}"
    with log.open("w") as sink:
        proc = subprocess.Popen([str(BIN / "attnlab-train"), *command, pause], cwd=outputs,
                                env=cli_env(outputs, **_slurm(tmp_path)), stdout=sink, stderr=subprocess.STDOUT)
    try:
        for done, what in ((marker.exists, f"step {step}"), (calls.exists, "the scontrol call")):
            deadline = time.monotonic() + 240
            while not done():
                assert proc.poll() is None, f"the job ended before {what}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no {what}:\n{log.read_text()[-3000:]}"
                time.sleep(0.2)
            if what.startswith("step"):
                os.kill(proc.pid, signal.SIGUSR1)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_signal_checkpoints_and_requeues_and_the_requeued_job_continues(tmp_path: Path):
    data = write_pairs(tmp_path / "pairs")
    outputs = tmp_path / "out"
    run_attnlab(_args(data, outputs / "full"), outputs)

    job_dir = outputs / "job"
    _signalled_job(_args(data, job_dir), outputs, tmp_path, SIGNAL_STEP)
    assert (tmp_path / "scontrol.calls").read_text().split() == ["requeue", JOB_ID]
    written = torch.load(job_dir / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=True)
    assert written["global_step"] == SIGNAL_STEP

    # the requeued job: the same command (without the pause) in the same run dir, no ckpt_path
    requeued = run_attnlab(_args(data, job_dir), outputs, **_slurm(tmp_path, SLURM_RESTART_COUNT="1"))
    assert f"resuming from {job_dir / 'hpc_ckpt_1.ckpt'}" in requeued.stdout + requeued.stderr
    full, resumed = _final_state(outputs / "full"), _final_state(job_dir)
    assert full["global_step"] == resumed["global_step"] == EPOCHS * STEPS_PER_EPOCH
    # it trained exactly the steps after the signal, with the uninterrupted run's losses (the CSV log of the
    # run dir holds the requeued job's rows only; Lightning logs them one step further on after a mid-step resume)
    full_losses = [loss for step, loss in metric_history(outputs / "full", "train/loss_step") if step >= SIGNAL_STEP]
    requeued_losses = [loss for _, loss in metric_history(job_dir, "train/loss_step")]
    assert requeued_losses == pytest.approx(full_losses, rel=1e-5, abs=1e-6)
    for name, tensor in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_a_requeued_run_without_a_best_checkpoint_tests_its_final_weights(tmp_path: Path):
    """Checkpointing off, so no best checkpoint: the requeued job tests the weights it ends
    with (saved as the next hpc checkpoint), the uninterrupted run's, not the preemption-time hpc_ckpt_1."""
    outputs, job_dir = tmp_path / "out", tmp_path / "out" / "job"
    command = ["experiment=nw_parametric", "trainer.max_epochs=6", "callbacks=none", "+trainer.enable_checkpointing=false",
               "trainer.log_every_n_steps=1"]
    run_attnlab([*command, f"hydra.run.dir={outputs / 'full'}"], outputs)
    _signalled_job([*command, f"hydra.run.dir={job_dir}"], outputs, tmp_path, step=3)
    assert torch.load(job_dir / "hpc_ckpt_1.ckpt", weights_only=True)["global_step"] == 3
    requeued = run_attnlab([*command, f"hydra.run.dir={job_dir}"], outputs,
                           **_slurm(tmp_path, SLURM_RESTART_COUNT="1"))
    assert f"resuming from {job_dir / 'hpc_ckpt_1.ckpt'}" in requeued.stdout + requeued.stderr
    assert "Loaded model weights from the checkpoint at " + str(job_dir / "hpc_ckpt_2.ckpt") in requeued.stdout + requeued.stderr
    final = torch.load(job_dir / "hpc_ckpt_2.ckpt", weights_only=True)
    assert final["global_step"] == 6 and final["slurm_job_id"] == int(JOB_ID)
    run_attnlab([f"ckpt_path={job_dir / 'hpc_ckpt_1.ckpt'}", f"hydra.run.dir={outputs / 'preempted'}"], outputs,
                program="attnlab-eval")
    (tested,) = [mse for _, mse in metric_history(job_dir, "test/mse")]
    (uninterrupted,) = [mse for _, mse in metric_history(outputs / "full", "test/mse")]
    (preempted,) = [mse for _, mse in metric_history(outputs / "preempted", "test/mse")]
    assert tested == pytest.approx(uninterrupted, rel=1e-6) and tested != pytest.approx(preempted, rel=1e-3)
