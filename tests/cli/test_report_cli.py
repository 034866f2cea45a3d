"""``attnlab-report`` over the run dirs of a real multirun of nw_parametric (logged to W&B offline as well,
which also shows that the jobs of one multirun share a W&B group)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli_support import find_run_dirs, metric_history, run_attnlab, wandb_records


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    outputs = tmp_path_factory.mktemp("report")
    run_attnlab(["-m", "experiment=nw_parametric", "kernel.init_w=0.5,3.0", "trainer.max_epochs=3", "test=false",
                 "~callbacks.progress_bar", "logger=wandb"], outputs)
    (sweep_dir,) = (outputs / "nw_parametric" / "multirun").iterdir()
    return sweep_dir


def test_report_tables_every_run_with_overrides_and_metrics(sweep: Path, tmp_path: Path):
    out = tmp_path / "report"
    proc = run_attnlab([str(sweep), "metric=val/mse", f"out={out}"], tmp_path, program="attnlab-report")
    assert "| run | experiment | kernel.init_w |" in proc.stdout

    with (out / "report.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    runs = find_run_dirs(sweep)
    assert [row["run"] for row in rows] == [run.name for run in runs] == ["0", "1"]
    assert [row["kernel.init_w"] for row in rows] == ["0.5", "3.0"]
    for row, run in zip(rows, runs):
        values = [value for _, value in metric_history(run, "val/mse")]
        assert len(values) == 3
        assert float(row["final val/mse"]) == pytest.approx(values[-1])
        assert float(row["best val/mse"]) == pytest.approx(min(values))
        assert int(row["last_step"]) == max(step for step, _ in metric_history(run, "val/mse"))
        assert float(row["wall_time_s"]) > 0
    assert rows[0]["final val/mse"] != rows[1]["final val/mse"]

    markdown = (out / "report.md").read_text()
    assert markdown.count("\n| 0 | ") == 1 and markdown.count("\n| 1 | ") == 1  # each run, once
    assert "| kernel.init_w=0.5 | 1 |" in markdown and "no interval" in markdown  # one seed a variant
    assert "![report_val_mse](report_val_mse.png)" in markdown
    png = (out / "report_val_mse.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_report_rejects_a_metric_no_run_logged(sweep: Path, tmp_path: Path):
    proc = run_attnlab([str(sweep), "metric=val/bleu", f"out={tmp_path}"], tmp_path,
                        program="attnlab-report", check=False)
    assert proc.returncode != 0
    assert "val/bleu" in proc.stderr and "val/mse" in proc.stderr  # names the logged metrics


def test_jobs_of_a_multirun_share_a_wandb_group(sweep: Path):
    runs = []
    for job in find_run_dirs(sweep):
        (run_file,) = (job / "wandb").glob("offline-run-*/run-*.wandb")
        records = [r for r in wandb_records(run_file) if r.WhichOneof("record_type") == "run"]
        runs += [(r.run.run_id, r.run.run_group) for r in records]
    assert len(runs) == 2 and runs[0][0] != runs[1][0]  # one W&B run per job
    assert runs[0][1] == runs[1][1] == f"nw_parametric-{sweep.name}"


def test_report_on_runs_that_logged_nothing_says_why(tmp_path: Path):
    run_attnlab(["experiment=nw_parametric", "debug=fdr"], tmp_path)  # fast_dev_run: no logger records a metric
    proc = run_attnlab([str(tmp_path / "nw_parametric")], tmp_path, program="attnlab-report", check=False)
    assert proc.returncode == 2
    assert "was logged by none of the 1 runs; none of them logged any metric (a debug=fdr" in proc.stderr
