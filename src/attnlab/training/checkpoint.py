"""Safe checkpoint loading: ``torch.load(weights_only=True)`` only, with errors that name the file."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from attnlab import BadFileError, MissingFileError

CONFIG_KEY = "attnlab_config"  # the resolved run config, embedded by attnlab.training.callbacks.EmbedConfig


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by attnlab (or a plain state dict) on the CPU without unpickling code; ``mmap``:
    map its tensors from the file instead of reading them (to look at its other entries)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise BadFileError(
            f"{path} is not a loadable checkpoint (corrupt, truncated, or it holds objects other than tensors "
            f"and plain data, which weights_only=True refuses): {error}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise BadFileError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint


def load_run_checkpoint(path: str | Path) -> dict[str, Any]:
    """Like ``load_checkpoint``, but insists on an attnlab training checkpoint (state dict + run config)."""
    checkpoint = load_checkpoint(path)
    missing = [key for key in ("state_dict", CONFIG_KEY) if key not in checkpoint]
    if missing:
        raise BadFileError(
            f"{path} is not an attnlab training checkpoint: it lacks {missing} "
            f"(found keys {sorted(checkpoint)[:10]}); use a last.ckpt/best-*.ckpt from an attnlab run dir"
        )
    return checkpoint
