"""Nadaraya-Watson data: d2l's training points and test grid, and a validation set drawn apart from the test."""
import pytest
import pytorch_lightning as pl
import torch

from attnlab.attention.kernels import GaussianKernel
from attnlab.data.synthetic import NWSyntheticDataModule, true_function
from attnlab.lit.regression import KernelRegressionModule
from attnlab.models.nadaraya_watson import NadarayaWatson


def test_test_set_is_d2l_grid_and_validation_its_own_seeded_draw():
    data = NWSyntheticDataModule(seed=42)
    data.setup()
    generator = torch.Generator().manual_seed(42)  # d2l's draws come first and are unchanged
    x_train, _ = torch.sort(torch.rand(50, generator=generator) * 5)
    assert torch.equal(data.x_train, x_train)
    assert torch.equal(data.y_train, true_function(x_train) + torch.randn(50, generator=generator) * 0.5)
    val, test = next(iter(data.val_dataloader())), next(iter(data.test_dataloader()))
    assert torch.equal(test.queries[0], torch.arange(50) * 0.1) and torch.equal(test.targets[0], true_function(test.queries[0]))
    assert val.queries.shape == (1, 50) and not set(val.queries[0].tolist()) & set(test.queries[0].tolist())
    assert torch.equal(val.targets[0], true_function(val.queries[0])) and (val.queries[0].diff() >= 0).all()
    assert 0 <= val.queries.min() and val.queries.max() < 5 and not val.leave_one_out
    again, other = NWSyntheticDataModule(seed=42), NWSyntheticDataModule(seed=1, num_val=7)
    again.setup()
    other.setup()
    assert torch.equal(again.x_val, data.x_val) and other.x_val.shape == (7,) and not torch.equal(other.x_val, data.x_val[:7])


def test_validation_metrics_and_so_checkpoint_selection_see_validation_points_only():
    data = NWSyntheticDataModule(seed=0)
    data.setup()
    module = KernelRegressionModule(NadarayaWatson(GaussianKernel()))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    validated = trainer.validate(module, datamodule=data, verbose=False)[0]["val/mse"]
    net = NadarayaWatson(GaussianKernel())
    on_val = torch.nn.functional.mse_loss(net(data.x_val[None], data.x_train[None], data.y_train[None]).prediction,
                                          data.y_val[None])
    on_test = torch.nn.functional.mse_loss(net(data.x_test[None], data.x_train[None], data.y_train[None]).prediction,
                                           data.y_test[None])
    assert validated == pytest.approx(float(on_val), rel=1e-5) and abs(float(on_val) - float(on_test)) > 1e-4

