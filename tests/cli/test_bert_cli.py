"""``attnlab-train experiment=bert_pretrain`` end to end on a tiny corpus: ``debug=overfit`` memorises its batches,
and ``budget=`` ends the run and its LR schedule together."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lit"))
from test_pretraining import write_corpus  # noqa: E402

TINY = ["experiment=bert_pretrain", "data.batch_size=16", "tokenizer.min_freq=1", "model.net.bert.d_model=64",
        "model.net.bert.num_heads=4", "model.net.bert.block.d_ff=128", "model.net.bert.dropout=0.0", "callbacks=none"]


def epoch_rows(run_dir: Path, metric: str) -> list[dict]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get(metric)]


def test_debug_overfit_memorises_the_same_pairs_and_masks_every_epoch(run_cli, tmp_path):
    data = write_corpus(tmp_path / "data" / "wikitext-2").parent
    run_dir = tmp_path / "overfit"
    run_cli("attnlab-train", *TINY, "debug=overfit", f"paths.data_dir={data}", "trainer.max_epochs=30", "test=false",
            "model.scheduler.warmup_steps=10", "model.optimizer.lr=5e-3", f"hydra.run.dir={run_dir}")
    last = epoch_rows(run_dir, "train/nsp_acc")[-1]
    assert int(last["epoch"]) == 29
    assert float(last["train/nsp_acc"]) >= 0.95 and float(last["train/mlm_loss"]) < 1.0


def test_a_budget_ends_the_run_and_its_schedule_together(run_cli, tmp_path):
    data = write_corpus(tmp_path / "data" / "wikitext-2", paragraphs=(400, 12, 12)).parent
    run_dir = tmp_path / "budget"
    run_cli("attnlab-train", *TINY, "budget=0.25", f"paths.data_dir={data}", "test=false",
            "model.scheduler.warmup_steps=null", "model.scheduler.warmup_fraction=0.1", "+callbacks.lr=" + "{_target_:"
            "pytorch_lightning.callbacks.LearningRateMonitor,logging_interval:step}", "trainer.log_every_n_steps=1",
            f"hydra.run.dir={run_dir}")
    rates = [float(row["lr-AdamW/pg1"]) for row in epoch_rows(run_dir, "lr-AdamW/pg1")]
    epochs = {row["epoch"] for row in epoch_rows(run_dir, "train/loss_epoch")}
    assert len(rates) > 20 and len(epochs) >= 2  # time, not an epoch count, ended it
    peak = max(rates)
    assert rates.index(peak) < len(rates) / 3  # a warm-up of about a tenth of the run
    assert rates[-1] < 0.15 * peak  # and the decay reached the end when the budget did
