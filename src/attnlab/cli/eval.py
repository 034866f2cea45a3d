"""``attnlab-eval ckpt_path=...``: rebuild a run from its checkpoint, test it, print the metrics."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from attnlab.cli.restore import restore_run
from attnlab.cli.summary import print_summary
from attnlab.cli.train import instantiate_all, resolve_auto_precision
from attnlab.cli.validate import check_no_missing


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint's model on its datamodule's test split; returns the logged test metrics."""
    check_no_missing(cfg)
    run = restore_run(cfg.ckpt_path, data_overrides=cfg.data)
    loggers = instantiate_all(cfg.get("logger"))
    resolve_auto_precision(cfg.trainer)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, enable_checkpointing=False)
    results = trainer.test(run.module, datamodule=run.datamodule)
    metrics = {name: float(value) for name, value in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        print_summary(trainer, metrics, cfg.paths.output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://attnlab.conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
