"""Save a figure in the run directory and hand it to every image-capable logger (W&B, TensorBoard)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytorch_lightning as pl
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger


def publish_figure(trainer: pl.Trainer, name: str, figure: Figure) -> Path:
    """Write ``<run dir>/plots/<name>.png`` once (rank zero) and log it as an image; returns the path."""
    path = Path(trainer.default_root_dir) / "plots" / f"{name}.png"
    if trainer.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"plots/{name}", images=[str(path)], step=trainer.global_step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(f"plots/{name}", figure, global_step=trainer.global_step)
    plt.close(figure)
    return path
