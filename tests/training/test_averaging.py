"""Checkpoint averaging: the element-wise mean of the weights, written as a checkpoint the CLIs can load; during
training only over the final epoch, and kept only where it beats the last weights on validation."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from training_support import LineFit, line_data
from pytorch_lightning.loggers import CSVLogger

from attnlab.cli.average import main as average_main
from attnlab.training.averaging import (
    AverageCheckpoints, average_checkpoints, choose_weights, latest_checkpoints, on_snapshot_grid, selected_checkpoint,
    write_averaged_checkpoint,
)
from attnlab.training.checkpoint import load_checkpoint


def save(path, weight: float, step: int):
    state = {"net.w": torch.full((2, 3), weight), "net.b": torch.full((3,), -weight, dtype=torch.float64),
             "net.count": torch.tensor(step)}
    torch.save({"state_dict": state, "global_step": step, "attnlab_config": {"task_name": "t"}}, path)
    os.utime(path, (step, step))  # modification time orders the checkpoints
    return path


def test_average_is_the_elementwise_mean_and_keeps_dtypes(tmp_path):
    paths = [save(tmp_path / f"{i}.ckpt", float(i), i) for i in (1, 2, 6)]
    averaged = average_checkpoints(paths)
    torch.testing.assert_close(averaged["net.w"], torch.full((2, 3), 3.0))
    assert averaged["net.b"].dtype == torch.float64 and averaged["net.b"][0].item() == -3.0
    assert averaged["net.count"].item() == 6  # integer buffers come from the last file


def test_latest_and_written_checkpoint_keep_the_run_config(tmp_path):
    paths = [save(tmp_path / f"step-{i}.ckpt", float(i), i) for i in (10, 20, 30, 40)]
    assert latest_checkpoints(tmp_path, 3) == paths[1:]
    output = write_averaged_checkpoint(paths[1:], tmp_path / "out" / "averaged.ckpt")
    checkpoint = load_checkpoint(output)  # weights_only
    assert checkpoint["attnlab_config"] == {"task_name": "t"} and checkpoint["global_step"] == 40
    torch.testing.assert_close(checkpoint["state_dict"]["net.w"], torch.full((2, 3), 30.0))
    average_main([f"output={tmp_path / 'cli.ckpt'}", f"dir={tmp_path}", "last=2"])
    torch.testing.assert_close(load_checkpoint(tmp_path / "cli.ckpt")["state_dict"]["net.w"], torch.full((2, 3), 35.0))


def test_mismatched_checkpoints_are_refused(tmp_path):
    first = save(tmp_path / "a.ckpt", 1.0, 1)
    torch.save({"state_dict": {"net.w": torch.zeros(3, 2)}}, tmp_path / "b.ckpt")
    with pytest.raises(ValueError, match="hold different weights"):
        average_checkpoints([first, tmp_path / "b.ckpt"])
    with pytest.raises(ValueError, match="needs at least one checkpoint"):
        average_checkpoints([])
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        latest_checkpoints(tmp_path / "missing", 2)
    with pytest.raises(SystemExit, match="attnlab-average: missing output\nusage: attnlab-average output=FILE"):
        average_main([str(first)])


# ---- averaging during training, and the choice between averaged and last weights ----------------------------------
def fit(tmp_path, callbacks, **trainer_kwargs) -> tuple[pl.Trainer, LineFit, pl.LightningDataModule]:
    pl.seed_everything(0)
    module, data = LineFit(), line_data()
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, **trainer_kwargs)
    trainer.fit(module, datamodule=data)
    return trainer, module, data


class StopAt(pl.Callback):
    """Stops training after optimizer step ``step``, as early stopping or a time limit does."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        trainer.should_stop = trainer.global_step >= self.step


def snapshot_steps(directory: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in directory.glob("step-*.ckpt"))


def test_snapshots_are_evenly_spaced_over_the_span_and_end_at_the_final_step(tmp_path):
    """10 steps an epoch, 5 snapshots: over the last epoch every 2 steps, over the last 2 epochs every 4, the final
    step once; each averaged checkpoint is the mean of its snapshots."""
    averaging = AverageCheckpoints(dirpath=tmp_path / "snapshots", output=tmp_path / "averaged.ckpt", num_checkpoints=5)
    trainer, module, _ = fit(tmp_path, [averaging], max_steps=35, limit_val_batches=0)
    assert snapshot_steps(tmp_path / "snapshots") == [27, 29, 31, 33, 35]
    averaged = load_checkpoint(tmp_path / "averaged.ckpt")
    assert [Path(p).name for p in averaged["averaged_from"]] == [f"step-{s}.ckpt" for s in (27, 29, 31, 33, 35)]
    expected = average_checkpoints([tmp_path / "snapshots" / f"step-{s}.ckpt" for s in (27, 29, 31, 33, 35)])
    torch.testing.assert_close(averaged["state_dict"], expected)
    final = load_checkpoint(tmp_path / "snapshots" / "step-35.ckpt")["state_dict"]
    torch.testing.assert_close(final, {f"net.{k}": v for k, v in module.net.state_dict().items()})
    assert averaging.candidates == {"averaged": tmp_path / "averaged.ckpt", "last": tmp_path / "snapshots" / "step-35.ckpt"}
    assert averaging.last_scores == {}  # the final weights were never validated
    longer = AverageCheckpoints(dirpath=tmp_path / "long", output=tmp_path / "long.ckpt", num_checkpoints=5, span_epochs=2)
    trainer, module, data = fit(tmp_path, [longer], max_epochs=3)
    assert snapshot_steps(tmp_path / "long") == [14, 18, 22, 26, 30]
    # validated at the end of the last epoch: the final weights' score is known, and equals a new validation
    assert longer.last_scores["val/mse"] == trainer.validate(module, data, ckpt_path=str(longer.candidates["last"]),
                                                            verbose=False)[0]["val/mse"]
    # a span that is no whole number of steps per snapshot: rounded, still ending at the final step once
    uneven = AverageCheckpoints(dirpath=tmp_path / "uneven", output=tmp_path / "uneven.ckpt", num_checkpoints=3)
    fit(tmp_path, [uneven], max_epochs=2, limit_val_batches=0)
    assert snapshot_steps(tmp_path / "uneven") == [13, 17, 20]  # gap 10 / 3


