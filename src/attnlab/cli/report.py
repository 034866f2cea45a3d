"""``attnlab-report DIR [DIR ...]``: a study's answer in one command. Runs are grouped into variants (their overrides
without ``seed``); per variant the seeds, mean ± sd and 95 % interval of each chosen metric, steps and wall time;
each variant against a baseline, with an interval and a verdict that count seed and test-set noise
(:mod:`attnlab.cli.stats`); curves with a band over seeds, by step and by wall time; then every run, failed and
pruned ones included.

    attnlab-report outputs/transformer_mt/multirun/2026-01-01_12-00-00 metric=test/bleu baseline=+ablation=baseline
    attnlab-report outputs/bert_finetune_sst2/ablation outputs/bert_finetune_snli/ablation metric=val/acc
    attnlab-report outputs metric=val/loss out=reports/all maximize=val/token_acc
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from attnlab.cli import stats
from attnlab.cli.arguments import parse_key_values, run_main
from attnlab.cli.directions import metric_mode
from attnlab.cli.runs import Run, as_roots, cell, common_root, load_runs, markdown, table
from attnlab.cli.variants import (
    BOOTSTRAP_SAMPLES, Resamples, Row, Variant, compare_variants, find_baseline, group_variants,
    mean_steps_and_minutes, variant_curve,
)
from attnlab.lit import plots
from matplotlib import pyplot as plt  # after attnlab.lit.plots, which selects the headless backend

USAGE = (
    "usage: attnlab-report DIR [DIR ...] [metric=NAME ...] [baseline='KEY=VALUE ...'] [curve=NAME ...] [out=DIR]\n"
    "                      [maximize=NAME ...] [run_only=KEY ...]\n"
    "  gathers every run (a dir holding .hydra/config.yaml) under the DIRs into report.md, report_variants.csv,\n"
    "  report.csv and report_<metric>.png. Runs that differ only in seed (and run_only keys) form a variant.\n"
    "  metric (repeatable): compared across variants (default: the runs' monitor); baseline: the overrides that name\n"
    "  the variant the others are compared with (default: the first); curve (repeatable): plotted with a band over\n"
    "  seeds by step and by wall time (default: the first metric and the training loss); out: where to write (default: the\n"
    "  DIR, or the common parent of several); maximize (repeatable): a metric whose best value is its largest (the\n"
    "  per-run table); run_only (repeatable): another key that does not define a variant"
)
METHOD = (
    "Each run counts with its last logged value. Interval: 95 % Student t over seeds. Δ: difference of the seed means "
    "from the baseline's; its 95 % interval and p come from Welch's t over seeds, widened where the runs wrote their "
    "test outputs (translations/test.hyp and .ref) by a paired bootstrap over the test examples ({samples} resamples, "
    "one draw shared by every run, sacrebleu's per-sentence statistics), combined with Welch-Satterthwaite degrees of "
    "freedom. \"test set alone\": seed-matched pairs that sacrebleu's paired bootstrap on the test set alone calls "
    "significant (p < 0.05), which ignores seed variance."
)


class ReportFiles(NamedTuple):
    markdown: Path
    variants_csv: Path
    runs_csv: Path
    plots: list[Path]


def _plus_minus(summary: stats.Summary | None) -> str:
    if summary is None:
        return "not logged"
    return f"{summary.mean:.4g}" + ("" if summary.std is None else f" ± {summary.std:.2g}")


def _interval(summary: stats.Summary | None) -> str:
    if summary is None or summary.half_width is None:
        return "no interval"
    return f"[{summary.mean - summary.half_width:.4g}, {summary.mean + summary.half_width:.4g}]"


def _difference(row: Row) -> str:
    d = row.difference
    if d is None:
        return ""
    if d.low is None:
        return f"{d.difference:+.3g} (no interval)"
    return f"{d.difference:+.3g} [{d.low:+.3g}, {d.high:+.3g}]"


def variant_table(rows: list[Row], metric: str) -> tuple[list[str], list[list[object]]]:
    columns = ["variant", "seeds", f"{metric} mean ± sd", "95 % CI", "Δ vs baseline [95 % CI]", "p", "verdict",
               "test set alone", "steps", "wall time (min)"]
    lines = []
    for row in rows:
        steps, minutes = mean_steps_and_minutes(row.variant)
        p_value = "" if row.difference is None or row.difference.p_value is None else f"{row.difference.p_value:.3g}"
        lines.append([row.variant.label, len(row.variant.values(metric)), _plus_minus(row.summary),
                      _interval(row.summary), _difference(row), p_value, row.verdict, row.seeds_significant_alone,
                      round(steps), round(minutes, 1)])
    return columns, lines


def _csv_rows(rows: list[Row], metric: str) -> list[list[object]]:
    out = []
    for row in rows:
        s, d = row.summary, row.difference
        half = None if s is None else s.half_width
        out.append([
            row.variant.label, metric, len(row.variant.values(metric)), *(("", "", "", "") if s is None else (
                s.mean, "" if s.std is None else s.std, "" if half is None else s.mean - half,
                "" if half is None else s.mean + half)),
            *(("", "", "", "") if d is None else (d.difference, "" if d.low is None else d.low,
                                                   "" if d.high is None else d.high,
                                                   "" if d.p_value is None else d.p_value)),
            row.verdict, row.seeds_significant_alone, *mean_steps_and_minutes(row.variant),
        ])
    return out


def _plot(variants: list[Variant], metric: str, out: Path) -> Path | None:
    panels = {}
    for xlabel, by in (("step", "step"), ("wall time (min)", "time")):
        curves = {v.label: curve for v in variants if (curve := variant_curve(v, metric, by)) is not None}
        if curves:
            panels[xlabel] = curves
    if not panels:
        return None
    path = out / f"report_{metric.replace('/', '_')}.png"
    figure = plots.variant_curves(panels, metric)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _not_averaged(excluded: list[Run]) -> str:
    if not excluded:
        return ""
    lines = [f"- {run.name}: {run.state}" + (f" ({run.error})" if run.error else "") for run in excluded]
    return "Not averaged (failed or pruned):\n\n" + "\n".join(lines) + "\n\n"


def write_report(roots: str | Path | Iterable[str | Path], out: str | Path | None = None,
                 metrics: Iterable[str] = (), baseline: str | None = None, curves: Iterable[str] = (),
                 maximize: Iterable[str] = (), run_only: Iterable[str] = ()) -> ReportFiles:
    """Write ``report.md``, ``report_variants.csv``, ``report.csv`` and ``report_<metric>.png`` into ``out``
    (default: the one root, or the common parent of several)."""
    roots = as_roots(roots)
    runs = load_runs(roots)
    metrics = list(metrics) or [next((run.monitor for run in runs if run.monitor), "val/loss")]
    logged = sorted({m for run in runs for m in run.history})
    for metric in metrics:
        if metric not in logged:
            why = f"logged: {', '.join(logged)}" if logged else (
                "none of them logged any metric (a debug=fdr or logger=none run logs none, nor does one that stopped "
                "before its first log step)")
            raise ValueError(f"metric={metric!r} was logged by none of the {len(runs)} runs; {why}")
    variants, excluded = group_variants(runs, run_only)
    if not variants:
        raise ValueError(f"none of the {len(runs)} runs ended well: " + "; ".join(f"{r.name} {r.state}" for r in runs))
    base = find_baseline(variants, baseline)
    out = Path(out) if out is not None else common_root(roots)
    out.mkdir(parents=True, exist_ok=True)

    sections, csv_rows = [], []
    for metric in metrics:
        resamples = Resamples(metric, [run for variant in variants for run in variant.runs])
        rows = compare_variants(variants, base, metric, resamples)
        mode = {"max": "higher is better", "min": "lower is better"}.get(metric_mode(metric), "direction unknown")
        tested = f"; paired bootstrap over {resamples.num_examples:,} test examples" if resamples.scores else \
            "; no per-example test outputs: seeds only"
        sections.append(f"### {metric} ({mode}{tested})\n\n{markdown(*variant_table(rows, metric))}")
        csv_rows += _csv_rows(rows, metric)
    training_loss = [name for name in ("train/loss", "train/loss_step") if name in logged][:1]
    curve_metrics = list(dict.fromkeys(list(curves) or [metrics[0], *training_loss]))
    plot_paths = [path for metric in curve_metrics if (path := _plot(variants, metric, out)) is not None]

    variants_csv = out / "report_variants.csv"
    with variants_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "metric", "seeds", "mean", "std", "ci_low", "ci_high", "difference",
                         "difference_low", "difference_high", "p", "verdict", "test_set_alone", "steps",
                         "wall_time_min"])
        writer.writerows(csv_rows)
    columns, run_rows = table(runs, maximize)
    runs_csv = out / "report.csv"
    with runs_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(run_rows)
    md_path = out / "report.md"
    seeds = sorted({len(v.runs) for v in variants})
    md_path.write_text(
        f"# Runs under {', '.join(str(root.resolve()) for root in roots)}\n\n"
        f"{len(runs)} runs: {sum(len(v.runs) for v in variants)} in {len(variants)} variants "
        f"({'/'.join(map(str, seeds))} seeds each), {len(excluded)} not averaged. Baseline: {cell(base.label)}.\n\n"
        f"{METHOD.format(samples=BOOTSTRAP_SAMPLES)}\n\n" + "\n".join(sections) + "\n"
        + "".join(f"![{path.stem}]({path.name})\n" for path in plot_paths) + "\n"
        + _not_averaged(excluded)
        + "## Every run\n\nBest = min, except for metrics better when higher (by name, a run's monitor with "
        f"monitor_mode=max, or maximize=).\n\n{markdown(columns, run_rows)}"
    )
    return ReportFiles(md_path, variants_csv, runs_csv, plot_paths)


def run(argv: list[str]) -> None:
    repeatable = ("metric", "curve", "maximize", "run_only")
    options = parse_key_values(argv, ("metric", "baseline", "curve", "out", "maximize", "run_only"),
                               repeatable=repeatable, positional="dirs")
    if not options["dirs"]:
        raise ValueError("give at least one DIR")
    files = write_report(options["dirs"], out=options.get("out"), metrics=options["metric"],
                         baseline=options.get("baseline"), curves=options["curve"], maximize=options["maximize"],
                         run_only=options["run_only"])
    print(files.markdown.read_text())
    for path in (files.markdown, files.variants_csv, files.runs_csv, *files.plots):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_main("attnlab-report", USAGE, run, argv)


if __name__ == "__main__":
    main()
