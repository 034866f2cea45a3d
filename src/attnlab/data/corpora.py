"""Where sentence pairs come from: corpora injected into the translation DataModule (``data.corpus``), and the
seeded split that carves held-out pairs out of a training file (by source sentence, so none leaks into training).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from attnlab import MissingFileError
from attnlab.data.download import ensure_file
from attnlab.data.text_io import read_aligned, read_tab_pairs

SPLITS = ("train", "val", "test")
FRA_ENG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
FRA_TXT_SHA256 = "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104"  # d2l's fra.txt, 167,130 pairs
Pairs = tuple[list[str], list[str]]  # (sources, targets), line-aligned


def split_indices(
    num_items: int, fractions: dict[str, float], seed: int, groups: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Seeded random split of ``range(num_items)``: each named split gets ``round(fraction * n)`` items, "train"
    the rest, in file order. ``groups`` (a group id ``0..G-1`` per item; default: one per item) keeps each group
    whole: in a seeded order of groups, each named split in turn takes whole groups until it holds its share."""
    groups = np.arange(num_items) if groups is None else np.asarray(groups)
    if len(groups) != num_items:
        raise ValueError(f"groups holds {len(groups)} ids for {num_items} items")
    sizes = np.bincount(groups, minlength=1)  # (G,) items per group
    order = np.random.default_rng(seed).permutation(len(sizes))
    ends = np.cumsum(sizes[order])  # items in the groups visited up to and including each one
    split_of_visit = np.full(len(order), len(fractions))  # k: the k-th named split; len(fractions): train
    start = taken = 0
    for k, fraction in enumerate(fractions.values()):
        share = round(fraction * num_items)
        stop = start if share == 0 else min(int(np.searchsorted(ends, taken + share)) + 1, len(order))
        split_of_visit[start:stop] = k
        start, taken = stop, int(ends[stop - 1]) if stop else 0
    split_of_group = np.empty(len(sizes), dtype=np.int64)
    split_of_group[order] = split_of_visit
    split_of_item = split_of_group[groups]
    return {name: np.flatnonzero(split_of_item == k) for k, name in enumerate([*fractions, "train"])}


def source_groups(sources: Sequence[str]) -> np.ndarray:
    """``(N,)`` group id of each pair: pairs with the same source sentence share one (in order of appearance)."""
    ids: dict[str, int] = {}
    return np.fromiter((ids.setdefault(source, len(ids)) for source in sources), dtype=np.int64, count=len(sources))


class Corpus(Protocol):
    """A source of sentence pairs, injected into the translation DataModule (``data.corpus`` in the config)."""

    name: str  # short name, used for cache file names

    def read_splits(self) -> dict[str, Pairs | None]: ...  # "train", "val", "test" (None: carved out of train)

    def files(self) -> list[Path]: ...  # the files read: their paths, sizes and contents key the cache

    def identity(self) -> dict[str, Any]: ...  # options that change the pairs read (part of the cache key)


class FraEngCorpus:
    """English -> French pairs of d2l's ``fra-eng`` (Tatoeba via manythings.org): one ``fra.txt``, split by seed."""

    name = "fra_eng"

    def __init__(self, path: str | os.PathLike = "data/fra-eng/fra.txt", url: str = FRA_ENG_URL):
        self.path, self.url = Path(path), url

    def _fra_txt(self) -> Path:
        return ensure_file(
            self.path,
            self.url,
            sha256=FRA_TXT_SHA256,
            member="fra-eng/fra.txt",
            how_to_get=(
                f"download {self.url} and unzip its member fra-eng/fra.txt to {self.path}, "
                "or point paths.data_dir (env DATA_DIR) at a directory holding fra-eng/fra.txt"
            ),
        )

    def read_splits(self) -> dict[str, Pairs | None]:
        return {"train": read_tab_pairs(self._fra_txt()), "val": None, "test": None}

    def files(self) -> list[Path]:
        return [self._fra_txt()]

    def identity(self) -> dict[str, Any]:
        return {"corpus": self.name}


class ParallelCorpus:
    """Any line-aligned corpus: ``<prefix>.<src_lang>`` and ``<prefix>.<tgt_lang>`` (plain or ``.gz``) per split;
    a ``val``/``test`` prefix of None: that split is carved out of train."""

    name = "parallel"

    def __init__(
        self,
        train: str | os.PathLike,
        src_lang: str,
        tgt_lang: str,
        val: str | os.PathLike | None = None,
        test: str | os.PathLike | None = None,
    ):
        if src_lang == tgt_lang:
            raise ValueError(f"src_lang and tgt_lang must differ, both are {src_lang!r}")
        self.prefixes = {"train": train, "val": val, "test": test}
        self.src_lang, self.tgt_lang = src_lang, tgt_lang

    def _file(self, prefix: str | os.PathLike, lang: str) -> Path:  # prefix.lang or prefix.lang.gz
        plain = Path(f"{prefix}.{lang}")
        for candidate in (plain, Path(f"{plain}.gz")):
            if candidate.is_file():
                return candidate
        raise MissingFileError(f"no parallel file {plain} or {plain}.gz (split prefix {prefix}, language {lang!r})")

    def _split_files(self) -> dict[str, tuple[Path, Path] | None]:
        return {
            split: None if prefix is None else (self._file(prefix, self.src_lang), self._file(prefix, self.tgt_lang))
            for split, prefix in self.prefixes.items()
        }

    def read_splits(self) -> dict[str, Pairs | None]:
        return {split: None if pair is None else read_aligned(*pair) for split, pair in self._split_files().items()}

    def files(self) -> list[Path]:
        return [path for pair in self._split_files().values() if pair is not None for path in pair]

    def identity(self) -> dict[str, Any]:
        carved = [split for split, prefix in self.prefixes.items() if prefix is None]
        return {"corpus": self.name, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang, "carved": carved}
