import numpy as np
import pytest
import torch

from attnlab.attention.kernels import (
    BoxcarKernel,
    ConstantKernel,
    EpanechnikovKernel,
    GaussianKernel,
    LearnedGaussianKernel,
)
from attnlab.data.synthetic import NWSyntheticDataModule
from attnlab.lit.regression import KernelRegressionModule
from attnlab.models.nadaraya_watson import NadarayaWatson


def _data(seed=0):
    data = NWSyntheticDataModule(seed=seed)
    data.setup()
    return data


def test_gaussian_prediction_equals_numpy():
    data = _data()
    model = NadarayaWatson(GaussianKernel(bandwidth=0.7))
    pred = model(data.x_test[None], data.x_train[None], data.y_train[None]).prediction[0].numpy()
    x, xi, yi = data.x_test.numpy()[:, None], data.x_train.numpy()[None], data.y_train.numpy()
    kernel = np.exp(-0.5 * ((x - xi) / 0.7) ** 2)
    np.testing.assert_allclose(pred, (kernel / kernel.sum(1, keepdims=True)) @ yi, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kernel, formula",
    [
        (BoxcarKernel(0.5), lambda u: (np.abs(u) <= 1).astype(float)),
        (EpanechnikovKernel(0.5), lambda u: np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0)),
        (ConstantKernel(), lambda u: np.ones_like(u)),
    ],
)
def test_compact_kernels_equal_numpy(kernel, formula):
    data = _data()
    out = NadarayaWatson(kernel)(data.x_test[None], data.x_train[None], data.y_train[None])
    u = (data.x_test.numpy()[:, None] - data.x_train.numpy()[None]) / kernel.bandwidth
    weights = formula(u)
    sums = weights.sum(1, keepdims=True)
    expected = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    np.testing.assert_allclose(out.weights[0].numpy(), expected, atol=1e-6)
    assert not torch.isnan(out.prediction).any()


def test_data_is_seeded_and_sorted():
    a, b, c = _data(1), _data(1), _data(2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.all(a.x_train[1:] >= a.x_train[:-1])
    assert a.x_test.min() == 0 and a.x_test.max() < 5


def test_parametric_training_beats_nonparametric_gaussian():
    data = _data(seed=42)
    module = KernelRegressionModule(
        NadarayaWatson(LearnedGaussianKernel()), optimizer=lambda params: torch.optim.SGD(params, lr=0.5)
    )
    optimizer = module.configure_optimizers()
    batch = next(iter(data.train_dataloader()))
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(module._predict(batch).prediction, batch.targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    test = next(iter(data.test_dataloader()))
    parametric_mse = torch.nn.functional.mse_loss(module._predict(test).prediction, test.targets)
    baseline = NadarayaWatson(GaussianKernel())(test.queries, test.keys, test.values).prediction
    assert parametric_mse < torch.nn.functional.mse_loss(baseline, test.targets)


def test_leave_one_out_masks_each_point_itself():
    data = _data()
    module = KernelRegressionModule(NadarayaWatson(GaussianKernel(0.01)))
    out = module._predict(next(iter(data.train_dataloader())))
    assert torch.all(torch.diagonal(out.weights[0]) == 0)


def test_bandwidth_and_shape_errors():
    with pytest.raises(ValueError, match="bandwidth must be > 0, got 0"):
        GaussianKernel(0)
    with pytest.raises(ValueError, match="same shape"):
        NadarayaWatson(GaussianKernel())(torch.zeros(1, 3), torch.zeros(1, 4), torch.zeros(1, 5))
