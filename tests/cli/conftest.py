"""Run the console scripts in a subprocess with outputs and caches in a temporary directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture
def run_cli(tmp_path):
    def _run(script: str, *args: str, check: bool = True, env: dict | None = None, timeout: int = 600):
        environment = {
            **os.environ,
            "ATTNLAB_OUTPUTS": str(tmp_path / "outputs"),
            "ATTNLAB_CACHE": str(tmp_path / "cache"),
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(tmp_path / "wandb"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        result = subprocess.run(
            [str(BIN / script), *args], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{script} {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result

    return _run


def run_dirs(root: Path, task: str) -> list[Path]:
    return sorted(p for p in (root / "outputs" / task).iterdir() if p.is_dir() and p.name != "multirun")
