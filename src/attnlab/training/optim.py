"""Training policies shared by the LightningModules: weight-decay groups and learning-rate schedules.

Every schedule is a :class:`HorizonLR`: a warm-up, given in steps or as a fraction of the run, then a decay shape
over the rest of the run. The run's length (the horizon, ``total_steps``) may change while it runs: a time-boxed
run (``trainer.max_time``) re-estimates it from the measured step time (:mod:`attnlab.training.horizon`), so the
schedule ends where the run ends, whether that is after 15 minutes or 10 hours. The shapes are the pure functions
of :mod:`attnlab.training.schedules`.
"""
from __future__ import annotations

import inspect
import logging
import math
from functools import partial
from typing import Any, Callable

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from attnlab.training import schedules
from attnlab.training.schedules import Schedule

log = logging.getLogger(__name__)


class HorizonRequired(ValueError):
    """A schedule that needs the run's length was built without it."""


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (``p.dim() >= 2``: linear and embedding weights); never biases or norm gains (BERT, nanoGPT)."""
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class HorizonLR(LRScheduler):
    """The peak rate times ``schedule(step, total_steps, warmup=...)`` (:mod:`attnlab.training.schedules`).

    The warm-up lasts ``warmup_steps``, or ``warmup_fraction`` of ``total_steps`` (give one). A warm-up in steps
    that the run is too short for when the schedule is built (``warmup_steps >= total_steps``) is cut to a tenth
    of the run, with a warning; a horizon revised later never changes a warm-up in steps (a revision that ends
    the run inside it is warned about once). ``total_steps`` (the horizon) may be None where ``needs_total`` is
    False and the warm-up is in steps (inverse square root); :meth:`set_total_steps` revises it during the run.
    The rate never moves backwards because the horizon moved: it only rises during the warm-up and only falls
    after it (a revision holds it until the schedule catches up). The checkpointed state holds only numbers.
    ``follows_run`` False: a horizon the config fixed, which a time-boxed run does not revise.
    """

    follows_run = True

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule,
        *,
        warmup_steps: int | None = None,
        warmup_fraction: float | None = None,
        total_steps: int | None = None,
        needs_total: bool = True,
    ):
        if (warmup_steps is None) == (warmup_fraction is None):
            raise ValueError(f"give one of warmup_steps={warmup_steps} and warmup_fraction={warmup_fraction}")
        if warmup_steps is not None and warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if warmup_fraction is not None and not 0 <= warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        self.schedule = schedule
        self.warmup_steps, self.warmup_fraction, self.needs_total = warmup_steps, warmup_fraction, needs_total
        self.total_steps: int | None = None
        self._warned_long_warmup = False
        self.set_total_steps(total_steps)
        if warmup_steps is not None and total_steps is not None and warmup_steps >= total_steps:
            self.warmup_steps = total_steps // 10
            log.warning("warmup_steps=%d >= total_steps=%d of this run: warming up for %d steps instead",
                        warmup_steps, total_steps, self.warmup_steps)
        self._last_factor: float | None = None  # the factor of the previous step
        self._warmed_up = False  # the warm-up has ended (it never restarts when the horizon grows)
        super().__init__(optimizer)

    def set_total_steps(self, total_steps: int | None) -> None:
        """Revise the horizon; the next ``step()`` uses it. Takes effect on the rate of the following steps."""
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if total_steps is None and (self.needs_total or self.warmup_fraction is not None):
            raise HorizonRequired(f"this schedule (warmup_fraction={self.warmup_fraction}) needs the run's total_steps")
        if (self.warmup_fraction is None and total_steps is not None and self.warmup_steps >= total_steps
                and self.total_steps is not None and not self._warned_long_warmup):
            log.warning("warmup_steps=%d >= the revised total_steps=%d: the run ends inside its warm-up (give "
                        "warmup_fraction for a warm-up that follows the run)", self.warmup_steps, total_steps)
            self._warned_long_warmup = True
        self.total_steps = total_steps

    def warmup_length(self) -> int:
        if self.warmup_fraction is not None:
            return round(self.warmup_fraction * self.total_steps)
        return self.warmup_steps

    def factor(self, step: int) -> float:
        """The multiplier of the peak rate at optimizer step ``step`` (0-based) under the current horizon."""
        return self.schedule(step, self.total_steps, warmup=self.warmup_length())

    def get_lr(self) -> list[float]:
        step, factor = self.last_epoch, self.factor(self.last_epoch)
        if self._warmed_up:  # after the warm-up, whatever the horizon now says: the decay, never rising
            factor = min(self.schedule(step, self.total_steps, warmup=min(step, self.warmup_length())),
                         self._last_factor)
        elif step < self.warmup_length():  # in the warm-up: never falling
            factor = max(factor, self._last_factor or 0.0)
        else:
            self._warmed_up = True
        self._last_factor = factor
        return [base_lr * factor for base_lr in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "schedule")}


def _check_ratio(min_ratio: float) -> None:
    if not 0 <= min_ratio <= 1:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")


def inverse_sqrt(
    optimizer: Optimizer, warmup_steps: int | None = 4000, total_steps: int | None = None, *,
    warmup_fraction: float | None = None,
) -> HorizonLR:
    """Linear warm-up, then decay with 1/sqrt(step) (Vaswani et al., 2017, eq. 3, normalised to peak 1).

    The decay needs no horizon; ``total_steps`` (filled from the run) sizes a ``warmup_fraction`` and cuts a
    warm-up in steps that the run is too short for."""
    if warmup_steps is not None and warmup_steps < 1:
        raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
    return HorizonLR(optimizer, schedules.inverse_sqrt, warmup_steps=warmup_steps, warmup_fraction=warmup_fraction,
                     total_steps=total_steps, needs_total=False)


def linear_warmup_decay(
    optimizer: Optimizer, warmup_steps: int | None = None, total_steps: int | None = None, *,
    warmup_fraction: float | None = None, decay_fraction: float | None = None, min_ratio: float = 0.0,
) -> HorizonLR:
    """Linear warm-up to the peak, then linear decay to ``min_ratio`` of it at ``total_steps`` (BERT).

    ``decay_fraction``: decay over the run's last fraction only and hold the peak before it (warm-up, stable,
    decay); None decays from the end of the warm-up (``warmup_fraction=0.5``: a triangular one-cycle)."""
    _check_ratio(min_ratio)
    if decay_fraction is not None and not 0 < decay_fraction <= 1:
        raise ValueError(f"decay_fraction must be in (0, 1], got {decay_fraction}")
    return HorizonLR(optimizer, partial(schedules.linear, min_ratio=min_ratio, decay_fraction=decay_fraction),
                     warmup_steps=warmup_steps, warmup_fraction=warmup_fraction, total_steps=total_steps)


def cosine_warmup(
    optimizer: Optimizer, warmup_steps: int | None = None, total_steps: int | None = None, min_ratio: float = 0.0,
    *, warmup_fraction: float | None = None,
) -> HorizonLR:
    """Linear warm-up, then half a cosine down to ``min_ratio`` of the peak at ``total_steps``."""
    _check_ratio(min_ratio)
    return HorizonLR(optimizer, partial(schedules.cosine, min_ratio=min_ratio), warmup_steps=warmup_steps,
                     warmup_fraction=warmup_fraction, total_steps=total_steps)


def scheduler_for_run(factory: Callable, optimizer: Optimizer, horizon: float):
    """Call a scheduler factory whose ``total_steps`` the config left unset (null) with this run's ``horizon`` in
    steps (:func:`attnlab.training.horizon.horizon_steps`). A factory without ``total_steps``, or with it set, is
    called as it is (a set horizon stays fixed).

    Raises ValueError when the schedule needs the run's length and the run is open-ended (no max_steps,
    max_epochs or max_time).
    """
    total = inspect.signature(factory).parameters.get("total_steps")
    if total is None or total.default not in (None, inspect.Parameter.empty):
        scheduler = factory(optimizer=optimizer)
        if isinstance(scheduler, HorizonLR) and total is not None:
            scheduler.follows_run = False  # the config fixed total_steps
        return scheduler
    if math.isfinite(horizon):
        return factory(optimizer=optimizer, total_steps=max(1, int(horizon)))
    try:
        return factory(optimizer=optimizer)
    except HorizonRequired as error:
        raise ValueError(
            f"the run length is open (estimated {horizon} steps) but the LR schedule needs it; set "
            f"trainer.max_steps, trainer.max_epochs or trainer.max_time (budget=), or the schedule's total_steps"
        ) from error
