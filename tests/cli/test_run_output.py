"""What a run prints: whole paths a person can paste (also in train.log), and none of Lightning's noise."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_support import run_attnlab, tiny_transformer_args, write_pairs

NOISE = [  # lines every run printed before, none of them true or actionable for an attnlab user
    "litlogger",
    "is deprecated",
    "`weights_only` was not set",
    "Logging and checkpointing is suppressed",
    "is not supported by the model summary",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, str, str]:
    """``debug=fdr`` on nw_parametric into a run dir whose path is wider than any terminal; (run dir, out, err)."""
    outputs = tmp_path_factory.mktemp("smoke")
    run_dir = outputs / ("a-run-dir-whose-path-is-longer-than-a-piped-80-column-console-" * 2) / "fdr"
    proc = run_attnlab(["experiment=nw_parametric", "debug=fdr", f"hydra.run.dir={run_dir}"], outputs)
    return run_dir, proc.stdout, proc.stderr


def test_the_summary_gives_whole_paths_on_the_console_and_in_train_log(smoke_run):
    run_dir, stdout, _ = smoke_run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    log = (run_dir / "train.log").read_text()
    for text in (stdout, log):
        assert f"last checkpoint: {checkpoint}\n" in text
        assert f"run dir: {run_dir}\n" in text
    assert "…" not in stdout


def test_a_smoke_run_says_what_it_does_and_nothing_untrue(smoke_run):
    _, stdout, stderr = smoke_run
    output = stdout + stderr
    assert [noise for noise in NOISE if noise in output] == []
    assert "Running in `fast_dev_run` mode: will run the requested loop using 1 batch(es). Loggers record nothing; " \
           "checkpoint callbacks still write." in output


def test_a_translation_run_with_checkpoint_averaging_prints_no_noise(tmp_path: Path):
    data = write_pairs(tmp_path / "pairs")
    args = [arg for arg in tiny_transformer_args(data) if arg != "~callbacks.checkpoint_averaging"]
    proc = run_attnlab([*args, "trainer.max_epochs=2"], tmp_path / "out")
    output = proc.stdout + proc.stderr
    assert re.search(r"averaged \d snapshots", output)  # the averaging ran: its snapshots were saved
    assert [noise for noise in NOISE if noise in output] == []
