"""The run's horizon: how many optimizer steps its LR schedule spans (``total``), and the time budget.

One place says what ``total`` is (:func:`horizon_steps`): the trainer's bound from ``max_steps``/``max_epochs``
where it has one; a time-boxed run (``trainer.max_time``, which ``budget=<minutes>`` sets through
:func:`budget_limits`) with no other bound starts from :data:`PROVISIONAL_STEPS`. In a time-boxed run
:class:`ScheduleHorizon` then re-estimates it after every optimizer step (the steps done, plus the time left over
the recent time per step) and hands it to every :class:`~attnlab.training.optim.HorizonLR`, so a warm-up and a
decay given as fractions of the run stretch to 15 minutes or to 10 hours alike. Lightning's
:class:`~pytorch_lightning.callbacks.Timer` (which ``max_time`` adds) stops the run once the budget is spent;
validation runs inside the measured wall time, so it counts. The schedules themselves are pure functions of
``(step, total)`` (:mod:`attnlab.training.schedules`).
"""
from __future__ import annotations

import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from attnlab import ConfigError
from attnlab.training.optim import HorizonLR

# The horizon a time-boxed run starts from before its first step is timed (only the first step's LR depends on it:
# a warm-up fraction of it is long, so that step learns at a small rate).
PROVISIONAL_STEPS = 10_000
MAX_MARKS = 1024  # (step, time) marks kept; when full every other one is dropped (the window stays ~half the run)


def budget_limits(minutes: float) -> dict[str, str | int]:
    """The trainer arguments of a run of ``minutes``: ``max_time`` (DD:HH:MM:SS) and no epoch limit."""
    if not minutes > 0:
        raise ConfigError(f"budget must be a positive number of minutes, got {minutes}")
    seconds = max(1, round(minutes * 60))
    days, hours, mins = seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60
    return {"max_time": f"{days:02d}:{hours:02d}:{mins:02d}:{seconds % 60:02d}", "max_epochs": -1}


def budget_timer(trainer: pl.Trainer) -> Timer | None:
    """The trainer's Timer when it has a time limit (``trainer.max_time``), else None."""
    return next((c for c in trainer.callbacks if isinstance(c, Timer) and c.time_remaining() is not None), None)


def horizon_steps(trainer: pl.Trainer) -> float:
    """The run's length in optimizer steps as the schedule starts: the trainer's bound; in a time-boxed run with no
    other bound :data:`PROVISIONAL_STEPS`, which its :class:`ScheduleHorizon` callback revises as it runs (without
    one it is a :class:`~attnlab.ConfigError`); ``math.inf`` for an open-ended run."""
    bound = trainer.estimated_stepping_batches
    if math.isfinite(bound) or budget_timer(trainer) is None:
        return bound
    if not any(isinstance(callback, ScheduleHorizon) for callback in trainer.callbacks):
        raise ConfigError(
            "a run bounded only by max_time needs the callback attnlab.training.horizon.ScheduleHorizon to fit its "
            "schedule to the time (attnlab-train lists it in conf/callbacks/run/default.yaml); add it to the "
            "trainer's callbacks, or bound the run by max_steps or max_epochs"
        )
    return PROVISIONAL_STEPS


def horizon_schedulers(trainer: pl.Trainer) -> list[HorizonLR]:
    """The schedules whose horizon follows the run (not those whose ``total_steps`` the config fixed)."""
    return [config.scheduler for config in trainer.lr_scheduler_configs
            if isinstance(config.scheduler, HorizonLR) and config.scheduler.follows_run]


class ScheduleHorizon(pl.Callback):
    """Re-estimates the schedule's horizon of a time-boxed run at every optimizer step; does nothing otherwise.

    Seconds per step are measured over the recent half of the run (from this process's second step on: the first
    holds one-off costs), so the estimate follows a run whose steps slow down or speed up, and the validation runs
    inside that window count. Until then the schedule keeps the horizon it was built with.
    A bound from ``max_steps``/``max_epochs`` still caps the horizon. Under DDP rank 0's estimate is broadcast,
    so every rank follows one schedule. The Timer's clock is the one used (its elapsed time survives a resume).
    """

    def __init__(self):
        self._marks: list[tuple[int, float]] = []  # (global step, elapsed seconds) since training started here
        self._bound = math.inf  # the run's length in steps by max_steps/max_epochs

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._marks = []
        self._bound = trainer.estimated_stepping_batches

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        timer, schedulers = budget_timer(trainer), horizon_schedulers(trainer)
        step = trainer.global_step
        if timer is None or not schedulers or self._marks and step == self._marks[-1][0]:
            return  # no budget, nothing to steer, or no optimizer step since the last mark (gradient accumulation)
        self._marks.append((step, timer.time_elapsed()))
        if len(self._marks) > MAX_MARKS:
            self._marks = self._marks[::2]
        if len(self._marks) < 2:
            return  # the first step's time holds one-off costs (first batch, allocations): pace from the second on
        total = trainer.strategy.broadcast(self.estimate(step, timer.time_remaining()), src=0)
        for scheduler in schedulers:
            scheduler.set_total_steps(total)

    def estimate(self, step: int, remaining: float) -> int:
        """Steps done plus the steps the remaining time allows at the recent pace, capped by the trainer's bound."""
        start_step, start_time = self._marks[(len(self._marks) - 1) // 2]
        seconds_per_step = (self._marks[-1][1] - start_time) / max(1, step - start_step)
        total = step + max(1, round(max(0.0, remaining) / max(seconds_per_step, 1e-9)))
        return min(total, int(self._bound)) if math.isfinite(self._bound) else total
