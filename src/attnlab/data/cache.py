"""The on-disk cache of a prepared corpus, shared by the DataModules that encode text once and reuse it.

One entry is one ``.npz`` file of NumPy arrays and texts (tokenizer JSON, raw sentences). Its name carries a
digest of the preparation's config, of the stats (path, size, mtime) of the files read and of
:data:`CACHE_VERSION`, so any change to them misses the old entry instead of reusing it. Entries are written
atomically: processes of one job that race to fill the cache never read a partial file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from attnlab.data.tokenizers import TextTokenizer

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when what any DataModule caches changes meaning or layout (3: splits by source, texts)
_TEXT = "text/"  # key prefix of texts stored as UTF-8 bytes
T = TypeVar("T")


class CacheEntry(NamedTuple):
    arrays: dict[str, np.ndarray]
    texts: dict[str, str]


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


class DiskCache:
    """The entry for data prepared with ``config`` from ``files``: ``<directory>/<name>-<digest>.npz``."""

    def __init__(self, directory: str | os.PathLike, name: str, config: Mapping[str, Any], files: Sequence[Path]):
        self.path = Path(directory) / f"{entry_name(name, config, files)}.npz"

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self, decode: Callable[[CacheEntry], T]) -> T | None:
        """``decode`` of the entry, or None when there is none or it is unreadable (logged: the caller rebuilds it)."""
        if not self.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                arrays = {key: z[key] for key in z.files}
            texts = {key.removeprefix(_TEXT): arrays.pop(key).tobytes().decode("utf-8")
                     for key in list(arrays) if key.startswith(_TEXT)}
            return decode(CacheEntry(arrays, texts))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            log.warning("ignoring unreadable cache %s (%s); rebuilding", self.path, err)
            return None

    def save(self, arrays: Mapping[str, np.ndarray], texts: Mapping[str, str]) -> None:
        encoded = {_TEXT + key: np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for key, text in texts.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays, **encoded)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
            os.replace(tmp, self.path)  # atomic: concurrent ranks never read a partial cache
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("cached %s", self.path)
