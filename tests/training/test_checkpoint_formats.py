"""The checkpoint owner: every checkpoint an older attnlab wrote (tests/fixtures/checkpoints, made by commit 4c91047
with tests/fixtures/make_checkpoints.py) restores with the outputs recorded when it was written; a class renamed
with one more migration keeps them restoring; a newer format is a clear error; checkpoints are stamped."""
from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import attnlab
from attnlab import BadFileError
from attnlab.lit.regression import KernelRegressionModule
from attnlab.training import checkpoint as owner
from attnlab.training.callbacks import EmbedConfig
from attnlab.training.checkpoint import (
    CONFIG_KEY,
    FORMAT_KEY,
    format_version,
    load_checkpoint,
    rename_state_dict,
    rename_targets,
    renamed,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
FAMILIES = ["nadaraya_watson", "transformer", "bahdanau", "bert_pretraining", "bert_classifier"]
TASKS = {  # the fixtures' LightningModules, at their path today
    "attnlab.lit.regression.KernelRegressionModule", "attnlab.lit.seq2seq.Seq2SeqModule",
    "attnlab.lit.pretraining.PretrainingModule", "attnlab.lit.classification.ClassificationModule",
}


def recorded(family: str) -> dict:
    return json.loads((FIXTURES / f"{family}.json").read_text(encoding="utf-8"))


def outputs(model, record: dict) -> dict:
    """What the fixture's JSON recorded, answered by ``model`` on today's code."""
    if model.family == "nadaraya_watson":
        return {"predictions": model.predict(record["points"]).tolist()}
    if model.family == "translation":
        return {"translations": model.translate(record["sources"])}
    if model.family == "bert_pretraining":
        return {"fill_mask": [[list(c) for c in candidates] for candidates in model.fill_mask(record["text"], top_k=3)]}
    return {"predictions": [prediction.probs for prediction in model.predict(record["texts"])]}


def assert_matches(got, expected, where: str = "output") -> None:
    """Equal structure and strings; floats equal to float32 precision."""
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6), where
    elif isinstance(expected, (list, dict)):
        assert type(got) is type(expected) and len(got) == len(expected), where
        keys = expected if isinstance(expected, dict) else range(len(expected))
        for key in keys:
            assert_matches(got[key], expected[key], f"{where}[{key!r}]")
    else:
        assert got == expected, where


def test_the_fixtures_are_small_and_of_the_old_code():
    assert sum(path.stat().st_size for path in FIXTURES.iterdir()) < 1_000_000
    for family in FAMILIES:
        raw = torch.load(FIXTURES / f"{family}.ckpt", weights_only=True)
        assert FORMAT_KEY not in raw and recorded(family)["commit"] == "4c91047"  # version 0: written before versions
    names = json.dumps(torch.load(FIXTURES / "transformer.ckpt", weights_only=True)[CONFIG_KEY])
    assert "attnlab.lit.optim.cosine_warmup" in names and "attnlab.lit.averaging.AverageCheckpoints" in names


@pytest.mark.parametrize("family", FAMILIES)
def test_every_older_checkpoint_restores_with_its_recorded_outputs(family):
    model, record = attnlab.load(FIXTURES / f"{family}.ckpt"), recorded(family)
    assert model.family == record["family"]
    got = outputs(model, record)
    assert_matches(got, {key: record[key] for key in got}, family)
    assert "attnlab.lit.optim" not in json.dumps(OmegaConf.to_container(model.config))  # migrated


def rename_tasks(monkeypatch) -> dict[str, str]:
    """Move the task modules' classes to ``attnlab.tasks.*`` (no class left at the old path); the renames."""
    importlib.import_module("attnlab.inference.load")  # it imports the tasks by their old paths: before they move
    renames = {}
    for path in TASKS:
        module_name, name = path.rsplit(".", 1)
        module = importlib.import_module(module_name)
        new_module = "attnlab.tasks." + module_name.rsplit(".", 1)[1]
        monkeypatch.setitem(sys.modules, new_module, types.SimpleNamespace(**{name: getattr(module, name)}))
        monkeypatch.delattr(module, name)
        renames[path] = f"{new_module}.{name}"
    monkeypatch.setitem(sys.modules, "attnlab.tasks", types.ModuleType("attnlab.tasks"))
    return renames


def test_a_renamed_class_and_one_more_migration_keep_every_older_checkpoint_restoring(monkeypatch, tmp_path):
    renames, known = rename_tasks(monkeypatch), format_version()
    with pytest.raises(Exception, match="attnlab.lit.seq2seq.Seq2SeqModule"):  # without the migration: stale
        attnlab.load(FIXTURES / "transformer.ckpt")

    def tasks_moved(checkpoint: dict) -> dict:
        return {**checkpoint, CONFIG_KEY: rename_targets(checkpoint[CONFIG_KEY], renames)}

    monkeypatch.setattr(owner, "MIGRATIONS", [*owner.MIGRATIONS, tasks_moved])
    assert format_version() == known + 1
    for family in FAMILIES:
        model, record = attnlab.load(FIXTURES / f"{family}.ckpt"), recorded(family)
        assert model.config.model._target_.startswith("attnlab.tasks.")
        got = outputs(model, record)
        assert_matches(got, {key: record[key] for key in got}, family)
    # a checkpoint written after the rename (stamped with the new version) is not migrated again
    stamped = {"state_dict": {}, CONFIG_KEY: {"model": {"_target_": "attnlab.tasks.seq2seq.Seq2SeqModule"}}}
    EmbedConfig(stamped[CONFIG_KEY]).on_save_checkpoint(None, None, stamped)
    torch.save(stamped, tmp_path / "new.ckpt")
    assert load_checkpoint(tmp_path / "new.ckpt")[FORMAT_KEY] == known + 1


