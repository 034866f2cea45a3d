"""The one training base of the task modules (the Lightning-Hydra template's single ``model_step``).

A task module subclasses :class:`TaskModule` and adds only its loss and evaluation (``step``), its metrics
(``stage_metrics``), where it scores a whole split at once (corpus BLEU) its ``finish_evaluation`` and, where the
optimizer needs more than weight-decay groups, ``parameter_groups``. What a task reads of its data (to decode,
score, show) is handed to it as ``text`` (:mod:`attnlab.data.spec`), never asked of the DataModule.
Everything else is here, once: the saved hyperparameters, the ``compile`` switch, the optimizer and its
per-step schedule (spanning a time budget where the run has one), the guard against a schedule over an open-ended
run, and the metric convention.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import pytorch_lightning as pl
from torch import Tensor, nn
from torchmetrics import Metric

from attnlab.training.checkpoint import CONFIG_KEY, migrate
from attnlab.training.horizon import horizon_steps
from attnlab.training.optim import scheduler_for_run, weight_decay_groups

STAGES = ("train", "val", "test")


class StepOutput(NamedTuple):
    loss: Tensor  # () what training minimises
    num_tokens: int | None = None  # useful (non-padding) tokens of the batch, for the Throughput callback


class TaskModule(pl.LightningModule):
    """Trains a plain-torch ``net``.

    Args:
        net: the model; the only module holding parameters.
        optimizer: partial optimizer, called with ``params`` (the groups of :meth:`parameter_groups`); None:
            nothing to optimise (e.g. a nonparametric kernel).
        scheduler: partial LR schedule (``attnlab.training.optim``), stepped after every optimizer step; a missing
            ``total_steps`` is filled with the run's horizon, and in a time-boxed run (``trainer.max_time``)
            re-estimated at every step (:mod:`attnlab.training.horizon`).
        weight_decay: with a value, the default groups decay matrices only (never biases or norm gains);
            None: one group, and the optimizer's own setting applies.
        compile: ``torch.compile`` the net in place (state-dict keys unchanged: checkpoints load either way).

    ``text``: what the task reads of its data (a :mod:`attnlab.data.spec` contract, from the DataModule's
    ``task_text()``), set by whoever wires data and task (``attnlab-train``, ``attnlab-eval``); None: nothing.

    Metrics: ``metrics_of(stage)`` holds the stage's torchmetrics objects by name (one fresh set per stage in
    ``metric_stages``, from :meth:`stage_metrics`); :meth:`log_metrics` logs them and a batch's values, each
    as ``stage/name``.
    """

    metric_stages: tuple[str, ...] = STAGES
    text: Any = None  # a subclass names the contract it reads
    progress_bar: tuple[str, ...] = ("loss",)  # names shown in the progress bar

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        *,
        weight_decay: float | None = None,
        compile: bool = False,
    ):
        super().__init__()
        if weight_decay is not None and weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])  # with the subclass's arguments
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # keys "<stage>_metrics": a ModuleDict key cannot be "train" (nn.Module.train)
        self.metrics = nn.ModuleDict(
            {f"{stage}_metrics": nn.ModuleDict(self.stage_metrics()) for stage in self.metric_stages}
        )
        self._net_compiled = False

    # ---- the task's part -------------------------------------------------------------------------------------
    def step(self, batch: Any, stage: str) -> StepOutput:
        """The loss of ``batch`` at ``stage`` (train/val/test), with the stage's metrics updated and logged."""
        raise NotImplementedError(f"{type(self).__name__} must define step(batch, stage)")

    def stage_metrics(self) -> dict[str, Metric]:
        """A fresh set of one stage's metrics, by name (none by default)."""
        return {}

    def start_evaluation(self, stage: str) -> None:
        """Before the first batch of a val/test epoch: drop what an interrupted one left (nothing by default)."""

    def finish_evaluation(self, stage: str) -> None:
        """After the last batch of a val/test epoch (every ``step`` done): what is scored over the whole split, e.g.
        corpus BLEU of the gathered sentences, logged as ``stage/name`` (nothing by default)."""

    def parameter_groups(self) -> list[dict]:
        """The optimizer's parameter groups: dicts with ``params`` and optional settings; an ``lr_scale`` entry
        multiplies the group's learning rate. Default: the net's trainable weights, split by weight decay."""
        if self.hparams.weight_decay is None:
            return [{"params": [p for p in self.net.parameters() if p.requires_grad]}]
        return weight_decay_groups(self.net, self.hparams.weight_decay)

    # ---- Lightning hooks -------------------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        output = self.step(batch, "train")
        return {"loss": output.loss, "num_tokens": output.num_tokens}

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self.start_evaluation("test")

    def on_validation_epoch_end(self) -> None:
        self.finish_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self.finish_evaluation("test")

    def configure_model(self) -> None:
        """Lightning calls this before every fit/validate/test, on the device and inside the strategy; only the
        first call compiles."""
        if self.hparams.compile and not self._net_compiled:
            self.net.compile()
            self._net_compiled = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A resumed run checkpoint of an older format, brought to today's in place (Lightning reads the file
        itself, and restores the weights after this hook)."""
        if CONFIG_KEY in checkpoint:
            checkpoint.update(migrate(checkpoint))

    def configure_optimizers(self):
        groups = [group for group in self.parameter_groups() if group["params"]]  # frozen parts leave empty groups
        if self.optimizer_factory is None or not groups:
            return None
        optimizer = self.optimizer_factory(params=groups)
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = scheduler_for_run(self.scheduler_factory, optimizer, horizon_steps(self.trainer))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- metrics ---------------------------------------------------------------------------------------------
    def metrics_of(self, stage: str) -> nn.ModuleDict:
        """The metric objects of ``stage`` by name (empty for a stage outside ``metric_stages``)."""
        return self.metrics[f"{stage}_metrics"] if stage in self.metric_stages else nn.ModuleDict()

    def log_metrics(self, stage: str, batch_size: int, **values: Tensor) -> None:
        """Log this batch's ``values`` (averaged over the epoch, and per step in training) and the stage's metric
        objects (computed at the epoch's end), each as ``stage/name``; evaluation values are averaged over ranks."""
        training = stage == "train"
        for name, value in values.items():
            self.log(
                f"{stage}/{name}", value, on_step=training, on_epoch=True, prog_bar=name in self.progress_bar,
                batch_size=batch_size, sync_dist=not training,
            )
        for name, metric in self.metrics_of(stage).items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name in self.progress_bar,
                     batch_size=batch_size)
