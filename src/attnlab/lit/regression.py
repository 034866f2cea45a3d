"""LightningModule for Nadaraya-Watson regression: MSE on leave-one-out training predictions."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from attnlab.data.synthetic import RegressionBatch
from attnlab.lit import plots
from attnlab.lit.figures import publish_figure
from attnlab.lit.task import StepOutput, TaskModule


class KernelRegressionModule(TaskModule):
    """Trains the kernel's parameters (if any) with the injected optimizer; evaluates MSE against the truth.

    Arguments as :class:`~attnlab.lit.task.TaskModule` (``optimizer=None`` for a kernel without parameters).
    Logged: ``train/loss``, ``val/mse``, ``test/mse``; testing also plots the fit and the attention weights.
    """

    progress_bar = ("loss", "mse")

    def _predict(self, batch: RegressionBatch):
        key_mask = None
        if batch.leave_one_out:  # each training point is predicted from the others only (d2l)
            n = batch.keys.shape[-1]
            key_mask = ~torch.eye(n, dtype=torch.bool, device=batch.keys.device).unsqueeze(0)  # (1, Tq, Tk)
        return self.net(batch.queries, batch.keys, batch.values, key_mask)

    def step(self, batch: RegressionBatch, stage: str) -> StepOutput:
        output = self._predict(batch)
        mse = F.mse_loss(output.prediction, batch.targets)
        self.log_metrics(stage, batch_size=1, **{"loss" if stage == "train" else "mse": mse})  # d2l's names
        if stage == "test":
            self._plot(batch, output)
        return StepOutput(mse)

    def _plot(self, batch: RegressionBatch, output) -> None:
        fit = plots.regression_fit(
            batch.keys[0].cpu(), batch.values[0].cpu(), batch.queries[0].cpu(), batch.targets[0].cpu(),
            output.prediction[0].detach().float().cpu(), title="Nadaraya-Watson regression",  # float: bf16 autocast
        )
        publish_figure(self.trainer, "prediction", fit)
        heatmap = plots.attention_heatmap(
            output.weights[0].detach().float().cpu(), title="attention weights",
            xlabel="sorted training inputs", ylabel="test inputs",
        )
        publish_figure(self.trainer, "attention_weights", heatmap)
