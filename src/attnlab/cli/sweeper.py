"""Makes attnlab's Optuna sweeper (``hydra/sweeper=attnlab_optuna``) known to Hydra in every kind of install, and
tells a job whether it is one of its trials.

Hydra finds plugins by listing the modules of the ``hydra_plugins`` namespace package with ``pkgutil``.
A regular install puts ``hydra_plugins/attnlab_optuna_sweeper`` in site-packages, where that scan finds it;
an editable install (``pip install -e .``) exposes it through setuptools' import hook, which ``pkgutil``
cannot list, so the CLI registers the class itself when the scan missed it.
"""
from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

from attnlab.cli.resolvers import in_multirun

SWEEPER = "hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def register_sweeper() -> None:
    plugins = Plugins.instance()
    if any(f"{cls.__module__}.{cls.__name__}" == SWEEPER for cls in plugins.discover(Sweeper)):
        return
    from hydra_plugins.attnlab_optuna_sweeper.optuna_sweeper import OptunaSweeper

    plugins.register(OptunaSweeper)


def in_search() -> bool:
    """Whether this job is a trial of the Optuna sweeper (whose objective is ``optimized_metric``); false in the
    DDP ranks that Lightning relaunches in run mode."""
    return in_multirun() and HydraConfig.get().sweeper.get("_target_") == SWEEPER
