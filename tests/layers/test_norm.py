import pytest
import torch

from torch import nn

from attnlab.layers.norm import MaskedBatchNorm, real_tokens


def test_rmsnorm_matches_formula():
    norm = nn.RMSNorm(6, eps=1e-6)  # conf/norm/rmsnorm.yaml
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(norm(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_only_batch_norm_reads_the_real_tokens():
    x = torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    layer_norm = nn.LayerNorm(6)  # a plain torch module: the mark changes nothing
    with real_tokens(mask):
        torch.testing.assert_close(layer_norm(x), torch.nn.functional.layer_norm(x, (6,)))
        masked = MaskedBatchNorm(6)(x)
    real = x[mask]
    expected = (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(masked[mask], expected)
    assert not torch.allclose(MaskedBatchNorm(6)(x)[mask], expected)  # outside the block: every token counts
    with real_tokens(mask[:, :2]), pytest.raises(ValueError, match=r"mask \(2, 2\) does not match x \(2, 3, 6\)"):
        MaskedBatchNorm(6)(x)


def test_batchnorm_ignores_padded_positions():
    norm = MaskedBatchNorm(4)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, True, False, False], [True, True, False, False, False]])
    y = x.clone()
    y[~mask] = 1000.0  # garbage in the padding must not move the statistics
    with real_tokens(mask):
        out_x, out_y = norm(x), norm(y)
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
        with real_tokens(torch.tensor([[True, False]])):
            MaskedBatchNorm(3)(torch.randn(1, 2, 3))
