"""Time-budgeted training on a fake clock: the run stops at ``max_time`` with its LR schedule at its end, warm-up and
decay in fractions of the run, the horizon re-estimated when steps slow down, and ``budget=`` as the shorthand."""
import functools
import io
import time

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from attnlab.cli.build import apply_budget
from attnlab.cli.validate import ConfigError
from attnlab.training.horizon import PROVISIONAL_STEPS, ScheduleHorizon
from attnlab.training.optim import HorizonLR, cosine_warmup, linear_warmup_decay
from attnlab.lit.task import StepOutput, TaskModule


class FakeClock:
    """``time.monotonic`` that moves only when a step or a validation batch says it took time."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TimedSquares(TaskModule):
    """A linear map's mean square; every training step 'takes' ``step_seconds(step)`` and every validation batch
    ``val_seconds`` of the fake clock. Records the learning rate each step trained with."""

    def __init__(self, clock, step_seconds, scheduler, val_seconds=0.0):
        super().__init__(nn.Linear(3, 1), functools.partial(torch.optim.SGD, lr=1.0), scheduler)
        self.clock, self.step_seconds, self.val_seconds = clock, step_seconds, val_seconds
        self.lrs: list[float] = []
        self.horizons: list[int] = []

    def step(self, batch, stage):
        if stage == "train":
            self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            self.horizons.append(self.trainer.lr_scheduler_configs[0].scheduler.total_steps)
            self.clock.now += self.step_seconds(self.trainer.global_step)
        else:
            self.clock.now += self.val_seconds
        loss = self.net(batch).pow(2).mean()
        self.log_metrics(stage, len(batch), loss=loss.detach())
        return StepOutput(loss)


def fit_on_the_clock(monkeypatch, step_seconds, *, max_time="00:00:02:00", scheduler=None, val_seconds=0.0,
                     **trainer_args) -> TimedSquares:
    clock = FakeClock()
    monkeypatch.setattr(time, "monotonic", clock)  # Lightning's Timer and the horizon both read it
    scheduler = scheduler or functools.partial(linear_warmup_decay, warmup_fraction=0.1)
    module = TimedSquares(clock, step_seconds, scheduler, val_seconds)
    data = torch.utils.data.DataLoader(torch.randn(20, 3), batch_size=2)  # 10 steps an epoch
    trainer = pl.Trainer(max_time=max_time, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         **{"max_epochs": -1, "callbacks": [ScheduleHorizon()], **trainer_args})
    trainer.fit(module, data, data)
    return module


def test_the_schedule_ends_where_max_time_stops_the_run(monkeypatch):
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0)  # 120 s at 1 s a step
    assert len(module.lrs) == 120  # the Timer stopped the run on time
    peak = max(module.lrs)
    assert module.lrs.index(peak) == pytest.approx(12, abs=2)  # warm-up: 10 % of the run
    assert module.lrs[-1] <= 0.02 * peak  # the last step trains at the schedule's end (linear decay to 0)
    assert module.horizons[-1] == pytest.approx(120, abs=1)


def test_validation_time_counts_and_a_cosine_schedule_also_ends_at_its_floor(monkeypatch):
    # 1 s a step, 10 validation batches of 1 s after each epoch of 10 steps: half the budget goes to validation
    cosine = functools.partial(cosine_warmup, warmup_fraction=0.05, min_ratio=0.1)
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0, scheduler=cosine, val_seconds=1.0)
    assert len(module.lrs) == pytest.approx(60, abs=10)
    assert module.lrs[-1] == pytest.approx(0.1, abs=0.02)  # min_ratio x peak 1.0


def test_the_horizon_adapts_when_steps_slow_down(monkeypatch):
    # 1 s a step for 30 steps, then 3 s: 150 s allow 30 + 120 / 3 = 70 steps, not the 150 the first pace promised
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0 if step < 30 else 3.0, max_time="00:00:02:30")
    assert len(module.lrs) == pytest.approx(70, abs=1)
    assert module.horizons[29] == pytest.approx(150, abs=2)  # before the slowdown
    assert module.horizons[-1] == pytest.approx(70, abs=2)
    assert module.lrs[-1] <= 0.05 * max(module.lrs)


def test_an_epoch_or_step_bound_shorter_than_the_budget_caps_the_horizon(monkeypatch):
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0, max_epochs=3)  # 30 steps, far inside 120 s
    assert len(module.lrs) == 30 and set(module.horizons) == {30}
    assert module.lrs[-1] <= 0.05 * max(module.lrs)


def test_a_horizon_fixed_in_the_config_is_not_revised_by_the_budget(monkeypatch):
    fixed = functools.partial(linear_warmup_decay, warmup_steps=10, total_steps=500)
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0, scheduler=fixed)  # 120 steps of a 500-step schedule
    assert len(module.lrs) == 120 and set(module.horizons) == {500}
    assert module.lrs[-1] == pytest.approx(1.0 - (119 - 10) / (500 - 10), abs=0.01)


def test_without_a_budget_the_horizon_is_the_trainers_estimate_and_stays(monkeypatch):
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0, max_time=None, max_epochs=2)
    assert set(module.horizons) == {20}


def test_warmup_in_steps_keeps_its_length_and_decay_fraction_holds_the_peak_first():
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    schedule = linear_warmup_decay(optimizer, warmup_steps=4, total_steps=100, decay_fraction=0.2)
    assert [schedule.factor(s) for s in (0, 3, 50, 79, 80, 90, 99)] == pytest.approx([0.25, 1, 1, 1, 1, 0.5, 0.05])
    schedule.set_total_steps(200)  # a revised horizon moves the decay, not the warm-up in steps
    assert schedule.factor(3) == 1 and schedule.factor(159) == 1 and schedule.factor(180) == pytest.approx(0.5)
    fraction = linear_warmup_decay(optimizer, warmup_fraction=0.1, total_steps=100)
    assert fraction.factor(9) == 1 and fraction.factor(4) == pytest.approx(0.5)
    fraction.set_total_steps(1000)  # ... but a warm-up fraction stretches with it
    assert fraction.factor(49) == pytest.approx(0.5)


def test_schedule_arguments_are_checked():
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    with pytest.raises(ValueError, match="give one of warmup_steps=5 and warmup_fraction=0.1"):
        linear_warmup_decay(optimizer, warmup_steps=5, warmup_fraction=0.1, total_steps=10)
    with pytest.raises(ValueError, match="warmup_fraction must be in"):
        linear_warmup_decay(optimizer, warmup_fraction=1.5, total_steps=10)
    with pytest.raises(ValueError, match="decay_fraction must be in"):
        linear_warmup_decay(optimizer, warmup_steps=1, total_steps=10, decay_fraction=0)
    with pytest.raises(ValueError, match="min_ratio must be in"):
        cosine_warmup(optimizer, warmup_steps=1, total_steps=10, min_ratio=2)


def test_a_revised_horizon_is_checkpointed_as_plain_numbers():
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    schedule = linear_warmup_decay(optimizer, warmup_fraction=0.1, total_steps=PROVISIONAL_STEPS)
    schedule.set_total_steps(321)
    buffer = io.BytesIO()
    torch.save(schedule.state_dict(), buffer)
    buffer.seek(0)
    restored = linear_warmup_decay(optimizer, warmup_fraction=0.1, total_steps=PROVISIONAL_STEPS)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.total_steps == 321 and isinstance(restored, HorizonLR)


def test_a_run_bounded_only_by_time_without_the_horizon_callback_is_an_error_naming_it(monkeypatch):
    """No callback is added behind the config's back: a time-boxed trainer built without it is told what to add."""
    with pytest.raises(ConfigError, match="needs the callback attnlab.training.horizon.ScheduleHorizon"):
        fit_on_the_clock(monkeypatch, lambda step: 1.0, callbacks=[])
    module = fit_on_the_clock(monkeypatch, lambda step: 1.0, callbacks=[], max_steps=30)  # bounded: not needed
    assert module.horizons[0] == 30


