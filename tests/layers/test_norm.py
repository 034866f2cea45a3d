import pytest
import torch

from attnlab.layers.norm import LayerNorm, MaskedBatchNorm, RMSNorm


def test_rmsnorm_matches_formula():
    norm = RMSNorm(6, eps=1e-6)
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(norm(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_layernorm_ignores_mask():
    norm = LayerNorm(6)
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(norm(x, torch.zeros(2, 3, dtype=torch.bool)), torch.nn.functional.layer_norm(x, (6,)))


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
