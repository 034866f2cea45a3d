"""``attnlab-train`` (:mod:`attnlab.cli.apps`): build data, model and trainer from the composed config, fit, test,
return the metric."""
from __future__ import annotations

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.cli.build import (
    apply_budget, build_callbacks, ckpt_path_of, instantiate_all, read_model_pretrained, resolve_auto_precision,
    run_plan,
)
from attnlab.cli.distributed import ddp_job
from attnlab.cli.plugins import objective
from attnlab.cli.tracking import assign_wandb_run_id
from attnlab.cli.validate import check_no_missing, fill_missing, validate_targets
from attnlab.lit.pretrained import encoder_config, load_encoder
from attnlab.lit.task import TaskModule
from attnlab.training.checkpoint import load_checkpoint
from attnlab.training.loggers import finish_loggers
from attnlab.training.run import fit_and_test
from attnlab.training.summary import print_summary


def build_data_and_model(cfg: DictConfig, resumed: dict | None) -> tuple[pl.LightningDataModule, TaskModule]:
    """The data (with a resumed run's tokenizers), the model config's ``???`` leaves filled from the data's spec
    and a pretrained file's architecture (in ``cfg``: every checkpoint's embedded config rebuilds the model without
    either), the model (with the pretrained weights), and the task's view of the data."""
    pretrained = read_model_pretrained(cfg)  # its tokenizer goes to the data, its architecture and weights to the model
    check_no_missing(cfg.data)  # the files of experiment=bert_finetune: named, not a traceback
    given = {} if pretrained is None else {"tokenizer": pretrained.tokenizer}
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, **given)
    if resumed is not None:  # resume with the checkpoint's tokenizer/vocabulary, never a retrained one
        datamodule.load_state_dict(resumed.get(type(datamodule).__qualname__, {}))
    spec = datamodule.spec()  # learns the vocabulary where no checkpoint gave it; Lightning's setup finds it done
    with open_dict(cfg):
        if pretrained is not None:
            encoder_config(cfg.model, cfg.pretrained_encoder).update(pretrained.architecture)
        fill_missing(cfg.model, spec.as_dict())  # the `???` leaves the data decides (vocabulary, ids, ...)
    check_no_missing(cfg.model)
    validate_targets(cfg.model, "model")
    model: TaskModule = hydra.utils.instantiate(cfg.model)
    model.text = datamodule.task_text()  # what the task decodes, scores and shows with
    if pretrained is not None:  # before fit: a resumed checkpoint, restored by fit, still wins
        load_encoder(model.get_submodule(cfg.pretrained_encoder), pretrained, datamodule.tokenizer)
    return datamodule, model


def train(cfg: DictConfig) -> float | None:
    """Wire everything together; returns ``cfg.optimized_metric`` for sweepers."""
    validate_targets(cfg)
    apply_budget(cfg)
    resolve_auto_precision(cfg.trainer)
    pl.seed_everything(cfg.seed, workers=True)
    ckpt_path = ckpt_path_of(cfg)
    resumed = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    datamodule, model = build_data_and_model(cfg, resumed)
    assign_wandb_run_id(cfg, resumed)  # a resumed run continues its W&B run
    del resumed  # free its tensors before Lightning loads the checkpoint again
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    callbacks = build_callbacks(cfg.get("callbacks"), resolved)
    loggers = instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(resolved)

    with ddp_job(trainer):  # DDP ranks re-run this one job, also inside a multirun, and all end with it
        try:
            metrics = fit_and_test(run_plan(cfg), trainer, model, datamodule, ckpt_path)
        finally:
            finish_loggers(loggers)

    if trainer.is_global_zero:
        print_summary(trainer, metrics, cfg.paths.output_dir)
    return objective(cfg.optimized_metric, metrics)
