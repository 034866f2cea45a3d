"""Seeded, length-bucketed, rank-sharded batch samplers."""
import numpy as np
import pytest

from attnlab.data.samplers import BucketBatchSampler, SeededPermutation


def _sampler(lengths, shuffle=True, seed=0, **kwargs):
    return BucketBatchSampler(SeededPermutation(len(lengths), shuffle, seed), np.asarray(lengths), **kwargs)


def test_bucketing_is_deterministic_per_epoch_and_sorts_lengths():
    lengths = np.random.default_rng(0).integers(2, 40, size=500)
    sampler = _sampler(lengths, batch_size=32, bucket_size=500)
    epoch0 = list(sampler)
    assert epoch0 == list(_sampler(lengths, batch_size=32, bucket_size=500))
    assert sorted(i for b in epoch0 for i in b) == list(range(500))
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in epoch0)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))  # one chunk: disjoint length runs
    sampler.set_epoch(1)
    assert list(sampler) != epoch0 and sorted(i for b in sampler for i in b) == list(range(500))
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    assert list(_sampler(lengths, seed=1, batch_size=32, bucket_size=500)) != epoch0
    unshuffled = _sampler(lengths, shuffle=False, batch_size=32, bucket_size=100)
    assert list(unshuffled) == list(unshuffled) and len(unshuffled) == len(list(unshuffled))


def test_max_tokens_budget():
    lengths = np.random.default_rng(1).integers(2, 40, size=300)
    sampler = _sampler(lengths, max_tokens=200, bucket_size=300)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(300))
    assert all(len(b) * lengths[b].max() <= 200 for b in batches)
    assert len(batches) == len(sampler)
    assert all(len(b) > 1 for b in batches)  # lengths < 40, so at least 5 rows fit
    with pytest.raises(ValueError, match="exactly one of batch_size"):
        _sampler(lengths, batch_size=8, max_tokens=200)


def test_ranks_get_disjoint_shards_of_equal_length():
    lengths = np.random.default_rng(2).integers(2, 40, size=250)
    shards = [list(_sampler(lengths, max_tokens=150, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank (no DDP hang)
    covered = [i for shard in shards for b in shard for i in b]
    assert set(covered) == set(range(250))
    single = list(_sampler(lengths, max_tokens=150))
    assert len(covered) - 250 < max(len(b) for b in single) * 3  # only the cycled padding repeats


def test_evaluation_shards_hold_every_example_exactly_once():
    lengths = np.random.default_rng(3).integers(2, 40, size=250)
    for world_size in (2, 3, 4):
        shards = [list(_sampler(lengths, shuffle=False, batch_size=16, rank=r, world_size=world_size, equal_shards=False))
                  for r in range(world_size)]
        covered = [i for shard in shards for b in shard for i in b]
        assert sorted(covered) == list(range(250))  # no example twice, none left out
        assert all(len(s) == len(_sampler(lengths, shuffle=False, batch_size=16, rank=r, world_size=world_size,
                                          equal_shards=False)) for r, s in enumerate(shards))
    counts = [len(s) for s in shards]  # 16 batches over 4 ranks: 4 each; over 3 ranks one rank runs one more
    assert counts == [4, 4, 4, 4]
    uneven = [len(list(_sampler(lengths, shuffle=False, batch_size=16, rank=r, world_size=3, equal_shards=False)))
              for r in range(3)]
    assert uneven == [6, 5, 5]


def test_evaluation_splits_a_batch_so_that_no_rank_is_left_without_one_or_says_it_cannot():
    lengths = np.arange(5) + 2
    shards = [list(_sampler(lengths, shuffle=False, batch_size=8, rank=r, world_size=3, equal_shards=False))
              for r in range(3)]
    assert all(shards) and sorted(i for s in shards for b in s for i in b) == list(range(5))
    with pytest.raises(ValueError, match="2 examples cannot be shared by world_size=3 ranks"):
        list(_sampler(lengths[:2], shuffle=False, batch_size=8, rank=0, world_size=3, equal_shards=False))
    assert [list(_sampler(lengths[:0], shuffle=False, batch_size=8, rank=r, world_size=3, equal_shards=False))
            for r in range(3)] == [[], [], []]  # an empty split is empty everywhere
