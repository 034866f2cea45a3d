"""Runs grouped into variants, and each variant against a baseline: the answer to "is B better than A, by how much,
and is that more than seed and test-set noise?".

A variant is a set of overrides with the run-only keys removed (``seed`` and keys that change how a run is run or
shown, not what it learns), so ``seed=1,2,3`` makes three runs of each variant. Only runs that ended well are
averaged; failed and pruned ones are listed apart. Each metric's value in a run is its last logged one.
"""
from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from attnlab.cli import stats
from attnlab.cli.directions import metric_mode
from attnlab.cli.example_scores import read_example_stats, score_from_sums
from attnlab.cli.runs import Run

# keys that change how a run is run or shown, not the variant; a prefix covers its subkeys (`logger.wandb.project`)
RUN_ONLY_KEYS = ("seed", "ckpt_path", "callbacks.progress_bar", "logger", "trainer.enable_progress_bar", "hydra")
BOOTSTRAP_SAMPLES = 1000


def run_only(key: str, extra: Iterable[str] = ()) -> bool:
    bare = key.lstrip("+~")
    return any(bare == k or bare.startswith(k + ".") for k in (*RUN_ONLY_KEYS, *extra))


@dataclass
class Variant:
    overrides: dict[str, str]  # what defines it (run-only keys removed)
    runs: list[Run] = field(default_factory=list)  # the runs that ended well
    label: str = ""  # the overrides in which variants differ

    def values(self, metric: str) -> list[float]:
        """The metric's last logged value in each run that logged it."""
        return [run.history[metric][-1][1] for run in self.runs if metric in run.history]


def group_variants(runs: Sequence[Run], extra_run_only: Iterable[str] = ()) -> tuple[list[Variant], list[Run]]:
    """Variants in order of first appearance, and the runs not averaged (failed or pruned)."""
    extra_run_only = tuple(extra_run_only)
    variants: dict[tuple, Variant] = {}
    for run in runs:
        overrides = {key: value for key, value in run.overrides.items() if not run_only(key, extra_run_only)}
        variant = variants.setdefault(tuple(overrides.items()), Variant(overrides))
        if run.ended_well:
            variant.runs.append(run)
    grouped = [variant for variant in variants.values() if variant.runs]
    keys = list(dict.fromkeys(key for variant in grouped for key in variant.overrides))
    differing = [key for key in keys if len({variant.overrides.get(key) for variant in grouped}) > 1]
    for variant in grouped:
        variant.label = " ".join(f"{key}={variant.overrides.get(key, '(unset)')}" for key in differing) or "all runs"
    return grouped, [run for run in runs if not run.ended_well]


def parse_overrides(text: str) -> dict[str, str]:
    """``"pos_encoding=learned norm=rmsnorm"`` as a dict; a value may be quoted."""
    pairs = {}
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"baseline={text!r}: {item!r} is not key=value")
        pairs[key] = value
    return pairs


def find_baseline(variants: Sequence[Variant], spec: str | None) -> Variant:
    """The variant whose overrides include every ``key=value`` of ``spec``; None: the first variant."""
    if spec is None:
        return variants[0]
    wanted = parse_overrides(spec)
    matches = [v for v in variants if all(v.overrides.get(key) == value for key, value in wanted.items())]
    if len(matches) != 1:
        found = "none" if not matches else f"{len(matches)}: " + "; ".join(v.label for v in matches)
        raise ValueError(f"baseline={spec!r} must name one variant, it matches {found}; the variants are: "
                         + "; ".join(v.label for v in variants))
    return matches[0]


@dataclass(frozen=True)
class Row:
    """One variant's line for one metric."""

    variant: Variant
    summary: stats.Summary | None  # None: no run logged the metric
    difference: stats.Difference | None  # None for the baseline
    verdict: str
    seeds_significant_alone: str  # seed-matched pairs the test-set bootstrap alone calls significant, e.g. "3/3"


def _verdict(difference: stats.Difference, mode: str | None) -> str:
    if difference.p_value is None:
        return "no interval"
    if difference.p_value >= 1 - stats.CONFIDENCE:
        return "not significant"
    higher = difference.difference > 0
    if mode is None:
        return "higher" if higher else "lower"
    return "better" if higher == (mode == "max") else "worse"


