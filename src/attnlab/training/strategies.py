"""Pieces of distributed strategies that configs cannot spell directly, and the gathering of evaluation outputs."""
from __future__ import annotations

from importlib import import_module
from typing import Sequence

import torch.distributed as dist
from pytorch_lightning.strategies import FSDPStrategy
from torch import nn


def module_classes(paths: Sequence[str]) -> set[type[nn.Module]]:
    """The module classes named by dotted ``paths``, as a set: the form of FSDP's ``auto_wrap_policy`` that
    makes every instance of these classes (the Transformer/BERT blocks) a unit sharded on its own."""
    classes = set()
    for path in paths:
        module_name, _, name = path.rpartition(".")
        try:
            cls = getattr(import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as error:
            raise ValueError(f"cannot import module class {path!r}: {error}") from error
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"{path!r} is not a torch.nn.Module subclass")
        classes.add(cls)
    return classes


def gather_objects(items: list) -> list:
    """Every rank's ``items`` (picklable), concatenated in rank order; ``items`` itself outside a process group.
    A collective call: under DDP every rank must make it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(items)
    gathered: list[list | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def fsdp(
    block_classes: Sequence[str],
    *,
    activation_checkpointing: bool = False,
    sharding_strategy: str = "FULL_SHARD",
    state_dict_type: str = "full",
) -> FSDPStrategy:
    """FSDP with every Transformer block (each instance of ``block_classes``) its own sharded unit.

    ``activation_checkpointing`` also wraps each block so that its activations are recomputed in the backward
    pass instead of kept from the forward: activation memory of one block instead of all, for about one more
    forward pass of compute (Chen et al., 2016).
    """
    blocks = module_classes(block_classes)
    return FSDPStrategy(
        auto_wrap_policy=blocks,
        activation_checkpointing_policy=blocks if activation_checkpointing else None,
        sharding_strategy=sharding_strategy,
        state_dict_type=state_dict_type,
    )
