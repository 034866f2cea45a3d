"""The runs under one or more multirun or outputs dirs, and one table of them: each run's overrides, its final and
best value of each val/test metric, its last step and wall time, and how it ended.

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
from typing import Iterable

import yaml

from attnlab.cli.directions import metric_mode
from attnlab.training.studies import PRUNING_NODE, read_trial_state
from hydra_plugins.attnlab_parallel_launcher.parallel_launcher import read_launch_record

METRICS_CSV = Path("csv") / "metrics.csv"


@dataclass
class Run:
    name: str  # path relative to the report's root
    overrides: dict[str, str]  # key -> value, as given on the command line
    history: dict[str, list[tuple[int, float]]]  # metric -> [(step, value)] in logging order
    monitor: str | None  # the run's checkpoint metric and its mode, from its config
    monitor_mode: str | None
    wall_time_s: float  # from the job start (.hydra/config.yaml written) to its last written file
    state: str | None = None  # an Optuna trial's outcome (COMPLETE, PRUNED, FAIL) or the parallel launcher's
    #                           (COMPLETED, FAILED, with error); None where neither recorded one
    seed: int | None = None  # from its config
    path: Path | None = None  # its run dir
    error: str | None = None  # why it failed, where the launcher recorded it

    @property
    def ended_well(self) -> bool:
        return self.state in (None, "COMPLETE", "COMPLETED")


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
    return {key: value for key, value in pairs if not key.startswith(PRUNING_NODE + ".")}


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
    launch = read_launch_record(run_dir) or {}
    return Run(
        name=str(run_dir.relative_to(root)) if run_dir != root else run_dir.name,
        overrides=overrides,
        history=read_metrics(metrics) if metrics.is_file() else {},
        monitor=monitor if isinstance(monitor, str) and "${" not in monitor else None,
        monitor_mode=config.get("monitor_mode"),
        wall_time_s=_wall_time_s(run_dir),
        state=read_trial_state(run_dir) or launch.get("status"),
        seed=config.get("seed"),
        path=run_dir,
        error=launch.get("error"),
    )


def as_roots(roots: str | Path | Iterable[str | Path]) -> list[Path]:
    """One root as given; several resolved, so that run names and the output dir come from their common parent."""
    if isinstance(roots, (str, Path)):
        return [Path(roots)]
    roots = [Path(root) for root in roots]
    return roots if len(roots) == 1 else [root.resolve() for root in roots]


def common_root(roots: list[Path]) -> Path:
    """The one root, or the deepest directory holding all of several."""
    return roots[0] if len(roots) == 1 else Path(os.path.commonpath(roots))


def load_runs(roots: str | Path | Iterable[str | Path]) -> list[Run]:
    """Every run under ``roots`` (one dir or several); with several, run names are relative to their common parent."""
    roots = as_roots(roots)
    if not roots:
        raise ValueError("no report dir given")
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"report dir {root} does not exist")
    base = common_root(roots)
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
    return metric_mode(metric) == "max"  # val/nsp_acc, test/bleu, test/chrf


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


def cell(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown(columns: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
