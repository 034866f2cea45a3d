"""Checkpoint averaging through ``attnlab-train`` (tiny transformer_mt): what the run leaves describes the weights it
keeps, and a run without validation keeps its last weights."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_support import metric_history, run_attnlab, tiny_transformer_args, write_pairs


def _averaging_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """The tiny run with transformer_mt's averaging left on."""
    args = [arg for arg in tiny_transformer_args(data) if arg != "~callbacks.checkpoint_averaging"]
    return [*args, "model.scheduler.warmup_steps=2", "model.scheduler.warmup_fraction=null",
            "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}", *extra]


@pytest.mark.parametrize(("kept", "settings"), [
    ("last", ["model.optimizer.lr=0.01", "callbacks.checkpoint_averaging.span_epochs=3"]),  # from step 4 of 18
    ("averaged", ["model.optimizer.lr=0.05", "model.scheduler=null"]),  # a constant, too high rate: noisy last weights
])
def test_the_validation_files_and_metrics_describe_the_kept_weights(tmp_path: Path, kept: str, settings: list[str]):
    """Whichever weights win on validation loss, the val files, the last logged val/loss and the run's val/loss (the
    summary, a sweeper's objective) are theirs, also when the other candidate was validated after them."""
    run_dir = tmp_path / "run"
    result = run_attnlab(_averaging_args(write_pairs(tmp_path / "pairs"), run_dir, "trainer.max_epochs=3",
                                         "monitor=val/loss", "monitor_mode=min", *settings), tmp_path / "out")
    selected = json.loads((run_dir / "checkpoints" / "selected.json").read_text())
    assert selected["name"] == kept and selected["scores"][kept] == min(selected["scores"].values())
    score = selected["scores"][kept]
    assert metric_history(run_dir, "val/loss")[-1][1] == pytest.approx(score, rel=1e-6)
    assert float(re.search(r"│ val/loss +│ ([\d.]+)", result.stdout).group(1)) == pytest.approx(score, abs=1e-4)
    translations = run_dir / "translations"
    scores = json.loads((translations / "val.scores.json").read_text())
    assert metric_history(run_dir, "val/bleu")[-1][1] == pytest.approx(scores["bleu"]["score"], abs=1e-9)
    translated = run_attnlab([f"ckpt_path={run_dir / 'checkpoints' / selected['checkpoint']}",
                              f"input={translations / 'val.src'}"], tmp_path / "out", program="attnlab-translate")
    assert translated.stdout.splitlines() == (translations / "val.hyp").read_text().splitlines()


def test_a_run_without_validation_keeps_its_last_weights_and_exits_0(tmp_path: Path):
    """``trainer.limit_val_batches=0``: nothing scores the averaged weights, so the last ones are kept, recorded and
    tested, with a warning; the run ends with exit 0."""
    run_dir = tmp_path / "run"
    result = run_attnlab(_averaging_args(write_pairs(tmp_path / "pairs"), run_dir, "trainer.max_epochs=1",
                                         "trainer.limit_val_batches=0"), tmp_path / "out")
    assert "validation is off (trainer.limit_val_batches=0)" in result.stdout + result.stderr
    selected = json.loads((run_dir / "checkpoints" / "selected.json").read_text())
    assert selected["name"] == "last" and selected["scores"] == {}
    assert selected["checkpoint"] == "averaging/step-6.ckpt" and (run_dir / "checkpoints" / "averaged.ckpt").is_file()
    assert metric_history(run_dir, "test/bleu") and not metric_history(run_dir, "val/bleu")
