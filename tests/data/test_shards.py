"""Token shards: rows read back as written, zero-copy from memory-mapped Arrow files, written atomically; translation
data on shards equals the in-memory form, each rank reads its own share, parts bound what preparing holds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from attnlab.data import translation_prep
from attnlab.data.ragged import ChunkedRagged, RaggedIds
from attnlab.data.shards import ShardStore, ShardWriter
from test_translation import make_dm, write_pairs


def _columns(rows: list[list[int]]) -> dict:
    ragged = RaggedIds.from_lists(rows)
    return {"ids": ragged, "length": ragged.lengths().astype(np.int32), "text": [" ".join(map(str, r)) for r in rows]}


def _rows(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 1000, rng.integers(0, 9)).tolist() for _ in range(n)]


def test_chunked_rows_address_every_chunk():
    parts = [_rows(5, 0), [], _rows(3, 1)]
    ragged = ChunkedRagged([RaggedIds.from_lists(p) for p in parts])
    flat = [row for part in parts for row in part]
    assert len(ragged) == 8 and [ragged[i].tolist() for i in range(8)] == flat == ragged.to_lists()
    assert ragged.lengths().tolist() == [len(r) for r in flat] and ragged.lengths().dtype == np.int32
    with pytest.raises(IndexError, match="row 8 of 8"):
        ragged[8]


@pytest.mark.parametrize("on_disk", [True, False])
def test_parts_read_back_as_written(tmp_path, on_disk):
    first, second = _rows(2500, 0), _rows(700, 1)
    store = ShardStore(tmp_path / "root", "toy", {"k": 1}, [])

    def fill(writer: ShardWriter):
        writer.add("train", _columns(first))
        writer.add("train", _columns(second))
        writer.add("test", _columns([]))
        return writer.finish({"tokenizer": "{}"})

    shards = store.write(fill) if on_disk else fill(ShardWriter(None))
    assert store.exists() == on_disk
    rows = first + second
    ragged = shards.ragged("train", "ids")
    assert len(ragged) == shards.num_rows("train") == 3200
    assert len(ragged.chunks) == 2  # one record batch a part: opening and reading a column touch few pages
    assert ragged.to_lists() == rows
    assert shards.array("train", "length").tolist() == [len(r) for r in rows]
    assert shards.texts("train", "text")[2600] == " ".join(map(str, rows[2600]))
    assert shards.num_rows("test") == 0 and shards.meta == {"tokenizer": "{}"}
    if on_disk:  # the ids are views of the mapped files, not copies
        assert not ragged.chunks[0].ids.flags.owndata and not ragged.chunks[0].ids.flags.writeable
        maps = Path("/proc/self/maps").read_text()
        assert str(store.path / "train" / "part-00000") in maps


def test_store_is_written_atomically_and_a_bad_one_is_prepared_again(tmp_path):
    store = ShardStore(tmp_path, "toy", {"k": 1}, [])

    def broken(writer: ShardWriter):
        writer.add("train", _columns(_rows(3, 0)))
        raise RuntimeError("preparation died")

    with pytest.raises(RuntimeError, match="preparation died"):
        store.write(broken)
    assert not store.exists() and list(tmp_path.iterdir()) == []  # no partial store, no temp dir left
    store.write(lambda w: (w.add("train", _columns(_rows(3, 0))), w.finish({}))[1])
    later = store.write(lambda w: (w.add("train", _columns(_rows(5, 1))), w.finish({}))[1])  # lost the race
    assert later.num_rows("train") == 3
    (store.path / "meta.json").write_text(json.dumps({"splits": ["train", "gone"], "texts": {}}))
    assert store.open() is None  # unreadable: the caller prepares again (logged), and the new store replaces it
    assert store.write(lambda w: (w.add("train", _columns(_rows(4, 2))), w.finish({}))[1]).num_rows("train") == 4
    assert store.open().num_rows("train") == 4 and [p.name for p in tmp_path.iterdir()] == [store.path.name]
    assert ShardStore(tmp_path, "toy", {"k": 2}, []).path != store.path


def test_translation_shards_equal_in_memory_and_parts_bound_preparation(tmp_path, monkeypatch):
    fra = tmp_path / "fra.txt"
    write_pairs(fra, n=300)
    monkeypatch.setattr(translation_prep, "PART_PAIRS", 64)  # several parts a split
    mapped = make_dm(fra, tmp_path, cache_dir=tmp_path / "cache")
    mapped.setup("fit")
    in_memory = make_dm(fra, tmp_path)
    in_memory.setup("fit")
    for split in ("train", "val", "test"):
        a, b = mapped.datasets[split], in_memory.datasets[split]
        assert a.src.to_lists() == b.src.to_lists() and a.tgt.to_lists() == b.tgt.to_lists()
        assert a.lengths().tolist() == b.lengths().tolist() and mapped.texts(split) == in_memory.texts(split)
    (store,) = (tmp_path / "cache").glob("translation-fra_eng-*")
    assert len(list((store / "train").glob("part-*"))) == -(-len(mapped.datasets["train"]) // 64)
    assert [b.index.tolist() for b in mapped.train_dataloader()] == [b.index.tolist() for b in
                                                                     in_memory.train_dataloader()]


def test_ranks_read_disjoint_shares_of_the_shards(tmp_path):
    fra = tmp_path / "fra.txt"
    write_pairs(fra, n=300)
    read = []
    for rank in range(2):
        dm = make_dm(fra, tmp_path, cache_dir=tmp_path / "cache", batch_size=8)
        dm.setup("fit")
        with mock.patch("attnlab.data.translation.rank_world", return_value=(rank, 2)):  # torch.distributed's
            read.append([i for batch in dm.train_dataloader() for i in batch.index.tolist()])
    assert len(read[0]) and abs(len(read[0]) - len(read[1])) <= 8  # the same number of batches on each rank
    total = len(dm.datasets["train"])
    assert set(read[0]) | set(read[1]) == set(range(total))
    assert len(set(read[0]) & set(read[1])) <= 8  # only the batch cycled to even the ranks out is read twice


RACER = """
import json, sys, time
from functools import partial
from pathlib import Path

