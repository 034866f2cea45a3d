"""W&B run ids: a resumed training continues the W&B run of the checkpoint it resumes from.

The id is written into the config (``logger.wandb.id``) before training, so the resolved config that
every checkpoint embeds records it; resuming reads it back from the checkpoint.
"""
from __future__ import annotations

import logging
import secrets
import string
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.training.checkpoint import CONFIG_KEY

log = logging.getLogger(__name__)


def checkpoint_wandb_id(checkpoint: dict[str, Any]) -> str | None:
    """The W&B run id recorded in a checkpoint's embedded config, if it was trained with ``logger=wandb``."""
    config = checkpoint.get(CONFIG_KEY) or {}
    return ((config.get("logger") or {}).get("wandb") or {}).get("id")


def new_run_id(length: int = 8) -> str:
    """A random id in W&B's own format: lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def assign_wandb_run_id(cfg: DictConfig, checkpoint: dict[str, Any] | None) -> None:
    """Set ``logger.wandb.id`` unless given: the resumed checkpoint's run id, else a new one."""
    node = OmegaConf.select(cfg, "logger.wandb")
    if node is None or node.get("id") is not None:
        return
    run_id = checkpoint_wandb_id(checkpoint) if checkpoint else None
    if run_id:
        log.info("continuing the checkpoint's W&B run %s", run_id)
    else:
        run_id = new_run_id()
    with open_dict(cfg):
        node.id = run_id
