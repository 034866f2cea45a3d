"""``attnlab-train`` (:mod:`attnlab.cli.apps`): build data, model and trainer from the composed config, fit, test,
return the metric."""
from __future__ import annotations

import logging

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from attnlab.cli.build import (
    apply_budget, build_callbacks, ckpt_path_of, instantiate_all, resolve_auto_precision, run_plan,
)
from attnlab.cli.distributed import job_relaunchable_by_ddp
from attnlab.cli.plugins import in_search
from attnlab.cli.tracking import assign_wandb_run_id
from attnlab.cli.validate import ConfigError, check_no_missing, fill_missing, validate_targets
from attnlab.training.checkpoint import load_checkpoint
from attnlab.training.loggers import finish_loggers
from attnlab.training.run import fit_and_test
from attnlab.training.summary import print_summary
from attnlab.lit.pretrained import PretrainedEncoder, encoder_config, load_encoder, read_pretrained
from attnlab.lit.task import TaskModule

log = logging.getLogger(__name__)


def read_model_pretrained(cfg: DictConfig) -> PretrainedEncoder | None:
    """The pretrained file the model starts from (``model.pretrained``, where the model has one), read once."""
    try:
        path = OmegaConf.select(cfg, "model.pretrained", default=None, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise ConfigError(
            "model.pretrained is required: a pretrained model file (an attnlab BERT checkpoint, or a Hugging Face "
            "BERT state dict with tokenizer.json and config.json beside it), or null to train from scratch"
        ) from error
    return None if path is None else read_pretrained(path, cfg.pretrained_encoder)


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


def objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """``optimized_metric`` for a sweeper. Only a search (the Optuna sweeper) needs it: there a metric that was never
    logged is an error; a single run or a grid multirun that never logged it ends with a warning."""
    if cfg.optimized_metric is None:
        return None
    if cfg.optimized_metric in metrics:
        return metrics[cfg.optimized_metric]
    message = f"optimized_metric={cfg.optimized_metric!r} was never logged; logged metrics: {', '.join(sorted(metrics))}"
    if in_search():
        raise ConfigError(message)
    log.warning("%s (only a search needs it: nothing optimizes it in this run)", message)
    return None


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

    with job_relaunchable_by_ddp():  # DDP ranks re-run this one job, also inside a multirun
        try:
            metrics = fit_and_test(run_plan(cfg), trainer, model, datamodule, ckpt_path)
        finally:
            finish_loggers(loggers)

    if trainer.is_global_zero:
        print_summary(trainer, metrics, cfg.paths.output_dir)
    return objective(cfg, metrics)
