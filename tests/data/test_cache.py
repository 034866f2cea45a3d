"""Cache keys: they change with the config, the files' stats and the version; a tokenizer's identity."""
import os

import pytest

from attnlab.data import cache as cache_module
from attnlab.data.cache import entry_name, tokenizer_identity
from attnlab.data.tokenizers import word


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("some text\n")
    return path


def test_key_changes_with_config_content_and_version_not_with_a_touch(source, monkeypatch):
    name = entry_name("toy", {"seed": 1}, [source])
    assert name.startswith("toy-") and entry_name("toy", {"seed": 1}, [source]) == name
    assert entry_name("toy", {"seed": 2}, [source]) != name
    os.utime(source, ns=(0, 0))
    assert entry_name("toy", {"seed": 1}, [source]) == name  # the same bytes: the same shards
    source.write_text("some test\n")  # the same size ...
    os.utime(source, ns=(0, 0))  # ... and mtime, as cp -p and rsync -a leave them
    edited = entry_name("toy", {"seed": 1}, [source])
    assert edited != name
    monkeypatch.setattr(cache_module, "CACHE_VERSION", cache_module.CACHE_VERSION + 1)
    assert entry_name("toy", {"seed": 1}, [source]) != edited


def test_content_hash_is_xxhash64_of_the_bytes(source):
    import xxhash

    assert cache_module.content_hash(source) == xxhash.xxh64(source.read_bytes()).hexdigest()


def test_tokenizer_identity_is_the_config_before_training_and_the_json_after():
    untrained = word(min_freq=3)
    assert tokenizer_identity(untrained) == {"kind": "word", "min_freq": 3, "lowercase": False}
    trained = word(min_freq=1).train(["a b c"], ["<unk>"])
    other = word(min_freq=1).train(["a b d"], ["<unk>"])
    assert set(tokenizer_identity(trained)) == {"json_sha256"} and tokenizer_identity(trained) != tokenizer_identity(other)
