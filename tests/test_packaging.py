"""The configs and the Hydra plugins (Optuna sweeper, parallel launcher) ship inside the wheel, so a non-editable
install runs from any directory and Hydra finds the plugins."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(out)],
        check=True, capture_output=True, text=True,
    )
    (built,) = out.glob("attnlab-*.whl")
    return built


def test_wheel_carries_every_config(wheel: Path):
    shipped = {name.removeprefix("attnlab/conf/") for name in zipfile.ZipFile(wheel).namelist() if name.startswith("attnlab/conf/") and name.endswith(".yaml")}
    expected = {str(path.relative_to(REPO / "conf")) for path in (REPO / "conf").rglob("*.yaml")}
    assert shipped == expected


def test_wheel_ships_the_plugins_where_hydras_plugin_scan_finds_them(wheel: Path, tmp_path: Path):
    """Hydra lists ``hydra_plugins`` with pkgutil: the wheel's namespace package (no ``__init__.py``) must
    hold the plugin modules, and a scan over the unpacked wheel must load them and find the classes."""
    names = zipfile.ZipFile(wheel).namelist()
    assert "hydra_plugins/attnlab_optuna_sweeper/optuna_sweeper.py" in names
    assert "hydra_plugins/attnlab_parallel_launcher/parallel_launcher.py" in names
    assert "hydra_plugins/__init__.py" not in names  # shared with other plugins: a namespace package
    zipfile.ZipFile(wheel).extractall(tmp_path)
    scan = ("from hydra.core.plugins import Plugins\nfrom hydra.plugins.launcher import Launcher\n"
            "from hydra.plugins.sweeper import Sweeper\n"
            "print([f'{c.__module__}.{c.__name__}' for kind in (Sweeper, Launcher) for c in Plugins.instance().discover(kind)])\n")
    found = subprocess.run([sys.executable, "-c", scan], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
                           check=True, capture_output=True, text=True).stdout
    assert "hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper.OptunaSweeper" in found
    assert "hydra_plugins.attnlab_parallel_launcher.parallel_launcher.ParallelLauncher" in found


def test_wheel_ships_the_explorer_page(wheel: Path):
    """``attnlab-explore`` serves its page and script from package data."""
    names = zipfile.ZipFile(wheel).namelist()
    assert {"attnlab/explore/static/explore.html", "attnlab/explore/static/explore.js"} <= set(names)
