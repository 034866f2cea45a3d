"""Position-wise feed-forward network (Vaswani et al., 2017, eq. 2)."""
from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class PositionwiseFeedForward(nn.Module):
    """``W_2 act(W_1 x + b_1) + b_2`` applied to every position alike.

    ``activation_dropout`` (off by default, as in the paper, d2l and BERT) drops hidden units between the two
    layers; the residual wrapper already drops the sublayer's output."""

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", activation_dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.inner = nn.Linear(d_model, d_ff)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(activation_dropout)
        self.outer = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.dropout(self.activation(self.inner(x))))  # (B, T, D)
