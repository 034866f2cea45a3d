"""Translation DataModule: preprocessing, splits without leakage, tokenizers, batches, sharding, cache, errors."""
from __future__ import annotations

import gzip
import os
import random
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
from hydra.utils import instantiate
from lightning_fabric.utilities.data import _set_sampler_epoch
from omegaconf import OmegaConf

from attnlab.data.corpora import FraEngCorpus, ParallelCorpus
from attnlab.data.pairs import TranslationBatch
from attnlab.data.text_io import read_tab_pairs
from attnlab.data.tokenizers import TextTokenizer, bpe, word
from attnlab.data.translation import TranslationDataModule
from attnlab.data.translation_prep import preprocess, preprocess_lines
from attnlab.training.checkpoint import rename_targets

CONF = Path(__file__).resolve().parents[2] / "conf"
EN = "i you he she we they see like want take the a big small red cat dog house car book".split()
FR = "je tu il elle nous ils vois aime veux prends le la un une grand petit rouge chat chien maison".split()


def write_pairs(path: Path, n: int = 240, seed: int = 0, attribution: bool = False) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        length = rng.randint(1, 10)
        src = " ".join(rng.choice(EN) for _ in range(length)) + rng.choice([".", "!", "?"])
        tgt = " ".join(rng.choice(FR) for _ in range(rng.randint(1, 12))) + "\u202f!"
        pairs.append((src.capitalize(), tgt))
    path.parent.mkdir(parents=True, exist_ok=True)
    tail = "\tCC-BY 2.0 (France) Attribution: tatoeba.org" if attribution else ""
    path.write_text("".join(f"{s}\t{t}{tail}\n" for s, t in pairs), encoding="utf-8")
    return pairs


def make_dm(path: Path, tmp_path: Path, **kwargs) -> TranslationDataModule:
    kwargs.setdefault("tokenizer", lambda: word(min_freq=1))
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("cache_dir", None)
    kwargs.setdefault("output_dir", tmp_path / "run")
    return TranslationDataModule(FraEngCorpus(path, url="http://127.0.0.1:9/fra-eng.zip"), **kwargs)


@pytest.fixture
def fra_txt(tmp_path) -> Path:
    write_pairs(tmp_path / "fra-eng" / "fra.txt", attribution=True)
    return tmp_path / "fra-eng" / "fra.txt"


# ---- preprocessing ----------------------------------------------------------------------------------------------
def test_preprocess_matches_d2l():
    assert preprocess("Go.") == "go ."
    assert preprocess("Cours\u202f!") == "cours !"
    assert preprocess("Ça\xa0alors !") == "ça alors !"
    assert preprocess("Hi... Yes,no?") == "hi . . . yes ,no ?"
    assert preprocess("Already spaced .") == "already spaced ."
    assert preprocess(".Leading") == ".leading"  # no previous character, no space
    lines = ["Go.", ".Leading", "Wow!", ""]
    assert preprocess_lines(lines) == [preprocess(x) for x in lines]
    assert preprocess_lines(["a.\nb."]) == ["a .\nb ."]  # a text holding a newline stays one text


# ---- split, vocabulary, leakage ---------------------------------------------------------------------------------
def test_no_test_or_val_words_in_vocabulary(tmp_path):
    path = tmp_path / "fra.txt"  # every pair has its own words, so leakage would be visible
    path.write_text("".join(f"en{i} word{i} .\tfr{i} mot{i} !\n" for i in range(100)))
    dm = make_dm(path, tmp_path, val_fraction=0.2, test_fraction=0.2, split_seed=1)
    dm.setup("fit")
    src_vocab = {dm.src_tokenizer.id_to_token(i) for i in range(dm.src_tokenizer.vocab_size)}
    tgt_vocab = {dm.tgt_tokenizer.id_to_token(i) for i in range(dm.tgt_tokenizer.vocab_size)}
    held_out = [s for name in ("val", "test") for s in dm.datasets[name].src.to_lists()]
    assert len(dm.datasets["train"]) == 60 and len(held_out) == 40
    # held-out content words all map to <unk> (id 0); training words are in the vocabulary
    assert all(row[:2] == [0, 0] for row in held_out)
    assert len([t for t in src_vocab if t.startswith("en")]) == 60 and "." in src_vocab
    assert len([t for t in tgt_vocab if t.startswith("fr")]) == 60
    again = make_dm(path, tmp_path, val_fraction=0.2, test_fraction=0.2, split_seed=1, seed=5)  # seed: batch order
    again.setup("fit")
    assert again.val_examples(5) == dm.val_examples(5) and dm.src_tokenizer == again.src_tokenizer
    other = make_dm(path, tmp_path, val_fraction=0.2, test_fraction=0.2, split_seed=2)
    other.setup("fit")
    assert other.val_examples(20) != dm.val_examples(20)


