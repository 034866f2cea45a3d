"""The Hydra commands ``attnlab-train``, ``attnlab-eval`` and ``attnlab-prepare``: check the command line,
compose the config, then run the job.

A command's wiring (:mod:`attnlab.cli.train`, ``.eval``, ``.prepare``), and with it torch and Lightning, is
imported when a job starts, so ``--help``, ``--cfg`` and composition errors answer without loading them
(``bench/cli_startup.py`` measures it). The configs name the jobs (``hydra.job.name``: the run's log file).
"""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import hydra
from omegaconf import DictConfig

from attnlab.cli.arguments import UsageError
from attnlab.cli.failures import reported_failures
from attnlab.cli.resolvers import register_resolvers
from attnlab.cli.schema import register_schemas
from attnlab.cli.plugins import register_plugins
from attnlab.training.notices import quiet_lightning

register_schemas()
register_resolvers()
register_plugins()  # hydra/sweeper=attnlab_optuna and hydra/launcher=parallel, also from an editable install

CONF = "pkg://attnlab.conf"
SLURM_PLUGIN = "hydra_plugins.hydra_submitit_launcher"  # the `slurm` extra: hydra-submitit-launcher


def check_command_line(prog: str, argv: list[str]) -> None:
    """Answer the command lines Hydra would end in a traceback with what to do instead (exit status 2)."""
    previews = any(arg in ("-c", "--cfg") or arg.startswith("--cfg=") for arg in argv)
    if previews and any(arg in ("-m", "--multirun") for arg in argv):
        _refuse(prog, "--cfg prints the config of one run; Hydra cannot preview a sweep (-m). Preview one of its "
                      "jobs: the same command without -m, with one value for each swept key (kernel.init_w=0.5 "
                      "for kernel.init_w=0.5,1,2). Each job of the sweep saves its config in <job dir>/.hydra/.")
    launcher = next((arg.partition("=")[2] for arg in argv if arg.startswith("hydra/launcher=submitit")), None)
    if launcher and importlib.util.find_spec(SLURM_PLUGIN) is None:
        _refuse(prog, f"hydra/launcher={launcher} needs hydra-submitit-launcher, the slurm extra: "
                      "pip install 'attnlab[slurm]'")


def _refuse(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)
    raise UsageError(message)


@hydra.main(version_base="1.3", config_path=CONF, config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from attnlab.cli.train import train

    with reported_failures():
        return train(cfg)


@hydra.main(version_base="1.3", config_path=CONF, config_name="eval")
def _evaluate(cfg: DictConfig) -> None:
    from attnlab.cli.eval import evaluate

    with reported_failures():
        evaluate(cfg)


@hydra.main(version_base="1.3", config_path=CONF, config_name="prepare")
def _prepare(cfg: DictConfig) -> None:
    from attnlab.cli.prepare import prepare

    with reported_failures():
        prepare(cfg)


def _run(prog: str, app: Callable[[], Any]) -> None:
    check_command_line(prog, sys.argv[1:])
    quiet_lightning()
    app()


train = partial(_run, "attnlab-train", _train)
evaluate = partial(_run, "attnlab-eval", _evaluate)
prepare = partial(_run, "attnlab-prepare", _prepare)
