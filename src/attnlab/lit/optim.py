"""Training policies shared by the LightningModules: weight-decay groups and learning-rate schedules."""
from __future__ import annotations

import inspect
import logging
import math
from typing import Callable

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

log = logging.getLogger(__name__)


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (``p.dim() >= 2``: linear and embedding weights); never biases or norm gains (BERT, nanoGPT)."""
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lambda_scheduler(optimizer: Optimizer, factor: Callable[[int], float]) -> LambdaLR:
    return LambdaLR(optimizer, factor)


def inverse_sqrt(optimizer: Optimizer, warmup_steps: int = 4000) -> LambdaLR:
    """Linear warm-up, then decay with 1/sqrt(step) (Vaswani et al., 2017, eq. 3, normalised to peak 1)."""
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
    return _lambda_scheduler(optimizer, lambda step: min((step + 1) / warmup_steps, math.sqrt(warmup_steps / (step + 1))))


def linear_warmup_decay(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Linear warm-up to the peak, then linear decay to zero at ``total_steps`` (BERT)."""
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / (total_steps - warmup_steps))

    return _lambda_scheduler(optimizer, factor)


def cosine_warmup(optimizer: Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> LambdaLR:
    """Linear warm-up, then half a cosine down to ``min_ratio`` of the peak at ``total_steps``."""
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return _lambda_scheduler(optimizer, factor)


def scheduler_for_run(factory: Callable, optimizer: Optimizer, estimated_steps: float) -> LambdaLR:
    """Call a scheduler factory whose ``total_steps`` the config left unset (null) with this run's step count
    (the trainer's ``estimated_stepping_batches``); a warm-up as long as such a (short, debug) run is cut to a
    tenth of it, with a warning. A factory without ``total_steps``, or with it set, is called as it is.

    Raises ValueError when the schedule needs the run's length and the run is open-ended (no max_steps/max_epochs).
    """
    parameters = inspect.signature(factory).parameters
    total = parameters.get("total_steps")
    if total is None or total.default not in (None, inspect.Parameter.empty):
        return factory(optimizer=optimizer)
    if not math.isfinite(estimated_steps):
        raise ValueError(
            f"the run length is open (estimated {estimated_steps} steps) but the LR schedule needs it; "
            f"set trainer.max_steps or trainer.max_epochs, or the schedule's total_steps"
        )
    overrides = {"total_steps": int(estimated_steps)}
    warmup = parameters.get("warmup_steps")
    if warmup is not None and isinstance(warmup.default, int) and warmup.default >= estimated_steps:
        overrides["warmup_steps"] = int(estimated_steps) // 10
        log.warning(
            "warmup_steps=%d >= total_steps=%d of this run: warming up for %d steps instead",
            warmup.default, estimated_steps, overrides["warmup_steps"],
        )
    return factory(optimizer=optimizer, **overrides)
