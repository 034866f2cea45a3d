"""Checkpoint averaging: the mean of the weights of the last N checkpoints (Vaswani et al., 2017, sec. 6.1).

Averaging points along the end of the trajectory smooths out the noise of the last updates, which usually
gains a little BLEU for free. ``average_checkpoints`` is the pure operation; ``AverageCheckpoints`` runs it
at the end of training over the checkpoints a ``ModelCheckpoint(monitor="step", mode="max", save_top_k=N)``
keeps, and ``attnlab-average`` (``attnlab.cli.average``) runs it on any files.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from attnlab.lit.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def _state_dict(checkpoint: dict[str, Any], path: Path) -> dict[str, Tensor]:
    state = checkpoint.get("state_dict", checkpoint)  # a Lightning checkpoint or a plain state dict
    if not state or not all(isinstance(value, Tensor) for value in state.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    return state


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Tensor]:
    """Element-wise mean of the floating-point weights of ``paths`` (loaded weights-only); integer buffers
    (counters) are taken from the last file. All files must hold the same keys and shapes."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint path, got none")
    paths = [Path(p) for p in paths]
    first = _state_dict(load_checkpoint(paths[0]), paths[0])
    dtypes = {key: value.dtype for key, value in first.items()}
    total = {key: value.double() if value.is_floating_point() else value for key, value in first.items()}
    for path in paths[1:]:
        state = _state_dict(load_checkpoint(path), path)
        if state.keys() != total.keys():
            differing = sorted(set(state) ^ set(total))[:5]
            raise ValueError(f"{path} and {paths[0]} hold different weights (e.g. {differing}); cannot average them")
        for key, value in state.items():
            if value.shape != total[key].shape:
                raise ValueError(
                    f"{key} has shape {tuple(value.shape)} in {path} but {tuple(total[key].shape)} in {paths[0]}"
                )
            total[key] = total[key] + value.double() if value.is_floating_point() else value
    return {
        key: (value / len(paths)).to(dtypes[key]) if value.is_floating_point() else value
        for key, value in total.items()
    }


def latest_checkpoints(directory: str | Path, num_checkpoints: int, pattern: str = "*.ckpt") -> list[Path]:
    """The ``num_checkpoints`` newest files (by modification time) matching ``pattern`` in ``directory``,
    oldest first."""
    if num_checkpoints < 1:
        raise ValueError(f"num_checkpoints must be >= 1, got {num_checkpoints}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    files = sorted(directory.glob(pattern), key=lambda path: path.stat().st_mtime_ns)
    return files[-num_checkpoints:]


def write_averaged_checkpoint(paths: Sequence[str | Path], output: str | Path) -> Path:
    """Save the last of ``paths`` with its weights replaced by the average of all, so that the result keeps
    the run config and tokenizer and works with attnlab-eval / attnlab-translate."""
    averaged = average_checkpoints(paths)
    checkpoint = load_checkpoint(paths[-1])
    if "state_dict" in checkpoint:
        checkpoint["state_dict"] = averaged
        checkpoint["averaged_from"] = [str(p) for p in paths]
    else:
        checkpoint = averaged
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, output)
    return output


class AverageCheckpoints(pl.Callback):
    """At the end of ``fit``, average the newest ``num_checkpoints`` checkpoints in ``dirpath`` into ``output``."""

    def __init__(self, dirpath: str, output: str, num_checkpoints: int = 5, pattern: str = "*.ckpt"):
        if num_checkpoints < 1:
            raise ValueError(f"num_checkpoints must be >= 1, got {num_checkpoints}")
        self.dirpath, self.output, self.num_checkpoints, self.pattern = dirpath, output, num_checkpoints, pattern

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not Path(self.dirpath).is_dir():
            return
        paths = latest_checkpoints(self.dirpath, self.num_checkpoints, self.pattern)
        if not paths:
            return
        output = write_averaged_checkpoint(paths, self.output)
        log.info("averaged %d checkpoints into %s", len(paths), output)
