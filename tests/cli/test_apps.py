"""The Hydra commands answer ``--help``, ``--cfg`` and composition errors without importing the training stack,
and command lines Hydra would end in a traceback get what to run instead."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import BIN, cli_env, run_attnlab


def imported_modules(args: list[str], tmp_path: Path, program: str = "attnlab-train") -> set[str]:
    """The top-level modules ``program args`` imported (``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(BIN / program), *args], cwd=tmp_path,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert lines, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}


@pytest.mark.parametrize("args", [["--help"], ["experiment=nw_parametric", "--cfg", "job"], ["attention=nonsense"]],
                         ids=["help", "cfg", "composition-error"])
def test_answers_without_the_training_stack(args, tmp_path: Path):
    modules = imported_modules(args, tmp_path)
    assert "hydra" in modules
    assert not {"pytorch_lightning", "lightning_fabric", "torch"} & modules


@pytest.mark.parametrize("program", ["attnlab-eval", "attnlab-prepare"])
def test_the_other_commands_answer_help_without_the_training_stack(program, tmp_path: Path):
    assert not {"pytorch_lightning", "torch"} & imported_modules(["--help"], tmp_path, program)


def test_a_sweep_preview_says_what_to_run_instead(tmp_path: Path):
    proc = run_attnlab(["-m", "experiment=nw_parametric", "kernel.init_w=0.5,1", "--cfg", "job"], tmp_path,
                       check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("attnlab-train: --cfg prints the config of one run; Hydra cannot preview a sweep")
    assert "without -m, with one value for each swept key" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None,
                    reason="the slurm extra is installed here")
def test_the_slurm_launcher_without_its_extra_names_the_extra(tmp_path: Path):
    proc = run_attnlab(["-m", "hydra/launcher=submitit_slurm", "experiment=nw_parametric"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "pip install 'attnlab[slurm]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "nw_parametric").exists()
