"""Shared fixtures: a fixed seed for every test, tiny dims, where the shared real data lives, and the configs.

Config helpers, in one place: a test argument named ``<group>_option`` (``attention_option``, ``experiment_option``,
...) runs the test once per option of that config group; the ``compose`` fixture composes the real configs.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

# Tests use tiny tensors: one thread avoids OpenMP oversubscription (30x slowdowns on a busy 2-core box),
# and the environment variable carries the choice into the CLI subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose as hydra_compose  # noqa: E402
from hydra import initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from attnlab.cli.resolvers import register_resolvers  # noqa: E402
from attnlab.cli.schema import register_schemas  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ATTNLAB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CONF = resources.files("attnlab.conf")
OPTION_SUFFIX = "_option"


def options(group: str) -> list[str]:
    """The options of a config group: the names of its yaml files."""
    return sorted(p.name[: -len(".yaml")] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def pytest_generate_tests(metafunc):
    for name in metafunc.fixturenames:
        if name.endswith(OPTION_SUFFIX):
            metafunc.parametrize(name, options(name[: -len(OPTION_SUFFIX)]))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (or $ATTNLAB_SHARED_DATA); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def config_options():
    """:func:`options`, for tests that loop over a group's options."""
    return options


def compose_run(run_dir: Path, *overrides: str, hydra_node: bool = False) -> DictConfig:
    """The root training config for ``overrides`` as ``attnlab-train`` sees it (schemas and resolvers registered,
    Hydra's runtime set with ``run_dir`` as the run dir, the ``hydra`` node removed unless ``hydra_node``)."""
    register_schemas()
    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("attnlab.conf", version_base="1.3"):
            cfg = hydra_compose("train", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    if not hydra_node:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


@pytest.fixture
def compose(tmp_path):
    """``compose(*overrides, hydra_node=False)``: :func:`compose_run` with ``tmp_path`` as the run dir;
    ``hydra_node=True`` keeps the ``hydra`` node (sweeper, launcher)."""
    yield lambda *overrides, hydra_node=False: compose_run(tmp_path, *overrides, hydra_node=hydra_node)
    HydraConfig.instance().cfg = None


@pytest.fixture(scope="session")
def composer():
    """:func:`compose_run`, for session fixtures (which cannot use ``compose``); the caller resets Hydra's runtime."""
    return compose_run
