import pytest
import torch

from torch import nn

from attnlab.layers.norm import MaskedBatchNorm, normalize


def test_rmsnorm_matches_formula():
    norm = nn.RMSNorm(6, eps=1e-6)  # conf/norm/rmsnorm.yaml
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(norm(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_only_batch_norm_is_given_the_mask():
    x = torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    layer_norm = nn.LayerNorm(6)  # a plain torch module: it takes no mask at all
    torch.testing.assert_close(normalize(layer_norm, x, mask), torch.nn.functional.layer_norm(x, (6,)))
    batch_norm = MaskedBatchNorm(6)
    torch.testing.assert_close(normalize(batch_norm, x, mask)[mask], MaskedBatchNorm(6)(x, mask)[mask])
    assert not torch.allclose(normalize(batch_norm, x, mask)[mask], MaskedBatchNorm(6)(x)[mask])


def test_batchnorm_ignores_padded_positions():
    norm = MaskedBatchNorm(4)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, True, False, False], [True, True, False, False, False]])
    y = x.clone()
    y[~mask] = 1000.0  # garbage in the padding must not move the statistics
    out_x, out_y = norm(x, mask), norm(y, mask)
    torch.testing.assert_close(out_x[mask], out_y[mask])
    real = x[mask]
    expected = (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(out_x[mask], expected)


def test_batchnorm_eval_uses_running_statistics():
    norm = MaskedBatchNorm(3, momentum=1.0)
    x = torch.randn(4, 6, 3) * 3 + 2
    norm(x)
    norm.eval()
    probe = torch.randn(1, 2, 3)
    expected = (probe - x.reshape(-1, 3).mean(0)) / torch.sqrt(x.reshape(-1, 3).var(0) + 1e-5)
    torch.testing.assert_close(norm(probe), expected)


def test_batchnorm_needs_two_real_tokens():
    with pytest.raises(ValueError, match="at least 2 real tokens"):
        MaskedBatchNorm(3)(torch.randn(1, 2, 3), torch.tensor([[True, False]]))
