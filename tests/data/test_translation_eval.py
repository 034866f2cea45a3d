"""What evaluation reads from the translation DataModule: each split's raw normalised texts in corpus order,
every batch's index into them, splits without leaked sources, and DDP shards that hold each pair exactly once."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from unittest import mock

import pytest
import torch

from attnlab.data.corpora import FraEngCorpus, ParallelCorpus
from attnlab.data.tokenizers import bpe, word
from attnlab.data.translation import TranslationDataModule
from attnlab.data.translation_prep import preprocess

EN = "i you he she we see like want take the a big small red cat dog house car book".split()
FR = "je tu il elle nous vois aime veux prends le la un une grand petit rouge chat chien maison".split()


def write_repeated_sources(path: Path, num_sources: int = 120, seed: int = 0) -> list[tuple[str, str]]:
    """Tatoeba-like pairs: each English source has 1-4 French translations, the pairs of one source not adjacent;
    some words occur once (unknown to a min_freq=2 vocabulary) and some sentences are long."""
    rng = random.Random(seed)
    pairs = []
    for i in range(num_sources):
        source = " ".join(rng.choice(EN) for _ in range(rng.randint(1, 12))) + f" w{i}."  # w{i}: one source only
        for j in range(rng.randint(1, 4)):
            pairs.append((source.capitalize(), " ".join(rng.choice(FR) for _ in range(rng.randint(1, 14))) + f" m{i}x{j}\u202f!"))
    rng.shuffle(pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s}\t{t}\tCC-BY 2.0\n" for s, t in pairs), encoding="utf-8")
    return pairs


def make_dm(path: Path, tmp_path: Path, **kwargs) -> TranslationDataModule:
    options = dict(tokenizer=lambda: word(min_freq=2), batch_size=8, val_fraction=0.15, test_fraction=0.15,
                   cache_dir=None, output_dir=tmp_path / "run", seed=3)
    return TranslationDataModule(FraEngCorpus(path, url="http://127.0.0.1:9/fra-eng.zip"), **{**options, **kwargs})


@pytest.fixture
def fra_txt(tmp_path) -> Path:
    write_repeated_sources(tmp_path / "fra.txt")
    return tmp_path / "fra.txt"


# ---- raw references in corpus order ------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_texts_are_the_normalised_corpus_sentences_in_file_order_never_unked_or_truncated(fra_txt, tmp_path, split):
    dm = make_dm(fra_txt, tmp_path, max_len=6)
    dm.setup("fit")
    sources, references = dm.texts(split)
    in_split = set(sources)
    expected = [(preprocess(s), preprocess(t)) for s, t in (line.split("\t")[:2] for line in fra_txt.read_text().splitlines())
                if preprocess(s) in in_split]
    assert list(zip(sources, references)) == expected and len(sources) == len(dm.datasets[split])
    assert any(len(t.split()) > 5 for t in references)  # longer than max_len allows the ids
    decoded = dm.decode_target(dm.datasets[split].tgt.to_lists())
    if split != "train":
        assert sum(d != r for d, r in zip(decoded, references)) > len(references) // 2  # unknown words, truncation
    with pytest.raises(ValueError, match="split must be one of"):
        dm.texts("dev")


@pytest.mark.parametrize("policy", ["truncate", "filter"])
def test_every_batch_indexes_its_pairs_in_texts(fra_txt, tmp_path, policy):
    dm = make_dm(fra_txt, tmp_path, max_len=8, length_policy=policy, tokenizer=lambda: bpe(vocab_size=150))
    dm.setup("fit")
    for split, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        sources, references = dm.texts(split)
        seen = []
        for batch in loader:
            assert batch.index.shape == batch.src_lens.shape and batch.index.dtype == torch.long
            for row, i in enumerate(batch.index.tolist()):
                source_ids = dm.preparation.source_rows(dm.src_tokenizer, [sources[i]])[0]
                length = int(batch.src_lens[row]) - 1
                assert batch.src[row, :length].tolist() == source_ids  # the row is the encoding of texts[index]
                target_ids = dm.tgt_tokenizer.encode_batch([references[i]])[0][:7]
                assert batch.tgt_out[row, : int(batch.tgt_lens[row]) - 1].tolist() == target_ids
            seen += batch.index.tolist()
        assert sorted(seen) == list(range(len(sources)))
    if policy == "filter":  # texts hold the kept pairs only, and no kept one is longer than max_len allows
        full = make_dm(fra_txt, tmp_path, tokenizer=lambda: bpe(vocab_size=150))
        full.setup("fit")
        assert 0 < len(dm.texts("test")[0]) < len(full.texts("test")[0])
        assert set(zip(*dm.texts("test"))) < set(zip(*full.texts("test")))


def test_texts_survive_the_cache_and_the_limits(fra_txt, tmp_path):
    cold = make_dm(fra_txt, tmp_path, cache_dir=tmp_path / "cache")
    cold.setup("fit")
    warm = make_dm(fra_txt, tmp_path, cache_dir=tmp_path / "cache")
    warm.setup("fit")
    assert warm.cache_hit and all(warm.texts(s) == cold.texts(s) for s in ("train", "val", "test"))
    small = make_dm(fra_txt, tmp_path, num_train=20, num_val=5)
    small.setup("fit")
    assert small.texts("train") == tuple(side[:20] for side in cold.texts("train"))
    assert small.texts("val") == tuple(side[:5] for side in cold.texts("val")) and small.texts("test") == cold.texts("test")
    assert small.val_examples(2) == list(zip(*cold.texts("val")))[:2]


def test_encoded_sources_are_indexed_by_their_position(fra_txt, tmp_path):
    dm = make_dm(fra_txt, tmp_path)
    dm.setup("fit")
    batch = dm._collate()([(i, dm.datasets["val"].src[i], dm.datasets["val"].tgt[i]) for i in (4, 1)])
    assert batch.index.tolist() == [4, 1]


# ---- leak-free splits --------------------------------------------------------------------------------------------
def test_carved_splits_keep_every_source_in_one_split_and_log_the_overlap(fra_txt, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="attnlab.data.translation_prep"):
        dm = make_dm(fra_txt, tmp_path)
        dm.setup("fit")
    train = set(dm.texts("train")[0])
    held_out = {name: dm.texts(name)[0] for name in ("val", "test")}
    assert not train & set(held_out["val"]) and not train & set(held_out["test"])
    assert not set(held_out["val"]) & set(held_out["test"])
    assert any(held_out["test"].count(s) > 1 for s in held_out["test"])  # repeated sources stay together
    total = sum(len(dm.datasets[s]) for s in ("train", "val", "test"))
    assert all(abs(len(held_out[name]) - 0.15 * total) <= 4 for name in held_out)  # <= one group over its share
    n_val, n_test = len(held_out["val"]), len(held_out["test"])
    assert f"val 0 of {n_val} (carved), test 0 of {n_test} (carved)" in caplog.text
    other = make_dm(fra_txt, tmp_path, split_seed=4)
    other.setup("fit")
    assert set(other.texts("test")[0]) != set(held_out["test"])  # seeded


def test_shipped_splits_are_kept_and_their_overlap_with_training_is_logged(tmp_path, caplog):
    pairs = [(f"source {i % 7} .", f"cible {i} .") for i in range(40)]
    for name, part in (("train", pairs[:30]), ("valid", pairs[30:35]), ("test", pairs[35:] + [("new one .", "neuf .")])):
        for lang, side in (("en", 0), ("fr", 1)):
            (tmp_path / f"{name}.{lang}").write_text("".join(p[side] + "\n" for p in part), encoding="utf-8")
    corpus = ParallelCorpus(tmp_path / "train", "en", "fr", val=tmp_path / "valid", test=tmp_path / "test")
    with caplog.at_level(logging.INFO, logger="attnlab.data.translation_prep"):
        dm = TranslationDataModule(corpus, tokenizer=lambda: word(min_freq=1), preprocess=False, output_dir=tmp_path)
        dm.setup("fit")
    assert dm.texts("test") == ([p[0] for p in pairs[35:]] + ["new one ."], [p[1] for p in pairs[35:]] + ["neuf ."])
    assert "val 5 of 5 (own file), test 5 of 6 (own file)" in caplog.text


# ---- exact distributed evaluation -------------------------------------------------------------------------------
@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_evaluation_holds_every_pair_once_while_training_steps_stay_equal(fra_txt, tmp_path, world_size):
    dm = make_dm(fra_txt, tmp_path, batch_size=4)
    dm.setup("fit")
    for split in ("val", "test"):
        shards = []
        for rank in range(world_size):
            with mock.patch("attnlab.data.translation.rank_world", return_value=(rank, world_size)):
                loader = getattr(dm, f"{split}_dataloader")()
            shards.append([i for batch in loader for i in batch.index.tolist()])
        assert sorted(i for shard in shards for i in shard) == list(range(len(dm.texts(split)[0])))
        assert all(shards)
    steps = []
    for rank in range(world_size):
        with mock.patch("attnlab.data.translation.rank_world", return_value=(rank, world_size)):
            steps.append(len(list(dm.train_dataloader())))
    assert len(set(steps)) == 1