def test_split_seed_alone_fixes_the_split_and_keys_the_shards(tmp_path):
    """Runs that differ only in ``seed`` share validation and test sets (and their shards); split_seed moves them."""
    path = tmp_path / "fra.txt"
    path.write_text("".join(f"en{i} word{i} .\tfr{i} mot{i} !\n" for i in range(100)))

    def held_out(**kwargs):
        dm = make_dm(path, tmp_path, val_fraction=0.2, test_fraction=0.2, cache_dir=tmp_path / "cache", **kwargs)
        dm.setup("fit")
        return dm.shard_store().path, [dm.texts(name) for name in ("val", "test")]

    first, second, moved = held_out(seed=1), held_out(seed=2), held_out(seed=1, split_seed=3)
    assert first == second
    assert moved[0] != first[0] and moved[1][1] != first[1][1]


def test_num_train_keeps_first_training_pairs_and_test_split(fra_txt, tmp_path):
    full = make_dm(fra_txt, tmp_path)
    small = make_dm(fra_txt, tmp_path, num_train=50, num_val=5)
    full.setup("fit")
    small.setup("fit")
    assert len(small.datasets["train"]) == 50 and len(small.datasets["val"]) == 5
    assert len(small.datasets["test"]) == len(full.datasets["test"]) == 12
    assert small.val_examples(5) == full.val_examples(5)
    first_tests = make_dm(fra_txt, tmp_path, num_test=4)
    first_tests.setup("fit")
    assert first_tests.texts("test") == tuple(side[:4] for side in full.texts("test"))
    first = full.decode_target(full.datasets["train"].tgt.to_lists()[:50])
    assert small.decode_target(small.datasets["train"].tgt.to_lists()) == first


