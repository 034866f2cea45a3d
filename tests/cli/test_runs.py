"""attnlab.cli.runs on hand-written run dirs: best = min or max by metric, overrides as columns, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from attnlab.cli.report import write_report
from attnlab.cli.runs import load_runs, table


def _run(root: Path, name: str, overrides: list[str], csv_text: str, monitor_mode: str = "min") -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run / ".hydra" / "config.yaml").write_text(f"monitor: val/loss\nmonitor_mode: {monitor_mode}\n")
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text(csv_text)
    return run


CSV_A = """epoch,step,train/loss_step,val/loss,val/acc,test/loss
0,4,2.0,,,
0,4,,1.5,0.40,
1,9,,1.2,0.70,
2,14,,1.3,0.60,
3,15,,,,1.25
"""
CSV_B = """epoch,step,val/loss,val/acc
0,4,0.9,0.8
1,9,1.1,0.9
"""


def test_table_final_and_best_per_metric(tmp_path: Path):
    _run(tmp_path, "multirun/0", ["model.optimizer.lr=0.1", "seed=1"], CSV_A)
    _run(tmp_path, "multirun/10", ["model.optimizer.lr=0.01"], CSV_B)
    _run(tmp_path, "multirun/2", ["model.optimizer.lr=0.001", "~logger"], CSV_B)
    runs = load_runs(tmp_path)
    assert [r.name for r in runs] == ["multirun/0", "multirun/2", "multirun/10"]  # natural order
    columns, rows = table(runs)
    assert columns[:4] == ["run", "model.optimizer.lr", "seed", "~logger"]
    first = dict(zip(columns, rows[0]))
    assert first["final val/loss"] == 1.3 and first["best val/loss"] == 1.2  # loss: lower is better
    assert first["final val/acc"] == 0.6 and first["best val/acc"] == 0.7  # accuracy: higher is better
    assert first["final test/loss"] == 1.25 and first["last_step"] == 15
    assert "train/loss_step" not in " ".join(columns)
    last = dict(zip(columns, rows[2]))
    assert last["seed"] == "" and last["final test/loss"] == "" and last["best val/loss"] == 0.9


def test_monitor_mode_and_maximize_decide_best(tmp_path: Path):
    _run(tmp_path, "a", [], CSV_B, monitor_mode="max")
    columns, rows = table(load_runs(tmp_path), maximize=[])
    assert dict(zip(columns, rows[0]))["best val/loss"] == 1.1  # the run's monitor with monitor_mode=max
    files = write_report(tmp_path, out=tmp_path / "r", metrics=["val/acc"])
    assert files.plots[0].name == "report_val_acc.png" and files.plots[0].stat().st_size > 0
    assert "| a |" in files.markdown.read_text() and files.runs_csv.read_text().startswith("run,")


def test_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_runs(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no run dirs"):
        load_runs(tmp_path)
    _run(tmp_path, "a", [], CSV_B)
    with pytest.raises(ValueError, match=r"metric='val/bleu'.*logged: val/acc, val/loss"):
        write_report(tmp_path, metrics=["val/bleu"])


def test_several_dirs_make_one_table_named_from_their_common_parent(tmp_path: Path):
    _run(tmp_path, "sst2/ablation/0", ["data=sst2", "model.freeze_encoder=false"], CSV_B, monitor_mode="max")
    _run(tmp_path, "snli/ablation/0", ["data=snli", "model.freeze_encoder=true"], CSV_A, monitor_mode="max")
    runs = load_runs([tmp_path / "sst2" / "ablation", tmp_path / "snli" / "ablation"])
    assert [run.name for run in runs] == ["sst2/ablation/0", "snli/ablation/0"]
    columns, rows = table(runs)
    assert columns[:3] == ["run", "data", "model.freeze_encoder"]
    assert [row[1] for row in rows] == ["sst2", "snli"]
    files = write_report([tmp_path / "sst2", tmp_path / "snli"], metrics=["val/acc"])
    assert files.markdown.parent == tmp_path.resolve()
    assert "| snli/ablation/0 | snli | true |" in files.markdown.read_text()
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        load_runs([tmp_path / "sst2", tmp_path / "nope"])


def test_chrf_and_ter_have_their_own_directions(tmp_path: Path):
    _run(tmp_path, "a", [], "epoch,step,val/chrf,val/ter\n0,4,30.0,70.0\n1,9,40.0,60.0\n2,14,35.0,65.0\n")
    columns, rows = table(load_runs(tmp_path))
    row = dict(zip(columns, rows[0]))
    assert row["best val/chrf"] == 40.0 and row["best val/ter"] == 60.0  # chrF: higher is better; TER: lower
