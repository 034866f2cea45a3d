"""``logger=wandb`` without an API key or network: an offline run holding the config, metrics, images and
checkpoint artifacts. A resumed training logs under the same W&B run id, its ``trainer/global_step`` going on
from the checkpoint; offline, W&B itself does not resume (its own ``_step`` starts again), as the README says."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_support import metric_history, run_attnlab, wandb_records


def _offline_run(run_dir: Path) -> Path:
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    return run_file


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)  # wandb-core writes most keys as nested_key parts


def _read(run_file: Path) -> dict:
    """Run id and group, config keys, the history rows and the artifacts of an offline run file."""
    out = {"config": {}, "history": [], "artifacts": []}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["group"], out["tags"] = record.run.run_id, record.run.run_group, list(record.run.tags)
        elif kind == "config":
            out["config"].update({_key(item): json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            out["history"].append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "artifact":
            out["artifacts"].append((record.artifact.type, [entry.path for entry in record.artifact.manifest.contents]))
    return out


def _series(history: list[dict], key: str) -> list[tuple[int, float]]:
    return [(row["trainer/global_step"], row[key]) for row in history if key in row]


@pytest.mark.slow
def test_offline_wandb_run_logs_everything_and_resume_continues_it(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["experiment=nw_parametric", "logger=wandb", "~callbacks.progress_bar"]
    run_attnlab([*common, "trainer.max_epochs=3", "logger.wandb.tags=[smoke]", "logger.wandb.log_model=true",
                 f"hydra.run.dir={first}"], tmp_path)

    run = _read(_offline_run(first))
    checkpoint = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert run["id"] == checkpoint["attnlab_config"]["logger"]["wandb"]["id"]  # the id is in the checkpoint
    assert run["tags"] == ["smoke"] and run["group"] == ""  # a single run has no group
    # the resolved config as hyperparameters
    assert run["config"]["seed"] == 42 and run["config"]["model"]["net"]["kernel"]["init_w"] == 1.0
    # the metrics: W&B holds exactly what the CSV log holds
    for metric in ("val/mse", "test/mse"):
        logged, in_csv = _series(run["history"], metric), metric_history(first, metric)
        assert [v for _, v in logged] == pytest.approx([v for _, v in in_csv]) and len(logged) >= 1
    assert [step for step, _ in _series(run["history"], "val/mse")] == [0, 1, 2]
    # plots as images, with their files in the run
    images = [row for row in run["history"] if row.get("plots/prediction/_type") == "images/separated"]
    assert len(images) == 1
    media = _offline_run(first).parent / "files" / images[0]["plots/prediction/filenames"][0]
    assert media.read_bytes()[:4] == b"\x89PNG"
    # checkpoints as artifacts (log_model=true)
    assert ("model", ["model.ckpt"]) in run["artifacts"]

    run_attnlab([*common, "trainer.max_epochs=5", f"ckpt_path={first}/checkpoints/last.ckpt",
                 f"hydra.run.dir={second}"], tmp_path)
    resumed = _read(_offline_run(second))
    assert resumed["id"] == run["id"]  # a second offline run dir under the same id, for `wandb sync`
    steps = [step for step, _ in _series(resumed["history"], "val/mse")]
    assert steps == [3, 4]  # continues after the first run's 3 steps, to max_epochs=5
    # the limit the README states: offline, W&B ignores resume and counts its own steps from 0 again
    assert run["history"][-1]["_step"] > 0 and resumed["history"][0]["_step"] == 0
    assert not resumed["artifacts"]
