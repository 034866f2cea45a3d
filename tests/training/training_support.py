"""A tiny task for the Lightning-level tests: fitting a line, whose validation MSE is known in closed form."""
from __future__ import annotations

from functools import partial

import pytorch_lightning as pl
import torch
from torch.utils.data import TensorDataset

from attnlab.lit.task import StepOutput, TaskModule


class LineFit(TaskModule):
    """y = w x + b by SGD; validation logs the MSE."""

    def __init__(self, lr: float = 0.1):
        super().__init__(torch.nn.Linear(1, 1), partial(torch.optim.SGD, lr=lr))

    def step(self, batch, stage: str) -> StepOutput:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log_metrics(stage, len(x), **{"loss" if stage == "train" else "mse": loss})
        return StepOutput(loss)


def line_data(num_batches: int = 10) -> pl.LightningDataModule:
    x = torch.linspace(-1, 1, 4 * num_batches).unsqueeze(1)
    data = TensorDataset(x, 3 * x + 1)
    return pl.LightningDataModule.from_datasets(train_dataset=data, val_dataset=data, batch_size=4)
