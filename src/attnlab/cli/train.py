"""``attnlab-train`` (:mod:`attnlab.cli.apps`): build data, model and trainer from the composed config, fit, test,
return the metric."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from attnlab import MissingFileError
from attnlab.cli.distributed import job_relaunchable_by_ddp
from attnlab.cli.requeue import final_weights_checkpoint, requeued_checkpoint
from attnlab.cli.summary import print_summary
from attnlab.cli.plugins import in_search
from attnlab.cli.tracking import assign_wandb_run_id
from attnlab.cli.validate import ConfigError, check_no_missing, fill_missing, validate_targets
from attnlab.training.averaging import AverageCheckpoints
from attnlab.training.callbacks import EmbedConfig, ResumeTrainLoader, Throughput
from attnlab.training.checkpoint import load_checkpoint
from attnlab.training.loggers import finish_loggers
from attnlab.training.precision import resolve_precision
from attnlab.training.preemption import RecordSlurmJob
from attnlab.lit.pretrained import PretrainedEncoder, encoder_config, load_encoder, read_pretrained
from attnlab.lit.task import TaskModule
from attnlab.training.pruning import pruned_trial

log = logging.getLogger(__name__)


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path=last``: this run dir's last.ckpt, else the newest last.ckpt of this task; else a path.
    None: the checkpoint of a requeued SLURM job, if this is one."""
    if cfg.ckpt_path is None:
        return requeued_checkpoint(cfg.paths.output_dir)
    if cfg.ckpt_path != "last":
        if not Path(cfg.ckpt_path).is_file():
            raise MissingFileError(f"ckpt_path={cfg.ckpt_path} does not exist")
        return str(cfg.ckpt_path)
    own = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if own.is_file():
        return str(own)
    task_root = Path(cfg.paths.log_root) / cfg.task_name
    candidates = sorted(task_root.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise MissingFileError(f"ckpt_path=last: no last.ckpt under {own.parent} or {task_root}")
    return str(candidates[-1])


def apply_budget(cfg: DictConfig) -> None:
    """``budget=<minutes>``: the run's length is that time (``trainer.max_time``, no epoch limit)."""
    if cfg.budget is None:
        return
    if not cfg.budget > 0:
        raise ConfigError(f"budget must be a positive number of minutes, got {cfg.budget}")
    seconds = max(1, round(cfg.budget * 60))
    with open_dict(cfg):
        cfg.trainer.max_time = f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        cfg.trainer.max_epochs = -1


def resolve_auto_precision(trainer: DictConfig) -> None:
    """``trainer.precision=auto`` (the default) becomes this machine's choice, logged (:mod:`attnlab.training.precision`)."""
    with open_dict(trainer):
        trainer.precision = resolve_precision(trainer.get("precision", "32-true"), trainer.get("accelerator", "auto"))


def instantiate_all(nodes: DictConfig | None) -> list[Any]:
    """The built nodes, leaving out null nodes and those whose builder returns None (a callback switched off)."""
    built = [hydra.utils.instantiate(node) for node in (nodes or {}).values() if node is not None]
    return [item for item in built if item is not None]


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


def fit_and_test(cfg: DictConfig, trainer: pl.Trainer, model: pl.LightningModule,
                 datamodule: pl.LightningDataModule, ckpt_path: str | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    tested = ckpt_path or ""  # evaluate-only: the given checkpoint; after fit the best, or the averaging's choice
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if (pruned := pruned_trial(trainer)) is not None:  # an Optuna trial stopped early: no test
            if trainer.is_global_zero:
                raise pruned  # the sweeper records the trial as pruned
            return metrics  # other DDP ranks end cleanly (a failed child makes Lightning kill every rank)
        tested = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        averaging = next((c for c in trainer.callbacks if isinstance(c, AverageCheckpoints) and c.candidates), None)
        if averaging is not None:  # averaged vs last weights on validation: the better is tested
            choice = averaging.choose(trainer, model, datamodule, monitor=cfg.monitor, mode=cfg.monitor_mode)
            # the chosen weights were validated last: their val/* metrics, and each candidate's score
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            metrics.update({f"{cfg.monitor}_{name}": score for name, score in choice.scores.items()})
            tested = str(choice.path)
        if cfg.test and not tested:  # the final weights, never a stale hpc checkpoint
            tested = final_weights_checkpoint(trainer) or ""
    if cfg.test:
        trainer.test(model, datamodule=datamodule, ckpt_path=tested or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


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
    ckpt_path = resolve_ckpt_path(cfg)
    resumed = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    datamodule, model = build_data_and_model(cfg, resumed)
    assign_wandb_run_id(cfg, resumed)  # a resumed run continues its W&B run
    del resumed  # free its tensors before Lightning loads the checkpoint again
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    callbacks = instantiate_all(cfg.get("callbacks")) + [EmbedConfig(resolved), Throughput(), ResumeTrainLoader(),
                                                     RecordSlurmJob()]
    loggers = instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(resolved)

    with job_relaunchable_by_ddp():  # DDP ranks re-run this one job, also inside a multirun
        try:
            metrics = fit_and_test(cfg, trainer, model, datamodule, ckpt_path)
        finally:
            finish_loggers(loggers)

    if trainer.is_global_zero:
        print_summary(trainer, metrics, cfg.paths.output_dir)
    return objective(cfg, metrics)
