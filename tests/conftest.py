"""Shared fixtures: a fixed seed for every test, tiny dims, and where the shared real data lives."""
from __future__ import annotations

import os
from pathlib import Path

# Tests use tiny tensors: one thread avoids OpenMP oversubscription (30x slowdowns on a busy 2-core box),
# and the environment variable carries the choice into the CLI subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ATTNLAB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (or $ATTNLAB_SHARED_DATA); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
