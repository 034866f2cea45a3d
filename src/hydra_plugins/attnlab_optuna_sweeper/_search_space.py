"""Hydra's override grammar as an Optuna search space, and sampled values back as overrides.

    interval(a, b)               float, uniform           tag(log, interval(a, b))   float, log-uniform
    tag(int, interval(a, b))     integer in [a, b]        range(a, b, step)          a grid, b excluded
    choice(x, y, z) or x,y,z     categorical

A plain ``key=value`` is fixed for every trial. (This module imports Optuna; the leading underscore keeps
Hydra's plugin scan, which imports every public module under ``hydra_plugins``, from loading it.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, QuotedString, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

_CATEGORY_TYPES = (bool, int, float, str)  # and None: what Optuna stores as a categorical choice


@dataclass(frozen=True)
class Dimension:
    name: str  # the config key, Optuna's parameter name (model.optimizer.lr)
    key: str  # the override's key as written, with any +/++ prefix
    distribution: BaseDistribution
    spellings: dict[Any, str] = field(default_factory=dict)  # categorical choice -> its text in the override

    def override(self, value: Any) -> str:
        return f"{self.key}={self.spellings.get(value, repr(value))}"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: list[Dimension]
    fixed: list[str]  # overrides every trial gets, as written

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {dimension.name: dimension.distribution for dimension in self.dimensions}

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """One trial's overrides: the fixed ones, then each sampled value."""
        return [*self.fixed, *(dimension.override(params[dimension.name]) for dimension in self.dimensions)]


def parse_search_space(params: Mapping[str, Any] | None, arguments: Iterable[str]) -> SearchSpace:
    """The space of the sweeper's ``params`` (key -> grammar string) and the command line's overrides; a key
    given on the command line replaces the same key in ``params``."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    by_key: dict[str, Override] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        by_key[override.key_or_group] = override
    dimensions = [dimension(o) for o in by_key.values() if o.is_sweep_override()]
    if not dimensions:
        raise ValueError("nothing to search: set hydra.sweeper.params or give a sweep such as "
                         "'model.optimizer.lr=tag(log, interval(1e-4, 1e-2))'")
    fixed = [o.input_line for o in by_key.values() if not o.is_sweep_override()]
    return SearchSpace(dimensions, fixed)


def dimension(override: Override) -> Dimension:
    """The Optuna distribution of one sweep override; a clear error for the sweeps it cannot search."""
    sweep, name, key = override.value(), override.key_or_group, override.get_key_element()
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        if "int" in sweep.tags:
            return Dimension(name, key, IntDistribution(int(sweep.start), int(sweep.end), log=log))
        return Dimension(name, key, FloatDistribution(sweep.start, sweep.end, log=log))
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if not values or "log" in sweep.tags:
            raise ValueError(f"{override.input_line}: a range needs at least one value and has no log scale")
        low, high, step = min(values), max(values), abs(sweep.step)
        if all(isinstance(value, int) for value in values):
            return Dimension(name, key, IntDistribution(low, high, step=step))
        return Dimension(name, key, FloatDistribution(low, high, step=step))
    if isinstance(sweep, ChoiceSweep):
        spellings: dict[Any, str] = {}
        for value, text in zip(sweep.list, override.sweep_string_iterator()):
            choice = value.text if isinstance(value, QuotedString) else value
            spellings[choice if choice is None or isinstance(choice, _CATEGORY_TYPES) else text] = text
        return Dimension(name, key, CategoricalDistribution(list(spellings)), spellings)
    raise ValueError(
        f"{override.input_line}: the Optuna sweeper searches interval(a,b), tag(log|int, interval(a,b)), "
        f"range(a,b,step), choice(...) or a,b,c; not {type(sweep).__name__}"
    )
