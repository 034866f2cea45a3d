"""A DataLoader that resumes mid-epoch at the next batch instead of restarting the epoch.

A plain DataLoader has no position: a run resumed from a mid-epoch checkpoint starts the epoch over and
trains on its first batches twice. With a batch order that is a function of ``(seed, epoch)`` -- as
attnlab's samplers are -- skipping the batches already served reproduces the uninterrupted run's data order
exactly. ``attnlab.training.callbacks.ResumeTrainLoader`` saves the position in the checkpoint and hands it back
on resume; ``state_dict``/``load_state_dict`` also let Lightning do so itself where it can (it can't when
the module built the loader early, e.g. through ``trainer.estimated_stepping_batches``).

Caveat: the count is of batches handed out, which equals batches trained on when the loader has a length
(Lightning then does not prefetch). The skipped batches are dropped from the batch sampler's index lists, before
any example is read: resuming costs the computation of the epoch's order, not the reading and collating of the
skipped batches.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader


class _SkipFirst:
    """The loader's batch sampler, less the first ``loader._skipping`` index lists of each iteration (read when the
    iteration starts: torch's iterators keep this object, and persistent workers re-iterate it every epoch)."""

    def __init__(self, batches: Iterable[list[int]], loader: ResumableDataLoader):
        self.batches, self.loader = batches, loader

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.loader._skipping, None)

    def __len__(self) -> int:
        return len(self.batches)


class ResumableDataLoader(DataLoader):
    """``DataLoader`` that counts the batches it served this epoch and can skip that many next time."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.batches_served = 0  # by the current iterator, i.e. in the current epoch
        self._skip = 0  # batches the next iterator drops, read when it draws its first batch
        self._skipping = 0  # what the iterator being created drops, set only while it is created

    def resume_at(self, batches_served: int) -> None:
        """Make the next epoch's iteration start after its first ``batches_served`` batches."""
        if not isinstance(batches_served, int) or batches_served < 0:
            raise ValueError(f"batches_served must be an int >= 0, got {batches_served!r}")
        self._skip = batches_served

    def state_dict(self) -> dict[str, int]:
        return {"batches_served": self.batches_served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.resume_at(state_dict.get("batches_served", 0))

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    @property
    def _index_sampler(self):  # what torch's loader iterators draw index lists from
        return _SkipFirst(super()._index_sampler, self)

    def _batches(self) -> Iterator[Any]:
        # Everything happens on the first ``next``, not at ``iter()``: on a resume Lightning may call ``iter()``
        # before the position is restored and before ``set_epoch``, and a sampler that fixes its order in its
        # own ``__iter__`` would otherwise replay epoch 0's order.
        self._skipping, self._skip = self._skip, 0
        try:
            iterator = super().__iter__()
        finally:
            self.batches_served, self._skipping = self._skipping, 0
        for batch in iterator:
            self.batches_served += 1
            yield batch
