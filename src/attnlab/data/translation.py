"""Sentence-pair translation data (d2l 10.5): one DataModule over an injected corpus (``fra_eng``, ``parallel``).

Pipeline: read pairs -> optional d2l preprocessing -> seeded train/val/test split -> train the tokenizer(s) on the
training split only -> encode every split with the batch API -> apply the length policy -> cache on disk.
Batches are length-bucketed (few pads) and, under DDP, sharded by rank at the batch level.

Shape legend: B batch, S source length (tokens + <eos>), T target length (tokens + one of <bos>/<eos>).
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import math
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from attnlab.data.download import ensure_file
from attnlab.data.resumable import ResumableDataLoader
from attnlab.data.tokenizers import TextTokenizer, word

log = logging.getLogger(__name__)

SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>"]  # ids 0..3 on both sides, as in d2l's Vocab
SPLITS = ("train", "val", "test")
LENGTH_POLICIES = ("truncate", "filter")
FRA_ENG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
CACHE_VERSION = 1  # bump when the cached arrays change meaning
_SPACE_BEFORE = re.compile(r"(?<=[^ \n])([,.!?])")  # punctuation glued to the previous character of its line


class TranslationBatch(NamedTuple):
    src: Tensor  # (B, S) source ids + <eos>, padded with pad id
    src_lens: Tensor  # (B,) valid source lengths (incl. <eos>)
    tgt_in: Tensor  # (B, T) <bos> y: decoder input under teacher forcing
    tgt_out: Tensor  # (B, T) y <eos>: labels, padded with pad id
    tgt_lens: Tensor  # (B,) valid target lengths (len(y) + 1)


# ---- reading and preprocessing ----------------------------------------------------------------------------------
def preprocess(text: str) -> str:
    """d2l's ``preprocess``: lowercase, non-breaking spaces to spaces, a space before , . ! ? glued to a word."""
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    return _SPACE_BEFORE.sub(r" \1", text)


def preprocess_lines(texts: Sequence[str]) -> list[str]:
    """``preprocess`` of each line, done on the joined text: several times faster on a 167k-line corpus."""
    if not texts or any("\n" in text for text in texts):  # joined form needs one line per text
        return [preprocess(text) for text in texts]
    return preprocess("\n".join(texts)).split("\n")


def read_tab_pairs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``source TAB target [TAB attribution]`` lines (the manythings.org / Tatoeba format); blank lines skipped."""
    sources, targets = [], []
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {line[:80]!r}")
            sources.append(fields[0])
            targets.append(fields[1])
    return sources, targets


def read_aligned(src_path: str | os.PathLike, tgt_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Two line-aligned files (plain or .gz): line i of one translates line i of the other."""
    sources, targets = _read_lines(src_path), _read_lines(tgt_path)
    if len(sources) != len(targets):
        raise ValueError(
            f"parallel files are not line-aligned: {src_path} has {len(sources)} lines, "
            f"{tgt_path} has {len(targets)} lines"
        )
    return sources, targets


def _read_lines(path: str | os.PathLike) -> list[str]:
    with _open_text(path) as f:  # iterating splits on "\n" only, unlike str.splitlines
        return [line.rstrip("\r\n") for line in f]


