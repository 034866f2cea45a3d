"""WikiText-2 pretraining DataModule: batches, tokenizer on train only, cache, checkpointed state, per-epoch draws."""
import functools
import os
import random
import time
from pathlib import Path
from unittest import mock

import pytest
import pytorch_lightning as pl
import torch

from attnlab.data import bert_pretraining, paragraph_shards, wikitext
from attnlab.data.bert_pretraining import WikiText2DataModule
from attnlab.data.bert_inputs import EncodedCorpus
from attnlab.data.pretraining_examples import PretrainingBatch, draw_examples, epoch_generators
from attnlab.data.tokenizers import word, wordpiece

SHARED_WIKITEXT = Path(
    os.environ.get("DATA_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data")
) / "wikitext-2"


# ---- the DataModule -----------------------------------------------------------------------------------------------
def _wikitext_lines(rng, num_paragraphs, vocab):
    lines = [" \n", " = Heading = \n", " \n"]
    for _ in range(num_paragraphs):
        sentences = [" ".join(rng.choices(vocab, k=rng.randint(2, 10))) for _ in range(rng.randint(1, 5))]
        lines.append(" " + " . ".join(sentences) + " . \n")
    return "".join(lines)


@pytest.fixture
def wiki_dir(tmp_path):
    rng = random.Random(0)
    vocab = [f"W{i}" for i in range(40)]
    directory = tmp_path / "wikitext-2"
    directory.mkdir()
    (directory / "wiki.train.tokens").write_text(_wikitext_lines(rng, 120, vocab))
    valid = _wikitext_lines(rng, 30, vocab) + " zebra zebra zebra . zebra zebra . \n"  # not in train
    (directory / "wiki.valid.tokens").write_text(valid)
    (directory / "wiki.test.tokens").write_text(_wikitext_lines(rng, 30, vocab))
    return directory


def _module(wiki_dir, tokenizer=functools.partial(word, min_freq=1), **kwargs):
    return WikiText2DataModule(tokenizer, wiki_dir, **{"batch_size": 16, "max_len": 24, **kwargs})


def test_datamodule_batches_and_spec(wiki_dir):
    dm = _module(wiki_dir)
    with pytest.raises(RuntimeError, match="spec"):
        dm.task_text()
    spec = dm.spec()  # trains the tokenizer and encodes the corpus, once: setup finds it done
    corpora = dm.corpora
    dm.setup("fit")
    assert dm.corpora is corpora and dm.spec() == spec
    assert spec.as_dict() == {"vocab_size": dm.tokenizer.vocab_size, "pad_id": 0, "max_len": 24}
    assert dm.tokenizer.specials == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, PretrainingBatch)
    longest = int(batch.valid_lens.max())  # batches are cut to their longest pair (at most max_len = 24)
    assert batch.tokens.shape == batch.segments.shape == (16, longest) and longest <= 24 and batch.tokens.dtype == torch.long
    assert batch.valid_lens.shape == batch.nsp_labels.shape == (16,)
    slots = batch.mlm_mask.shape[1]  # cut to the slots the batch uses (of at most 3 = 0.15 x 21 ordinary tokens)
    assert batch.mlm_positions.shape == batch.mlm_labels.shape == batch.mlm_mask.shape == (16, slots)
    assert 1 <= slots <= 3 and batch.mlm_mask[:, -1].any() and batch.mlm_mask[:, 0].all()
    assert batch.mlm_mask.dtype == torch.bool and (batch.tokens[:, 0] == dm.special_ids.cls).all()
    val = [b.tokens for b in dm.val_dataloader()]
    assert all(torch.equal(x, b.tokens) for x, b in zip(val, dm.val_dataloader()))  # fixed across epochs


