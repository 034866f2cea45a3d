"""End-of-run summary: metrics, checkpoint paths and the run dir, as a Rich table."""
from __future__ import annotations

import pytorch_lightning as pl
from rich.console import Console
from rich.table import Table


def print_summary(trainer: pl.Trainer, metrics: dict[str, float], run_dir: str) -> None:
    table = Table(title="attnlab run summary", show_header=True)
    table.add_column("what")
    table.add_column("value")
    for name in sorted(metrics):
        if name.startswith(("val/", "test/")) or name.endswith("_epoch"):
            table.add_row(name, f"{metrics[name]:.4f}")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        if checkpoint.best_model_path:
            table.add_row(f"best checkpoint ({checkpoint.monitor})", checkpoint.best_model_path)
        if checkpoint.last_model_path:
            table.add_row("last checkpoint", checkpoint.last_model_path)
    table.add_row("run dir", str(run_dir))
    Console().print(table)