from attnlab.data.bert_pretraining import WikiText2DataModule
from attnlab.data.corpora import FraEngCorpus
from attnlab.data.tokenizers import TextTokenizer, word
from attnlab.data.translation import TranslationDataModule

kind, data, cache, barrier, me = sys.argv[1:]
trainings = []
train = TextTokenizer.train


def slow_train(self, *args, **kwargs):  # a tokenizer that takes a while to train: the racers overlap
    trainings.append(me)
    time.sleep(1.0)
    return train(self, *args, **kwargs)


TextTokenizer.train = slow_train
if kind == "translation":
    dm = TranslationDataModule(FraEngCorpus(data, url="http://127.0.0.1:9/fra-eng.zip"), partial(word, min_freq=1),
                               cache_dir=cache, output_dir=Path(barrier) / me)
else:
    dm = WikiText2DataModule(partial(word, min_freq=1), data, batch_size=4, cache_dir=cache)
Path(barrier, me).mkdir()
while len(list(Path(barrier).iterdir())) < 2:  # start together, imports done
    time.sleep(0.01)
dm.prepare_data()
dm.setup("fit")
state = dm.state_dict() if kind == "translation" else {"tokenizer": dm.tokenizer.to_str()}
(store,) = Path(cache).glob("[!.]*/meta.json")  # not a temporary store of the other racer
stored = json.loads(store.read_text())["texts"]
print(json.dumps({"prepared": bool(trainings), "same_as_store": all(stored[k] == v for k, v in state.items())}))
"""


@pytest.mark.parametrize("kind", ["translation", "wikitext2"])
def test_two_processes_racing_on_one_cache_dir_prepare_once_and_both_use_the_stored_tokenizers(tmp_path, kind):
    if kind == "translation":
        data = tmp_path / "fra.txt"
        write_pairs(data)
    else:
        data = tmp_path / "wikitext-2"
        data.mkdir()
        for split in ("train", "valid", "test"):
            (data / f"wiki.{split}.tokens").write_text(
                "".join(f" w{i} x{i % 7} . y{i % 5} z . \n" for i in range(40)), encoding="utf-8")
    script, barrier = tmp_path / "racer.py", tmp_path / "barrier"
    script.write_text(RACER)
    barrier.mkdir()
    racers = [subprocess.Popen([sys.executable, str(script), kind, str(data), str(tmp_path / "cache"), str(barrier),
                                name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for name in ("a", "b")]
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.splitlines()[-1]))
    assert [outcome["prepared"] for outcome in outcomes].count(True) == 1  # one preparer; the other mapped its shards
    assert all(outcome["same_as_store"] for outcome in outcomes)


def test_reading_mapped_shards_imports_no_pandas(tmp_path):
    """Array.to_numpy imports pandas (30 MiB of every training process); the shards read their buffers directly."""
    store = ShardStore(tmp_path, "toy", {"k": 1}, [])
    store.write(lambda w: (w.add("train", _columns(_rows(50, 0))), w.finish({}))[1])
    code = ("import sys; from attnlab.data.shards import ShardStore; s = ShardStore.__new__(ShardStore); "
            f"s.path = __import__('pathlib').Path({str(store.path)!r}); shards = s.open(); "
            "rows = shards.ragged('train', 'ids').to_lists(); lengths = shards.array('train', 'length'); "
            "assert len(rows) == len(lengths) == 50 and 'pandas' not in sys.modules, sorted(sys.modules)[:5]")
    subprocess.run([sys.executable, "-c", code], check=True)
