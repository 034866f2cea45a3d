"""Where sentence pairs come from: corpora injected into the translation DataModule (``data.corpus``), and the
seeded split that carves held-out pairs out of a training file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from attnlab.data.download import ensure_file
from attnlab.data.text_io import read_aligned, read_tab_pairs

SPLITS = ("train", "val", "test")
FRA_ENG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
FRA_TXT_SHA256 = "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104"  # d2l's fra.txt, 167,130 pairs
Pairs = tuple[list[str], list[str]]  # (sources, targets), line-aligned


def split_indices(num_pairs: int, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Seeded random split of ``range(num_pairs)``: each named split gets ``round(fraction * n)`` indices, "train"
    the rest. Indices stay in file order within a split; the held-out splits depend only on (n, fractions, seed)."""
    order = np.random.default_rng(seed).permutation(num_pairs)
    splits, start = {}, 0
    for name, fraction in fractions.items():
        count = round(fraction * num_pairs)
        splits[name] = np.sort(order[start : start + count])
        start += count
    splits["train"] = np.sort(order[start:])
    return splits


class Corpus(Protocol):
    """A source of sentence pairs, injected into the translation DataModule (``data.corpus`` in the config)."""

    name: str  # short name, used for cache file names

    def read_splits(self) -> dict[str, Pairs | None]:
        """Pairs of "train", and of "val"/"test" when the corpus ships them (None: carved out of train)."""
        ...

    def files(self) -> list[Path]:
        """The files read; their size and mtime key the cache."""
        ...

    def identity(self) -> dict[str, Any]:
        """Options that change the pairs read (part of the cache key)."""
        ...


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
    """Any line-aligned corpus: ``<prefix>.<src_lang>`` and ``<prefix>.<tgt_lang>`` (plain or ``.gz``) per split.

    ``val``/``test`` prefixes may be None: those splits are then carved out of train by the DataModule.
    """

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

    def _file(self, prefix: str | os.PathLike, lang: str) -> Path:
        plain = Path(f"{prefix}.{lang}")
        for candidate in (plain, Path(f"{plain}.gz")):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no parallel file {plain} or {plain}.gz (split prefix {prefix}, language {lang!r})")

    def _split_files(self, split: str) -> tuple[Path, Path] | None:
        prefix = self.prefixes[split]
        return None if prefix is None else (self._file(prefix, self.src_lang), self._file(prefix, self.tgt_lang))

    def read_splits(self) -> dict[str, Pairs | None]:
        files = {split: self._split_files(split) for split in SPLITS}
        return {split: None if pair is None else read_aligned(*pair) for split, pair in files.items()}

    def files(self) -> list[Path]:
        return [path for split in SPLITS if (files := self._split_files(split)) is not None for path in files]

    def identity(self) -> dict[str, Any]:
        carved = [split for split, prefix in self.prefixes.items() if prefix is None]
        return {"corpus": self.name, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang, "carved": carved}
