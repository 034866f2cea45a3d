"""Sweeps: an Optuna search runs its trials as multirun jobs, prunes the unpromising ones on the monitored
metric, optimizes the metric train() returns, and shares its study between workers through storage; a wrong
metric name stops the run with the names that were logged."""
from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from attnlab.cli.directions import metric_mode, optimization_direction
from attnlab.cli.train import train
from attnlab.cli.runs import load_runs, table
from attnlab.training.studies import open_storage
from cli_support import BIN, cli_env, find_run_dirs, metric_history, run_attnlab
from hydra_plugins.attnlab_optuna_sweeper._search_space import parse_search_space
from hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper import RESULTS, OptunaSweeper, grammar


SWEEPER = "hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@pytest.mark.parametrize("name, experiment", [("nw_optuna", "nw_parametric"),
                                              ("transformer_optuna", "transformer_mt"),
                                              ("bert_optuna", "bert_pretrain")])
def test_search_configs_compose_with_seeded_tpe_a_pruner_and_a_direction(compose, name: str, experiment: str):
    cfg = compose(f"experiment={experiment}", f"hparams_search={name}", hydra_node=True)
    sweeper = cfg.hydra.sweeper
    assert cfg.hydra.mode.name == "MULTIRUN" and sweeper._target_ == SWEEPER
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == cfg.seed and sweeper.n_trials >= 10
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sweeper.direction == {"min": "minimize", "max": "maximize"}[cfg.monitor_mode.value]
    assert cfg.optimized_metric == cfg.monitor
    for key in sweeper.params:  # every searched key exists in the experiment's config
        assert OmegaConf.select(cfg, key, default=None) is not None, f"{key} is not set by experiment={experiment}"
    for pruner in ("hyperband", "none"):  # every pruner choice builds with the preset
        chosen = compose(f"experiment={experiment}", f"hparams_search={name}", f"hydra/sweeper/pruner={pruner}",
                         hydra_node=True)
        assert isinstance(instantiate(chosen.hydra.sweeper.pruner), optuna.pruners.BasePruner)


def test_optuna_direction_follows_the_optimized_metric(compose):
    """val/loss is minimized though transformer_mt's monitor is val/bleu (monitor_mode=max); chrF is maximized."""
    base = ("experiment=transformer_mt", "hparams_search=transformer_optuna")
    for metric, direction in (("val/loss", "minimize"), ("val/chrf", "maximize"), ("val/bleu", "maximize")):
        cfg = compose(*base, f"optimized_metric={metric}", hydra_node=True)
        assert cfg.hydra.sweeper.direction == direction, metric
    cfg = compose(*base, "monitor_mode=min", hydra_node=True)  # val/bleu minimized: refused
    with pytest.raises(Exception, match="monitor='val/bleu' with monitor_mode='min'.*set monitor_mode=max"):
        cfg.hydra.sweeper.direction


def test_optimization_direction_for_unknown_metrics():
    assert optimization_direction("val/score", "val/score", "max") == "maximize"  # unknown monitor: its mode
    with pytest.raises(ValueError, match="optimized_metric='val/score'.*hydra.sweeper.direction"):
        optimization_direction("val/score", "val/loss", "min")
    with pytest.raises(ValueError, match="monitor_mode='up'.*min, max"):
        optimization_direction("val/loss", "val/loss", "up")


@pytest.mark.parametrize("metric, mode", [("val/loss", "min"), ("val/mlm_loss", "min"), ("test/ter", "min"),
                                          ("val/ppl", "min"), ("val/mse", "min"), ("val/bleu", "max"),
                                          ("val/chrf", "max"), ("val/bleu_averaged", "max"), ("val/token_acc", "max"),
                                          ("test/f1", "max"), ("val/score", None)])
def test_metric_mode_table(metric, mode):
    assert metric_mode(metric) == mode


