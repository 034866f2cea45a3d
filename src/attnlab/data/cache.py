"""Cache keys of a prepared corpus: what names the token shards (:mod:`attnlab.data.shards`) of a preparation.

A key is a digest of the preparation's config, of the stats (path, size, mtime) of the files read and of
:data:`CACHE_VERSION`, so any change to them misses the old shards instead of reusing them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attnlab.data.tokenizers import TextTokenizer

CACHE_VERSION = 3  # bump when what any DataModule caches changes meaning or layout (3: splits by source, texts)


def tokenizer_identity(tokenizer: TextTokenizer) -> dict[str, Any]:
    """What a cache key says about a tokenizer: the builder's config while it is to be trained on the data, the
    digest of its JSON once trained (e.g. restored from a checkpoint)."""
    if tokenizer.is_trained:
        return {"json_sha256": hashlib.sha256(tokenizer.to_str().encode()).hexdigest()}
    return dict(tokenizer.config)


def entry_name(name: str, config: Mapping[str, Any], files: Sequence[Path]) -> str:
    """``<name>-<digest>``: the digest covers ``config``, the stats of ``files`` and :data:`CACHE_VERSION`."""
    stats = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    key = json.dumps({"version": CACHE_VERSION, "config": config, "files": stats}, sort_keys=True)
    return f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
