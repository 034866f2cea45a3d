"""The package layout is the architecture: every module sits in a layer, and imports go attention -> layers ->
models -> lit -> inference -> cli, explore (data, beside them, never imports models; training, the run machinery,
sits under lit and knows no model or task)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "attnlab"

LAYERS = ("attention", "layers", "models", "data", "training", "lit", "inference", "cli", "explore")
HYDRA_APP = ["hydra.main", "hydra.compose", "hydra.initialize", "hydra.core", "hydra._internal"]  # not hydra.utils
# what each subpackage must never import (absolute module prefixes)
FORBIDDEN = {
    "attention": ["pytorch_lightning", "lightning", "hydra", "omegaconf", "attnlab.layers", "attnlab.models", "attnlab.lit", "attnlab.inference", "attnlab.cli", "attnlab.data"],
    "layers": ["pytorch_lightning", "lightning", "hydra", "omegaconf", "attnlab.models", "attnlab.lit", "attnlab.inference", "attnlab.cli", "attnlab.data"],
    "models": ["pytorch_lightning", "lightning", "hydra", "omegaconf", "attnlab.lit", "attnlab.inference", "attnlab.cli"],
    "data": ["hydra", "omegaconf", "attnlab.models", "attnlab.lit", "attnlab.inference", "attnlab.cli"],
    # run machinery (checkpoints, horizon, averaging, pruning, preemption, precision): knows Lightning, no task
    "training": ["hydra", "omegaconf", "attnlab.layers", "attnlab.models", "attnlab.lit", "attnlab.inference", "attnlab.cli"],
    "lit": ["hydra", "omegaconf", "attnlab.inference", "attnlab.cli"],
    "inference": [*HYDRA_APP, "attnlab.cli", "attnlab.explore"],  # rebuilds a run from its stored config (hydra.utils), no app
    "explore": ["pytorch_lightning", "lightning", "hydra", "omegaconf", "attnlab.cli"],  # the page shows loaded models
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("subpackage", sorted(FORBIDDEN))
def test_imports_go_one_way(subpackage):
    offenders = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        for module in imported_modules(path):
            if any(module == banned or module.startswith(banned + ".") for banned in FORBIDDEN[subpackage]):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_every_module_sits_in_a_layer():
    floating = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert not floating, f"modules beside the layers: {floating}"
    assert sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()) == sorted(LAYERS)


def test_checkpoint_files_are_read_and_written_by_their_owner_only():
    """attnlab.training.checkpoint reads (weights only, migrated) and writes checkpoints; nothing else opens them."""
    owner = PACKAGE / "training" / "checkpoint.py"
    readers = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
               if path != owner and "torch.load(" in path.read_text()]
    assert not readers, f"torch.load outside attnlab.training.checkpoint: {readers}"
