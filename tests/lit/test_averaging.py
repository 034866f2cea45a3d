"""Checkpoint averaging: the element-wise mean of the weights, written as a checkpoint the CLIs can load."""
from __future__ import annotations

import os

import pytest
import torch

from attnlab.cli.average import main as average_main
from attnlab.lit.averaging import average_checkpoints, latest_checkpoints, write_averaged_checkpoint
from attnlab.lit.checkpoint import load_checkpoint


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
