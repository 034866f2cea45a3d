"""Batch samplers whose order is a function of ``(seed, epoch)``, so a resumed run sees the same batches.

They need nothing of a dataset but its size and, for bucketing, one length per example: the lengths may come
from an in-memory array or from offsets on disk alike.
"""
from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler


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

    With ``world_size > 1`` each rank takes every ``world_size``-th batch. With ``equal_shards`` (training) the
    batch list is first padded by cycling so every rank runs the same number of steps (as DistributedSampler
    does); without (evaluation) every example lands on exactly one rank and the ranks may run different numbers
    of batches, which Lightning's validation and test loops allow (metrics synced once an epoch); a batch is split
    where needed so that no rank gets none. Under Lightning this needs ``Trainer(use_distributed_sampler=False)``,
    since the sampler does its own sharding (Lightning raises a TypeError saying so otherwise). With
    ``max_tokens`` the number of batches may differ slightly between epochs; Lightning sizes an epoch from the
    first one.
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
        equal_shards: bool = True,
    ):
        if (batch_size is None) == (max_tokens is None):
            raise ValueError(f"give exactly one of batch_size={batch_size} and max_tokens={max_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        if len(lengths) != len(sampler):
            raise ValueError(f"{len(lengths)} lengths for a sampler over {len(sampler)} items")
        self.sampler, self.lengths = sampler, np.asarray(lengths)
        self.batch_size, self.max_tokens, self.bucket_size = batch_size, max_tokens, bucket_size
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
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
            if self.equal_shards:
                total = math.ceil(len(batches) / self.world_size) * self.world_size
                batches = [batches[i % len(batches)] for i in range(total)]
            else:
                batches = self._at_least_one_per_rank(batches)
            batches = batches[self.rank :: self.world_size]
        self._cached = (self.sampler.epoch, batches)
        return batches

    def _at_least_one_per_rank(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Halve the largest batch until there is a batch for every rank: a rank without any would skip the
        evaluation loop, and with it the collective calls of the others."""
        batches = list(batches)
        while len(batches) < self.world_size:
            largest = max(range(len(batches)), key=lambda i: len(batches[i]))
            if len(batches[largest]) < 2:
                raise ValueError(
                    f"{sum(map(len, batches))} examples cannot be shared by world_size={self.world_size} ranks "
                    "without evaluating one twice; evaluate on fewer devices or on more data"
                )
            half = len(batches[largest]) // 2
            batches[largest : largest + 1] = [batches[largest][:half], batches[largest][half:]]
        return batches

    def __iter__(self):
        return (batch.tolist() for batch in self._rank_batches())

    def __len__(self) -> int:
        return len(self._rank_batches())
