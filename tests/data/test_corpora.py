"""Corpora: the seeded split, fra-eng's one file, parallel files per split and language (plain or .gz)."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from attnlab.data.corpora import FraEngCorpus, ParallelCorpus, source_groups, split_indices


def test_split_is_seeded_disjoint_and_complete():
    a = split_indices(1000, {"val": 0.1, "test": 0.2}, seed=3)
    b = split_indices(1000, {"val": 0.1, "test": 0.2}, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (700, 100, 200)
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(1000))
    assert not np.array_equal(split_indices(1000, {"val": 0.1, "test": 0.2}, seed=4)["test"], a["test"])
    assert all((np.diff(index) > 0).all() for index in a.values())  # file order within a split


def test_grouped_split_keeps_each_source_in_one_split_near_its_share():
    rng = np.random.default_rng(0)
    sources = [f"sentence {k}" for k in rng.integers(0, 300, size=1000)]  # ~3.3 pairs a source, file order mixed
    groups = source_groups(sources)
    assert groups[0] == 0 and all(groups[sources.index(s)] == g for s, g in zip(sources, groups))
    split = split_indices(1000, {"val": 0.1, "test": 0.2}, seed=3, groups=groups)
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(1000))
    held = {name: {sources[i] for i in index} for name, index in split.items()}
    assert not held["train"] & held["val"] and not held["train"] & held["test"] and not held["val"] & held["test"]
    largest = int(np.bincount(groups).max())
    assert 100 <= len(split["val"]) < 100 + largest and 200 <= len(split["test"]) < 200 + largest
    again = split_indices(1000, {"val": 0.1, "test": 0.2}, seed=3, groups=groups)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    with pytest.raises(ValueError, match="groups holds 3 ids for 1000 items"):
        split_indices(1000, {"val": 0.1}, seed=3, groups=np.arange(3))


def test_fra_eng_reads_its_one_file_as_train_only(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\tCC-BY\nHi.\tSalut !\n", encoding="utf-8")
    corpus = FraEngCorpus(path, url="http://127.0.0.1:9/fra-eng.zip")
    assert corpus.read_splits() == {"train": (["Go.", "Hi."], ["Va !", "Salut !"]), "val": None, "test": None}
    assert corpus.files() == [path] and corpus.identity() == {"corpus": "fra_eng"}


def test_parallel_corpus_finds_plain_or_gz_files_per_split(tmp_path):
    Path(f"{tmp_path / 'train'}.en").write_text("one\ntwo\n", encoding="utf-8")
    with gzip.open(f"{tmp_path / 'train'}.fr.gz", "wt", encoding="utf-8") as f:
        f.write("un\ndeux\n")
    corpus = ParallelCorpus(tmp_path / "train", "en", "fr")
    assert corpus.read_splits() == {"train": (["one", "two"], ["un", "deux"]), "val": None, "test": None}
    assert [p.name for p in corpus.files()] == ["train.en", "train.fr.gz"]
    assert corpus.identity()["carved"] == ["val", "test"]  # part of the cache key
    with pytest.raises(ValueError, match="must differ"):
        ParallelCorpus(tmp_path / "train", "en", "en")
