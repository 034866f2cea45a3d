"""Optuna studies shared across processes: the sweeper asks and tells trials, each trial's training job
reports to its own trial, and ``attnlab-report`` reads the outcome a trial left in its run dir.

A study lives in storage that every process opens by the same spec string: an RDB URL (``sqlite:///x.db``,
``postgresql://...``) or the path of an Optuna journal file (any other string), which needs no server and
works on a shared filesystem. A job reopens its trial by study name and trial number.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # optuna is imported lazily: attnlab-report and Hydra's plugin scan stay fast
    import optuna

TRIAL_RECORD = "optuna_trial.yaml"  # in a trial's run dir: study, number, state, value, params, last step
PRUNING_NODE = "callbacks.optuna_pruning"  # conf/callbacks/optuna_pruning: the sweeper fills in each trial's fields
PRUNING_FIELDS = ("study_name", "storage", "trial_number", "pruner")  # per-trial plumbing, not hyper-parameters


def absolute_storage(spec: str) -> str:
    """``spec`` with a relative journal path or SQLite file made absolute, so jobs in other working dirs (or
    on other nodes of a shared filesystem) open the same study."""
    if "://" not in spec:
        return str(Path(spec).expanduser().resolve())
    prefix = "sqlite:///"
    if spec.startswith(prefix) and not spec.startswith(prefix + "/") and spec != prefix + ":memory:":
        return prefix + str(Path(spec[len(prefix):]).resolve())
    return spec


def open_storage(spec: str) -> "optuna.storages.BaseStorage":
    """The storage behind ``spec``: an RDB URL, or else a journal file (created on first use)."""
    import optuna

    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(spec))


def reopen_trial(study_name: str, storage: str, number: int,
                 pruner: "optuna.pruners.BasePruner | None" = None) -> "optuna.Trial":
    """Trial ``number`` of a stored study, as a ``Trial`` that reports to storage and asks ``pruner``."""
    import optuna

    backend = open_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=backend, pruner=pruner)
    try:
        study_id = backend.get_study_id_from_name(study_name)
        trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, number)
    except KeyError as error:
        raise ValueError(f"study {study_name!r} in {storage} has no trial {number}") from error
    return optuna.Trial(study, trial_id)


def trial_record(study_name: str, trial: "optuna.trial.FrozenTrial") -> dict[str, Any]:
    """What a trial's run dir keeps of its outcome (plain YAML types)."""
    return {
        "study": study_name,
        "number": trial.number,
        "state": trial.state.name,  # COMPLETE, PRUNED or FAIL
        "value": trial.value,  # a pruned trial's value is its last reported one
        "last_step": trial.last_step,  # the global step of its last report; null if it never reported
        "params": dict(trial.params),
    }


def write_yaml_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that a concurrent reader (another worker of the study) never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(yaml.safe_dump(data, sort_keys=False))
    partial.replace(path)


def read_trial_state(run_dir: Path) -> str | None:
    """The Optuna state recorded in a run dir (COMPLETE, PRUNED, FAIL), or None for a run of no study."""
    path = run_dir / TRIAL_RECORD
    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text()) or {}).get("state")