def test_tokenizer_is_trained_on_the_training_split_only(wiki_dir):
    dm = _module(wiki_dir)
    dm.setup()
    with pytest.raises(ValueError, match="zebra"):
        dm.tokenizer.token_to_id("zebra")
    assert dm.tokenizer.token_to_id("w3") > 4  # lowercased by the preparation
    valid = dm.corpora["valid"]
    assert valid.sentence(valid.num_sentences - 1) == [dm.special_ids.unk] * 2 + [dm.tokenizer.token_to_id(".")]


def test_wordpiece_option(wiki_dir):
    dm = _module(wiki_dir, tokenizer=functools.partial(wordpiece, vocab_size=80))
    dm.setup()
    assert dm.spec().vocab_size <= 80 and dm.tokenizer.config["kind"] == "wordpiece"
    assert len(dm.examples("train")) == 7


def _corpora_equal(a, b):
    return all(x.sentences.to_lists() == y.sentences.to_lists() and torch.equal(x.paragraph_offsets, y.paragraph_offsets)
               for x, y in ((a[split], b[split]) for split in a))


def test_shards_are_reused_and_keyed_by_config_and_file_stat(wiki_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _module(wiki_dir, cache_dir=cache)
    first.prepare_data()
    first.setup()
    first.prepare_data()  # after setup (attnlab-train sets up first): the same store, keyed by the config
    store = first.shard_store()
    stores = [p.name for p in cache.iterdir() if not p.name.startswith(".")]  # beside the hidden lock file
    assert stores == [store.path.name] and store.path.name.startswith("wikitext2-")
    reads = []
    real_read = bert_pretraining.read_wikitext2
    monkeypatch.setattr(bert_pretraining, "read_wikitext2", lambda *a: reads.append(a) or real_read(*a))
    second = _module(wiki_dir, cache_dir=cache)
    second.setup()
    assert reads == [] and second.tokenizer == first.tokenizer and _corpora_equal(second.corpora, first.corpora)
    ids = second.corpora["train"].sentences.chunks[0].ids  # token rows: mapped from the shard files, not copied
    assert not ids.flags.owndata and not ids.flags.writeable
    _module(wiki_dir, tokenizer=functools.partial(word, min_freq=2), cache_dir=cache).setup()
    assert len(reads) == 3 and len(list(cache.glob("wikitext2-*"))) == 2  # another tokenizer config
    with (wiki_dir / "wiki.test.tokens").open("a") as f:
        f.write(" w1 w2 . w3 \n")
    changed = _module(wiki_dir, cache_dir=cache)
    changed.setup()
    assert len(reads) == 6 and len(list(cache.glob("wikitext2-*"))) == 3  # the files changed
    assert changed.corpora["test"].num_paragraphs == first.corpora["test"].num_paragraphs + 1


def test_a_checkpoint_tokenizer_maps_the_shards_that_hold_it_and_keys_its_own_otherwise(wiki_dir, tmp_path):
    cache = tmp_path / "cache"
    trained = _module(wiki_dir, cache_dir=cache)
    trained.setup()
    (store,) = cache.glob("wikitext2-*")
    resumed = _module(wiki_dir, cache_dir=cache)
    resumed.load_state_dict(trained.state_dict())  # attnlab-train restores the tokenizer before setup
    resumed.setup()
    assert resumed.shard_store().path == store and list(cache.glob("wikitext2-*")) == [store]
    other = _module(wiki_dir, tokenizer=functools.partial(wordpiece, vocab_size=60))
    other.setup()
    foreign = _module(wiki_dir, cache_dir=cache)
    foreign.load_state_dict(other.state_dict())
    foreign.setup()
    assert foreign.shard_store().path != store and len(list(cache.glob("wikitext2-*"))) == 2
    assert foreign.tokenizer == other.tokenizer and _corpora_equal(foreign.corpora, other.corpora)


@pytest.mark.parametrize("options", [{}, {"bucket_size": 64, "objective": "sop", "long_pairs": "truncate"}])
def test_epochs_from_shards_equal_the_in_memory_path(wiki_dir, tmp_path, monkeypatch, options):
    monkeypatch.setattr(paragraph_shards, "PART_PARAGRAPHS", 7)  # many parts: rows read across chunks
    mapped, in_memory = (_module(wiki_dir, cache_dir=cache, seed=3, **options) for cache in (tmp_path / "c", None))
    for dm in (mapped, in_memory):
        dm.prepare_data()
        dm.setup()
    assert len(mapped.corpora["train"].sentences.chunks) > 10
    for epoch, rank, world_size in ((0, 0, 1), (1, 0, 1), (2, 1, 2)):
        examples = [dm.examples("train", epoch, rank) for dm in (mapped, in_memory)]
        assert all(torch.equal(x, y) for x, y in zip(*examples))
        batches = [dm.batches(e, epoch, rank, world_size) for dm, e in zip((mapped, in_memory), examples)]
        assert batches[0] == batches[1] and len(batches[0]) > 1
    assert all(torch.equal(x, y) for x, y in zip(mapped.examples("valid"), in_memory.examples("valid")))
    flat = EncodedCorpus.encode(wikitext.read_wikitext2(wiki_dir, "train"), mapped.tokenizer)  # one array, no shards
    drawn = draw_examples(flat, mapped.special_ids, mapped.replacement_ids, epoch_generators(3, "train", 1, 0), 24,
                          options.get("long_pairs", "drop"), 0.15, options.get("objective", "nsp"))
    assert all(torch.equal(x, y) for x, y in zip(mapped.examples("train", 1, 0), drawn))


def test_state_dict_restores_the_tokenizer_before_or_after_setup(wiki_dir):
    trained = _module(wiki_dir)
    trained.setup()
    state = trained.state_dict()
    assert set(state) == {"tokenizer"} and isinstance(state["tokenizer"], str)
    other_vocab = functools.partial(wordpiece, vocab_size=60)
    before = _module(wiki_dir, tokenizer=other_vocab)
    before.load_state_dict(state)  # eval: checkpoint first, then setup reuses it
    before.setup()
    after = _module(wiki_dir, tokenizer=other_vocab)
    after.setup()  # Lightning's resume order: setup, then load_state_dict
    assert after.tokenizer != trained.tokenizer
    after.load_state_dict(state)
    for restored in (before, after):
        assert restored.tokenizer == trained.tokenizer and _corpora_equal(restored.corpora, trained.corpora)
        assert restored.spec() == trained.spec()


def test_datamodule_rejects_bad_config(wiki_dir):
    with pytest.raises(ValueError, match="'clip'"):
        _module(wiki_dir, long_pairs="clip")
    with pytest.raises(ValueError, match="batch_size"):
        _module(wiki_dir, batch_size=0)
    with pytest.raises(ValueError, match="mask_prob=1.5"):
        _module(wiki_dir, mask_prob=1.5)
    with pytest.raises(ValueError, match="_partial_"):
        _module(wiki_dir, tokenizer=word(min_freq=1))


def test_missing_files_raise_file_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(wikitext, "WIKITEXT2_URL", "http://127.0.0.1:9/wikitext-2-v1.zip")  # no network in tests
    with pytest.raises(FileNotFoundError, match="wiki.train.tokens"):
        _module(tmp_path / "absent").setup()


class _Recorder(pl.LightningModule):
    """Records each training batch; its loss has a gradient but SGD with lr 0 changes nothing."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch.tokens.clone()))
        return self.weight * batch.tokens.float().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(tmp_path, reload_every):
    return pl.Trainer(
        max_epochs=2, limit_train_batches=1, limit_val_batches=0, reload_dataloaders_every_n_epochs=reload_every,
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )


@pytest.mark.parametrize("reload_every", [1, 0])  # a new loader each epoch, or one whose set_epoch draws
def test_trainer_gets_a_new_draw_every_epoch_and_checkpoints_the_tokenizer(wiki_dir, tmp_path, reload_every):
    dm, model = _module(wiki_dir), _Recorder()
    trainer = _trainer(tmp_path, reload_every=reload_every)
    trainer.fit(model, datamodule=dm)
    assert [epoch for epoch, _ in model.seen] == [0, 1]
    for epoch, tokens in model.seen:
        assert torch.equal(tokens, dm.examples("train", epoch=epoch, rank=0).tokens[:16, : tokens.shape[1]])
    assert not torch.equal(model.seen[0][1], model.seen[1][1])
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert checkpoint["WikiText2DataModule"] == {"tokenizer": dm.tokenizer.to_str()}


def test_ranks_mask_the_same_pairs_differently(wiki_dir):
    dm = _module(wiki_dir)
    dm.setup()
    rank0, rank1 = dm.examples("train", 0, 0), dm.examples("train", 0, 1)
    assert torch.equal(rank0.segments, rank1.segments) and not torch.equal(rank0.mlm_positions, rank1.mlm_positions)
    assert all(torch.equal(x, y) for x, y in zip(dm.examples("train", 2, 1), dm.examples("train", 2, 1)))


def test_a_restored_training_loader_resumes_at_the_next_batch_of_the_epoch(wiki_dir):
    def loader_at(dm, epoch, rank):
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        with mock.patch("attnlab.data.samplers.rank_world", return_value=(rank, 2)):
            len(loader)  # draws this rank's examples
        return loader

    dm = _module(wiki_dir, batch_size=8)
    dm.setup("fit")
    full = list(loader_at(dm, 1, 1))
    interrupted = iter(loader := loader_at(dm, 1, 1))
    for _ in range(3):
        next(interrupted)
    state = loader.state_dict()  # what a mid-epoch checkpoint stores
    assert state == {"batches_served": 3} and len(full) > 4

    resumed_dm = _module(wiki_dir, batch_size=8)  # a new process: setup, then the checkpoint's state
    resumed_dm.setup("fit")
    resumed_dm.load_state_dict(dm.state_dict())
    resumed = loader_at(resumed_dm, 1, 1)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 3
    for batch, expected in zip(rest, full[3:]):
        assert all(torch.equal(x, y) for x, y in zip(batch, expected))
    assert len(list(resumed)) == len(full)  # the skip applies once: the next epoch is whole


# ---- real data ----------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_wikitext2_epoch_preparation_time(tmp_path):
    if not (SHARED_WIKITEXT / "wiki.train.tokens").is_file():
        pytest.skip(f"WikiText-2 not found in {SHARED_WIKITEXT}")
    build = functools.partial(word, min_freq=5)
    start = time.perf_counter()
    WikiText2DataModule(build, SHARED_WIKITEXT, cache_dir=tmp_path).setup()
    tokenize = time.perf_counter() - start
    start = time.perf_counter()
    dm = WikiText2DataModule(build, SHARED_WIKITEXT, cache_dir=tmp_path)
    dm.setup()
    load = time.perf_counter() - start
    start = time.perf_counter()
    epoch = dm.examples("train", epoch=0, rank=0)
    first_epoch = time.perf_counter() - start
    start = time.perf_counter()
    dm.examples("train", epoch=1, rank=0)
    next_epoch = time.perf_counter() - start
    print(
        f"\nWikiText-2 (word, min_freq 5, vocab {dm.tokenizer.vocab_size}): tokenize+encode+cache {tokenize:.2f} s, "
        f"cache load {load:.3f} s, epoch 0 ({len(epoch.nsp_labels)} examples) {first_epoch:.2f} s, "
        f"epoch 1 {next_epoch:.2f} s"
    )
    assert load < 1.0 and first_epoch < 10.0
    assert 40_000 < len(epoch.nsp_labels) < 50_000  # ~59k successor pairs, ~3/4 fit in 64 tokens