def test_a_run_stopped_before_its_planned_end_averages_only_its_final_span(tmp_path):
    """Planned for 5 epochs, stopped at step 35 mid-epoch: the average holds steps 27..35 only (the grid counted back
    from step 50, and the final weights), never the early epochs."""
    averaging = AverageCheckpoints(dirpath=tmp_path / "snapshots", output=tmp_path / "averaged.ckpt", num_checkpoints=5)
    fit(tmp_path, [averaging, StopAt(35)], max_epochs=5, limit_val_batches=0)
    assert snapshot_steps(tmp_path / "snapshots") == [28, 30, 32, 34, 35]
    averaged = load_checkpoint(tmp_path / "averaged.ckpt")
    assert [Path(p).name for p in averaged["averaged_from"]] == [f"step-{s}.ckpt" for s in (28, 30, 32, 34, 35)]


def test_the_snapshot_grid_counts_back_from_the_planned_end():
    assert [s for s in range(1178) if on_snapshot_grid(s, 1177 / 5, 1177)][-5:] == [235, 471, 706, 942, 1177]
    assert [s for s in range(12) if on_snapshot_grid(s, 2.5, 0)] == [0, 2, 5, 8, 10]  # open-ended: from step 0


@pytest.mark.parametrize("better", ["averaged", "last"])
def test_the_better_weights_on_validation_are_chosen_and_recorded(tmp_path, better):
    """Whichever of the two scores better on validation is kept, both scores are recorded, and a run dir stands
    for the kept checkpoint."""
    trainer, module, data = fit(tmp_path, [], max_steps=3, limit_val_batches=0)
    checkpoints = tmp_path / "checkpoints"
    good, bad = checkpoints / f"{better}.ckpt", checkpoints / "other.ckpt"
    for path, (w, b) in ((good, (3.0, 1.0)), (bad, (0.0, 0.0))):
        with torch.no_grad():
            module.net.weight.fill_(w)
            module.net.bias.fill_(b)
        trainer.save_checkpoint(path)
    candidates = {"averaged": good if better == "averaged" else bad, "last": good if better == "last" else bad}
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=CSVLogger(tmp_path, name="csv", version=""),
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    choice = choose_weights(trainer, module, data, candidates, monitor="val/mse", mode="min",
                            record=checkpoints / "selected.json")
    assert choice.name == better and choice.path == good
    assert choice.scores[better] == pytest.approx(0.0, abs=1e-10) and choice.scores[better] < choice.scores[
        "last" if better == "averaged" else "averaged"]
    saved = json.loads((checkpoints / "selected.json").read_text())
    assert saved == {"checkpoint": f"{better}.ckpt", "name": better, "monitor": "val/mse", "mode": "min",
                     "scores": choice.scores}
    assert selected_checkpoint(tmp_path) == good
    logged = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "val/mse_averaged" in logged and "val/mse_last" in logged
    known = choose_weights(trainer, module, data, candidates, monitor="val/mse", mode="min", known={"last": -1.0},
                           record=checkpoints / "selected.json")
    assert known.name == "last" and known.scores["last"] == -1.0  # a known score is not validated again
    with pytest.raises(ValueError, match="logged no 'val/bleu' to choose by"):
        choose_weights(trainer, module, data, candidates, monitor="val/bleu", mode="max", record=tmp_path / "x.json")


def test_a_run_dir_stands_for_its_best_or_last_checkpoint(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    with pytest.raises(FileNotFoundError, match="holds none of checkpoints/selected.json"):
        selected_checkpoint(tmp_path)
    save(checkpoints / "last.ckpt", 1.0, 1)
    assert selected_checkpoint(tmp_path) == checkpoints / "last.ckpt"
    save(checkpoints / "best-003-30.ckpt", 1.0, 1)
    assert selected_checkpoint(tmp_path) == checkpoints / "best-003-30.ckpt"


def test_averaging_arguments_are_checked():
    with pytest.raises(ValueError, match="num_checkpoints must be >= 1, got 0"):
        AverageCheckpoints(dirpath="d", output="o", num_checkpoints=0)
    with pytest.raises(ValueError, match="span_epochs must be > 0, got 0"):
        AverageCheckpoints(dirpath="d", output="o", span_epochs=0)
    with pytest.raises(ValueError, match="nothing to choose from: no training has ended"):
        AverageCheckpoints(dirpath="d", output="o").choose(None, None, None, monitor="val/bleu", mode="max")
