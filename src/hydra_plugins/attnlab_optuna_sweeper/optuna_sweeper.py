"""A Hydra sweeper that runs an Optuna study (Optuna >= 4) whose trials can be pruned while they train.

Each trial is one Hydra job with its own run dir (``<sweep dir>/<trial number>``): its overrides are the
fixed ones, the sampled values and the fields of the config's ``callbacks.optuna_pruning`` node (which the
search config adds: ``conf/callbacks/optuna_pruning``), an :class:`attnlab.training.pruning.OptunaPruning` that
reopens the trial from storage in whatever process runs the job and reports the monitored metric after each
validation. The study lives in storage (a journal
file in the sweep dir unless ``storage`` names one), so several sweepers can share it (SLURM array jobs,
resumed searches) and the launcher may run jobs anywhere that sees the file.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from attnlab import TrainingDiverged
from attnlab.training.studies import (
    PRUNING_FIELDS, PRUNING_NODE, TRIAL_RECORD, absolute_storage, open_storage, trial_record, write_yaml_atomically,
)

log = logging.getLogger(__name__)

RESULTS = "optimization_results.yaml"


def grammar(value: Any) -> str:
    """``value`` (plain YAML data) written in Hydra's override grammar."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{grammar(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(grammar(item) for item in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if re.fullmatch(r"[A-Za-z_][\w.]*", value) and value.lower() not in ("null", "true", "false", "nan", "inf"):
        return value  # a plain name needs no quotes
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class OptunaSweeper(Sweeper):
    """``n_trials`` trials per invocation, asked ``n_jobs`` at a time and launched as one batch."""

    def __init__(self, *, study_name: str, storage: str | None, direction: str, n_trials: int, n_jobs: int,
                 sampler: DictConfig, pruner: DictConfig | None, params: DictConfig | None):
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"hydra.sweeper.direction={direction!r}; allowed: minimize, maximize")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_trials={n_trials} and n_jobs={n_jobs} must be >= 1")
        self.study_name, self.storage, self.direction = study_name, storage, direction
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler, self.pruner, self.params = sampler, pruner, params
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        from ._search_space import parse_search_space

        if OmegaConf.select(self.config, PRUNING_NODE) is None:
            raise ValueError(f"the trials have no {PRUNING_NODE} node to report to their study: add "
                             "`- /callbacks/optuna_pruning: trial` to the search config's defaults (as "
                             "conf/hparams_search/*_optuna.yaml do)")
        space = parse_search_space(OmegaConf.to_container(self.params) if self.params else {}, arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        storage = absolute_storage(self.storage or str(sweep_dir / "optuna.journal"))
        pruner = OmegaConf.to_container(self.pruner, resolve=True) if self.pruner else None
        study = optuna.create_study(
            study_name=self.study_name, storage=open_storage(storage), pruner=instantiate(pruner) if pruner else None,
            direction=self.direction, load_if_exists=True,
        )
        study.sampler = self._sampler(len(study.trials))
        if study.direction.name.lower() != self.direction:
            raise ValueError(f"study {self.study_name!r} in {storage} was created to {study.direction.name.lower()}, "
                             f"not to {self.direction}: use another study_name or storage")
        log.info("Optuna study %r (%s, %d trials so far) in %s; pruner: %s", self.study_name, self.direction,
                 len(study.trials), storage, type(study.pruner).__name__)
        for name, distribution in space.distributions.items():
            log.info("\t%s: %s", name, distribution)

        asked = 0
        while asked < self.n_trials:
            trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, self.n_trials - asked))]
            batch = [self._job_overrides(space, trial, storage, pruner) for trial in trials]
            self.validate_batch_is_legal(batch)
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(batch)
            asked += len(trials)
            for trial, job in zip(trials, returns):
                self._tell(study, trial, job)
        self._write_results(study, storage, sweep_dir / RESULTS)

    def _sampler(self, trials_so_far: int):
        """The configured sampler, its ``seed`` (where set) mixed with the study's trial count, so an invocation
        that continues a study draws new points instead of replaying the first invocation's."""
        seed = self.sampler.get("seed")
        if seed is None:
            return instantiate(self.sampler)
        import numpy as np

        return instantiate(self.sampler, seed=int(np.random.SeedSequence([seed, trials_so_far]).generate_state(1)[0]))

    def _job_overrides(self, space, trial, storage: str, pruner: dict | None) -> list[str]:
        fields = zip(PRUNING_FIELDS, (self.study_name, storage, trial.number, pruner))
        return [*space.overrides(trial.params), *(f"{PRUNING_NODE}.{key}={grammar(value)}" for key, value in fields),
                f"hydra.sweep.subdir={trial.number}"]  # unique across workers and resumed searches

    def _tell(self, study, trial, job: JobReturn) -> None:
        """Record the job's outcome in the study and in its run dir; a failed job stops the search, except one whose
        training diverged (a sampled learning rate too high), which fails alone."""
        import optuna

        outcome = job._return_value  # JobReturn.return_value would re-raise a pruned trial's TrialPruned
        run_dir = Path(job.hydra_cfg.hydra.runtime.output_dir)
        if job.status == JobStatus.COMPLETED and outcome is not None:
            frozen = study.tell(trial, float(outcome))  # NaN or inf: Optuna records the trial as FAIL
        elif isinstance(outcome, optuna.TrialPruned):
            frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif isinstance(outcome, TrainingDiverged):
            frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("trial %d %s", trial.number, outcome)
        else:
            frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
            write_yaml_atomically(run_dir / TRIAL_RECORD, trial_record(self.study_name, frozen))
            if job.status == JobStatus.COMPLETED:
                raise ValueError(f"trial {trial.number} returned no value: set optimized_metric to a logged metric")
            raise outcome
        write_yaml_atomically(run_dir / TRIAL_RECORD, trial_record(self.study_name, frozen))
        log.info("trial %d %s: value %s at step %s, %s", frozen.number, frozen.state.name, frozen.value,
                 frozen.last_step, frozen.params)

    def _write_results(self, study, storage: str, path: Path) -> None:
        """The best trial of the whole study so far (all workers), and how many trials ended how."""
        import optuna

        trials = study.get_trials(deepcopy=False)
        results: dict[str, Any] = {
            "name": "optuna", "study_name": self.study_name, "storage": storage, "direction": self.direction,
            "trials": {state.name: sum(t.state == state for t in trials) for state in optuna.trial.TrialState},
        }
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            best = study.best_trial
            results.update(best_trial=best.number, best_value=best.value, best_params=dict(best.params))
            log.info("Best trial %d: %s = %s with %s", best.number, self.direction, best.value, best.params)
        else:
            log.warning("no trial of study %r has completed: no best trial", self.study_name)
        write_yaml_atomically(path, results)
