"""ResumableDataLoader: a restored position skips exactly the batches served, once, in the epoch's own order."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import Sampler, TensorDataset

from attnlab.data.resumable import ResumableDataLoader


class _EpochOrder:
    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class _Batches(Sampler[list[int]]):
    """Batches of 2 over 10 items in an order fixed by the epoch *when ``__iter__`` is called* (eager, like
    attnlab's bucket sampler)."""

    def __init__(self):
        self.sampler = _EpochOrder()

    def __iter__(self):
        order = torch.randperm(10, generator=torch.Generator().manual_seed(self.sampler.epoch)).tolist()
        return iter([order[i : i + 2] for i in range(0, 10, 2)])

    def __len__(self) -> int:
        return 5


def _loader() -> ResumableDataLoader:
    return ResumableDataLoader(TensorDataset(torch.arange(10)), batch_sampler=_Batches())


def _epoch(loader, epoch: int) -> list[list[int]]:
    loader.batch_sampler.sampler.set_epoch(epoch)
    return [batch[0].tolist() for batch in loader]


def test_resume_skips_the_served_batches_once():
    full = _epoch(_loader(), 1)
    interrupted = _loader()
    iterator = iter(interrupted)
    interrupted.batch_sampler.sampler.set_epoch(1)
    assert [next(iterator)[0].tolist() for _ in range(2)] == full[:2]
    assert interrupted.state_dict() == {"batches_served": 2} and interrupted.batches_served == 2

    resumed = _loader()
    resumed.load_state_dict(interrupted.state_dict())
    assert _epoch(resumed, 1) == full[2:]
    assert resumed.batches_served == 5
    assert _epoch(resumed, 1) == full  # the skip applies to one iteration only


def test_position_and_epoch_are_read_at_the_first_batch_not_at_iter():
    """Lightning may call ``iter()`` before restoring the position and before ``set_epoch``."""
    full = _epoch(_loader(), 3)
    resumed = _loader()
    iterator = iter(resumed)
    resumed.resume_at(4)
    resumed.batch_sampler.sampler.set_epoch(3)
    assert [batch[0].tolist() for batch in iterator] == full[4:]


def test_bad_position_is_rejected():
    with pytest.raises(ValueError, match="batches_served must be an int >= 0, got -1"):
        _loader().load_state_dict({"batches_served": -1})


class _CountingReads(TensorDataset):
    def __init__(self):
        super().__init__(torch.arange(10))
        self.reads: list[int] = []

    def __getitem__(self, i):
        self.reads.append(i)
        return super().__getitem__(i)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skipped_batches_are_never_read(num_workers):
    """The skip drops index lists before any example is fetched; with persistent workers, only once."""
    full = _epoch(_loader(), 2)
    dataset = _CountingReads()
    resumed = ResumableDataLoader(dataset, batch_sampler=_Batches(), num_workers=num_workers,
                                  persistent_workers=num_workers > 0)
    resumed.resume_at(3)
    assert _epoch(resumed, 2) == full[3:] and resumed.batches_served == 5
    if num_workers == 0:
        assert sorted(dataset.reads) == sorted(i for batch in full[3:] for i in batch)
    assert _epoch(resumed, 2) == full
