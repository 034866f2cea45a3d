"""Sweeps: an Optuna search runs its trials as multirun jobs and optimizes the metric train() returns;
a wrong metric name stops the run with the names that were logged."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from attnlab.cli.resolvers import optuna_direction
from attnlab.cli.train import train
from attnlab.cli.validate import ConfigError
from cli_support import metric_history, run_attnlab, find_run_dirs


@pytest.mark.parametrize("name, experiment", [("nw_optuna", "nw_parametric"),
                                              ("transformer_optuna", "transformer_mt"),
                                              ("bert_optuna", "bert_pretrain")])
def test_search_configs_compose_with_seeded_tpe_and_a_direction(compose, name: str, experiment: str):
    cfg = compose(f"experiment={experiment}", f"hparams_search={name}", hydra_node=True)
    sweeper = cfg.hydra.sweeper
    assert cfg.hydra.mode.name == "MULTIRUN" and sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == cfg.seed and sweeper.n_trials >= 10
    assert sweeper.direction == {"min": "minimize", "max": "maximize"}[cfg.monitor_mode.value]
    assert cfg.optimized_metric == cfg.monitor
    for key in sweeper.params:  # every searched key exists in the experiment's config
        assert OmegaConf.select(cfg, key, default=None) is not None, f"{key} is not set by experiment={experiment}"


def test_optuna_direction_maps_monitor_mode():
    assert optuna_direction("min") == "minimize" and optuna_direction("max") == "maximize"
    with pytest.raises(ValueError, match="monitor_mode='up'.*min, max"):
        optuna_direction("up")


def test_optuna_sweep_of_nw_minimizes_the_returned_metric(tmp_path: Path):
    run_attnlab(["experiment=nw_parametric", "hparams_search=nw_optuna", "hydra.sweeper.n_trials=3",
                 "trainer.max_epochs=2", "test=false", "~callbacks.progress_bar"], tmp_path)
    (sweep,) = (tmp_path / "nw_parametric" / "multirun").iterdir()
    trials = find_run_dirs(sweep)
    assert len(trials) == 3
    returned = {}  # train() returns optimized_metric = val/mse after fitting: the last logged value
    for trial in trials:
        lines = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        overrides = dict(line.split("=", 1) for line in lines)
        assert {"kernel.init_w", "model.optimizer.lr"} <= set(overrides)
        returned[trial.name] = (metric_history(trial, "val/mse")[-1][1], overrides)
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_value, best_overrides = min(returned.values(), key=lambda item: item[0])
    assert result["best_value"] == pytest.approx(best_value)
    assert result["best_params"]["kernel.init_w"] == pytest.approx(float(best_overrides["kernel.init_w"]))
    assert len({overrides["kernel.init_w"] for _, overrides in returned.values()}) == 3  # trials differ


def test_wrong_optimized_metric_fails_naming_the_logged_ones(compose):
    cfg = compose("experiment=nw_parametric", "train=false", "optimized_metric=val/nope", "callbacks=none",
                  "logger=none")
    with pytest.raises(ConfigError, match=r"optimized_metric='val/nope' was never logged; logged metrics: test/"):
        train(cfg)
