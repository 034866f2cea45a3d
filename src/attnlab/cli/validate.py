"""Config validation before anything is built: the ``_target_`` nodes are checked against their signatures
(:mod:`attnlab.inference.targets`, shared with restoring a run), the ``???`` leaves the data decides are filled,
and any left missing are reported.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from attnlab.inference.targets import ConfigError, validate_targets

__all__ = ["ConfigError", "check_no_missing", "fill_missing", "validate_targets"]


def fill_missing(cfg: DictConfig | ListConfig, values: Mapping[str, Any]) -> list[str]:
    """Set every ``???`` leaf of ``cfg`` whose key is in ``values`` (e.g. a DataModule's ``spec().as_dict()``:
    vocabulary sizes, special ids, ...), wherever it sits in the tree; returns the filled keys' paths. Values for
    keys that are not ``???`` are ignored, and a ``???`` with no value stays missing for :func:`check_no_missing` to
    report. Interpolations (``${attention}``) point outside the tree and are left alone."""
    filled = []
    keys = cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg))
    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            if key in values:
                cfg[key] = values[key]
                filled.append(str(key))
        elif not OmegaConf.is_interpolation(cfg, key) and isinstance(cfg[key], (DictConfig, ListConfig)):
            filled += [f"{key}.{path}" for path in fill_missing(cfg[key], values)]
    return filled


def check_no_missing(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required config values are missing (???): {', '.join(missing)}; set them on the command line")
