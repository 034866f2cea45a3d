"""What the cases share: the run context, attnlab's own configs, the real corpora, training steps."""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from bench.harness import Skip

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """``$DATA_DIR``, else ``data/`` in the repo when it holds a corpus, else the shared ``../shared/data``."""
    if os.environ.get("DATA_DIR"):
        return Path(os.environ["DATA_DIR"]).resolve()
    local = REPO_ROOT / "data"
    if (local / "fra-eng").is_dir() or (local / "wikitext-2").is_dir():
        return local
    return (REPO_ROOT.parent / "shared" / "data").resolve()


@dataclass
class Context:
    """Options of one benchmark run plus results one case hands to another (the GEMM peak)."""

    quick: bool
    warmup: int
    repeats: int
    data_dir: Path
    work_dir: Path  # caches and scratch files of this suite (outputs/bench/work)
    seed: int = 0
    device: torch.device = torch.device("cpu")  # where causal_decoder runs (--device); the other cases use the CPU
    sizes: tuple[float, ...] | None = None  # corpus sizes of the streaming case (None: its default for the mode)
    shared: dict = field(default_factory=dict)

    def heavy_repeats(self) -> int:
        """Rounds for the slowest measurements (several seconds a sample on the CPU; a GPU runs them all)."""
        return self.repeats if self.device.type == "cuda" else min(self.repeats, 3)

    # ---- data --------------------------------------------------------------------------------------------
    def require(self, relative: str) -> Path:
        """A corpus file under the data dir; Skip (never download) when it is absent."""
        path = self.data_dir / relative
        if not path.is_file():
            raise Skip(f"{path} not found (set DATA_DIR or --data-dir to a directory holding {relative})")
        return path

    @cached_property
    def fra_eng(self):
        """fra-eng prepared as ``experiment=transformer_mt`` does, length-limited to ``FIXED_LEN`` (cached)."""
        from hydra.utils import instantiate

        self.require("fra-eng/fra.txt")
        cfg = compose_train(self, "experiment=transformer_mt", f"data.max_len={FIXED_LEN}", "data.max_tokens=null",
                            f"data.batch_size={MT_BATCH}")
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        return datamodule

    @cached_property
    def wikitext(self):
        """WikiText-2 prepared as ``experiment=bert_pretrain`` does (cached)."""
        from hydra.utils import instantiate

        for split in ("train", "valid", "test"):
            self.require(f"wikitext-2/wiki.{split}.tokens")
        cfg = compose_train(self, "experiment=bert_pretrain")
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        return datamodule


FIXED_LEN = 16  # the references' fixed padded length (tokens incl. <eos>/<bos>); covers ~99 % of fra-eng
MT_BATCH = 128  # d2l's batch size (rows), every contender


def compose_train(ctx: Context, *overrides: str) -> DictConfig:
    """attnlab's training config as ``attnlab-train <overrides>`` composes it, with paths under the bench."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from attnlab.cli.resolvers import register_resolvers
    from attnlab.cli.schema import register_schemas

    register_schemas()
    register_resolvers()
    paths = [f"paths.data_dir={ctx.data_dir}", f"paths.cache_dir={ctx.work_dir / 'cache'}",
             f"paths.output_dir={ctx.work_dir / 'run'}", f"seed={ctx.seed}"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("attnlab.conf", version_base="1.3"):
            return compose("train", overrides=[*paths, *overrides])
    finally:
        GlobalHydra.instance().clear()


def build_net(cfg: DictConfig, **data_kwargs) -> nn.Module:
    """The plain torch model of ``cfg.model.net`` with its ``???`` filled by the values only the data knows."""
    from hydra.utils import instantiate

    from attnlab.cli.validate import check_no_missing, fill_missing

    fill_missing(cfg.model.net, data_kwargs)
    check_no_missing(cfg.model.net)
    return instantiate(cfg.model.net)


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # shared (tied) parameters count once


def cycle(batches: Sequence) -> Callable[[], object]:
    iterator = itertools.cycle(batches)
    return lambda: next(iterator)


def training_step(
    model: nn.Module,
    loss_fn: Callable[[object], Tensor],
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[], object],
    useful: Callable[[object], int],
    batches_per_sample: int,
    clip: float | None = 1.0,
) -> Callable[[], float]:
    """A timed sample: ``batches_per_sample`` full steps (forward, loss, backward, clip, optimizer); returns
    the useful tokens processed. Gradients are dropped after each step, so between steps none exist and a
    memory probe of one step sees activations, gradients and optimizer temporaries."""

    def step() -> float:
        tokens = 0
        for _ in range(batches_per_sample):
            batch = next_batch()
            loss = loss_fn(batch)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += useful(batch)
        return tokens

    return step


def first(iterable: Iterable, n: int) -> list:
    return list(itertools.islice(iterable, n))
