"""d2l's toy regression data for Nadaraya-Watson: ``y = 2 sin(x) + x^0.8 + eps``, ``eps ~ N(0, noise^2)``."""
from __future__ import annotations

from typing import NamedTuple

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from attnlab.data.spec import TextSpec


def true_function(x: Tensor) -> Tensor:
    return 2 * torch.sin(x) + x**0.8


class RegressionBatch(NamedTuple):
    queries: Tensor  # (1, Tq) inputs to predict at
    targets: Tensor  # (1, Tq) noisy targets (training) or the noiseless truth (evaluation)
    keys: Tensor  # (1, Tk) training inputs
    values: Tensor  # (1, Tk) training targets
    leave_one_out: bool  # True when queries are the keys themselves: each point must not see itself


class NWSyntheticDataModule(pl.LightningDataModule):
    """d2l's data: 50 sorted training points ``x ~ U(0, x_max)`` and, as the test set, a grid over ``[0, x_max)``;
    validation (what checkpoint selection sees) is its own seeded draw of ``num_val`` points, so the test grid is
    never looked at before testing. Evaluation targets are the noiseless truth; every batch holds the whole
    training set as keys/values, as kernel regression needs it.
    """

    def __init__(
        self, num_train: int = 50, num_test: int = 50, num_val: int = 50, x_max: float = 5.0, noise: float = 0.5,
        seed: int = 0,
    ):
        super().__init__()
        if num_train < 2 or num_test < 1 or num_val < 1:
            raise ValueError(
                f"need num_train >= 2, num_val >= 1 and num_test >= 1, got {num_train}, {num_val}, {num_test}"
            )
        if noise < 0 or x_max <= 0:
            raise ValueError(f"need noise >= 0 and x_max > 0, got noise={noise}, x_max={x_max}")
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.x_max, self.noise, self.seed = x_max, noise, seed

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        self.x_train, _ = torch.sort(torch.rand(self.num_train, generator=generator) * self.x_max)
        noise = torch.randn(self.num_train, generator=generator) * self.noise
        self.y_train = true_function(self.x_train) + noise
        self.x_val, _ = torch.sort(torch.rand(self.num_val, generator=generator) * self.x_max)  # after d2l's draws
        self.y_val = true_function(self.x_val)
        self.x_test = torch.arange(self.num_test, dtype=torch.float32) * (self.x_max / self.num_test)
        self.y_test = true_function(self.x_test)

    def spec(self) -> TextSpec:
        """Nothing for the model to learn from the data: an empty spec."""
        return TextSpec()

    def task_text(self) -> None:
        """Nothing for the task to read of the data: every batch holds all it needs."""
        return None

    def _loader(self, queries: Tensor, targets: Tensor, leave_one_out: bool) -> DataLoader:
        batch = RegressionBatch(queries[None], targets[None], self.x_train[None], self.y_train[None], leave_one_out)
        return DataLoader([batch], batch_size=None)  # one batch an epoch

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.x_train, self.y_train, leave_one_out=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.x_val, self.y_val, leave_one_out=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.x_test, self.y_test, leave_one_out=False)
