"""``attnlab-prepare [overrides]`` (:mod:`attnlab.cli.apps`): tokenize a corpus once into token shards, with the
overrides of ``attnlab-train``.

Training runs with the same data config (any number of ranks, nodes sharing the cache dir) then map these
shards instead of preparing the corpus themselves.
"""
from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from attnlab.cli.validate import ConfigError, validate_targets
from attnlab.data.corpus_store import PreparedCorpusHooks


def prepare(cfg: DictConfig) -> Path:
    """Write the shards of ``cfg.data`` unless they exist; print where they are and what they hold."""
    validate_targets(cfg.data, "data")
    datamodule = hydra.utils.instantiate(cfg.data)
    if not isinstance(datamodule, PreparedCorpusHooks):
        raise ConfigError(f"data={cfg.data._target_} has no token shards to prepare; the data modules that have: "
                          "attnlab.data.translation.TranslationDataModule (data=fra_eng, data=parallel), "
                          "attnlab.data.bert_pretraining.WikiText2DataModule (data=wikitext2)")
    store = datamodule.shard_store()
    existed, start = store.exists(), time.perf_counter()
    datamodule.prepare_data()
    shards = store.open()
    if shards is None:
        raise OSError(f"no readable shards at {store.path} after preparing them")
    size = sum(path.stat().st_size for path in store.path.rglob("*") if path.is_file())
    rows = ", ".join(f"{split} {shards.num_rows(split):,}" for split in shards.splits)
    how = "already prepared" if existed else f"prepared in {time.perf_counter() - start:.1f} s"
    print(f"token shards: {store.path}\n  {how}; rows: {rows}; {size / 2**20:.1f} MiB on disk")
    return store.path
