"""TaskModule, the one training base: hyperparameters, optimizer groups (weight decay, lr_scale, frozen weights), the
per-step schedule and its guard against an open-ended run, and the per-stage metric convention."""
import functools
import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from attnlab.training.optim import inverse_sqrt, linear_warmup_decay, scheduler_for_run
from attnlab.lit.task import StepOutput, TaskModule

SGD = functools.partial(torch.optim.SGD, lr=0.1)


class MeanSquares(TaskModule):
    """A minimal task: the mean square of a linear map, its running mean as the one metric of val and test."""

    metric_stages = ("val", "test")

    def __init__(self, net, optimizer=SGD, scheduler=None, weight_decay=None, compile=False, scale: float = 1.0):
        super().__init__(net, optimizer, scheduler, weight_decay=weight_decay, compile=compile)

    def stage_metrics(self):
        return {"mean": MeanMetric()}

    def step(self, batch, stage):
        loss = self.net(batch).pow(2).mean()
        for metric in self.metrics_of(stage).values():
            metric.update(loss.detach())
        self.log_metrics(stage, len(batch), loss=loss)
        return StepOutput(loss, num_tokens=len(batch))


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))


def test_hyperparameters_are_the_arguments_of_base_and_subclass_without_net_and_factories():
    module = MeanSquares(net(), weight_decay=0.1, scale=0.5)
    assert dict(module.hparams) == {"weight_decay": 0.1, "compile": False, "scale": 0.5}
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -1"):
        MeanSquares(net(), weight_decay=-1)


def test_default_groups_split_by_weight_decay_or_leave_it_to_the_optimizer():
    module = MeanSquares(net(), optimizer=functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.3))
    (group,) = module.configure_optimizers().param_groups
    assert group["weight_decay"] == 0.3 and len(group["params"]) == 4  # the optimizer's own setting
    module = MeanSquares(net(), weight_decay=0.1)
    decay, no_decay = module.configure_optimizers().param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3)] and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0  # bias, norm gain and bias


def test_lr_scale_multiplies_a_groups_rate_and_frozen_or_absent_weights_leave_no_group():
    module = MeanSquares(net())
    module.net[1].requires_grad_(False)
    module.parameter_groups = lambda: [{"params": [module.net[0].weight], "lr_scale": 0.25},
                                       {"params": [p for p in module.net[1].parameters() if p.requires_grad]}]
    (group,) = module.configure_optimizers().param_groups
    assert group["lr"] == pytest.approx(0.025)
    assert MeanSquares(net(), optimizer=None).configure_optimizers() is None
    assert MeanSquares(net().requires_grad_(False)).configure_optimizers() is None


def test_a_schedule_that_needs_the_run_length_refuses_an_open_ended_run():
    module = MeanSquares(net(), scheduler=functools.partial(linear_warmup_decay, warmup_steps=1))
    module.trainer = pl.Trainer(max_epochs=-1, max_steps=-1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"run length is open \(estimated inf steps\).*set trainer.max_steps"):
        module.configure_optimizers()
    optimizer = SGD(net().parameters())
    assert scheduler_for_run(functools.partial(inverse_sqrt, warmup_steps=2), optimizer, math.inf)  # needs no length
    fixed = scheduler_for_run(functools.partial(linear_warmup_decay, warmup_steps=1, total_steps=4), optimizer, math.inf)
    assert fixed.factor(2) == pytest.approx(2 / 3)


def test_a_run_steps_the_schedule_per_step_and_logs_stage_metrics_as_stage_slash_name():
    module = MeanSquares(net(), scheduler=functools.partial(linear_warmup_decay, warmup_steps=1))
    data = torch.utils.data.DataLoader(torch.randn(8, 3), batch_size=2)
    run = pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0)
    run.fit(module, data, data)
    assert run.lr_scheduler_configs[0].interval == "step" and run.lr_scheduler_configs[0].scheduler.last_epoch == 4
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "val/mean"} <= set(run.callback_metrics)
    assert "train/mean" not in run.callback_metrics  # metric_stages: no metrics for training
    assert float(run.callback_metrics["val/mean"]) == pytest.approx(float(run.callback_metrics["val/loss"]))
    assert list(module.metrics_of("val")) == ["mean"] and len(module.metrics_of("train")) == 0


def test_a_task_without_step_says_so():
    with pytest.raises(NotImplementedError, match="TaskModule must define step"):
        TaskModule(net()).step(torch.zeros(1, 3), "train")


class CorpusMean(MeanSquares):
    """Scores a whole split at once, as corpus BLEU does: the mean over every evaluated row, logged at the end."""

    def __init__(self, net):
        super().__init__(net)
        self.rows: dict[str, list[float]] = {}
        self.calls: list[tuple[str, str]] = []

    def step(self, batch, stage):
        self.rows.setdefault(stage, []).extend(self.net(batch).pow(2).mean(1).tolist())
        return super().step(batch, stage)

    def start_evaluation(self, stage):
        self.calls.append(("start", stage))
        self.rows.pop(stage, None)

    def finish_evaluation(self, stage):
        self.calls.append(("finish", stage))
        rows = self.rows.pop(stage)
        self.log(f"{stage}/corpus_mean", sum(rows) / len(rows))


def test_corpus_evaluation_runs_after_every_batch_of_each_validation_and_test():
    module = CorpusMean(net())
    data = torch.utils.data.DataLoader(torch.randn(8, 3), batch_size=3)
    run = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0)
    run.fit(module, data, data)
    run.test(module, data, verbose=False)
    assert module.calls == [("start", "val"), ("finish", "val")] * 2 + [("start", "test"), ("finish", "test")]
    with torch.no_grad():
        expected = module.net(torch.cat(list(data))).pow(2).mean()  # all 8 rows, not a mean of batch means
    assert float(run.callback_metrics["test/corpus_mean"]) == pytest.approx(float(expected), rel=1e-5)
