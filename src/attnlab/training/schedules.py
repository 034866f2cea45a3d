"""Learning-rate schedules as pure functions of ``(step, total)``: the factor of the peak rate at optimizer step
``step`` (0-based) of a run of ``total`` steps, after a linear warm-up over the first ``warmup`` steps.

They hold no state; :class:`attnlab.training.optim.HorizonLR` steps one, and keeps the rate from moving backwards
when the horizon (``total``, :mod:`attnlab.training.horizon`) is revised during the run.
"""
from __future__ import annotations

import math
from typing import Protocol


class Schedule(Protocol):
    def __call__(self, step: int, total: int | None, *, warmup: int) -> float: ...


def ramp(step: int, warmup: int) -> float:
    """The warm-up: ``(step + 1) / warmup``, reaching the peak at its last step."""
    return (step + 1) / warmup


def progress(step: int, start: int, total: int) -> float:
    """How far ``step`` is from ``start`` to ``total``, in [0, 1]."""
    return min(1.0, max(0.0, (step - start) / max(1, total - start)))


def linear(step: int, total: int, *, warmup: int, min_ratio: float = 0.0, decay_fraction: float | None = None) -> float:
    """Warm-up, then a straight line down to ``min_ratio`` at ``total``; with ``decay_fraction`` the peak holds until
    the run's last fraction, which decays (warm-up, stable, decay)."""
    if step < warmup:
        return ramp(step, warmup)
    start = warmup if decay_fraction is None else max(warmup, total - round(decay_fraction * total))
    return 1.0 - (1.0 - min_ratio) * progress(step, start, total)


def cosine(step: int, total: int, *, warmup: int, min_ratio: float = 0.0) -> float:
    """Warm-up, then half a cosine from the peak down to ``min_ratio`` at ``total``."""
    if step < warmup:
        return ramp(step, warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress(step, warmup, total)))


def inverse_sqrt(step: int, total: int | None, *, warmup: int) -> float:
    """Warm-up, then ``sqrt(warmup / (step + 1))``: Vaswani et al. (2017, eq. 3) normalised to peak 1; no end."""
    if step < warmup:
        return ramp(step, warmup)
    return math.sqrt(max(1, warmup) / (step + 1))
