"""One table over many runs: every run dir under one or more multirun or outputs dirs, its overrides, the final
and best value of each val/test metric, its wall time; written as Markdown and CSV, plus one metric's curves as a PNG.

A run dir is any directory holding ``.hydra/config.yaml`` (Hydra writes it when the job starts); its
metrics come from the CSV logger's ``csv/metrics.csv`` (one row per logging call, empty cells elsewhere).
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

import yaml

from attnlab.lit import plots
from attnlab.lit.studies import PRUNING_OVERRIDE, read_trial_state
from matplotlib import pyplot as plt  # after attnlab.lit.plots, which selects the headless backend

METRICS_CSV = Path("csv") / "metrics.csv"
# Metrics whose best value is the largest; every other metric is a loss or an error (lower is better).
HIGHER_IS_BETTER = ("acc", "accuracy", "bleu", "f1", "precision", "recall", "auroc")


@dataclass
class Run:
    name: str  # path relative to the report's root
    overrides: dict[str, str]  # key -> value, as given on the command line
    history: dict[str, list[tuple[int, float]]]  # metric -> [(step, value)] in logging order
    monitor: str | None  # the run's checkpoint metric and its mode, from its config
    monitor_mode: str | None
    wall_time_s: float  # from the job start (.hydra/config.yaml written) to its last written file
    state: str | None = None  # an Optuna trial's outcome (COMPLETE, PRUNED, FAIL); None for other runs


class ReportFiles(NamedTuple):
    markdown: Path
    csv: Path
    plot: Path


def _natural_key(path: Path) -> list:
    """Sort ``multirun/.../10`` after ``.../9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_run_dirs(root: Path) -> list[Path]:
    return sorted((config.parent.parent for config in root.glob("**/.hydra/config.yaml")), key=_natural_key)


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Columns of a Lightning ``metrics.csv`` as ``{metric: [(step, value)]}``; empty cells are skipped."""
    history: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, cell in row.items():
                if key not in ("step", "epoch") and cell not in ("", None):
                    history.setdefault(key, []).append((step, float(cell)))
    return history


def _parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    pairs = (line.split("=", 1) if "=" in line else (line, "") for line in lines)  # `~key` deletes: no value
    return {key: value for key, value in pairs if key != PRUNING_OVERRIDE}


def _wall_time_s(run_dir: Path) -> float:
    start = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
    newest = start
    for folder, _, files in os.walk(run_dir):
        for file in files:
            if not file.startswith("report"):
                newest = max(newest, (Path(folder) / file).stat().st_mtime)
    return newest - start


def load_run(run_dir: Path, root: Path) -> Run:
    hydra_dir = run_dir / ".hydra"
    overrides_file = hydra_dir / "overrides.yaml"
    overrides = _parse_overrides(yaml.safe_load(overrides_file.read_text()) or []) if overrides_file.is_file() else {}
    config = yaml.safe_load((hydra_dir / "config.yaml").read_text()) or {}
    metrics = run_dir / METRICS_CSV
    monitor = config.get("monitor")
    return Run(
        name=str(run_dir.relative_to(root)) if run_dir != root else run_dir.name,
        overrides=overrides,
        history=read_metrics(metrics) if metrics.is_file() else {},
        monitor=monitor if isinstance(monitor, str) and "${" not in monitor else None,
        monitor_mode=config.get("monitor_mode"),
        wall_time_s=_wall_time_s(run_dir),
        state=read_trial_state(run_dir),
    )


def _as_roots(roots: str | Path | Iterable[str | Path]) -> list[Path]:
    """One root as given; several resolved, so that run names and the output dir come from their common parent."""
    if isinstance(roots, (str, Path)):
        return [Path(roots)]
    roots = [Path(root) for root in roots]
    return roots if len(roots) == 1 else [root.resolve() for root in roots]


def _common_root(roots: list[Path]) -> Path:
    """The one root, or the deepest directory holding all of several."""
    return roots[0] if len(roots) == 1 else Path(os.path.commonpath(roots))


def load_runs(roots: str | Path | Iterable[str | Path]) -> list[Run]:
    """Every run under ``roots`` (one dir or several); with several, run names are relative to their common parent."""
    roots = _as_roots(roots)
    if not roots:
        raise ValueError("no report dir given")
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"report dir {root} does not exist")
    base = _common_root(roots)
    runs = []
    for root in roots:
        run_dirs = find_run_dirs(root)
        if not run_dirs:
            raise FileNotFoundError(f"no run dirs (holding .hydra/config.yaml) under {root}")
        runs += [load_run(run_dir, base) for run_dir in run_dirs]
    return runs


def higher_is_better(metric: str, run: Run, maximize: Iterable[str] = ()) -> bool:
    """``maximize`` names win, then the run's own ``monitor_mode`` for its monitor, then the name's last part."""
    if metric in maximize:
        return True
    if metric == run.monitor and run.monitor_mode in ("min", "max"):
        return run.monitor_mode == "max"
    return any(part in HIGHER_IS_BETTER for part in re.split(r"[/_]", metric.lower()))  # val/nsp_acc, test/bleu


def table(runs: list[Run], maximize: Iterable[str] = ()) -> tuple[list[str], list[list[object]]]:
    """Columns: run, its Optuna trial state (when any run has one), each override key, ``final <m>`` and
    ``best <m>`` per val/test metric, the last logged step and the wall time."""
    maximize = set(maximize)
    override_keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    metrics = sorted({m for run in runs for m in run.history if m.startswith(("val/", "test/"))})
    with_state = any(run.state for run in runs)
    columns = ["run", *(["state"] if with_state else []), *override_keys]
    for metric in metrics:
        columns += [f"final {metric}", f"best {metric}"]
    columns += ["last_step", "wall_time_s"]
    rows = []
    for run in runs:
        row: list[object] = [run.name, *([run.state or ""] if with_state else [])]
        row += [run.overrides.get(key, "") for key in override_keys]
        for metric in metrics:
            values = [value for _, value in run.history.get(metric, [])]
            pick = max if higher_is_better(metric, run, maximize) else min
            row += [values[-1], pick(values)] if values else ["", ""]
        steps = [step for history in run.history.values() for step, _ in history]
        row += [max(steps) if steps else "", round(run.wall_time_s, 1)]
        rows.append(row)
    return columns, rows


def _cell(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown(columns: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def curves(runs: list[Run], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    """``{label: (steps, values)}`` for the runs that logged ``metric``; labels name the varying overrides."""
    varying = [key for key in dict.fromkeys(k for run in runs for k in run.overrides)
               if len({run.overrides.get(key) for run in runs}) > 1]
    result = {}
    for run in runs:
        if metric in run.history:
            label = " ".join(f"{key}={run.overrides.get(key, '')}" for key in varying) or run.name
            steps, values = zip(*run.history[metric])
            result[f"{run.name}: {label}" if varying else label] = (list(steps), list(values))
    return result


def default_metric(runs: list[Run]) -> str:
    return next((run.monitor for run in runs if run.monitor), "val/loss")


def write_report(roots: str | Path | Iterable[str | Path], out: str | Path | None = None, metric: str | None = None,
                 maximize: Iterable[str] = ()) -> ReportFiles:
    """Write ``report.md``, ``report.csv`` and ``report_<metric>.png`` into ``out`` (default: the one root, or the
    common parent of several)."""
    roots = _as_roots(roots)
    runs = load_runs(roots)
    metric = metric or default_metric(runs)
    lines = curves(runs, metric)
    if not lines:
        logged = sorted({m for run in runs for m in run.history})
        why = f"logged: {', '.join(logged)}" if logged else (
            "none of them logged any metric (a debug=fdr or logger=none run logs none, nor does one that stopped "
            "before its first log step)")
        raise ValueError(f"metric={metric!r} was logged by none of the {len(runs)} runs; {why}")
    out = Path(out) if out is not None else _common_root(roots)
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = table(runs, maximize)
    plot_path = out / f"report_{metric.replace('/', '_')}.png"
    figure = plots.metric_curves(lines, metric)
    figure.savefig(plot_path, dpi=110)
    plt.close(figure)
    csv_path = out / "report.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    md_path = out / "report.md"
    md_path.write_text(
        f"# Runs under {', '.join(str(root.resolve()) for root in roots)}\n\n{len(runs)} runs. Best = min, except for the maximized metrics "
        f"(a run's monitor with monitor_mode=max, {', '.join(HIGHER_IS_BETTER)}, or --maximize).\n\n"
        f"{markdown(columns, rows)}\n![{metric}]({plot_path.name})\n"
    )
    return ReportFiles(md_path, csv_path, plot_path)
