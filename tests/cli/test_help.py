"""``attnlab-train --help`` lists every config group with every choice, read live from the shipped conf/."""
from __future__ import annotations

from pathlib import Path

import attnlab.conf
from cli_support import run_attnlab

CONF = Path(attnlab.conf.__file__).parent


def test_help_lists_every_group_and_choice(tmp_path: Path):
    text = run_attnlab(["--help"], tmp_path).stdout
    groups = [d for d in sorted(CONF.iterdir()) if d.is_dir() and d.name not in ("hydra", "__pycache__")]
    names = {group.name for group in groups}
    assert {"experiment", "model", "data", "trainer", "logger", "hparams_search", "attention"} <= names
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in text.splitlines() if ": " in line}
    for group in groups:
        choices = sorted(p.stem for p in group.glob("*.yaml"))
        assert group.name in lines, f"group {group.name} missing from --help:\n{text}"
        assert [c.strip() for c in lines[group.name].split(",")] == choices, group.name
    assert "attnlab-report" in text and "hparams_search=" in text and "ckpt_path=last" in text
