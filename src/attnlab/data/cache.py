"""Cache keys of a prepared corpus: what names its token shards (:mod:`attnlab.data.shards`).

A key digests the preparation's config, the files read (path, size and an xxHash64 of the whole content, ~5 GB/s
from the page cache, so an edit that keeps size and mtime, as ``cp -p``/``rsync -a`` leave them, is seen too) and
:data:`CACHE_VERSION`: any change misses the old shards instead of reusing them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xxhash

from attnlab.data.tokenizers import TextTokenizer

CACHE_VERSION = 4  # bump when what any DataModule caches changes meaning or layout (3: splits by source, texts;
# 4: Arrow IPC files written directly, no longer datasets' directories)
HASH_BLOCK = 1 << 20  # bytes read at a time while hashing a file


def tokenizer_identity(tokenizer: TextTokenizer) -> dict[str, Any]:
    """What a cache key says about a tokenizer: the builder's config while it is to be trained on the data, the
    digest of its JSON once trained (e.g. restored from a checkpoint)."""
    if tokenizer.is_trained:
        return {"json_sha256": hashlib.sha256(tokenizer.to_str().encode()).hexdigest()}
    return dict(tokenizer.config)


def content_hash(path: Path) -> str:
    """xxHash64 of the file's bytes; hashed again only when its stats (size, mtime, ctime, inode) change: an edit in
    place changes the ctime even where ``cp -p``/``rsync -a`` restore the mtime."""
    stat = os.stat(path)
    return _hash_file(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


@functools.lru_cache(maxsize=256)
def _hash_file(path: str, *stamp: int) -> str:
    digest = xxhash.xxh64()
    with open(path, "rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def entry_name(name: str, config: Mapping[str, Any], files: Sequence[Path]) -> str:
    """``<name>-<digest>`` of ``config`` and ``files``."""
    stats = [[str(p.resolve()), p.stat().st_size, content_hash(p.resolve())] for p in files]
    key = json.dumps({"version": CACHE_VERSION, "config": config, "files": stats}, sort_keys=True)
    return f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