def _open_text(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


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


# ---- encoded storage and batching -------------------------------------------------------------------------------
@dataclass
class RaggedIds:
    """Variable-length id rows in one flat array: row i is ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: Tensor  # (sum of lengths,) int32
    offsets: Tensor  # (N + 1,) int64

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> RaggedIds:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
        return cls(torch.from_numpy(ids), torch.from_numpy(offsets))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Tensor:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]  # (N,)

    def to_lists(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]


class PairDataset(Dataset):
    """Encoded (source, target) pairs without specials; ``collate_pairs`` adds <bos>/<eos> and pads."""

    def __init__(self, src: RaggedIds, tgt: RaggedIds):
        if len(src) != len(tgt):
            raise ValueError(f"source has {len(src)} rows, target {len(tgt)}")
        self.src, self.tgt = src, tgt

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.src[i], self.tgt[i]

    def lengths(self) -> np.ndarray:
        """Longest padded side of each pair, the bucketing key (``+ 1`` for <eos> / <bos>)."""
        return (torch.maximum(self.src.lengths(), self.tgt.lengths()) + 1).numpy()


def collate_pairs(examples: Sequence[tuple[Tensor, Tensor]], pad_id: int, bos_id: int, eos_id: int) -> TranslationBatch:
    src_lens = torch.tensor([len(x) + 1 for x, _ in examples])  # (B,)
    tgt_lens = torch.tensor([len(y) + 1 for _, y in examples])  # (B,)
    batch = len(examples)
    src = torch.full((batch, int(src_lens.max())), pad_id, dtype=torch.long)  # (B, S)
    tgt_in = torch.full((batch, int(tgt_lens.max())), pad_id, dtype=torch.long)  # (B, T)
    tgt_out = tgt_in.clone()  # (B, T)
    for row, (x, y) in enumerate(examples):
        src[row, : len(x)] = x
        src[row, len(x)] = eos_id
        tgt_in[row, 0] = bos_id
        tgt_in[row, 1 : len(y) + 1] = y
        tgt_out[row, : len(y)] = y
        tgt_out[row, len(y)] = eos_id
    return TranslationBatch(src, src_lens, tgt_in, tgt_out, tgt_lens)


class SeededPermutation(Sampler[int]):
    """Indices ``0..n-1``, reshuffled each epoch from ``(seed, epoch)``; identity order when ``shuffle=False``.

    Kept as ``BucketBatchSampler.sampler`` so Lightning's per-epoch ``set_epoch`` call reaches it.
    """

    def __init__(self, num_items: int, shuffle: bool, seed: int):
        self.num_items, self.shuffle, self.seed, self.epoch = num_items, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, stream])

    def order(self) -> np.ndarray:
        return self.rng(0).permutation(self.num_items) if self.shuffle else np.arange(self.num_items)

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.num_items


class BucketBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches: sort each chunk of ``bucket_size`` (shuffled) indices by length, cut it into
    batches of ``batch_size`` rows or of at most ``max_tokens`` padded tokens, then shuffle the batch order.

    With ``world_size > 1`` each rank takes every ``world_size``-th batch; the batch list is first padded by
    cycling so every rank runs the same number of steps (as DistributedSampler does). Under Lightning this
    needs ``Trainer(use_distributed_sampler=False)``, since the sampler does its own sharding (Lightning
    raises a TypeError saying so otherwise). With ``max_tokens`` the number of batches may differ slightly
    between epochs; Lightning sizes an epoch from the first one.
    """

    def __init__(
        self,
        sampler: SeededPermutation,
        lengths: np.ndarray,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        bucket_size: int = 4096,
        rank: int = 0,
        world_size: int = 1,
    ):
        if (batch_size is None) == (max_tokens is None):
            raise ValueError(f"give exactly one of batch_size={batch_size} and max_tokens={max_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        if len(lengths) != len(sampler):
            raise ValueError(f"{len(lengths)} lengths for a sampler over {len(sampler)} items")
        self.sampler, self.lengths = sampler, np.asarray(lengths)
        self.batch_size, self.max_tokens, self.bucket_size = batch_size, max_tokens, bucket_size
        self.rank, self.world_size = rank, world_size
        self._cached: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _cut(self, chunk: np.ndarray) -> list[np.ndarray]:
        if self.batch_size is not None:
            return [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        batches, start, longest = [], 0, 0
        for end, index in enumerate(chunk):  # chunk is sorted by length, so `longest` is the current length
            longest = max(longest, int(self.lengths[index]))
            if end > start and (end - start + 1) * longest > self.max_tokens:
                batches.append(chunk[start:end])
                start, longest = end, int(self.lengths[index])
        if start < len(chunk):
            batches.append(chunk[start:])
        return batches

    def _rank_batches(self) -> list[np.ndarray]:
        if self._cached is not None and self._cached[0] == self.sampler.epoch:
            return self._cached[1]
        order = self.sampler.order()
        batches = []
        for start in range(0, len(order), self.bucket_size):
            chunk = order[start : start + self.bucket_size]
            batches.extend(self._cut(chunk[np.argsort(self.lengths[chunk], kind="stable")]))
        if self.sampler.shuffle:
            batches = [batches[i] for i in self.sampler.rng(1).permutation(len(batches))]
        if self.world_size > 1 and batches:
            total = math.ceil(len(batches) / self.world_size) * self.world_size
            batches = [batches[i % len(batches)] for i in range(total)][self.rank :: self.world_size]
        self._cached = (self.sampler.epoch, batches)
        return batches

    def __iter__(self):
        return (batch.tolist() for batch in self._rank_batches())

    def __len__(self) -> int:
        return len(self._rank_batches())


# ---- corpora: where the pairs come from ----------------------------------------------------------------------
Pairs = tuple[list[str], list[str]]  # (sources, targets), line-aligned


class Corpus(Protocol):
    """A source of sentence pairs, injected into :class:`TranslationDataModule` (``data.corpus`` in the config)."""

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


FRA_TXT_SHA256 = "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104"  # d2l's fra.txt, 167,130 pairs


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


# ---- the DataModule --------------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    src_tokenizer: TextTokenizer
    tgt_tokenizer: TextTokenizer
    datasets: dict[str, PairDataset]
    val_texts: list[tuple[str, str]]  # kept validation pairs, preprocessed text


class TranslationDataModule(pl.LightningDataModule):
    """Translation pairs from an injected ``corpus``, tokenized, cached and batched for seq2seq models.

    Args:
        corpus: where the pairs come from (FraEngCorpus, ParallelCorpus).
        tokenizer: builder of an untrained TextTokenizer (the ``tokenizer`` config group, a partial).
        joint_vocab: one tokenizer trained on both sides, or one per side.
        preprocess: apply d2l's ``preprocess`` to every sentence.
        val_fraction, test_fraction: shares carved out (seeded) when the corpus has no such split.
        num_train, num_val: keep only the first n training / validation pairs (file order); None keeps all.
        max_len: longest sequence in tokens, counting the one <eos>/<bos>; None: no limit.
        length_policy: "truncate" longer pairs to max_len, or "filter" them out.
        batch_size / max_tokens: rows per batch, or (when max_tokens is set, which wins) a padded-token budget.
        bucket_size: examples per length-sorting chunk (larger: less padding, less randomness).
        cache_dir: where encoded corpora are cached (None: no cache).
        output_dir: where tokenizer_src.json / tokenizer_tgt.json are written (None: the working directory).
        seed: fixes the split and the batch order of every epoch.
    """

    def __init__(
        self,
        corpus: Corpus,
        tokenizer: Callable[[], TextTokenizer] = word,
        joint_vocab: bool = False,
        preprocess: bool = True,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        num_train: int | None = None,
        num_val: int | None = None,
        max_len: int | None = None,
        length_policy: str = "truncate",
        batch_size: int | None = 64,
        max_tokens: int | None = None,
        bucket_size: int = 4096,
        num_workers: int = 0,
        cache_dir: str | os.PathLike | None = None,
        output_dir: str | os.PathLike | None = None,
        seed: int = 0,
    ):
        super().__init__()
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {fraction}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        for name, value in (("num_train", num_train), ("num_val", num_val), ("batch_size", batch_size),
                            ("max_tokens", max_tokens)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if max_len is not None and (not isinstance(max_len, int) or max_len < 2):
            raise ValueError(f"max_len must be an int >= 2 (one token plus <eos>) or None, got {max_len!r}")
        if length_policy not in LENGTH_POLICIES:
            raise ValueError(f"length_policy must be one of {LENGTH_POLICIES}, got {length_policy!r}")
        if batch_size is None and max_tokens is None:
            raise ValueError("set batch_size or max_tokens (both are None)")
        if bucket_size < 1 or num_workers < 0:
            raise ValueError(f"need bucket_size >= 1 and num_workers >= 0, got {bucket_size}, {num_workers}")
        self.corpus, self.tokenizer_factory = corpus, tokenizer
        self.joint_vocab, self.preprocess = joint_vocab, preprocess
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.num_train, self.num_val = num_train, num_val
        self.max_len, self.length_policy = max_len, length_policy
        self.batch_size = None if max_tokens is not None else batch_size
        self.max_tokens, self.bucket_size, self.num_workers = max_tokens, bucket_size, num_workers
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.seed = seed
        self._loaded: tuple[TextTokenizer, TextTokenizer] | None = None  # from load_state_dict
        self._prepared: _Prepared | None = None
        self.prep_seconds: float | None = None  # wall time of the last preparation
        self.cache_hit: bool | None = None  # whether it came from the cache

    # -- Lightning hooks ----------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the cache once per node (Lightning calls this on one process) so that ranks only load it."""
        if self.cache_dir is not None and not self._cache_path().is_file():
            self._load_or_build()  # builds, times and caches; the state is set in setup, per process

    def setup(self, stage: str | None = None) -> None:
        if self._prepared is None:
            self._prepared = self._load_or_build()
            if self._rank_world()[0] == 0:
                self._save_tokenizers()

    def state_dict(self) -> dict[str, Any]:
        src, tgt = self._tokenizers()
        return {"tokenizer_src": src.to_str(), "tokenizer_tgt": tgt.to_str()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Adopt a checkpoint's tokenizers; data already prepared with different ones is re-encoded."""
        if not state_dict:
            return
        if missing := {"tokenizer_src", "tokenizer_tgt"} - set(state_dict):
            raise ValueError(f"datamodule state lacks {sorted(missing)}; it has {sorted(state_dict)}")
        src = TextTokenizer.from_str(state_dict["tokenizer_src"])
        same = state_dict["tokenizer_tgt"] == state_dict["tokenizer_src"]
        tgt = src if same else TextTokenizer.from_str(state_dict["tokenizer_tgt"])
        self._loaded = (src, tgt)
        if self._prepared is not None and (self._prepared.src_tokenizer, self._prepared.tgt_tokenizer) != (src, tgt):
            self._prepared = self._load_or_build()
            if self._rank_world()[0] == 0:
                self._save_tokenizers()

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # -- helpers for models, translation and BLEU (the tokenizer ones work after setup or load_state_dict) -
    @property
    def src_tokenizer(self) -> TextTokenizer:
        return self._tokenizers()[0]  # after setup, or restored from a checkpoint (translation needs no data)

    @property
    def tgt_tokenizer(self) -> TextTokenizer:
        return self._tokenizers()[1]

    @property
    def datasets(self) -> dict[str, PairDataset]:
        return self._ready().datasets

    def net_kwargs(self) -> dict[str, int]:
        src, tgt = self.src_tokenizer, self.tgt_tokenizer
        return {
            "src_vocab_size": src.vocab_size,
            "tgt_vocab_size": tgt.vocab_size,
            "pad_id": tgt.token_to_id("<pad>"),
            "bos_id": tgt.token_to_id("<bos>"),
            "eos_id": tgt.token_to_id("<eos>"),
        }

    def encode_source(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Source sentences as the model sees them: ``(src (B, S), src_lens (B,))``, truncated to max_len."""
        texts = preprocess_lines(texts) if self.preprocess else list(texts)
        rows = self.src_tokenizer.encode_batch(texts)
        if self.max_len is not None:
            rows = [row[: self.max_len - 1] for row in rows]
        ids = self.net_kwargs()
        empty = torch.empty(0, dtype=torch.int32)
        batch = collate_pairs([(torch.tensor(row, dtype=torch.int32), empty) for row in rows],
                              ids["pad_id"], ids["bos_id"], ids["eos_id"])
        return batch.src, batch.src_lens

    def decode_target(self, ids: Tensor | Sequence[Sequence[int]]) -> list[str]:
        """Target text of each row of ids, cut at the first <eos>; <bos>/<pad>/<unk> are dropped."""
        rows = ids.tolist() if isinstance(ids, Tensor) else [list(row) for row in ids]
        eos = self.tgt_tokenizer.token_to_id("<eos>")
        return self.tgt_tokenizer.decode_batch([row[: row.index(eos)] if eos in row else row for row in rows])

    def val_examples(self, n: int) -> list[tuple[str, str]]:
        """The first ``n`` validation pairs (preprocessed source, target): fixed sentences for heatmaps."""
        return self._ready().val_texts[:n]

    # -- internals ----------------------------------------------------------------------------------------------
    def _ready(self) -> _Prepared:
        if self._prepared is None:
            raise ValueError(f"{type(self).__name__} is not set up yet: call setup() first")
        return self._prepared

    def _tokenizers(self) -> tuple[TextTokenizer, TextTokenizer]:
        if self._prepared is not None:
            return self._prepared.src_tokenizer, self._prepared.tgt_tokenizer
        if self._loaded is not None:
            return self._loaded
        raise ValueError(f"{type(self).__name__} has no tokenizer yet: call setup() or load_state_dict() first")

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        rank, world_size = self._rank_world()
        sampler = BucketBatchSampler(
            SeededPermutation(len(dataset), shuffle=shuffle, seed=self.seed),
            dataset.lengths(),
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
            bucket_size=self.bucket_size,
            rank=rank,
            world_size=world_size,
        )
        ids = self.net_kwargs()
        return ResumableDataLoader(  # a mid-epoch checkpoint resumes at the next batch of the same order
            dataset,
            batch_sampler=sampler,
            collate_fn=partial(collate_pairs, pad_id=ids["pad_id"], bos_id=ids["bos_id"], eos_id=ids["eos_id"]),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _save_tokenizers(self) -> None:
        directory = self.output_dir if self.output_dir is not None else Path.cwd()
        self.src_tokenizer.save(directory / "tokenizer_src.json")
        self.tgt_tokenizer.save(directory / "tokenizer_tgt.json")

    def _cache_key(self) -> str:
        if self._loaded is not None:
            tokenizer = {"json_sha256": [hashlib.sha256(t.to_str().encode()).hexdigest() for t in self._loaded]}
        else:
            tokenizer = self.tokenizer_factory().config
        files = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in self.corpus.files()]
        key = {
            "version": CACHE_VERSION, "files": files, "corpus": self.corpus.identity(),
            "tokenizer": tokenizer, "joint_vocab": self.joint_vocab, "preprocess": self.preprocess,
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction, "num_train": self.num_train,
            "num_val": self.num_val, "max_len": self.max_len, "length_policy": self.length_policy, "seed": self.seed,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def _cache_path(self) -> Path:
        return self.cache_dir / f"translation-{self.corpus.name}-{self._cache_key()}.npz"

    def _load_or_build(self) -> _Prepared:
        start = time.perf_counter()
        prepared = self._load_cache() if self.cache_dir is not None else None
        self.cache_hit = prepared is not None
        if prepared is None:
            prepared = self._build()
        self.prep_seconds = time.perf_counter() - start
        sizes = "/".join(str(len(prepared.datasets[s])) for s in SPLITS)
        log.info(
            "%s: %s in %.2fs; train/val/test pairs %s; vocab src/tgt %d/%d",
            type(self).__name__, "loaded from cache" if self.cache_hit else "prepared", self.prep_seconds, sizes,
            prepared.src_tokenizer.vocab_size, prepared.tgt_tokenizer.vocab_size,
        )
        return prepared

    def _texts_by_split(self) -> dict[str, tuple[list[str], list[str]]]:
        raw = self.corpus.read_splits()
        carve = {name: frac for name, frac in (("val", self.val_fraction), ("test", self.test_fraction))
                 if raw.get(name) is None}
        sources, targets = raw["train"]
        texts = {name: raw[name] for name in SPLITS[1:] if name not in carve}
        for name, index in split_indices(len(sources), carve, self.seed).items():
            texts[name] = ([sources[i] for i in index], [targets[i] for i in index])
        limits = {"train": self.num_train, "val": self.num_val}
        texts = {name: (s[: limits.get(name)], t[: limits.get(name)]) for name, (s, t) in texts.items()}
        if not texts["train"][0]:
            raise ValueError(f"{type(self).__name__}: the training split is empty")
        if self.preprocess:
            texts = {name: (preprocess_lines(s), preprocess_lines(t)) for name, (s, t) in texts.items()}
        return texts

    def _train_tokenizers(self, train_src: list[str], train_tgt: list[str]) -> tuple[TextTokenizer, TextTokenizer]:
        if self._loaded is not None:
            return self._loaded
        if self.joint_vocab:
            joint = self.tokenizer_factory().train(itertools.chain(train_src, train_tgt), SPECIALS)
            return joint, joint
        return self.tokenizer_factory().train(train_src, SPECIALS), self.tokenizer_factory().train(train_tgt, SPECIALS)

    def _build(self) -> _Prepared:
        """Read, split, fit tokenizers on the training split only, encode all splits, write the cache."""
        clock = [time.perf_counter()]
        texts = self._texts_by_split()
        clock.append(time.perf_counter())
        src_tok, tgt_tok = self._train_tokenizers(*texts["train"])
        clock.append(time.perf_counter())
        datasets, val_texts = {}, []
        for name in SPLITS:
            sources, targets = texts[name]
            src_rows, tgt_rows = _encode_unique(src_tok, sources), _encode_unique(tgt_tok, targets)
            keep = self._apply_length_policy(src_rows, tgt_rows)
            if keep is not None:
                src_rows, tgt_rows = [src_rows[i] for i in keep], [tgt_rows[i] for i in keep]
            datasets[name] = PairDataset(RaggedIds.from_lists(src_rows), RaggedIds.from_lists(tgt_rows))
            if name == "val":
                val_texts = list(zip(sources, targets)) if keep is None else [(sources[i], targets[i]) for i in keep]
        prepared = _Prepared(src_tok, tgt_tok, datasets, val_texts)
        clock.append(time.perf_counter())
        if self.cache_dir is not None:
            self._write_cache(prepared)
        clock.append(time.perf_counter())
        phases = ("read+split+preprocess", "tokenizer training", "encoding", "cache write")
        log.info("%s prep phases: %s", self.corpus.name,
                 ", ".join(f"{name} {b - a:.2f}s" for name, a, b in zip(phases, clock, clock[1:])))
        return prepared

    def _apply_length_policy(self, src_rows: list[list[int]], tgt_rows: list[list[int]]) -> list[int] | None:
        """Truncate rows in place to ``max_len - 1`` tokens, or return the indices of pairs that fit."""
        if self.max_len is None:
            return None
        limit = self.max_len - 1  # room for the <eos> (source, target output) or <bos> (target input)
        if self.length_policy == "filter":
            return [i for i, (x, y) in enumerate(zip(src_rows, tgt_rows)) if len(x) <= limit and len(y) <= limit]
        for rows in (src_rows, tgt_rows):
            for i, row in enumerate(rows):
                if len(row) > limit:
                    rows[i] = row[:limit]
        return None

    def _write_cache(self, prepared: _Prepared) -> None:
        arrays = {
            "tokenizer_src": _text_array(prepared.src_tokenizer.to_str()),
            "tokenizer_tgt": _text_array(prepared.tgt_tokenizer.to_str()),
            "val_src_text": _text_array("\n".join(s for s, _ in prepared.val_texts)),
            "val_tgt_text": _text_array("\n".join(t for _, t in prepared.val_texts)),
        }
        for name, dataset in prepared.datasets.items():
            for side, ragged in (("src", dataset.src), ("tgt", dataset.tgt)):
                arrays[f"{name}_{side}_ids"] = ragged.ids.numpy()
                arrays[f"{name}_{side}_offsets"] = ragged.offsets.numpy()
        path = self._cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, path)  # atomic: concurrent ranks never read a partial cache

    def _load_cache(self) -> _Prepared | None:
        path = self._cache_path()
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            src_json, tgt_json = _from_text_array(arrays["tokenizer_src"]), _from_text_array(arrays["tokenizer_tgt"])
            src_tok = TextTokenizer.from_str(src_json)
            tgt_tok = src_tok if tgt_json == src_json else TextTokenizer.from_str(tgt_json)
            datasets = {
                name: PairDataset(*(RaggedIds(torch.from_numpy(arrays[f"{name}_{side}_ids"]),
                                              torch.from_numpy(arrays[f"{name}_{side}_offsets"]))
                                    for side in ("src", "tgt")))
                for name in SPLITS
            }
            val_src, val_tgt = (_from_text_array(arrays[k]) for k in ("val_src_text", "val_tgt_text"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            log.warning("ignoring unreadable cache %s (%s); rebuilding", path, err)
            return None
        val_texts = list(zip(val_src.split("\n"), val_tgt.split("\n"))) if len(datasets["val"]) else []
        return _Prepared(src_tok, tgt_tok, datasets, val_texts)


def _encode_unique(tokenizer: TextTokenizer, texts: list[str]) -> list[list[int]]:
    """Encode each distinct text once (fra-eng repeats 30% of its English side); duplicates share a row."""
    unique = list(dict.fromkeys(texts))
    rows = dict(zip(unique, tokenizer.encode_batch(unique)))
    return [rows[text] for text in texts]


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _from_text_array(array: np.ndarray) -> str:
    return array.tobytes().decode("utf-8")


