"""The on-disk cache: keyed by config, file stats and version; arrays and texts round-trip; atomic; fail-safe."""
import os

import numpy as np
import pytest

from attnlab.data import cache as cache_module
from attnlab.data.cache import CacheEntry, DiskCache, tokenizer_identity
from attnlab.data.tokenizers import word


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("some text\n")
    return path


def test_arrays_and_texts_round_trip(tmp_path, source):
    cache = DiskCache(tmp_path / "cache", "toy", {"seed": 1}, [source])
    assert not cache.exists() and cache.load(lambda entry: entry) is None
    arrays = {"ids": np.arange(5, dtype=np.int32), "offsets": np.array([0, 2, 5])}
    cache.save(arrays, {"tokenizer": '{"json": "é"}', "empty": ""})
    assert cache.exists() and cache.path.name.startswith("toy-") and cache.path.suffix == ".npz"
    entry = cache.load(lambda entry: entry)
    assert isinstance(entry, CacheEntry) and entry.texts == {"tokenizer": '{"json": "é"}', "empty": ""}
    assert set(entry.arrays) == {"ids", "offsets"} and entry.arrays["ids"].dtype == np.int32
    assert all(np.array_equal(entry.arrays[name], arrays[name]) for name in arrays)
    assert [p.name for p in cache.path.parent.iterdir()] == [cache.path.name]  # no temporary file left


def test_key_changes_with_config_files_and_version(tmp_path, source, monkeypatch):
    path = DiskCache(tmp_path, "toy", {"seed": 1}, [source]).path
    assert DiskCache(tmp_path, "toy", {"seed": 1}, [source]).path == path
    assert DiskCache(tmp_path, "toy", {"seed": 2}, [source]).path != path
    os.utime(source, ns=(0, 0))
    assert DiskCache(tmp_path, "toy", {"seed": 1}, [source]).path != path
    touched = DiskCache(tmp_path, "toy", {"seed": 1}, [source]).path
    monkeypatch.setattr(cache_module, "CACHE_VERSION", cache_module.CACHE_VERSION + 1)
    assert DiskCache(tmp_path, "toy", {"seed": 1}, [source]).path != touched


def test_unreadable_entries_are_ignored_not_fatal(tmp_path, source, caplog):
    cache = DiskCache(tmp_path, "toy", {}, [source])
    cache.path.write_bytes(b"not a zip")
    assert cache.load(lambda entry: entry) is None and "unreadable cache" in caplog.text
    cache.save({"ids": np.arange(3)}, {})
    assert cache.load(lambda entry: entry.arrays["missing"]) is None  # a decoder's KeyError: stale layout
    assert cache.load(lambda entry: entry.arrays["ids"].tolist()) == [0, 1, 2]


def test_tokenizer_identity_is_the_config_before_training_and_the_json_after():
    untrained = word(min_freq=3)
    assert tokenizer_identity(untrained) == {"kind": "word", "min_freq": 3, "lowercase": False}
    trained = word(min_freq=1).train(["a b c"], ["<unk>"])
    other = word(min_freq=1).train(["a b d"], ["<unk>"])
    assert set(tokenizer_identity(trained)) == {"json_sha256"} and tokenizer_identity(trained) != tokenizer_identity(other)
