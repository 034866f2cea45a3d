"""Token shards: a prepared corpus as Arrow IPC files (memory-mapped), written once.

A store is a directory ``<root>/<name>-<digest>/`` (:func:`~attnlab.data.cache.entry_name`) holding each split as
parts, ``<split>/part-<k>.arrow`` (one record batch each, written as the encoding goes, so preparing never holds
the encoded corpus in memory), and ``meta.json`` (tokenizers and other texts). It is written into a temporary
sibling and renamed when complete, so no process reads a partial store; a lock file beside it (``flock``) makes one
process on a filesystem the preparer, and the others (ranks, nodes on a shared filesystem) wait and map its shards.

Reading memory-maps the files: the ranks and workers of a node share one copy in the page cache, and a process
touches only the rows it reads; ``list<int32>`` token columns are read zero-copy as
:class:`~attnlab.data.ragged.ChunkedRagged` (one chunk a part). Without a store the same tables stay in memory.
Why Arrow IPC directly and not Hugging Face ``datasets``: ``bench/shard_formats.py``.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from attnlab.data.cache import entry_name
from attnlab.data.ragged import ChunkedRagged, RaggedIds

log = logging.getLogger(__name__)

Column = RaggedIds | np.ndarray | Sequence[str]  # token rows, one number a row, or one text a row
META = "meta.json"


def _arrow(column: Column) -> pa.Array:
    if isinstance(column, RaggedIds):
        offsets = (column.offsets - column.offsets[0]).astype(np.int32)
        ids = column.ids[column.offsets[0] : column.offsets[-1]]
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids))
    return pa.array(column)


def _view(array: pa.Array) -> np.ndarray:
    """An integer or boolean array without nulls as NumPy (a view of its buffer where it is integer):
    ``Array.to_numpy`` would import pandas, 30 MiB of a training process."""
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.uint8())  # bit-packed: one byte a value
    dtype = np.dtype(f"{'u' if pa.types.is_unsigned_integer(array.type) else 'i'}{array.type.bit_width // 8}")
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _read(path: Path) -> pa.Table:
    """One part, memory-mapped: its buffers are views of the file."""
    with pa.ipc.open_file(pa.memory_map(str(path))) as reader:
        return reader.read_all()


class Shards:
    """The splits of a prepared corpus (an Arrow table each, memory-mapped or in memory) and its texts."""

    def __init__(self, splits: Mapping[str, pa.Table], meta: Mapping[str, str]):
        self.splits, self.meta = dict(splits), dict(meta)

    def num_rows(self, split: str) -> int:
        return self.splits[split].num_rows

    def ragged(self, split: str, column: str) -> ChunkedRagged:
        """A ``list<int32>`` column as rows of ids, zero-copy over the Arrow buffers."""
        chunks = self.splits[split].column(column).chunks
        return ChunkedRagged([RaggedIds(_view(c.values), _view(c.offsets)) for c in chunks])

    def array(self, split: str, column: str) -> np.ndarray:
        """An integer or boolean (as ``uint8``) column as one ``(N,)`` array (a copy: keep such columns narrow)."""
        chunks = self.splits[split].column(column).chunks
        return np.concatenate([_view(chunk) for chunk in chunks]) if chunks else np.zeros(0, dtype=np.int64)

    def texts(self, split: str, column: str) -> list[str]:
        return self.splits[split].column(column).to_pylist()


class ShardWriter:
    """Takes a corpus part by part (``add``) and ends as :class:`Shards` (``finish``): written to ``directory``
    as it comes, or kept in memory when ``directory`` is None."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.parts: dict[str, list[pa.Table]] = {}

    def add(self, split: str, columns: Mapping[str, Column]) -> None:
        """One part of ``split``: equally long columns (an empty split: one empty part, which holds its columns)."""
        part = pa.table({name: _arrow(column) for name, column in columns.items()})
        parts = self.parts.setdefault(split, [])
        if self.directory is not None:
            path = self.directory / split / f"part-{len(parts):05d}.arrow"
            path.parent.mkdir(parents=True, exist_ok=True)
            with pa.ipc.new_file(str(path), part.schema) as writer:
                writer.write_table(part, max_chunksize=max(part.num_rows, 1))  # one record batch a part
            part = _read(path)
        parts.append(part)

    def finish(self, meta: Mapping[str, str]) -> Shards:
        if self.directory is not None:
            (self.directory / META).write_text(json.dumps({"splits": list(self.parts), "texts": dict(meta)}))
        return Shards({split: pa.concat_tables(parts) for split, parts in self.parts.items()}, meta)


class ShardStore:
    """Where the shards of a preparation live: ``<root>/<name>-<digest>/``."""

    def __init__(self, root: str | os.PathLike, name: str, config: Mapping[str, Any], files: Sequence[Path]):
        self.path = Path(root) / entry_name(name, config, files)

    def exists(self) -> bool:
        return (self.path / META).is_file()

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Held while a process looks for the shards and, when they are missing, prepares them: one process at a
        time per store. Where the filesystem refuses ``flock`` (Lustre mounted without ``-o flock``) the processes
        go on unlocked, and the atomic rename in :meth:`write` keeps one of the stores they write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / f".{self.path.name}.lock", "a") as lock:
            try:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("waiting for another process preparing %s", self.path)
                    fcntl.flock(lock, fcntl.LOCK_EX)
            except OSError as err:
                log.warning("cannot lock %s (%s): preparing without a lock", lock.name, err)
            yield  # closing the file releases the lock

    def holds(self, texts: Mapping[str, str]) -> bool:
        """Whether the store is written with these ``texts`` among its own: e.g. whether the shards keyed by a
        tokenizer's config were encoded with the trained tokenizer a checkpoint brings back."""
        try:
            stored = json.loads((self.path / META).read_text())["texts"]
        except (OSError, KeyError, ValueError):
            return False
        return all(stored.get(name) == text for name, text in texts.items())

    def open(self) -> Shards | None:
        """The stored shards, memory-mapped; None when there are none or they are unreadable (logged: the caller
        prepares them again)."""
        if not self.exists():
            return None
        try:
            meta = json.loads((self.path / META).read_text())
            splits = {split: pa.concat_tables([_read(part) for part in sorted((self.path / split).glob("part-*"))])
                      for split in meta["splits"]}
            return Shards(splits, meta["texts"])
        except (OSError, KeyError, ValueError, pa.ArrowException) as err:
            log.warning("ignoring unreadable shards %s (%s); preparing them again", self.path, err)
            return None

    def write(self, fill) -> Shards:
        """``fill(writer)`` into a temporary sibling, then rename it into place (atomic); the stored shards,
        memory-mapped. When another process finished first, its shards are kept and these dropped; a store there
        that cannot be read (damaged, or of another layout) is replaced."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}."))
        try:
            fill(ShardWriter(tmp))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the shards may be shared
            try:
                os.rename(tmp, self.path)
            except OSError:  # a store is already there: another process's complete one, or an unreadable one
                if not self.exists():
                    raise
                if self.open() is None:
                    shutil.rmtree(self.path)
                    os.rename(tmp, self.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("wrote shards %s", self.path)
        shards = self.open()
        if shards is None:
            raise OSError(f"shards just written to {self.path} cannot be read back")
        return shards
