"""Pre-encoded examples held as one NamedTuple of tensors, served a whole batch at a time.

Shape legend: N examples, B batch, T padded length (``tokens``/``segments``), other fields per example.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset


class TensorExamples(Dataset):
    """Rows of a NamedTuple whose fields all have N rows; ``__getitems__`` slices a batch with one index op
    per field (no per-example stacking) and cuts ``tokens``/``segments`` to the batch's longest ``valid_lens``,
    so no step computes all-padding columns."""

    def __init__(self, examples: NamedTuple):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples[0])

    def __getitem__(self, index: int | torch.Tensor) -> NamedTuple:
        return type(self.examples)(*(field[index] for field in self.examples))

    def __getitems__(self, indices: list[int]) -> NamedTuple:
        batch = self[torch.as_tensor(indices)]
        longest = int(batch.valid_lens.max())
        return batch._replace(tokens=batch.tokens[:, :longest], segments=batch.segments[:, :longest])  # (B, T')


def already_batched(batch: Any) -> Any:
    """Collate for :meth:`TensorExamples.__getitems__`, which already returns a batch."""
    return batch
