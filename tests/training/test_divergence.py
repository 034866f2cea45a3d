"""StopOnNonFinite: a run stops at the first non-finite loss, except where fp16's GradScaler skips such steps."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from training_support import LineFit, line_data

from attnlab.training.divergence import StopOnNonFinite, TrainingDiverged


class InfiniteAt(LineFit):
    """LineFit whose training loss is infinite at the given optimizer steps (0-based)."""

    def __init__(self, steps: set[int]):
        super().__init__()
        self.steps = steps

    def step(self, batch, stage: str):
        output = super().step(batch, stage)
        if stage == "train" and self.trainer.global_step in self.steps:
            return output._replace(loss=output.loss * float("inf"))
        return output


def fit(module: LineFit, precision: str, callback: StopOnNonFinite, accelerator: str = "cpu") -> pl.Trainer:
    trainer = pl.Trainer(accelerator=accelerator, precision=precision, max_steps=8, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[callback])
    trainer.fit(module, datamodule=line_data())
    return trainer


def test_a_non_finite_loss_stops_the_run_at_that_step():
    module = InfiniteAt({3})
    with pytest.raises(TrainingDiverged, match=r"the loss is inf at step 3 \(1 non-finite step\(s\) in a row; last "
                                               r"finite loss: [\d.e+-]+ at step 2\); try a lower learning rate"):
        fit(module, "32-true", StopOnNonFinite())
    assert not torch.isfinite(module.net.weight).all()  # what training on would have gone on with


def test_bf16_has_no_grad_scaler_and_stops_at_once():
    with pytest.raises(TrainingDiverged, match=r"the loss is inf at step 3 \(1 non-finite"):
        fit(InfiniteAt({3}), "bf16-mixed", StopOnNonFinite(fp16_skips=3))
    with pytest.raises(ValueError, match="fp16_skips must be >= 1, got 0"):
        StopOnNonFinite(fp16_skips=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 AMP needs a CUDA GPU (Lightning uses bf16 on CPU)")
def test_fp16_grad_scaler_skips_non_finite_steps_until_too_many_in_a_row():
    module = InfiniteAt({3, 4})
    trainer = fit(module, "16-mixed", StopOnNonFinite(fp16_skips=3), accelerator="cuda")
    assert trainer.precision_plugin.scaler.get_scale() == 2.0**14  # halved once per skipped step
    assert torch.isfinite(module.net.weight).all()  # both steps skipped, then trained on to the end
    with pytest.raises(TrainingDiverged, match="the loss is inf at step 5 \\(3 non-finite step\\(s\\) in a row"):
        fit(InfiniteAt({3, 4, 5}), "16-mixed", StopOnNonFinite(fp16_skips=3), accelerator="cuda")
