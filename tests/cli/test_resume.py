"""Resumption without loss: a run SIGKILLed mid-epoch and resumed from its last checkpoint ends exactly where
an uninterrupted run ends (same global step, same loss, same weights and optimizer state)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from cli_support import BIN, cli_env, metric_history, run_attnlab, tiny_transformer_args, write_pairs

STEPS_PER_EPOCH = 6  # write_pairs: 48 training pairs, batches of 8
EPOCHS = 2
PAUSE_STEP = 9  # epoch 1, after its 3rd of 6 batches


def _args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        *tiny_transformer_args(data),
        "model.scheduler.warmup_steps=4", "model.scheduler.warmup_fraction=null",  # the LR changes every step: a scheduler restored wrong shows
        "callbacks.model_checkpoint.every_n_train_steps=3", f"trainer.max_epochs={EPOCHS}",
        "trainer.log_every_n_steps=1", "test=false", f"hydra.run.dir={run_dir}", *extra,
    ]


def _final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path: Path):
    data = write_pairs(tmp_path / "pairs")
    outputs = tmp_path / "out"

    run_attnlab(_args(data, outputs / "full"), outputs)

    marker = tmp_path / "paused"
    pause = f"+callbacks.pause={{_target_:pause_callback.PauseAtStep,step:{PAUSE_STEP},marker:'{marker}'}}"
    killed_dir = outputs / "killed"
    log = tmp_path / "killed.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([str(BIN / "attnlab-train"), *_args(data, killed_dir, pause)], cwd=outputs,
                                env=cli_env(outputs), stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    try:
        while not marker.exists():
            assert proc.poll() is None, f"training ended before step {PAUSE_STEP}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "training never reached the pause step"
            time.sleep(0.2)
    finally:  # killed at the pause, or on a failed wait so no paused process outlives the test
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    interrupted = _final_state(killed_dir)
    assert interrupted["global_step"] == PAUSE_STEP and interrupted["epoch"] == PAUSE_STEP // STEPS_PER_EPOCH
    assert interrupted["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"] < STEPS_PER_EPOCH

    resumed_dir = outputs / "resumed"
    run_attnlab(_args(data, resumed_dir, f"ckpt_path={killed_dir}/checkpoints/last.ckpt"), outputs)
    (store,) = (outputs / ".cache").glob("translation-*")  # the resumed run mapped the shards it trained on
    assert f"shards mapped from {store}" in (resumed_dir / "train.log").read_text()

    full, resumed = _final_state(outputs / "full"), _final_state(resumed_dir)
    assert full["global_step"] == resumed["global_step"] == EPOCHS * STEPS_PER_EPOCH
    # the resumed run trained exactly the steps after the pause, with the same losses
    full_losses = dict(metric_history(outputs / "full", "train/loss_step"))
    resumed_losses = dict(metric_history(resumed_dir, "train/loss_step"))
    assert sorted(resumed_losses) == list(range(PAUSE_STEP, EPOCHS * STEPS_PER_EPOCH))
    for step, loss in resumed_losses.items():
        assert loss == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6), f"step {step}"
    for name, tensor in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    full_adam, resumed_adam = full["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    for index, slots in full_adam.items():
        for slot, value in slots.items():
            torch.testing.assert_close(resumed_adam[index][slot], value, rtol=1e-5, atol=1e-6)
    assert resumed["lr_schedulers"][0]["last_epoch"] == full["lr_schedulers"][0]["last_epoch"]
