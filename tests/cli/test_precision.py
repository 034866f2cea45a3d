"""Precision and speed switches on the CPU: bf16 autocast with gradient accumulation, and torch.compile."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attnlab.attention.kernels import LearnedGaussianKernel
from attnlab.data.synthetic import NWSyntheticDataModule
from attnlab.models.nadaraya_watson import NadarayaWatson
from cli_support import metric_history, run_attnlab, tiny_transformer_args, write_pairs


@pytest.mark.slow
def test_bf16_mixed_with_gradient_accumulation(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = run_attnlab([*tiny_transformer_args(write_pairs(tmp_path / "pairs")), "trainer.precision=bf16-mixed",
                        "trainer.accumulate_grad_batches=2", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
                        "test=false", f"hydra.run.dir={run_dir}"], tmp_path)
    assert "Using bfloat16 Automatic Mixed Precision" in proc.stdout + proc.stderr
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3  # 6 batches, one optimizer step per 2
    assert saved["lr_schedulers"][0]["last_epoch"] == 3  # the LR schedule counts optimizer steps
    assert all(p.dtype == torch.float32 for p in saved["state_dict"].values() if p.is_floating_point())
    losses = [loss for _, loss in metric_history(run_dir, "train/loss_step")]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)  # logged once per optimizer step


@pytest.mark.slow
def test_compiled_model_trains_and_matches_eager_evaluation(tmp_path: Path):
    run_dir, cache = tmp_path / "run", tmp_path / "inductor"
    run_attnlab(["experiment=nw_parametric", "model.compile=true", "trainer.max_epochs=2", "test=false",
                 "trainer.precision=32-true",  # the eager reference below computes in fp32
                 "~callbacks.progress_bar", f"hydra.run.dir={run_dir}"], tmp_path, TORCHINDUCTOR_CACHE_DIR=str(cache))
    assert any(cache.rglob("*.py")), "torch.compile generated no code"
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert list(saved["state_dict"]) == ["net.kernel.w"]  # in-place compile: eager checkpoints stay loadable
    # the compiled run's last validation MSE equals the eager net's with the same weights
    net = NadarayaWatson(LearnedGaussianKernel())
    net.kernel.w.data.copy_(saved["state_dict"]["net.kernel.w"])
    data = NWSyntheticDataModule(seed=saved["attnlab_config"]["seed"])
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    with torch.no_grad():
        eager = F.mse_loss(net(batch.queries, batch.keys, batch.values).prediction, batch.targets).item()
    assert metric_history(run_dir, "val/mse")[-1][1] == pytest.approx(eager, rel=1e-5)