def test_a_migration_may_rename_state_dict_keys(monkeypatch, tmp_path):
    torch.save({"state_dict": {"net.old.weight": torch.ones(2)}, CONFIG_KEY: {}, FORMAT_KEY: format_version()},
               tmp_path / "a.ckpt")
    monkeypatch.setattr(owner, "MIGRATIONS", [*owner.MIGRATIONS, lambda checkpoint: rename_state_dict(
        checkpoint, lambda key: key.replace("net.old.", "net.new."))])
    checkpoint = load_checkpoint(tmp_path / "a.ckpt")
    assert list(checkpoint["state_dict"]) == ["net.new.weight"] and checkpoint[FORMAT_KEY] == format_version()


def test_a_resumed_checkpoint_is_migrated_before_lightning_restores_it(monkeypatch):
    task, known = KernelRegressionModule(attnlab.load(FIXTURES / "nadaraya_watson.ckpt").net), format_version()
    checkpoint = torch.load(FIXTURES / "nadaraya_watson.ckpt", weights_only=True)  # as Lightning reads it
    monkeypatch.setattr(owner, "MIGRATIONS", [*owner.MIGRATIONS, lambda checkpoint: rename_state_dict(
        checkpoint, lambda key: "moved." + key)])
    task.on_load_checkpoint(checkpoint)
    assert checkpoint[FORMAT_KEY] == known + 1 and all(key.startswith("moved.net.") for key in checkpoint["state_dict"])


def test_a_checkpoint_newer_than_the_code_is_an_error_naming_the_file_and_both_versions(tmp_path):
    checkpoint = torch.load(FIXTURES / "nadaraya_watson.ckpt", weights_only=True)
    checkpoint[FORMAT_KEY] = format_version() + 1
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(BadFileError, match=rf"future\.ckpt has checkpoint format version {format_version() + 1}, "
                                           rf"but this attnlab reads versions 0 to {format_version()}"):
        attnlab.load(tmp_path / "future.ckpt")


def test_a_migration_that_fails_names_the_file_and_the_versions(monkeypatch):
    def needs_a_key(checkpoint: dict) -> dict:
        return checkpoint["absent"]

    last = format_version()
    monkeypatch.setattr(owner, "MIGRATIONS", [*owner.MIGRATIONS, needs_a_key])
    with pytest.raises(BadFileError, match=rf"bahdanau.ckpt: migrating it from checkpoint format version {last} to "
                                           rf"{last + 1} \(needs_a_key\) failed: KeyError\('absent'\)"):
        load_checkpoint(FIXTURES / "bahdanau.ckpt")


def test_a_corrupt_or_foreign_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "cut.ckpt").write_bytes((FIXTURES / "bahdanau.ckpt").read_bytes()[:5000])
    with pytest.raises(BadFileError, match="cut.ckpt is not a loadable checkpoint"):
        attnlab.load(tmp_path / "cut.ckpt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.ckpt")
    with pytest.raises(BadFileError, match=r"foreign.ckpt is not an attnlab training checkpoint"):
        attnlab.load(tmp_path / "foreign.ckpt")


def test_embed_config_stamps_the_config_and_the_format_version():
    checkpoint = {}
    EmbedConfig({"seed": 1}).on_save_checkpoint(None, None, checkpoint)
    assert checkpoint == {CONFIG_KEY: {"seed": 1}, FORMAT_KEY: format_version()}


def test_the_rename_table_maps_old_paths_whole_components_and_chains():
    assert renamed("attnlab.lit.optim.cosine_warmup") == "attnlab.training.optim.cosine_warmup"
    assert renamed("attnlab.lit.seq2seq.Seq2SeqModule") == "attnlab.lit.seq2seq.Seq2SeqModule"  # a task: stayed
    assert renamed("attnlab.lit.optimizers.x") == "attnlab.lit.optimizers.x"  # no partial component match
    assert renamed("a.b.C", {"a.b": "a.c", "a.c.C": "d.C"}) == "d.C"
    with pytest.raises(ValueError, match="loops"):
        renamed("a.x", {"a": "b", "b": "a"})
    node = {"_target_": "attnlab.attention.kernels.EpanechikovKernel", "bandwidth": 0.5, "items": [{"_target_": "attnlab.lit.budget.TimeBudgetHorizon"}]}
    assert rename_targets(node) == {"_target_": "attnlab.attention.kernels.EpanechnikovKernel", "bandwidth": 0.5,
                                    "items": [{"_target_": "attnlab.training.horizon.ScheduleHorizon"}]}


@pytest.mark.parametrize("old", sorted(owner.RENAMES))
def test_every_old_path_is_gone_and_every_new_one_is_there(old):
    from hydra._internal.utils import _locate

    with pytest.raises(ImportError):
        _locate(old)
    _locate(owner.RENAMES[old])
