"""The prepared corpus of a DataModule: its token shards, the tokenizers they were encoded with, and their life.

One component owns what both shard-reading DataModules (translation, BERT pretraining) do with a preparation: the
store key, load-or-build under the store's lock (one preparer, the others map its shards), the in-memory path
without a cache dir, and the tokenizers, adopted from the shards or restored from a checkpoint. A DataModule hands
it a name, the config, the files and ``fill(writer, tokenizers)``, which reads the corpus, trains the tokenizers
unless given, writes the splits and returns the tokenizers by their checkpoint keys.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from attnlab.data.cache import tokenizer_identity
from attnlab.data.shards import Shards, ShardStore, ShardWriter
from attnlab.data.tokenizers import TextTokenizer

log = logging.getLogger(__name__)

Tokenizers = dict[str, TextTokenizer]  # checkpoint key -> tokenizer
Fill = Callable[[ShardWriter, "Tokenizers | None"], Tokenizers]


def tokenizer_state(tokenizers: Mapping[str, TextTokenizer]) -> dict[str, str]:
    """``{key: tokenizer JSON}``: how a checkpoint and the shards' meta keep the tokenizers."""
    return {key: tokenizer.to_str() for key, tokenizer in tokenizers.items()}


def restore_tokenizers(state: Mapping[str, str], keys: Sequence[str], current: Tokenizers | None) -> Tokenizers:
    """The tokenizers of ``state`` under ``keys``: ``current``'s objects where their JSON is the same, one object
    for keys with the same JSON (a joint vocabulary)."""
    if missing := sorted(set(keys) - set(state)):
        raise ValueError(f"datamodule state lacks {missing}; it has {sorted(state)}")
    known = {tokenizer.to_str(): tokenizer for tokenizer in (current or {}).values()}
    for key in keys:
        if state[key] not in known:  # parsed once
            known[state[key]] = TextTokenizer.from_str(state[key])
    return {key: known[state[key]] for key in keys}


class PreparedCorpus:
    """Token shards of one preparation under ``cache_dir`` (None: the same tables kept in memory), with the
    tokenizers stored under ``keys`` in the shards' meta and in the DataModule's checkpointed state."""

    def __init__(
        self,
        name: str,
        keys: Sequence[str],
        build_tokenizer: Callable[[], TextTokenizer],
        config: Mapping[str, Any],
        files: Callable[[], Sequence[Path]],
        fill: Fill,
        cache_dir: str | os.PathLike | None,
    ):
        self.name, self.keys, self.build_tokenizer, self.config = name, list(keys), build_tokenizer, dict(config)
        self.files, self.fill = files, fill
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.tokenizers: Tokenizers | None = None  # the shards' once loaded, or a checkpoint's
        self.restored: Tokenizers | None = None  # a checkpoint's: then they, not the config, may key the store
        self.cache_hit: bool | None = None  # whether it mapped existing shards

    def store(self) -> ShardStore:
        """``<cache_dir>/<name>-<digest>/``, keyed by the files and the config with the tokenizer builder's config;
        restored tokenizers other than the ones that store holds key their own (a resumed run maps the shards it
        trained on, a foreign tokenizer gets its own)."""
        if self.cache_dir is None:
            raise ValueError("cache_dir is None: token shards need a directory (paths.cache_dir, env ATTNLAB_CACHE)")
        store = self._store(tokenizer_identity(self.build_tokenizer()))
        if self.restored is None or store.holds(tokenizer_state(self.restored)):
            return store
        identities = [tokenizer_identity(tokenizer) for tokenizer in self.restored.values()]
        return self._store(identities[0] if len(identities) == 1 else identities)

    def _store(self, tokenizer: Any) -> ShardStore:
        return ShardStore(self.cache_dir, self.name, {**self.config, "tokenizer": tokenizer}, self.files())

    def prepare(self) -> None:
        """Check the files, and write the shards when missing (Lightning's ``prepare_data``: once per node)."""
        self.files()
        if self.cache_dir is not None and not self.store().exists():
            self.load()

    def load(self) -> Shards:
        """The shards mapped from the store (written first when missing, by one process at a time), or prepared in
        memory without a cache dir; ``tokenizers`` become the ones they were encoded with."""
        start = time.perf_counter()
        store = None if self.cache_dir is None else self.store()

        def write(writer: ShardWriter) -> Shards:
            self.tokenizers = self.fill(writer, self.tokenizers)
            return writer.finish(tokenizer_state(self.tokenizers))

        with nullcontext() if store is None else store.preparing():  # one preparer; the others map its shards
            shards = None if store is None else store.open()
            self.cache_hit = shards is not None
            if shards is None:
                shards = write(ShardWriter(None)) if store is None else store.write(write)
        self.tokenizers = restore_tokenizers(shards.meta, self.keys, self.tokenizers)  # the store's, whoever wrote it
        rows = "/".join(str(shards.num_rows(split)) for split in shards.splits)
        how = ("prepared" if store is None else f"shards mapped from {store.path}" if self.cache_hit
               else f"prepared into {store.path}")
        log.info("%s: %s in %.2fs; rows %s %s; vocab %s", self.name, how, time.perf_counter() - start,
                 "/".join(shards.splits), rows, "/".join(str(t.vocab_size) for t in self.tokenizers.values()))
        return shards

    def tokenizer(self, key: str) -> TextTokenizer:
        if self.tokenizers is None:
            raise ValueError(f"{self.name} has no tokenizer yet: call setup() or load_state_dict() first")
        return self.tokenizers[key]

    def load_state_dict(self, state: Mapping[str, str]) -> bool:
        """Adopt a checkpoint's tokenizers; True when they differ from the ones held (data encoded with those is
        stale: the DataModule loads again)."""
        if not state:
            return False
        restored = restore_tokenizers(state, self.keys, self.tokenizers)
        changed = self.tokenizers is not None and tokenizer_state(restored) != tokenizer_state(self.tokenizers)
        self.tokenizers = self.restored = restored
        return changed


class PreparedCorpusHooks:
    """The hooks of a DataModule over ``self.prepared`` that hand over to it (a base before
    ``pl.LightningDataModule``; ``attnlab-prepare`` takes such DataModules). The DataModule's ``setup`` loads the
    prepared corpus; ``_unload`` drops what it loaded and says whether there was any."""

    prepared: PreparedCorpus

    def prepare_data(self) -> None:
        """Write the shards once per node (Lightning calls this on one process), so that the ranks only map them."""
        self.prepared.prepare()

    def shard_store(self) -> ShardStore:
        """Where this data config's shards live (whether written yet or not)."""
        return self.prepared.store()

    @property
    def cache_hit(self) -> bool | None:
        return self.prepared.cache_hit

    def prepare_tokenizers(self) -> None:
        """Prepare and set up the data unless the tokenizers are known (a checkpoint's gives them at once): what
        ``spec()`` needs. Once: Lightning's own ``prepare_data``/``setup`` then find the work done."""
        if self.prepared.tokenizers is None:
            self.prepare_data()
            self.setup()

    def state_dict(self) -> dict[str, str]:
        return tokenizer_state(self.prepared.tokenizers or {})

    def load_state_dict(self, state_dict: Mapping[str, str]) -> None:
        """Adopt a checkpoint's tokenizers; data already loaded with other ones is loaded (encoded) again."""
        if self.prepared.load_state_dict(state_dict) and self._unload():
            self.setup()
