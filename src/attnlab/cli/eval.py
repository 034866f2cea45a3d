"""``attnlab-eval ckpt_path=...`` (:mod:`attnlab.cli.apps`): rebuild a run from its checkpoint, test it, print the
metrics (and, for a translation model, sacrebleu's scores with their signatures). ``ckpt_path`` may be a run dir:
its chosen checkpoint is tested (``attnlab.training.averaging.selected_checkpoint``)."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from attnlab.inference.restore import restore_run
from attnlab.training.summary import print_summary
from attnlab.cli.build import instantiate_all, resolve_auto_precision
from attnlab.cli.distributed import ddp_job
from attnlab.cli.validate import check_no_missing
from attnlab.training.averaging import selected_checkpoint
from attnlab.lit.scores import format_scores


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint's model on its datamodule's test split; returns the logged test metrics."""
    check_no_missing(cfg)
    path = Path(cfg.ckpt_path)
    if path.is_dir():
        path = selected_checkpoint(path)
    run = restore_run(path, data_overrides=cfg.data)
    run.module.text = run.datamodule.task_text()  # what the task decodes and scores with
    loggers = instantiate_all(cfg.get("logger"))
    # a datamodule that shards its own batches across ranks (translation) ran with use_distributed_sampler=false
    own_sharding = {"use_distributed_sampler": run.config.trainer.get("use_distributed_sampler", True)}
    resolve_auto_precision(cfg.trainer)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, enable_checkpointing=False, **own_sharding)
    with ddp_job(trainer):  # DDP ranks re-run this one evaluation and all end with it
        results = trainer.test(run.module, datamodule=run.datamodule)
    metrics = {name: float(value) for name, value in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        print_summary(trainer, metrics, cfg.paths.output_dir)
        print(f"checkpoint: {path}")
        if scores := getattr(run.module, "scores", {}).get("test"):  # translation models: sacrebleu's own report
            print(format_scores(scores))
    return metrics