def test_budget_sets_max_time_and_lifts_the_epoch_limit(compose):
    cfg = compose("experiment=nw_parametric", "budget=90.5")
    apply_budget(cfg)
    assert cfg.trainer.max_time == "00:01:30:30" and cfg.trainer.max_epochs == -1
    cfg = compose("experiment=nw_parametric")
    apply_budget(cfg)
    assert cfg.trainer.max_time is None and cfg.trainer.max_epochs > 0
    with pytest.raises(ConfigError, match="budget must be a positive number of minutes, got 0"):
        apply_budget(compose("experiment=nw_parametric", "budget=0"))


def test_a_warmup_in_steps_never_shrinks_when_the_horizon_drops_under_it(monkeypatch, caplog):
    # 1 s a step for 15 steps, then 20 s: the 60 s budget ends near step 17, inside the 20-step warm-up
    steps = functools.partial(linear_warmup_decay, warmup_steps=20)
    with caplog.at_level("WARNING", logger="attnlab.training.optim"):
        module = fit_on_the_clock(monkeypatch, lambda step: 1.0 if step < 15 else 20.0, max_time="00:00:01:00",
                                  scheduler=steps)
    assert module.horizons[-1] < 20  # the estimate fell under the warm-up ...
    assert module.lrs == pytest.approx([(step + 1) / 20 for step in range(len(module.lrs))])  # ... which kept going
    assert caplog.text.count("the run ends inside its warm-up") == 1


def test_the_rate_never_moves_backwards_when_the_horizon_is_revised():
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    schedule = linear_warmup_decay(optimizer, warmup_fraction=0.1, total_steps=100)
    lrs = []
    for step in range(60):
        if step == 5:
            schedule.set_total_steps(1000)  # a longer warm-up: hold the rate until the ramp catches up
        if step == 20:
            schedule.set_total_steps(30)  # the warm-up is over: decay faster ...
        if step == 25:
            schedule.set_total_steps(200)  # ... and hold, not rise again, when the horizon grows back
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    warmup, decay = lrs[:lrs.index(max(lrs)) + 1], lrs[lrs.index(max(lrs)):]
    assert all(b >= a for a, b in zip(warmup, warmup[1:])) and all(b <= a for a, b in zip(decay, decay[1:]))
    assert lrs[6] == lrs[5] == pytest.approx(0.6) and lrs[26] == lrs[25] > 0  # revisions act on the next step


def test_a_warmup_longer_than_a_known_run_is_cut_at_the_start_with_a_warning(caplog):
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    with caplog.at_level("WARNING", logger="attnlab.training.optim"):
        schedule = linear_warmup_decay(optimizer, warmup_steps=50, total_steps=40)
    assert "warmup_steps=50 >= total_steps=40 of this run: warming up for 4 steps instead" in caplog.text
    schedule.set_total_steps(400)
    assert schedule.warmup_length() == 4
