"""``attnlab.load`` on a tiny Nadaraya-Watson run: predictions are the attention-weighted training targets."""
from __future__ import annotations

import pytest
import torch

import attnlab


def test_predictions_are_the_kernel_weights_times_the_training_targets(nw_run):
    loaded = attnlab.load(nw_run)
    assert loaded.family == "nadaraya_watson" and loaded.max_len is None
    queries = [0.5, 2.0, 4.5]
    result = loaded.weights(queries)
    (attention,) = result.maps.values()
    assert attention.kind == "kernel" and attention.query_tokens == ["0.5", "2", "4.5"]
    assert attention.weights.shape == (1, 1, 3, loaded.describe()["num_train"]) == (1, 1, 3, 50)
    torch.testing.assert_close(attention.weights.sum(-1), torch.ones(1, 1, 3))
    expected = attention.weights[0, 0] @ loaded.data.y_train  # f(x) = sum_i alpha(x, x_i) y_i
    torch.testing.assert_close(loaded.predict(queries), expected)
    torch.testing.assert_close(loaded.predict(torch.tensor(queries)), expected)
    single = loaded.predict(2.0)
    assert single.dim() == 0 and single.item() == pytest.approx(expected[1].item(), abs=1e-6)
    assert result.output.startswith("f(x) = ") and len(result.output.split(", ")) == 3


def test_inputs_that_are_not_numbers_are_errors(nw_run):
    loaded = attnlab.load(nw_run)
    with pytest.raises(ValueError, match=r"1-D sequence of numbers, got shape \(2, 1\)"):
        loaded.predict([[1.0], [2.0]])
    with pytest.raises(ValueError, match=r"got shape \(0,\)"):
        loaded.weights([])
    with pytest.raises(ValueError, match="finite"):
        loaded.predict(float("nan"))
