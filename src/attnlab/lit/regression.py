"""LightningModule for Nadaraya-Watson regression: MSE on leave-one-out training predictions."""
from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from attnlab import plots
from attnlab.data.synthetic import RegressionBatch
from attnlab.lit.compilation import CompileNetMixin
from attnlab.lit.figures import publish_figure


class KernelRegressionModule(CompileNetMixin, pl.LightningModule):
    """Trains the kernel's parameters (if any) with the injected optimizer; evaluates MSE against the truth.

    ``compile=True`` compiles the net with ``torch.compile`` (in place: state-dict keys are unchanged, so
    checkpoints load with or without it).
    """

    def __init__(
        self, net: nn.Module, optimizer: Callable | None = None, scheduler: Callable | None = None, compile: bool = False
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def _predict(self, batch: RegressionBatch):
        key_mask = None
        if batch.leave_one_out:  # each training point is predicted from the others only (d2l)
            n = batch.keys.shape[-1]
            key_mask = ~torch.eye(n, dtype=torch.bool, device=batch.keys.device).unsqueeze(0)  # (1, Tq, Tk)
        return self.net(batch.queries, batch.keys, batch.values, key_mask)

    def training_step(self, batch: RegressionBatch, batch_idx: int):
        loss = F.mse_loss(self._predict(batch).prediction, batch.targets)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=1)
        return loss

    def validation_step(self, batch: RegressionBatch, batch_idx: int) -> None:
        mse = F.mse_loss(self._predict(batch).prediction, batch.targets)
        self.log("val/mse", mse, prog_bar=True, batch_size=1, sync_dist=True)

    def test_step(self, batch: RegressionBatch, batch_idx: int) -> None:
        output = self._predict(batch)
        self.log("test/mse", F.mse_loss(output.prediction, batch.targets), batch_size=1, sync_dist=True)
        fit = plots.regression_fit(
            batch.keys[0].cpu(), batch.values[0].cpu(), batch.queries[0].cpu(), batch.targets[0].cpu(),
            output.prediction[0].detach().cpu(), title="Nadaraya-Watson regression",
        )
        publish_figure(self.trainer, "prediction", fit)
        heatmap = plots.attention_heatmap(
            output.weights[0].detach().cpu(), title="attention weights",
            xlabel="sorted training inputs", ylabel="test inputs",
        )
        publish_figure(self.trainer, "attention_weights", heatmap)

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is None or not parameters:
            return None
        optimizer = self.optimizer_factory(params=parameters)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer=optimizer)}
