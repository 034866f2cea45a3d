"""Every callback of a run is a node under ``callbacks`` (``--cfg job`` shows them all), and ``callbacks=none`` drops
the chosen ones but keeps the run's bookkeeping (``callbacks.run``): its checkpoints still restore and resume."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from attnlab.training.callbacks import ResumeTrainLoader
from attnlab.training.checkpoint import CONFIG_KEY
from attnlab.training.preemption import JOB_KEY
from cli_support import run_attnlab, tiny_transformer_args, write_pairs


def targets(node) -> set[str]:
    """Every ``_target_`` under ``node``."""
    if isinstance(node, dict):
        return {node.get("_target_")} - {None} | set().union(*(targets(value) for value in node.values()))
    return set()


def test_cfg_job_shows_every_callback_of_a_search_trial(tmp_path: Path):
    shown = run_attnlab(["experiment=transformer_mt", "hparams_search=transformer_optuna", "--cfg", "job"], tmp_path)
    callbacks = targets(yaml.safe_load(shown.stdout)["callbacks"])
    assert {f"attnlab.training.{name}" for name in (
        "callbacks.EmbedConfig", "callbacks.ResumeTrainLoader", "callbacks.Throughput", "preemption.RecordSlurmJob",
        "horizon.ScheduleHorizon", "divergence.StopOnNonFinite", "averaging.AverageCheckpoints",
        "pruning.OptunaPruning", "callbacks.early_stopping",
    )} <= callbacks


def test_callbacks_none_keeps_the_bookkeeping_so_its_checkpoint_restores_and_resumes(tmp_path: Path):
    data, outputs = write_pairs(tmp_path / "pairs"), tmp_path / "out"
    tiny = [arg for arg in tiny_transformer_args(data) if arg != "~callbacks.progress_bar"]  # none has no such node
    args = [*tiny, "callbacks=none", "~callbacks.early_stopping", "test=false"]
    shown = yaml.safe_load(run_attnlab([*args, "--cfg", "job"], outputs).stdout)["callbacks"]
    assert set(shown) == {"run"}  # only the bookkeeping
    run_attnlab([*args, "trainer.max_epochs=1", f"hydra.run.dir={outputs / 'first'}"], outputs)
    (saved,) = (outputs / "first").rglob("*.ckpt")  # Lightning's own checkpoint: no ModelCheckpoint node
    checkpoint = torch.load(saved, map_location="cpu", weights_only=True)
    assert checkpoint[CONFIG_KEY]["callbacks"].keys() == {"run"} and JOB_KEY in checkpoint
    assert checkpoint[ResumeTrainLoader.KEY] == {"batches_served": 6}  # the epoch's 6 batches
    run_attnlab([*args, "trainer.max_epochs=2", f"ckpt_path='{saved}'", f"hydra.run.dir={outputs / 'resumed'}"], outputs)
    (resumed,) = (outputs / "resumed").rglob("*.ckpt")
    assert torch.load(resumed, map_location="cpu", weights_only=True)["global_step"] == 12  # went on from step 6
    evaluated = run_attnlab([f"ckpt_path='{resumed}'", f"hydra.run.dir={outputs / 'eval'}"], outputs,
                            program="attnlab-eval")
    assert "test/loss" in evaluated.stdout
