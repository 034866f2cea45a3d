"""End-of-run summary: the metrics as a Rich table, then the checkpoint paths and the run dir, whole.

The paths are logged (console and ``train.log``), never put in the table: a table narrower than a path cuts it
with "…" (piped output is 80 columns wide), and the path is what ``model.pretrained=`` or ``ckpt_path=`` needs.
"""
from __future__ import annotations

import logging

import pytorch_lightning as pl
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)


def print_summary(trainer: pl.Trainer, metrics: dict[str, float], run_dir: str) -> None:
    table = Table(title="attnlab run summary", show_header=True)
    table.add_column("metric")
    table.add_column("value")
    for name in sorted(metrics):
        if name.startswith(("val/", "test/")) or name.endswith("_epoch"):
            table.add_row(name, f"{metrics[name]:.4f}")
    Console().print(table)
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        if checkpoint.best_model_path:
            log.info("best checkpoint (%s): %s", checkpoint.monitor, checkpoint.best_model_path)
        if checkpoint.last_model_path:
            log.info("last checkpoint: %s", checkpoint.last_model_path)
    log.info("run dir: %s", run_dir)
