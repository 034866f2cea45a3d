"""Ragged id storage: rows as views of two flat arrays, which may be memory maps."""
import numpy as np
import torch

from attnlab.data.ragged import ChunkedRagged, RaggedIds, offsets_from_lengths

ROWS = [[5, 6, 7], [], [8], [9, 10]]


def test_rows_round_trip_with_lengths_and_offsets():
    ragged = RaggedIds.from_lists(ROWS)
    assert ragged.ids.dtype == np.int32 and ragged.offsets.dtype == np.int64
    assert ragged.offsets.tolist() == [0, 3, 3, 4, 6] and len(ragged) == 4
    assert ragged.lengths().tolist() == [3, 0, 1, 2] and ragged.to_lists() == ROWS
    assert torch.equal(ragged[3], torch.tensor([9, 10], dtype=torch.int32))
    assert RaggedIds.from_lists(ROWS, np.int64).ids.dtype == np.int64
    assert offsets_from_lengths(np.array([2, 0, 1])).tolist() == [0, 2, 2, 3]
    assert len(RaggedIds.from_lists([])) == 0


def test_memory_mapped_arrays_serve_rows(tmp_path):
    ragged = RaggedIds.from_lists(ROWS)
    for part in ("ids", "offsets"):
        np.save(tmp_path / f"train_src_{part}.npy", getattr(ragged, part))
    mapped = RaggedIds(*(np.load(tmp_path / f"train_src_{part}.npy", mmap_mode="r+") for part in ("ids", "offsets")))
    assert isinstance(mapped.ids, np.memmap) and mapped.to_lists() == ROWS
    assert mapped[0].tolist() == [5, 6, 7] and mapped.lengths().tolist() == [3, 0, 1, 2]


def test_gather_reads_columns_of_rows_across_chunks():
    rows = [[5, 6, 7], [], [8], [9, 10], [11]]
    flat = RaggedIds.from_lists(rows)
    chunked = ChunkedRagged([RaggedIds.from_lists(rows[:2]), RaggedIds.from_lists(rows[2:3]),
                             RaggedIds.from_lists([]), RaggedIds.from_lists(rows[3:])])
    picked, columns = np.array([3, 0, 4, 2, 0]), np.array([[0, 1], [2, 0], [0, 0], [0, 0], [1, 2]])
    expected = [[9, 10], [7, 5], [11, 11], [8, 8], [6, 7]]
    assert flat.gather(picked, columns).tolist() == chunked.gather(picked, columns).tolist() == expected
    beyond = chunked.gather(np.array([1, 2]), np.array([[0, 5], [-1, 3]]))  # past a row's end: in bounds, some id
    assert beyond.shape == (2, 2) and set(beyond.ravel().tolist()) <= {5, 6, 7, 8}
    assert RaggedIds.from_lists([[], []]).gather(np.array([1]), np.array([[0, 1]])).tolist() == [[0, 0]]