@pytest.mark.parametrize("line, distribution", [
    ("lr=interval(0.1, 0.5)", FloatDistribution(0.1, 0.5)),
    ("lr=tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
    ("layers=tag(int, interval(1, 6))", IntDistribution(1, 6)),
    ("layers=range(2, 10, 2)", IntDistribution(2, 8, step=2)),
    ("dropout=range(0.0, 0.35, 0.1)", FloatDistribution(0.0, 0.3, step=0.1)),
    ("warmup=choice(0, 50, 100)", CategoricalDistribution([0, 50, 100])),
    ("attention=dot,additive", CategoricalDistribution(["dot", "additive"])),
])
def test_sweep_overrides_become_optuna_distributions(line: str, distribution):
    (dimension,) = parse_search_space({}, [line]).dimensions
    assert dimension.name == line.split("=")[0] and dimension.distribution == distribution


def test_search_space_takes_params_then_the_command_line_and_spells_overrides_back():
    space = parse_search_space({"a": "interval(0, 1)", "b": "choice('x y', z)"},
                               ["a=interval(2, 3)", "trainer.max_epochs=2", "+c=tag(int, interval(1, 4))"])
    assert space.distributions == {"a": FloatDistribution(2, 3), "b": CategoricalDistribution(["x y", "z"]),
                                   "c": IntDistribution(1, 4)}
    fixed, *sampled = space.overrides({"a": 2.5, "b": "x y", "c": 3})
    assert fixed == "trainer.max_epochs=2"
    parsed = {o.get_key_element(): o.value() for o in OverridesParser.create().parse_overrides(sampled)}
    assert parsed == {"a": 2.5, "b": "x y", "+c": 3}  # Hydra reads back the sampled values
    with pytest.raises(ValueError, match=r"glob\(\*\).*searches interval"):
        parse_search_space({}, ["model=glob(*)"])
    with pytest.raises(ValueError, match="nothing to search: set hydra.sweeper.params"):
        parse_search_space({"seed": "3"}, ["trainer.max_epochs=2"])


@pytest.mark.parametrize("value", [
    {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2, "x": None, "flag": True, "lr": 1.5e-05},
    {"storage": "/tmp/a b/optuna.journal", "quote": "it's", "url": "sqlite:////tmp/x.db", "name": "True"},
    {"monitor": "${optimized_metric}", "list": [1, "two", {"three": 3.0}], "empty": {}},
])
def test_grammar_writes_values_that_hydra_parses_back(value: dict):
    (override,) = OverridesParser.create().parse_overrides([f"+x={grammar(value)}"])
    assert override.value() == value


def _trial_records(sweep: Path) -> dict[int, dict]:
    return {int(path.parent.name): yaml.safe_load(path.read_text()) for path in sweep.glob("*/optuna_trial.yaml")}


def test_optuna_search_of_nw_prunes_trials_and_reports_the_best_complete_one(tmp_path: Path):
    epochs = 5
    run_attnlab(["experiment=nw_parametric", "hparams_search=nw_optuna", "hydra.sweeper.n_trials=6",
                 "hydra.sweeper.pruner.n_startup_trials=2", f"trainer.max_epochs={epochs}", "test=false",
                 "~callbacks.progress_bar"], tmp_path)
    (sweep,) = (tmp_path / "nw_parametric" / "multirun").iterdir()
    records = _trial_records(sweep)
    assert sorted(records) == list(range(6)) and [p.name for p in find_run_dirs(sweep)] == list("012345")
    states = {number: record["state"] for number, record in records.items()}
    assert set(states.values()) == {"COMPLETE", "PRUNED"} and states[0] == states[1] == "COMPLETE"
    for number, record in records.items():
        trial = sweep / str(number)
        lines = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        overrides = dict(line.split("=", 1) for line in lines if "=" in line)
        assert float(overrides["kernel.init_w"]) == pytest.approx(record["params"]["kernel.init_w"])
        validations = metric_history(trial, "val/mse")
        assert record["value"] == pytest.approx(validations[-1][1])  # reported after each validation
        if record["state"] == "PRUNED":  # stopped early, at the step it was pruned
            assert len(validations) == record["last_step"] < epochs
        else:
            assert len(validations) == record["last_step"] == epochs
    result = yaml.safe_load((sweep / RESULTS).read_text())
    complete = {n: r["value"] for n, r in records.items() if r["state"] == "COMPLETE"}
    assert result["best_trial"] == min(complete, key=complete.get)
    assert result["best_value"] == pytest.approx(min(complete.values()))
    assert result["best_params"] == records[result["best_trial"]]["params"]
    assert result["trials"]["PRUNED"] == sum(state == "PRUNED" for state in states.values())
    # attnlab-report: one row per trial with its state, and no column for the sweeper's own override
    columns, rows = table(load_runs(sweep))
    assert columns[:2] == ["run", "state"] and not any("optuna_pruning" in column for column in columns)
    assert {row[0]: row[1] for row in rows} == {str(n): state for n, state in states.items()}


def test_a_second_invocation_on_one_storage_proposes_new_points(tmp_path: Path):
    sweep = tmp_path / "continued"
    args = ["experiment=nw_parametric", "hparams_search=nw_optuna", f"hydra.sweep.dir={sweep}", "test=false",
            "trainer.max_epochs=1", "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=none", "~callbacks.progress_bar"]
    run_attnlab(args, tmp_path)
    run_attnlab(args, tmp_path)  # the same seed, continuing the study in the sweep dir's journal
    records = _trial_records(sweep)
    assert sorted(records) == [0, 1, 2, 3]
    first, second = ([records[n]["params"] for n in numbers] for numbers in ((0, 1), (2, 3)))
    assert not set(map(str, first)) & set(map(str, second))


@pytest.mark.slow
def test_two_workers_share_a_journal_study_and_a_third_resumes_it(tmp_path: Path):
    sweep = tmp_path / "shared_sweep"
    args = ["experiment=nw_parametric", "hparams_search=nw_optuna", f"hydra.sweep.dir={sweep}", "test=false",
            "trainer.max_epochs=3", "hydra.sweeper.pruner.n_startup_trials=2", "~callbacks.progress_bar"]
    workers = [subprocess.Popen([str(BIN / "attnlab-train"), *args, "hydra.sweeper.n_trials=3",
                                 f"hydra.sweeper.sampler.seed={seed}"], cwd=tmp_path, env=cli_env(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
    run_attnlab([*args, "hydra.sweeper.n_trials=1", "hydra.sweeper.sampler.seed=3"], tmp_path)  # resumes

    records = _trial_records(sweep)
    assert sorted(records) == list(range(7))  # one study: trial numbers 0..6, each run once, in its own dir
    params = {tuple(sorted(record["params"].items())) for record in records.values()}
    assert len(params) == 7
    study = optuna.load_study(study_name="nw_parametric", storage=open_storage(str(sweep / "optuna.journal")))
    assert [trial.state.name for trial in study.trials] == [records[n]["state"] for n in range(7)]
    result = yaml.safe_load((sweep / RESULTS).read_text())
    assert result["best_value"] == pytest.approx(study.best_value)  # the resumed worker saw every trial


def test_a_single_run_that_never_logged_the_optimized_metric_ends_with_a_warning(compose, caplog):
    cfg = compose("experiment=nw_parametric", "train=false", "optimized_metric=val/nope", "callbacks=none",
                  "logger=none")
    assert train(cfg) is None
    assert "optimized_metric='val/nope' was never logged; logged metrics: test/" in caplog.text


@pytest.mark.slow
def test_a_run_that_never_validated_exits_0_but_a_search_on_its_metric_fails(tmp_path: Path):
    """No validation (as bert_pretrain with trainer.max_steps=5): the run trains, tests and ends 0 with a
    warning; an Optuna search whose objective is that metric stops with an error naming the logged ones."""
    never_validated = ["experiment=nw_parametric", "trainer.limit_val_batches=0", "trainer.max_epochs=1",
                       "~callbacks.progress_bar"]
    proc = run_attnlab(never_validated, tmp_path / "single")
    assert "optimized_metric='val/mse' was never logged" in proc.stdout + proc.stderr
    assert metric_history(find_run_dirs(tmp_path / "single")[0], "test/mse")
    proc = run_attnlab([*never_validated, "hparams_search=nw_optuna", "hydra.sweeper.n_trials=1"], tmp_path / "search",
                       check=False)
    assert proc.returncode != 0
    assert "optimized_metric='val/mse' was never logged; logged metrics: lr-SGD, test/mse, " in proc.stderr


@pytest.mark.slow
def test_a_ddp_trial_is_pruned_on_both_ranks_and_the_search_goes_on(tmp_path: Path):
    """Every rank rebuilds the pruning callback from the trial's overrides, rank 0's decision reaches rank 1,
    and both leave the trial cleanly: a rank that exited with an error would make Lightning kill the sweep."""
    # seed=2: the sampler's third proposal falls behind the first two's median (checked in one process, which DDP
    # matches on NW), so the pruner must stop it; with the seed mixed into each invocation's sampler, 42 does not
    run_attnlab(["experiment=nw_parametric", "hparams_search=nw_optuna", "trainer=ddp_cpu", "hydra.sweeper.n_trials=3",
                 "hydra.sweeper.pruner.n_startup_trials=2", "trainer.max_epochs=3", "test=false", "seed=2",
                 "~callbacks.progress_bar"], tmp_path, timeout=400)
    (sweep,) = (tmp_path / "nw_parametric" / "multirun").iterdir()
    records = _trial_records(sweep)
    assert [records[n]["state"] for n in range(3)] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert (sweep / "2" / "train_ddp_process_1.log").is_file()  # the pruned trial ran on two ranks
    assert len(metric_history(sweep / "2", "val/mse")) == records[2]["last_step"] < 3


def test_a_diverged_trial_fails_alone_and_the_search_goes_on(tmp_path: Path):
    """A sampled learning rate that makes training diverge fails that trial (StopOnNonFinite), not the search."""
    run_attnlab(["experiment=nw_parametric", "hparams_search=nw_optuna", "hydra.sweeper.n_trials=4",
                 "model.optimizer.lr=choice(1e30, 0.5)", "trainer.max_epochs=2", "test=false", "~callbacks.progress_bar"],
                tmp_path)
    (sweep,) = (tmp_path / "nw_parametric" / "multirun").iterdir()
    records = _trial_records(sweep)
    outcomes = {(record["params"]["model.optimizer.lr"], record["state"]) for record in records.values()}
    assert sorted(records) == list(range(4)) and outcomes == {(1e30, "FAIL"), (0.5, "COMPLETE")}
    assert yaml.safe_load((sweep / RESULTS).read_text())["best_params"]["model.optimizer.lr"] == 0.5


def test_the_sweeper_needs_the_pruning_node_its_trials_report_through(compose):
    sweeper = OptunaSweeper(study_name="s", storage=None, direction="minimize", n_trials=1, n_jobs=1,
                            sampler=OmegaConf.create({}), pruner=None, params=None)
    sweeper.config = compose("experiment=nw_parametric", hydra_node=True)  # no hparams_search: no such node
    with pytest.raises(ValueError, match="no callbacks.optuna_pruning node .* `- /callbacks/optuna_pruning: trial`"):
        sweeper.sweep(["kernel.init_w=interval(0.1, 5.0)"])
    sweeper.config = compose("experiment=nw_parametric", "hparams_search=nw_optuna", hydra_node=True)
    assert sweeper.config.callbacks.optuna_pruning.monitor == "val/mse"  # the search config brings it
