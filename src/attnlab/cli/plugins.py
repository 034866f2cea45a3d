"""Makes attnlab's Hydra plugins (``hydra/sweeper=attnlab_optuna``, ``hydra/launcher=parallel``) known to Hydra in
every kind of install, tells a job whether it is one of the Optuna sweeper's trials, and what it returns to a
sweeper.

Hydra finds plugins by listing the modules of the ``hydra_plugins`` namespace package with ``pkgutil``.
A regular install puts ``hydra_plugins/attnlab_*`` in site-packages, where that scan finds them;
an editable install (``pip install -e .``) exposes them through setuptools' import hook, which ``pkgutil``
cannot list, so the CLI registers the classes itself when the scan missed them.
"""
from __future__ import annotations

import importlib
import logging

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper

from attnlab import ConfigError
from attnlab.cli.resolvers import in_multirun

SWEEPER = "hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"
LAUNCHER = "hydra_plugins.attnlab_parallel_launcher.parallel_launcher.ParallelLauncher"

log = logging.getLogger(__name__)


def register_plugins() -> None:
    plugins = Plugins.instance()
    for kind, path in ((Sweeper, SWEEPER), (Launcher, LAUNCHER)):
        if not any(f"{cls.__module__}.{cls.__name__}" == path for cls in plugins.discover(kind)):
            module, name = path.rsplit(".", 1)
            plugins.register(getattr(importlib.import_module(module), name))


def in_search() -> bool:
    """Whether this job is a trial of the Optuna sweeper (whose objective is ``optimized_metric``); false in the
    DDP ranks that Lightning relaunches in run mode."""
    return in_multirun() and HydraConfig.get().sweeper.get("_target_") == SWEEPER


def objective(optimized_metric: str | None, metrics: dict[str, float]) -> float | None:
    """``optimized_metric`` for a sweeper. Only a search (the Optuna sweeper) needs it: there a metric that was never
    logged is an error; a single run or a grid multirun that never logged it ends with a warning."""
    if optimized_metric is None:
        return None
    if optimized_metric in metrics:
        return metrics[optimized_metric]
    message = f"optimized_metric={optimized_metric!r} was never logged; logged metrics: {', '.join(sorted(metrics))}"
    if in_search():
        raise ConfigError(message)
    log.warning("%s (only a search needs it: nothing optimizes it in this run)", message)
    return None
