"""attnlab-train end to end on Nadaraya-Watson, and the errors a user sees for bad input."""
from __future__ import annotations

import csv

from conftest import run_dirs

from attnlab.training.checkpoint import load_run_checkpoint


def test_nw_parametric_writes_metrics_checkpoints_and_plots(run_cli, tmp_path):
    run_cli("attnlab-train", "experiment=nw_parametric", "trainer.max_epochs=3")
    (run_dir,) = run_dirs(tmp_path, "nw_parametric")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "train.log").is_file()
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    assert any(row.get("val/mse") for row in rows) and any(row.get("test/mse") for row in rows)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert (run_dir / "plots" / "prediction.png").stat().st_size > 1000
    assert (run_dir / "plots" / "attention_weights.png").stat().st_size > 1000
    checkpoint = load_run_checkpoint(run_dir / "checkpoints" / "last.ckpt")  # weights_only, self-describing
    assert checkpoint["attnlab_config"]["model"]["net"]["kernel"]["_target_"].endswith("LearnedGaussianKernel")
    assert checkpoint["global_step"] == 3


def test_same_command_twice_gives_same_losses(run_cli, tmp_path):
    for _ in range(2):
        run_cli("attnlab-train", "experiment=nw_parametric", "trainer.max_epochs=2", "test=false", "callbacks=none")
    losses = []
    for run_dir in run_dirs(tmp_path, "nw_parametric"):
        rows = csv.DictReader(open(run_dir / "csv" / "metrics.csv"))
        losses.append([row["train/loss_step"] for row in rows if row.get("train/loss_step")])
    assert len(losses) == 2 and losses[0] == losses[1] and losses[0]


def test_nonparametric_evaluates_without_training(run_cli, tmp_path):
    result = run_cli("attnlab-train", "experiment=nw_nonparametric", "kernel=boxcar", "kernel.bandwidth=0.5")
    assert "test/mse" in result.stdout
    (run_dir,) = run_dirs(tmp_path, "nw_nonparametric")
    assert not (run_dir / "checkpoints").exists()
    assert (run_dir / "plots" / "attention_weights.png").is_file()


def test_unknown_group_choice_lists_the_allowed_ones(run_cli):
    result = run_cli("attnlab-train", "attention=nonsense", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "attention/nonsense" in message
    for choice in ("additive", "dot", "general", "scaled_dot"):
        assert choice in message


def test_wrong_type_and_unknown_key_fail_before_training(run_cli):
    result = run_cli("attnlab-train", "seed=abc", check=False)
    assert result.returncode != 0 and "seed" in result.stderr and "abc" in result.stderr
    result = run_cli("attnlab-train", "+model.net.kernal=1", check=False)
    assert result.returncode != 0 and "model.net.kernal is not an argument" in result.stderr
    assert "Epoch" not in result.stdout


def _test_mse(run_dir) -> float:
    (value,) = [float(row["test/mse"]) for row in csv.DictReader(open(run_dir / "csv" / "metrics.csv")) if row.get("test/mse")]
    return value


def test_evaluate_only_tests_the_checkpoint_weights(run_cli, tmp_path):
    """``train=false ckpt_path=X`` tests X's weights: the metric attnlab-eval logs on X, not an untrained model's."""
    runs = {name: tmp_path / name for name in ("trained", "from_checkpoint", "untrained", "evaluated")}
    run_cli("attnlab-train", "experiment=nw_parametric", "trainer.max_epochs=3", "test=false",
            f"hydra.run.dir={runs['trained']}")
    checkpoint = runs["trained"] / "checkpoints" / "last.ckpt"
    run_cli("attnlab-train", "experiment=nw_parametric", "train=false", f"ckpt_path={checkpoint}",
            f"hydra.run.dir={runs['from_checkpoint']}")
    run_cli("attnlab-train", "experiment=nw_parametric", "train=false", f"hydra.run.dir={runs['untrained']}")
    run_cli("attnlab-eval", f"ckpt_path={checkpoint}", f"hydra.run.dir={runs['evaluated']}")
    assert _test_mse(runs["from_checkpoint"]) == _test_mse(runs["evaluated"])
    assert _test_mse(runs["untrained"]) != _test_mse(runs["from_checkpoint"])
