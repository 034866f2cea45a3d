"""Experiment trackers built from config: Weights & Biases, offline unless an API key is configured.

The Hydra-specific values (the multirun group, the resumed run id) are filled in by the CLI; this module
only turns plain values into a Lightning logger.
"""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

from pytorch_lightning.loggers import Logger, WandbLogger

log = logging.getLogger(__name__)

_DEFAULT_WANDB_HOST = "https://api.wandb.ai"


def has_wandb_api_key() -> bool:
    """True when ``WANDB_API_KEY`` is set or the netrc file (``$NETRC``, else ``~/.netrc``) has an entry for
    the W&B host (``$WANDB_BASE_URL``), which is where ``wandb login`` stores the key."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", _DEFAULT_WANDB_HOST)).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc")).expanduser()
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, PermissionError):
        return False


def _wandb_mode(offline: bool | None) -> str | None:
    """``offline`` True/False forces the mode. None leaves it to ``WANDB_MODE`` when that is set, else picks
    offline exactly when no API key is configured (None: wandb's default, online)."""
    if offline is not None:
        return "offline" if offline else "online"
    if os.environ.get("WANDB_MODE") or has_wandb_api_key():
        return None
    return "offline"


def wandb_logger(
    project: str,
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    save_dir: str = ".",
    log_model: bool | str = False,
    offline: bool | None = None,
    id: str | None = None,
    job_type: str | None = None,
    notes: str | None = None,
) -> WandbLogger:
    """A ``WandbLogger`` whose run lives in ``<save_dir>/wandb/``.

    ``id`` names the W&B run; reusing it (``resume="allow"``) continues that run, which is how a resumed
    training keeps one W&B history. ``log_model`` True uploads the best/last checkpoints as artifacts at the
    end of training, ``"all"`` every checkpoint as it is written; offline runs keep them for ``wandb sync``.
    """
    if log_model not in (True, False, "all"):
        raise ValueError(f"log_model must be true, false or 'all', got {log_model!r}")
    mode = _wandb_mode(offline)
    if mode == "offline":
        log.info("W&B runs offline (no API key or offline=true); upload later with `wandb sync %s/wandb/offline-run-*`",
                 save_dir)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # The mode goes to wandb.init directly: Lightning's own `offline=True` would set WANDB_MODE for the whole
    # process (leaking into the next job of a multirun) and forbids log_model, which offline runs support.
    return WandbLogger(
        project=project, entity=entity, name=name, group=group, tags=list(tags), save_dir=save_dir,
        log_model=log_model, id=id, job_type=job_type, notes=notes, mode=mode,
    )


def finish_loggers(loggers: Sequence[Logger]) -> None:
    """End this process's W&B run, so the next job of a multirun starts its own run (``wandb.init`` otherwise
    hands back the run still open in this process)."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()
