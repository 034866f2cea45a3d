"""attnlab-prepare: the overrides of attnlab-train write the token shards once; training then maps them."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import run_attnlab, tiny_transformer_args, write_pairs


@pytest.mark.slow
def test_prepare_then_train_on_the_shards(tmp_path: Path):
    data = write_pairs(tmp_path / "pairs")
    outputs = tmp_path / "out"
    args = tiny_transformer_args(data)
    prepared = run_attnlab(args, outputs, program="attnlab-prepare").stdout
    (store,) = (outputs / ".cache").glob("translation-parallel-*")
    assert f"token shards: {store}" in prepared and "prepared in" in prepared
    assert "rows: train 48, val 8, test 8" in prepared and (store / "train" / "part-00000").is_dir()
    assert "already prepared" in run_attnlab(args, outputs, program="attnlab-prepare").stdout

    run_dir = outputs / "run"
    run_attnlab([*args, "trainer.max_epochs=1", "test=false", f"hydra.run.dir={run_dir}"], outputs)
    log = (run_dir / "train.log").read_text()
    assert f"shards mapped from {store}" in log and "prepared" not in log.replace("shards mapped", "")


def test_prepare_names_a_missing_corpus_file(tmp_path: Path):
    outputs = tmp_path / "out"
    proc = run_attnlab([*tiny_transformer_args(tmp_path / "nowhere")], outputs, program="attnlab-prepare",
                       check=False)
    assert proc.returncode != 0
    assert f"no parallel file {tmp_path / 'nowhere'}/train.en or" in proc.stderr + proc.stdout
    assert not (outputs / ".cache").exists() or not any((outputs / ".cache").iterdir())


def test_prepare_refuses_data_without_shards(tmp_path: Path):
    proc = run_attnlab(["experiment=nw_parametric"], tmp_path, program="attnlab-prepare", check=False)
    assert proc.returncode != 0
    assert "data=attnlab.data.synthetic.NWSyntheticDataModule has no token shards to prepare" in proc.stderr + proc.stdout
