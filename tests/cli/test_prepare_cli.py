"""attnlab-prepare: the overrides of attnlab-train write the token shards once (translation, BERT pretraining);
training then maps them, and a run killed mid-epoch resumes on them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_support import BIN, cli_env, metric_history, run_attnlab, tiny_transformer_args, write_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lit"))
from test_pretraining import write_corpus  # noqa: E402


@pytest.mark.slow
def test_prepare_then_train_on_the_shards(tmp_path: Path):
    data = write_pairs(tmp_path / "pairs")
    outputs = tmp_path / "out"
    args = tiny_transformer_args(data)
    prepared = run_attnlab(args, outputs, program="attnlab-prepare").stdout
    (store,) = (outputs / ".cache").glob("translation-parallel-*")
    assert f"token shards: {store}" in prepared and "prepared in" in prepared
    assert "rows: train 48, val 8, test 8" in prepared and (store / "train" / "part-00000.arrow").is_file()
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


BERT_STEPS_PER_EPOCH = 8  # write_corpus with 60 training paragraphs: 8 batches of 16 pairs
BERT_PAUSE_STEP = 12  # epoch 1, after its 4th batch (checkpoints every 3 steps)


def _bert_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """experiment=bert_pretrain on ``write_corpus`` data, tiny net, no dropout (the global RNG is not resumed)."""
    return [
        "experiment=bert_pretrain", f"paths.data_dir={data}", "data.batch_size=16", "tokenizer.min_freq=1",
        "model.net.bert.d_model=32", "model.net.bert.num_heads=2", "model.net.bert.num_layers=1",
        "model.net.bert.block.d_ff=64", "model.net.bert.dropout=0.0", "~callbacks.progress_bar",
        "callbacks.model_checkpoint.every_n_train_steps=3", "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
        "test=false", f"hydra.run.dir={run_dir}", *extra,
    ]


@pytest.mark.slow
def test_bert_prepare_then_train_and_resume_mid_epoch_on_the_shards(tmp_path: Path):
    data = write_corpus(tmp_path / "data" / "wikitext-2", paragraphs=(60, 8, 8)).parent
    outputs = tmp_path / "out"
    prepared = run_attnlab(_bert_args(data, outputs / "unused"), outputs, program="attnlab-prepare").stdout
    (store,) = (outputs / ".cache").glob("wikitext2-*")
    assert f"token shards: {store}" in prepared and "prepared in" in prepared and (store / "train").is_dir()

    run_attnlab(_bert_args(data, outputs / "full"), outputs)
    assert f"shards mapped from {store}" in (outputs / "full" / "train.log").read_text()
    stores = [p.name for p in (outputs / ".cache").iterdir() if not p.name.startswith(".")]  # not the lock file
    assert stores == [store.name]  # training wrote no other store

    marker, killed = tmp_path / "paused", outputs / "killed"
    pause = f"+callbacks.pause={{_target_:pause_callback.PauseAtStep,step:{BERT_PAUSE_STEP},marker:'{marker}'}}"
    with (tmp_path / "killed.log").open("w") as sink:
        proc = subprocess.Popen([str(BIN / "attnlab-train"), *_bert_args(data, killed, pause)], cwd=outputs,
                                env=cli_env(outputs), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "training never reached the pause step"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    paused = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert paused["global_step"] == BERT_PAUSE_STEP and paused["epoch"] == 1

    resumed = outputs / "resumed"
    run_attnlab(_bert_args(data, resumed, f"ckpt_path={killed}/checkpoints/last.ckpt"), outputs)
    assert f"shards mapped from {store}" in (resumed / "train.log").read_text()
    full_losses = dict(metric_history(outputs / "full", "train/loss_step"))
    resumed_losses = dict(metric_history(resumed, "train/loss_step"))
    assert sorted(resumed_losses) == list(range(BERT_PAUSE_STEP, 2 * BERT_STEPS_PER_EPOCH))
    for step, loss in resumed_losses.items():  # the same pairs and masks, batch for batch, after the resume
        assert loss == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6), f"step {step}"
