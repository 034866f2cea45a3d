"""A loaded Nadaraya-Watson regression (d2l 11.2): predictions at new inputs and their attention over the
training points.

Shape legend: Tq queries (new inputs), Tk keys (training inputs).

The checkpoint holds the kernel's parameters; the training points are its data, which the restored DataModule
draws again from its seed (``attnlab.data.synthetic``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from attnlab.inference.loaded import LoadedModel
from attnlab.inference.results import AttentionMap, AttentionResult
from attnlab.models.nadaraya_watson import RegressionOutput


def format_number(x: float) -> str:
    return f"{x:.3g}"


class LoadedNadarayaWatson(LoadedModel):
    """``predict(x)`` and ``weights(x)`` for a number, a sequence of numbers or a tensor of them."""

    family = "nadaraya_watson"

    def __init__(self, run, device="cpu"):
        super().__init__(run, device)
        self.data.setup()
        self.keys = self.data.x_train.to(self.device)  # (Tk,)
        self.values = self.data.y_train.to(self.device)  # (Tk,)

    @property
    def max_len(self) -> None:
        return None

    def details(self) -> dict[str, Any]:
        return {"kernel": type(self.net.kernel).__name__, "num_train": len(self.keys),
                "parameters": {name: p.tolist() for name, p in self.net.kernel.named_parameters()}}

    def _queries(self, x: float | Sequence[float] | Tensor) -> tuple[Tensor, bool]:
        """``x`` as a float tensor (Tq,), and whether it was a single number."""
        queries = torch.as_tensor(x, dtype=torch.float32)
        if queries.dim() > 1 or queries.numel() == 0:
            raise ValueError(
                f"x must be a number or a non-empty 1-D sequence of numbers, got shape {tuple(queries.shape)}"
            )
        if not torch.isfinite(queries).all():
            raise ValueError(f"x must be finite numbers, got {queries.tolist()}")
        return queries.reshape(-1).to(self.device), queries.dim() == 0

    def _regress(self, queries: Tensor) -> RegressionOutput:
        with torch.inference_mode():
            return self.net(queries[None], self.keys[None], self.values[None])  # (1, Tq), (1, Tq, Tk)

    def predict(self, x: float | Sequence[float] | Tensor) -> Tensor:
        """``f(x) = sum_i alpha(x, x_i) y_i`` at each input: a 0-d tensor for a number, else (Tq,)."""
        queries, single = self._queries(x)
        prediction = self._regress(queries).prediction[0].float().cpu()  # (Tq,)
        return prediction[0] if single else prediction

    def weights(self, x: float | Sequence[float] | Tensor) -> AttentionResult:
        """The attention of each input over the training inputs: one ``kernel`` map (1, 1, Tq, Tk), its tokens
        the numbers; the output names the predictions."""
        queries, _ = self._queries(x)
        output = self._regress(queries)
        attention = AttentionMap(
            "kernel", [format_number(q) for q in queries.tolist()], [format_number(k) for k in self.keys.tolist()],
            output.weights.float().cpu()[None],  # (1, 1, Tq, Tk)
        )
        predictions = ", ".join(format_number(p) for p in output.prediction[0].tolist())
        return AttentionResult({"kernel": attention}, f"f(x) = {predictions}", truncated=False)
