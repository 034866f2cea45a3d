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


def test_key_changes_with_config_files_and_version(source, monkeypatch):
    name = entry_name("toy", {"seed": 1}, [source])
    assert name.startswith("toy-") and entry_name("toy", {"seed": 1}, [source]) == name
    assert entry_name("toy", {"seed": 2}, [source]) != name
    os.utime(source, ns=(0, 0))
    touched = entry_name("toy", {"seed": 1}, [source])
    assert touched != name
    monkeypatch.setattr(cache_module, "CACHE_VERSION", cache_module.CACHE_VERSION + 1)
    assert entry_name("toy", {"seed": 1}, [source]) != touched


def test_tokenizer_identity_is_the_config_before_training_and_the_json_after():
    untrained = word(min_freq=3)
    assert tokenizer_identity(untrained) == {"kind": "word", "min_freq": 3, "lowercase": False}
    trained = word(min_freq=1).train(["a b c"], ["<unk>"])
    other = word(min_freq=1).train(["a b d"], ["<unk>"])
    assert set(tokenizer_identity(trained)) == {"json_sha256"} and tokenizer_identity(trained) != tokenizer_identity(other)