class Resamples:
    """Each run's score on one shared set of bootstrap resamples of the test examples (a paired bootstrap)."""

    def __init__(self, metric: str, runs: Iterable[Run], seed: int = 0):
        self.metric, self.scores = metric, {}
        examples = {run.name: read_example_stats(run.path, metric) for run in runs if run.path is not None}
        examples = {name: found for name, found in examples.items() if found is not None}
        if not examples:
            return
        test_sets = {found.references for found in examples.values()}
        if len(test_sets) > 1:
            raise ValueError(f"{metric}: the runs were tested on {len(test_sets)} different test sets (runs of one "
                             "study must share data.split_seed and the test data): " + ", ".join(
                                 f"{name} ({found.references})" for name, found in examples.items()))
        size = len(next(iter(examples.values())).stats)
        weights = stats.resample_weights(size, BOOTSTRAP_SAMPLES, seed)
        score = score_from_sums(metric)
        self.num_examples = size
        self.scores = {name: stats.resampled_scores(weights, found.stats, score) for name, found in examples.items()}

    def covers(self, variant: Variant) -> bool:
        return bool(variant.runs) and all(run.name in self.scores for run in variant.runs)


def compare_variants(variants: Sequence[Variant], baseline: Variant, metric: str,
                     resamples: Resamples | None = None) -> list[Row]:
    mode = metric_mode(metric)
    base_values = baseline.values(metric)
    rows = []
    for variant in variants:
        values = variant.values(metric)
        summary = stats.summarize(values) if values else None
        if variant is baseline or not values or not base_values:
            rows.append(Row(variant, summary, None, "baseline" if variant is baseline else "not logged", ""))
            continue
        paired = resamples is not None and resamples.covers(variant) and resamples.covers(baseline)
        variance = stats.bootstrap_variance([resamples.scores[r.name] for r in baseline.runs],
                                            [resamples.scores[r.name] for r in variant.runs]) if paired else None
        difference = stats.compare(base_values, values, variance)
        alone = _seeds_significant_alone(baseline, variant, metric, resamples) if paired else ""
        rows.append(Row(variant, summary, difference, _verdict(difference, mode), alone))
    return rows


def _seeds_significant_alone(baseline: Variant, variant: Variant, metric: str, resamples: Resamples) -> str:
    """Of the seed-matched pairs, how many sacrebleu's paired bootstrap over the test set alone calls significant."""
    by_seed = {run.seed: run for run in baseline.runs}
    pairs = [(by_seed[run.seed], run) for run in variant.runs if run.seed in by_seed]
    hits = sum(
        stats.paired_bootstrap_p(resamples.scores[a.name], resamples.scores[b.name],
                                 b.history[metric][-1][1] - a.history[metric][-1][1]) < 1 - stats.CONFIDENCE
        for a, b in pairs if metric in a.history and metric in b.history)
    return f"{hits}/{len(pairs)}" if pairs else ""


def mean_steps_and_minutes(variant: Variant) -> tuple[float, float]:
    steps = [max(step for history in run.history.values() for step, _ in history) if run.history else 0
             for run in variant.runs]
    return float(np.mean(steps)), float(np.mean([run.wall_time_s for run in variant.runs])) / 60


Curve = tuple[np.ndarray, np.ndarray, np.ndarray]  # x, mean over seeds, standard deviation over seeds


def _elapsed_minutes(run: Run, steps: np.ndarray) -> np.ndarray | None:
    """Wall time at each step, from the ``train/elapsed_s`` the run logged (None if it logged none)."""
    elapsed = run.history.get("train/elapsed_s")
    if not elapsed:
        return None
    at, seconds = (np.asarray(column, dtype=float) for column in zip(*elapsed))
    return np.interp(steps, at, seconds) / 60


def variant_curve(variant: Variant, metric: str, by: str = "step", points: int = 200) -> Curve | None:
    """The metric's mean and standard deviation over seeds against ``by`` (``step`` or ``time``, in minutes), on
    the range that every seed covers; None when a run lacks the metric (or, by time, its elapsed time)."""
    series = []
    for run in variant.runs:
        if metric not in run.history:
            return None
        steps, values = (np.asarray(column, dtype=float) for column in zip(*run.history[metric]))
        x = steps if by == "step" else _elapsed_minutes(run, steps)
        if x is None:
            return None
        series.append((x, values))
    if len(series) == 1:
        x, values = series[0]
        return x, values, np.zeros_like(values)
    if any(len(x) == 1 for x, _ in series):  # a single point in a run (one validation): the last points' mean
        xs, ys = (np.array([s[i][-1] for s in series]) for i in (0, 1))
        return np.array([xs.mean()]), np.array([ys.mean()]), np.array([ys.std(ddof=1)])
    start, end = max(x[0] for x, _ in series), min(x[-1] for x, _ in series)
    grid = np.linspace(start, end, points) if end > start else np.array([end])
    resampled = np.stack([np.interp(grid, x, values) for x, values in series])
    return grid, resampled.mean(0), resampled.std(0, ddof=1)
