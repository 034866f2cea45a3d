"""The schedules are pure functions of ``(step, total)``: checked against the textbook formulas at chosen points."""
import math

import pytest

from attnlab.training import schedules


@pytest.mark.parametrize("schedule", [schedules.linear, schedules.cosine, schedules.inverse_sqrt])
def test_the_warmup_climbs_linearly_to_the_peak(schedule):
    assert [schedule(step, 100, warmup=4) for step in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_linear_decay_is_the_straight_line_from_the_warmup_to_the_floor():
    # 1 - (1 - min) * (s - w) / (T - w), with w = 10, T = 110, min = 0.1
    for step in (10, 35, 60, 110):
        assert schedules.linear(step, 110, warmup=10, min_ratio=0.1) == pytest.approx(1 - 0.9 * (step - 10) / 100)
    assert schedules.linear(500, 110, warmup=10) == 0.0  # past the end: the floor


def test_linear_with_a_decay_fraction_holds_the_peak_until_the_last_part():
    # warm-up 10, stable to step 80, then linear to 0 at 100 (decay_fraction 0.2)
    assert schedules.linear(50, 100, warmup=10, decay_fraction=0.2) == 1.0
    assert schedules.linear(90, 100, warmup=10, decay_fraction=0.2) == pytest.approx(0.5)


def test_cosine_decay_is_half_a_cosine_to_the_floor():
    # min + (1 - min) / 2 * (1 + cos(pi * (s - w) / (T - w))), with w = 20, T = 120, min = 0.1
    for step in (20, 45, 70, 95, 120):
        expected = 0.1 + 0.45 * (1 + math.cos(math.pi * (step - 20) / 100))
        assert schedules.cosine(step, 120, warmup=20, min_ratio=0.1) == pytest.approx(expected)
    assert schedules.cosine(70, 120, warmup=20) == pytest.approx(0.5)  # halfway: half the peak


def test_inverse_sqrt_is_vaswanis_rate_over_its_peak():
    # Vaswani et al. eq. 3: d^-0.5 * min(n^-0.5, n * w^-1.5) with n = step + 1, divided by its peak d^-0.5 * w^-0.5
    def vaswani(n, warmup, d_model=512):
        return d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)

    for step in (0, 999, 3999, 4000, 15999, 100_000):
        assert schedules.inverse_sqrt(step, None, warmup=4000) == pytest.approx(vaswani(step + 1, 4000) / vaswani(4000, 4000))
