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


def test_every_callback_of_the_run_machinery_is_a_config_node():
    """A callback class in attnlab.training reaches a run only through a node under conf/callbacks (shown by
    ``--cfg job``), never added in code by the entry point or a task."""
    import yaml

    import attnlab.conf

    conf = Path(attnlab.conf.__file__).parent / "callbacks"
    listed = set()
    for path in conf.rglob("*.yaml"):
        stack = [yaml.safe_load(path.read_text()) or {}]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                listed.add(node.get("_target_"))
                stack.extend(node.values())
    defined = {
        f"attnlab.training.{path.stem}.{node.name}"
        for path in sorted((PACKAGE / "training").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base).endswith("Callback") for base in node.bases)
    }
    assert defined and not defined - listed, f"callbacks with no node under conf/callbacks: {sorted(defined - listed)}"


# ---- data and tasks meet through attnlab.data.spec, never through each other's methods --------------------------
def parsed(subpackage: str) -> dict[str, ast.Module]:
    paths = sorted((PACKAGE / subpackage).rglob("*.py"))
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text()) for path in paths}


def methods_of(subpackage: str, only_bases: tuple[str, ...] = ()) -> set[str]:
    """Names of the methods defined by the classes of ``subpackage`` (those naming one of ``only_bases`` among their
    bases, where given), less the names every LightningModule has (Lightning's hooks, nn.Module's methods)."""
    import pytorch_lightning as pl

    names = set()
    for tree in parsed(subpackage).values():
        classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        for node in classes:
            if not only_bases or any(ast.unparse(base).endswith(only_bases) for base in node.bases):
                names.update(item.name for item in node.body if isinstance(item, ast.FunctionDef))
    return names - set(dir(pl.LightningModule)) - set(dir(pl.LightningDataModule))


def attribute_uses(subpackage: str, names: set[str], calls_only: bool = False) -> list[str]:
    offenders = []
    for where, tree in parsed(subpackage).items():
        for node in ast.walk(tree):
            target = node.func if calls_only and isinstance(node, ast.Call) else None if calls_only else node
            if isinstance(target, ast.Attribute) and target.attr in names:
                offenders.append(f"{where}:{target.lineno} {ast.unparse(target)}")
    return offenders


def test_tasks_never_reach_the_datamodule():
    """A task reads its data through the ``text`` handed to it (attnlab.data.spec), never ``trainer.datamodule``
    nor a DataModule's own methods."""
    datamodule_methods = methods_of("data", only_bases=("LightningDataModule",))
    assert {"spec", "task_text", "decode_target", "texts"} <= datamodule_methods  # the check sees the DataModules
    offenders = attribute_uses("lit", {"datamodule"}) + attribute_uses("lit", datamodule_methods, calls_only=True)
    assert not offenders, "\n".join(offenders)


def test_data_never_names_a_task_method():
    task_methods = methods_of("lit")
    assert {"compute_loss", "finish_evaluation", "translate"} <= task_methods
    offenders = attribute_uses("data", task_methods)
    assert not offenders, "\n".join(offenders)


def test_checkpoint_files_are_read_and_written_by_their_owner_only():
    """attnlab.training.checkpoint reads (weights only, migrated) and writes checkpoints; nothing else opens them."""
    owner = PACKAGE / "training" / "checkpoint.py"
    readers = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
               if path != owner and "torch.load(" in path.read_text()]
    assert not readers, f"torch.load outside attnlab.training.checkpoint: {readers}"
