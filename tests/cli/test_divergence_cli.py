"""A run whose loss stops being finite ends at once, non-zero, with the step and what to try; nothing is tested."""
from __future__ import annotations

from pathlib import Path

from cli_support import metric_history, run_attnlab, tiny_transformer_args, write_pairs

ABSURD_LR = "model.optimizer.lr=1e30"


def test_a_diverged_run_stops_at_the_step_with_advice_and_exits_non_zero(tmp_path: Path):
    """A tiny transformer_mt run with averaging on: Adam's first step of 1e30 makes the next loss non-finite."""
    run_dir = tmp_path / "run"
    args = [arg for arg in tiny_transformer_args(write_pairs(tmp_path / "pairs")) if arg != "~callbacks.checkpoint_averaging"]
    result = run_attnlab([*args, ABSURD_LR, "model.scheduler=null", "trainer.limit_val_batches=0",
                          "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}"], tmp_path / "out", check=False)
    assert result.returncode != 0
    assert "training diverged: the loss is nan at step 1 (1 non-finite step(s) in a row; last finite loss: " in result.stderr
    assert "at step 0); try a lower learning rate (model.optimizer.lr), gradient clipping" in result.stderr
    assert max(step for step, _ in metric_history(run_dir, "train/loss_step")) <= 1  # it trained no further
    assert not metric_history(run_dir, "test/bleu")  # the NaN weights were neither averaged nor tested
    assert not (run_dir / "checkpoints" / "averaged.ckpt").exists()


def test_a_non_finite_validation_metric_stops_the_run(tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_attnlab(["experiment=nw_parametric", ABSURD_LR, f"hydra.run.dir={run_dir}"], tmp_path / "out",
                         check=False)  # the kernel width saturates: training losses stay finite, predictions do not
    assert result.returncode != 0
    assert "training diverged: validation at step 1 logged non-finite val/mse=nan; try a lower" in result.stderr
    assert not metric_history(run_dir, "test/mse")
