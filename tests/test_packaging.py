"""The configs ship inside the wheel, so a non-editable install runs from any directory."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_carries_every_config(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(tmp_path)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("attnlab-*.whl")
    shipped = {name.removeprefix("attnlab/conf/") for name in zipfile.ZipFile(wheel).namelist() if name.startswith("attnlab/conf/") and name.endswith(".yaml")}
    expected = {str(path.relative_to(REPO / "conf")) for path in (REPO / "conf").rglob("*.yaml")}
    assert shipped == expected
