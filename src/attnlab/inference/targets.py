"""A run config's ``_target_`` nodes checked against their signatures, before anything is built from it: by
``attnlab-train`` for a composed config and by :mod:`attnlab.inference.restore` for one a checkpoint carries.

Hydra already rejects unknown group choices (listing the available ones) and the root schema rejects
wrong root types; this step catches misspelt or missing constructor arguments and wrong primitive types
deep in the tree, naming the key and what is allowed.
"""
from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from attnlab import ConfigError

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
_PRIMITIVES = (bool, int, float, str)


def _accepted_types(annotation: Any) -> tuple[type, ...] | None:
    """Primitive types an annotation admits, or None when it admits anything non-primitive."""
    if annotation in _PRIMITIVES:
        return (float, int) if annotation is float else (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        accepted: list[type] = []
        for arg in typing.get_args(annotation):
            if arg is type(None):
                accepted.append(type(None))
                continue
            sub = _accepted_types(arg)
            if sub is None:
                return None
            accepted.extend(sub)
        return tuple(accepted)
    return None


def _signature(target: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    function = target.__init__ if inspect.isclass(target) else target
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: skip type checks, keep name checks
        hints = {}
    return signature, hints


def _check_node(node: DictConfig, path: str) -> None:
    target_name = node["_target_"]
    try:
        target = get_object(target_name)
    except Exception as error:
        raise ConfigError(f"{path}._target_={target_name!r} cannot be imported: {error}") from error
    signature, hints = _signature(target)
    parameters = signature.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    allowed = [name for name, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"]
    for key in node:
        if key in _HYDRA_KEYS:
            continue
        if key not in parameters and not takes_kwargs:
            raise ConfigError(f"{path}.{key} is not an argument of {target_name}; allowed: {', '.join(allowed)}")
        if key in hints and not OmegaConf.is_missing(node, key):
            value = node[key]
            accepted = _accepted_types(hints[key])
            if accepted is None:
                continue
            wrong = isinstance(value, (DictConfig, ListConfig)) or not isinstance(value, accepted)
            if (wrong or (isinstance(value, bool) and bool not in accepted)):
                names = " or ".join(sorted({t.__name__ for t in accepted}))
                raise ConfigError(f"{path}.{key}={value!r} has type {type(value).__name__}; {target_name} expects {names}")
    if not node.get("_partial_", False):
        for name, parameter in parameters.items():
            if parameter.default is inspect.Parameter.empty and parameter.kind in (
                parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY
            ) and name not in node.keys() and name != "self":
                raise ConfigError(f"{path}.{name} is required by {target_name} but missing from the config")


def validate_targets(cfg: Any, path: str = "") -> None:
    """Walk the config; check each ``_target_`` node and recurse into its children."""
    if isinstance(cfg, DictConfig):
        if "_target_" in cfg:
            _check_node(cfg, path or "<root>")
        for key in cfg:
            if OmegaConf.is_missing(cfg, key):
                continue
            child = cfg[key]  # resolves interpolations such as `scorer: ${attention}`
            if isinstance(child, (DictConfig, ListConfig)):
                validate_targets(child, f"{path}.{key}" if path else str(key))
    elif isinstance(cfg, ListConfig):
        for index, item in enumerate(cfg):
            validate_targets(item, f"{path}[{index}]")
