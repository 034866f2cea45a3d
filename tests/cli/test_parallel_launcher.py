"""``hydra/launcher=parallel``: each job's share of the machine (cores and threads; GPUs with faked device counts),
failing jobs recorded while the others finish, seeds that share one test set, and attnlab's Optuna sweeper
handing it batches of trials. Its wall-time gain is measured by ``bench/parallel_launch.py``, not here."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate

from cli_support import find_run_dirs, run_attnlab, tiny_transformer_args, write_pairs
from hydra_plugins.attnlab_parallel_launcher.parallel_launcher import Slot, plan_slots, usable_cpus, visible_gpus


def test_cores_are_dealt_out_without_overlap():
    assert plan_slots(2, [0, 1], []) == [Slot((0,), 1, None), Slot((1,), 1, None)]
    assert plan_slots(2, [0, 1, 2, 3], []) == [Slot((0, 1), 2, None), Slot((2, 3), 2, None)]
    assert plan_slots(None, [4, 5, 6], [], threads_per_job=1) == [Slot((c,), 1, None) for c in (4, 5, 6)]
    assert plan_slots(3, [0, 1], [], threads_per_job=1)[2] == Slot((0,), 1, None)  # more jobs than cores: wraps
    assert plan_slots(1, [0, 1], [])[0].env() == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def test_gpus_are_dealt_out_one_per_job_from_a_faked_device_count(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    gpus = visible_gpus()
    assert gpus == ["0", "1", "2", "3"]
    slots = plan_slots(None, list(range(16)), gpus)  # null n_jobs: one job per GPU, the cores shared out
    assert [s.gpus for s in slots] == [("0",), ("1",), ("2",), ("3",)] and [s.threads for s in slots] == [4] * 4
    assert slots[2].env()["CUDA_VISIBLE_DEVICES"] == "2"
    assert [s.gpus for s in plan_slots(2, [0], gpus, gpus_per_job=2)] == [("0", "1"), ("2", "3")]
    assert plan_slots(2, [0], gpus, gpus_per_job=0)[0].env()["CUDA_VISIBLE_DEVICES"] == ""  # GPUs hidden
    with pytest.raises(ValueError, match="n_jobs=3 jobs of gpus_per_job=2 need 6 GPUs; visible: 4"):
        plan_slots(3, [0], gpus, gpus_per_job=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the variable's own list wins over the count
    assert visible_gpus() == ["3", "5"]
    with pytest.raises(ValueError, match="threads_per_job=0"):
        plan_slots(2, [0, 1], [], threads_per_job=0)


def test_launcher_config_builds_its_slots(compose):
    cfg = compose("hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra.launcher.threads_per_job=1",
                  hydra_node=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert [slot.threads for slot in launcher.slots] == [1, 1] and launcher.pin_cpus


def _records(sweep: Path) -> dict[str, dict]:
    return {run.name: yaml.safe_load((run / "launch.yaml").read_text()) for run in find_run_dirs(sweep)}


def _fra_txt(tmp_path: Path) -> Path:
    """A one-file corpus (fra.txt layout), so that the val/test split is carved by data.split_seed."""
    data = write_pairs(tmp_path / "pairs", counts=(80, 0, 0))
    en, fr = ((data / f"train.{side}").read_text().splitlines() for side in ("en", "fr"))
    path = tmp_path / "fra.txt"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in zip(en, fr)))
    return path


@pytest.mark.slow
def test_jobs_run_pinned_two_at_a_time_failures_recorded_seeds_share_the_test_set(tmp_path: Path):
    fra = _fra_txt(tmp_path)
    args = [arg for arg in tiny_transformer_args(tmp_path) if not arg.startswith(("data=", "data.corpus."))]
    outputs = tmp_path / "outputs"
    proc = run_attnlab(["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra.launcher.threads_per_job=1",
                        *args, "data=fra_eng", f"data.corpus.path={fra}", "data.val_fraction=0.2",
                        "data.test_fraction=0.2", "trainer.max_epochs=1", "model.optimizer.lr=0.001,-1", "seed=1,2"],
                       outputs, check=False, timeout=600)
    assert proc.returncode != 0 and "Invalid learning rate" in proc.stderr  # the multirun reports the failure
    (sweep,) = (outputs / "transformer_mt" / "multirun").iterdir()
    records = _records(sweep)
    # jobs (lr, seed): (0.001, 1), (0.001, 2), (-1, 1), (-1, 2)
    assert [records[name]["status"] for name in ("0", "1", "2", "3")] == ["COMPLETED", "COMPLETED", "FAILED", "FAILED"]
    assert "Invalid learning rate: -1" in records["2"]["error"]
    for record in records.values():  # what each job itself saw: one thread, bound to its slot's core
        assert record["seen"]["OMP_NUM_THREADS"] == "1" and record["seen"]["torch_threads"] == 1
        assert record["seen"]["cpus"] == record["slot"]["cpus"] and len(record["slot"]["cpus"]) == 1
    if len(usable_cpus()) >= 2:  # the first two jobs ran at once, each on its own core
        assert records["0"]["slot"]["cpus"] != records["1"]["slot"]["cpus"]
    # runs that differ only in seed were tested on the same sentences
    refs = [(sweep / name / "translations" / "test.ref").read_text() for name in ("0", "1")]
    assert refs[0] == refs[1] and len(refs[0].splitlines()) > 5

    report = run_attnlab([str(sweep), "metric=test/bleu"], tmp_path, program="attnlab-report")
    assert "4 runs: 2 in 1 variants (2 seeds each), 2 not averaged" in report.stdout
    assert "- 2: FAILED (ValueError: Invalid learning rate: -1" in report.stdout


@pytest.mark.slow
def test_optuna_trials_get_one_faked_gpu_each(tmp_path: Path):
    outputs = tmp_path / "outputs"
    run_attnlab(["-m", "hydra/launcher=parallel", "experiment=nw_parametric", "hparams_search=nw_optuna",
                 "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2", "trainer.max_epochs=2", "test=false",
                 "~callbacks.progress_bar"], outputs, CUDA_VISIBLE_DEVICES="3,5")
    (sweep,) = (outputs / "nw_parametric" / "multirun").iterdir()
    records = _records(sweep)
    assert sorted(records) == ["0", "1", "2"] and all(r["status"] == "COMPLETED" for r in records.values())
    assert {records["0"]["seen"]["CUDA_VISIBLE_DEVICES"], records["1"]["seen"]["CUDA_VISIBLE_DEVICES"]} == {"3", "5"}
    assert records["2"]["seen"]["CUDA_VISIBLE_DEVICES"] in ("3", "5")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["trials"]["COMPLETE"] == 3
