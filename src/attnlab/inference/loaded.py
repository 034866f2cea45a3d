"""What every loaded model shares: the restored run on a device, its description, and the input checks.

Shape legend: B batch, L layers, H heads, Tq/Tk padded query/key length.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from attnlab.inference.restore import RestoredRun

Texts = str | Sequence[str]  # one input, or a list of them (then the results are a list)


class LoadedModel:
    """A trained run's model (eval mode, on ``device``) and the data state it needs to read new inputs; a list of
    inputs runs ``batch_size`` at a time."""

    family: ClassVar[str]  # "translation" | "bert_pretraining" | "bert_classifier" | "nadaraya_watson"
    batch_size: int = 64  # inputs per forward pass

    def __init__(self, run: RestoredRun, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = run.module.net.to(self.device).eval()
        self.data = run.datamodule
        self.config = run.config
        self.path = run.checkpoint_path

    @property
    def max_len(self) -> int | None:
        """Positions the model takes (tokens with the specials); longer inputs are cut. None: no limit."""
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        """The family's own entries of :meth:`describe`."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What was loaded, JSON-serialisable: family, checkpoint, experiment, model class, max_len and the
        family's own details (vocabularies, layers, labels, ...)."""
        return {
            "family": self.family, "path": str(self.path), "experiment": self.config.get("task_name"),
            "model": type(self.net).__name__, "max_len": self.max_len, "device": str(self.device), **self.details(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


def text_batch(texts: Texts, name: str = "texts") -> tuple[list[str], bool]:
    """``(texts as a list, whether a single text was given)``; an empty or blank text is a ValueError naming it."""
    single = isinstance(texts, str)
    batch = [texts] if single else list(texts)
    if not batch:
        raise ValueError(f"{name} is an empty list: give a text or a list of texts")
    for index, text in enumerate(batch):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] is a {type(text).__name__}, not a str: {text!r}")
        if not text.strip():
            where = name if single else f"{name}[{index}]"
            raise ValueError(f"{where} is empty ({text!r}): there is nothing to read")
    return batch, single


def paired_batch(texts_b: Texts | None, texts_a: list[str], single: bool, name: str) -> list[str] | None:
    """The second texts of pairs, one per first text and given the same way (one text or a list)."""
    if texts_b is None:
        return None
    batch, single_b = text_batch(texts_b, name)
    if single_b != single or len(batch) != len(texts_a):
        raise ValueError(f"{name} must match the first texts: {len(texts_a)} {'text' if single else 'texts'}, "
                         f"got {len(batch)} {'text' if single_b else 'texts'}")
    return batch


def chunks(size: int, *columns: list[str] | None):
    """The columns (None stays None) cut into slices of ``size`` rows."""
    for start in range(0, len(columns[0]), size):
        yield [None if column is None else column[start : start + size] for column in columns]


def layer_maps(weights: Sequence[Tensor | None], row: int, num_queries: int, num_keys: int) -> Tensor:
    """Row ``row`` of every layer's ``(B, H, Tq, Tk)`` weights, cut to its real queries and keys:
    ``(L, H, num_queries, num_keys)`` float32 on the CPU."""
    return torch.stack([w[row, :, :num_queries, :num_keys] for w in weights]).float().cpu()
