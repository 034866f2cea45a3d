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


def test_help_names_every_root_key_and_attnlab_hydra_group(tmp_path: Path):
    from attnlab.cli.schema import TrainSchema

    text = " ".join(run_attnlab(["--help"], tmp_path).stdout.split())  # the footer wraps its lines
    root_keys = text.split("Root keys: ", 1)[1].split("Hydra groups", 1)[0]
    groups = {field for field in TrainSchema.__dataclass_fields__ if (CONF / field).is_dir()}
    for key in set(TrainSchema.__dataclass_fields__) - groups - {"paths"}:
        assert key in root_keys, f"root key {key} missing from --help"
    for group in ("launcher", "sweeper"):
        for option in (CONF / "hydra" / group).glob("*.yaml"):
            assert f"hydra/{group}={option.stem}" in text