def test_default_tokenizer_is_d2l_word_vocabulary_with_min_freq_two(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Common once.\tCommun unique !\nCommon twice.\tCommun deux !\n")
    dm = TranslationDataModule(FraEngCorpus(path), val_fraction=0.0, test_fraction=0.0, output_dir=tmp_path)
    dm.setup("fit")
    src = {dm.src_tokenizer.id_to_token(i) for i in range(dm.src_tokenizer.vocab_size)}
    tgt = {dm.tgt_tokenizer.id_to_token(i) for i in range(dm.tgt_tokenizer.vocab_size)}
    assert src == {"<unk>", "<pad>", "<bos>", "<eos>", "common", "."}  # preprocessed, then min_freq=2
    assert tgt == {"<unk>", "<pad>", "<bos>", "<eos>", "commun", "!"}
    commun, bang = dm.tgt_tokenizer.token_to_id("commun"), dm.tgt_tokenizer.token_to_id("!")
    assert dm.decode_target(torch.tensor([[2, commun, 0, bang, 3, commun, 1]])) == ["commun !"]  # cut at <eos>


@pytest.mark.parametrize("joint", [False, True])
def test_joint_vocab(fra_txt, tmp_path, joint):
    dm = make_dm(fra_txt, tmp_path, joint_vocab=joint)
    dm.setup("fit")
    spec = dm.spec()
    assert (dm.src_tokenizer is dm.tgt_tokenizer) == joint
    assert (spec.src_vocab_size == spec.tgt_vocab_size) == joint
    assert (spec.pad_id, spec.bos_id, spec.eos_id) == (1, 2, 3)
    if joint:
        assert {"cat", "chat"} <= {dm.src_tokenizer.id_to_token(i) for i in range(spec.src_vocab_size)}


# ---- round trips and batches ------------------------------------------------------------------------------------
@pytest.mark.parametrize("builder", [lambda: word(min_freq=1), lambda: bpe(vocab_size=120)])
def test_targets_round_trip_through_batches(fra_txt, tmp_path, builder):
    dm = make_dm(fra_txt, tmp_path, tokenizer=builder, val_fraction=0.5, test_fraction=0.0)
    dm.setup("fit")
    expected = sorted(t for _, t in dm.val_examples(10_000))
    decoded = [text for b in dm.val_dataloader() for text in dm.decode_target(b.tgt_out)]
    assert sorted(decoded) == expected and expected[0].endswith(" !")  # preprocessed: nbsp -> space
    src, src_lens = dm.encode_source([s for s, _ in dm.val_examples(3)])
    assert src.shape[0] == 3 and (src[torch.arange(3), src_lens - 1] == 3).all()


def test_batches_have_right_lengths_specials_and_padding(fra_txt, tmp_path):
    dm = make_dm(fra_txt, tmp_path)
    dm.setup("fit")
    pad, bos, eos = 1, 2, 3
    seen = 0
    for b in dm.train_dataloader():
        assert isinstance(b, TranslationBatch) and b.src.dtype == b.tgt_in.dtype == torch.long
        assert b.src.shape[1] == b.src_lens.max() and b.tgt_in.shape == b.tgt_out.shape
        assert b.tgt_in.shape[1] == b.tgt_lens.max()
        for i in range(len(b.src)):
            s, t = int(b.src_lens[i]), int(b.tgt_lens[i])
            assert b.src[i, s - 1] == eos and (b.src[i, s:] == pad).all() and (b.src[i, : s - 1] > eos).all()
            assert b.tgt_in[i, 0] == bos and b.tgt_out[i, t - 1] == eos
            assert torch.equal(b.tgt_in[i, 1:t], b.tgt_out[i, : t - 1])  # shifted by one
            assert (b.tgt_in[i, t:] == pad).all() and (b.tgt_out[i, t:] == pad).all()
        seen += len(b.src)
    assert seen == len(dm.datasets["train"])


@pytest.mark.parametrize("policy", ["truncate", "filter"])
def test_max_len_policies(fra_txt, tmp_path, policy):
    dm = make_dm(fra_txt, tmp_path, max_len=6, length_policy=policy)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert max(int(b.src_lens.max()) for b in batches) == 6 and max(int(b.tgt_lens.max()) for b in batches) == 6
    kept = sum(len(b.src) for b in batches)
    full = make_dm(fra_txt, tmp_path)
    full.setup("fit")
    assert (kept == len(full.datasets["train"])) == (policy == "truncate")
    src, src_lens = dm.encode_source(["i see the big red cat and the small dog ."])
    assert src.shape == (1, 6) and src[0, 5] == 3




def test_datamodule_shards_by_rank_and_lightning_sets_epoch(fra_txt, tmp_path):
    dm = make_dm(fra_txt, tmp_path, batch_size=8)
    dm.setup("fit")
    whole = {i for b in dm.train_dataloader().batch_sampler for i in b}
    shards = []
    for rank in range(2):
        with mock.patch("attnlab.data.translation.rank_world", return_value=(rank, 2)):  # torch.distributed's
            loader = dm.train_dataloader()
        _set_sampler_epoch(loader, 5)  # what Lightning's fit loop calls each epoch
        assert loader.batch_sampler.sampler.epoch == 5
        shards.append([i for b in loader.batch_sampler for i in b])
    assert set(shards[0]) | set(shards[1]) == whole and len(set(shards[0]) & set(shards[1])) <= 8


def test_datamodule_shards_by_process_group_without_trainer(fra_txt, tmp_path, monkeypatch):
    dm = make_dm(fra_txt, tmp_path, batch_size=8)
    dm.setup("fit")
    single = len(dm.train_dataloader())
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    sampler = dm.train_dataloader().batch_sampler
    assert (sampler.rank, sampler.world_size) == (3, 4) and len(sampler) == -(-single // 4)


def test_lightning_fit_uses_batches_and_checkpoints_tokenizers(fra_txt, tmp_path):
    import pytorch_lightning as pl

    class TinyLM(pl.LightningModule):
        def __init__(self, vocab: int):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, 4)
            self.out = torch.nn.Linear(4, vocab)
            self.epochs_seen = []

        def training_step(self, batch, _):
            logits = self.out(self.emb(batch.tgt_in))  # (B, T, V)
            return torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch.tgt_out, ignore_index=1)

        def on_train_epoch_start(self):
            self.epochs_seen.append(self.trainer.train_dataloader.batch_sampler.sampler.epoch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = make_dm(fra_txt, tmp_path, batch_size=32)
    dm.setup("fit")
    model = TinyLM(dm.spec().tgt_vocab_size)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    assert model.epochs_seen == [0, 1]
    checkpoint = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert checkpoint["TranslationDataModule"] == dm.state_dict()


# ---- persistence: cache, checkpoints, run dir -------------------------------------------------------------------
def _arrays(dm):
    return {(n, side): getattr(d, side).to_lists() for n, d in dm.datasets.items() for side in ("src", "tgt")}


def test_cache_hit_equals_cold_encoding(fra_txt, tmp_path, monkeypatch):
    cold = make_dm(fra_txt, tmp_path, cache_dir=tmp_path / "cache", tokenizer=lambda: bpe(vocab_size=100))
    cold.setup("fit")
    assert cold.cache_hit is False and len(list((tmp_path / "cache").glob("translation-*/meta.json"))) == 1
    uncached = make_dm(fra_txt, tmp_path, tokenizer=lambda: bpe(vocab_size=100))
    uncached.setup("fit")

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not retrain the tokenizer")

    monkeypatch.setattr(TextTokenizer, "train", no_training)
    warm = make_dm(fra_txt, tmp_path, cache_dir=tmp_path / "cache", tokenizer=lambda: bpe(vocab_size=100))
    warm.setup("fit")
    assert warm.cache_hit is True
    assert _arrays(warm) == _arrays(cold) == _arrays(uncached)
    assert warm.src_tokenizer == cold.src_tokenizer and warm.tgt_tokenizer == cold.tgt_tokenizer
    assert warm.val_examples(100) == cold.val_examples(100)
    monkeypatch.undo()
    # a different config or a file edited in place is a different key, even keeping size and mtime (cp -p)
    make_dm(fra_txt, tmp_path, cache_dir=tmp_path / "cache", tokenizer=lambda: bpe(vocab_size=100), split_seed=9).setup()
    before, text = fra_txt.stat(), fra_txt.read_text(encoding="utf-8")
    fra_txt.write_text("Zz" + text[2:], encoding="utf-8")
    os.utime(fra_txt, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = fra_txt.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    changed = make_dm(fra_txt, tmp_path, cache_dir=tmp_path / "cache", tokenizer=lambda: bpe(vocab_size=100))
    changed.setup()
    assert changed.cache_hit is False and len(list((tmp_path / "cache").glob("translation-*/meta.json"))) == 3
    sources = [source for split in ("train", "val", "test") for source in changed.texts(split)[0]]
    assert any(source.startswith("zz") for source in sources)


def test_state_dict_restores_tokenizers_without_retraining(fra_txt, tmp_path, monkeypatch):
    trained = make_dm(fra_txt, tmp_path)
    trained.setup("fit")
    state = trained.state_dict()
    assert set(state) == {"tokenizer_src", "tokenizer_tgt"} and all(isinstance(v, str) for v in state.values())
    monkeypatch.setattr(TextTokenizer, "train", lambda *a, **k: pytest.fail("retrained"))
    restored = make_dm(fra_txt, tmp_path, num_train=20)  # a smaller corpus would give another vocabulary
    restored.load_state_dict(state)
    restored.setup("fit")
    assert restored.src_tokenizer == trained.src_tokenizer and restored.spec() == trained.spec()
    monkeypatch.undo()
    # loading after setup (Lightning's resume order) re-encodes with the checkpoint's tokenizers
    late = make_dm(fra_txt, tmp_path, num_train=20)
    late.setup("fit")
    assert late.src_tokenizer != trained.src_tokenizer
    late.load_state_dict(state)
    assert late.tgt_tokenizer == trained.tgt_tokenizer
    assert late.decode_target(late.datasets["val"].tgt.to_lists()) == trained.decode_target(
        trained.datasets["val"].tgt.to_lists()
    )
    assert TextTokenizer.load(tmp_path / "run" / "tokenizer_tgt.json") == trained.tgt_tokenizer
    late.load_state_dict({})  # a checkpoint without datamodule state changes nothing
    with pytest.raises(ValueError, match="tokenizer_tgt"):
        late.load_state_dict({"tokenizer_src": state["tokenizer_src"]})


def test_restored_tokenizers_translate_without_reading_the_corpus(fra_txt, tmp_path):
    trained = make_dm(fra_txt, tmp_path, max_len=8)
    trained.setup("fit")
    restored = make_dm(tmp_path / "moved" / "fra.txt", tmp_path, max_len=8)  # corpus gone, as in attnlab-translate
    restored.load_state_dict(trained.state_dict())
    sources = ["I see the big red cat.", "You like a small dog and a big house and a car!"]
    src, src_lens = restored.encode_source(sources)
    expected_src, expected_lens = trained.encode_source(sources)
    assert torch.equal(src, expected_src) and torch.equal(src_lens, expected_lens) and src.shape[1] == 8
    assert restored.spec() == trained.spec()
    ids = trained.tgt_tokenizer.encode_batch(["le chat rouge !"])[0]
    assert restored.decode_target([[2] + ids + [3, 1, 1]]) == ["le chat rouge !"]
    with pytest.raises(ValueError, match="setup"):
        restored.val_examples(1)


def test_tokenizers_are_saved_in_the_run_dir(fra_txt, tmp_path):
    dm = make_dm(fra_txt, tmp_path, output_dir=tmp_path / "out")
    dm.setup("fit")
    assert TextTokenizer.load(tmp_path / "out" / "tokenizer_src.json") == dm.src_tokenizer
    assert TextTokenizer.load(tmp_path / "out" / "tokenizer_tgt.json") == dm.tgt_tokenizer


# ---- parallel corpora -------------------------------------------------------------------------------------------
def _write_parallel(prefix: Path, pairs, gz: bool = False):
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for lang, side in (("en", 0), ("fr", 1)):
        text = "".join(p[side] + "\n" for p in pairs)
        if gz:
            with gzip.open(f"{prefix}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            Path(f"{prefix}.{lang}").write_text(text, encoding="utf-8")


def test_parallel_corpus_with_explicit_and_carved_splits(tmp_path):
    pairs = write_pairs(tmp_path / "all.txt", n=120)
    _write_parallel(tmp_path / "p" / "train", pairs[:100], gz=True)
    _write_parallel(tmp_path / "p" / "valid", pairs[100:110])
    _write_parallel(tmp_path / "p" / "test", pairs[110:])
    p = tmp_path / "p"
    corpus = ParallelCorpus(p / "train", "en", "fr", val=p / "valid", test=p / "test")
    dm = TranslationDataModule(corpus, tokenizer=lambda: word(min_freq=1), preprocess=False, batch_size=8,
                               output_dir=tmp_path / "run")
    dm.setup("fit")
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [100, 10, 10]
    assert dm.val_examples(10) == pairs[100:110]
    carved = TranslationDataModule(ParallelCorpus(tmp_path / "p" / "train", "en", "fr"), tokenizer=word,
                                   val_fraction=0.1, test_fraction=0.2, output_dir=tmp_path / "run")
    carved.setup("fit")
    assert [len(carved.datasets[s]) for s in ("train", "val", "test")] == [70, 10, 20]


def test_misaligned_parallel_files_are_rejected(tmp_path):
    _write_parallel(tmp_path / "train", [("a .", "b .")] * 5)
    Path(f"{tmp_path / 'train'}.fr").write_text("b .\n" * 4)
    dm = TranslationDataModule(ParallelCorpus(tmp_path / "train", "en", "fr"), output_dir=tmp_path / "run")
    with pytest.raises(ValueError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "train.en" in message and "train.fr" in message and "5 lines" in message and "4 lines" in message
    with pytest.raises(FileNotFoundError, match=r"train\.de or .*train\.de\.gz"):
        TranslationDataModule(ParallelCorpus(tmp_path / "train", "en", "de")).setup("fit")


# ---- errors -----------------------------------------------------------------------------------------------------
def test_missing_fra_txt_says_where_and_how(tmp_path):
    missing = tmp_path / "nowhere" / "fra-eng" / "fra.txt"
    dm = make_dm(missing, tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(missing) in message and "http://127.0.0.1:9/fra-eng.zip" in message and "DATA_DIR" in message


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"length_policy": "pad"}, "length_policy"),
        ({"max_len": 1}, "max_len"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction"),
        ({"num_train": 0}, "num_train"),
        ({"batch_size": None}, "batch_size or max_tokens"),
    ],
)
def test_bad_arguments_fail_early(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dm(tmp_path / "fra.txt", tmp_path, **kwargs)


def test_helpers_need_setup(fra_txt, tmp_path):
    with pytest.raises(ValueError, match="setup"):
        make_dm(fra_txt, tmp_path).task_text()


# ---- configs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fra_eng", "parallel"])
def test_data_configs_instantiate(name, fra_txt, tmp_path):
    data = OmegaConf.load(CONF / "data" / f"{name}.yaml")
    data.pop("defaults")  # the tokenizer choice, which Hydra's composition reads; given below
    root = OmegaConf.create({
        "paths": {"data_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "run")},
        "seed": 7,
        "tokenizer": OmegaConf.load(CONF / "tokenizer" / "word.yaml"),
        "data": data,
    })
    if name == "parallel":
        pairs = read_tab_pairs(fra_txt)
        _write_parallel(tmp_path / "parallel" / "train", list(zip(*pairs))[:200])
        _write_parallel(tmp_path / "parallel" / "valid", list(zip(*pairs))[200:220])
        _write_parallel(tmp_path / "parallel" / "test", list(zip(*pairs))[220:])
    dm = instantiate(root.data)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.src.shape[0] == 64 and dm.preparation.build_tokenizer().config["min_freq"] == 2
    assert (tmp_path / "run" / "tokenizer_src.json").is_file() and any((tmp_path / "cache").glob("*/train/part-*"))


def test_configs_inside_older_checkpoints_still_name_the_corpora(fra_txt, tmp_path):
    """Checkpoints written before the data package was split name the corpora as attnlab.data.translation.*: the
    checkpoint owner's rename table points them at attnlab.data.corpora."""
    old = OmegaConf.create({
        "_target_": "attnlab.data.translation.TranslationDataModule", "output_dir": str(tmp_path / "run"),
        "corpus": {"_target_": "attnlab.data.translation.FraEngCorpus", "path": str(fra_txt)},
    })
    dm = instantiate(rename_targets(OmegaConf.to_container(old)))
    assert isinstance(dm.preparation.corpus, FraEngCorpus) and dm.preparation.corpus.path == fra_txt
    parallel = instantiate(rename_targets({"_target_": "attnlab.data.translation.ParallelCorpus", "train": "t",
                                           "src_lang": "en", "tgt_lang": "fr"}))
    assert isinstance(parallel, ParallelCorpus)


# ---- the real corpus --------------------------------------------------------------------------------------------
@pytest.mark.data
def test_full_fra_eng_corpus(shared_data, tmp_path):
    path = shared_data / "fra-eng" / "fra.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    timings = {}
    for attempt in ("cold", "cached"):
        dm = TranslationDataModule(FraEngCorpus(path), cache_dir=tmp_path / "cache", output_dir=tmp_path / "run")
        start = time.perf_counter()
        dm.setup("fit")  # (under a Trainer, prepare_data builds the cache and setup loads it)
        timings[attempt] = time.perf_counter() - start
        assert dm.cache_hit == (attempt == "cached")
        sizes = [len(dm.datasets[s]) for s in ("train", "val", "test")]
        assert sum(sizes) == 167_130 and sizes[1] == sizes[2] == 8356
    print(f"\nfra-eng prep: cold {timings['cold']:.2f}s, cached {timings['cached']:.2f}s; "
          f"vocab src/tgt {dm.src_tokenizer.vocab_size}/{dm.tgt_tokenizer.vocab_size}")
    assert timings["cold"] < 60 and timings["cached"] < 5
    assert dm.val_examples(1)[0] == tuple(preprocess(x) for x in dm.val_examples(1)[0])
