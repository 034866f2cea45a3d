"""Makes attnlab's Hydra plugins (``hydra/sweeper=attnlab_optuna``, ``hydra/launcher=parallel``) known to Hydra in
every kind of install, and tells a job whether it is one of the Optuna sweeper's trials.

Hydra finds plugins by listing the modules of the ``hydra_plugins`` namespace package with ``pkgutil``.
A regular install puts ``hydra_plugins/attnlab_*`` in site-packages, where that scan finds them;
an editable install (``pip install -e .``) exposes them through setuptools' import hook, which ``pkgutil``
cannot list, so the CLI registers the classes itself when the scan missed them.
"""
from __future__ import annotations

import importlib

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper

from attnlab.cli.resolvers import in_multirun

SWEEPER = "hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"
LAUNCHER = "hydra_plugins.attnlab_parallel_launcher.parallel_launcher.ParallelLauncher"


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
