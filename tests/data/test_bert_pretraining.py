"""BERT pretraining data: NSP pairs and segments, masked-LM draws, per-epoch/rank reproducibility, the DataModule."""
import functools
import os
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from attnlab.data import bert_pretraining, wikitext
from attnlab.data.bert_pretraining import (
    EncodedCorpus,
    PretrainingBatch,
    SentencePairs,
    SpecialIds,
    WikiText2DataModule,
    assemble_pairs,
    draw_examples,
    epoch_generators,
    mask_tokens,
    num_prediction_slots,
    sample_sentence_pairs,
    truncate_longest_first,
)
from attnlab.data.examples import TensorExamples
from attnlab.data.tokenizers import word, wordpiece

IDS = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
SHARED_WIKITEXT = Path(
    os.environ.get("DATA_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data")
) / "wikitext-2"


class IntTokenizer:
    """Reads sentences written as space-separated ids."""

    def encode_batch(self, texts):
        return [[int(token) for token in text.split()] for text in texts]


def corpus_of(paragraphs):
    return EncodedCorpus.encode([[" ".join(map(str, s)) for s in p] for p in paragraphs], IntTokenizer())


def unique_paragraphs(num_paragraphs, seed=0, max_sentences=5, max_words=9):
    """Every id occurs once (ids from 5 on), so any token tells which sentence it came from."""
    rng, next_id, paragraphs = random.Random(seed), 5, []
    for _ in range(num_paragraphs):
        paragraph = []
        for _ in range(rng.randint(2, max_sentences)):
            length = rng.randint(1, max_words)
            paragraph.append(list(range(next_id, next_id + length)))
            next_id += length
        paragraphs.append(paragraph)
    return paragraphs


def generators(seed=0, epoch=0, rank=0, split="train"):
    return epoch_generators(seed, split, epoch, rank)


# ---- corpus and pairs -------------------------------------------------------------------------------------------
def test_encoded_corpus_flattens_sentences_and_paragraphs():
    corpus = corpus_of([[[5, 6, 7], [8]], [[9, 10], [], [11]]])
    assert corpus.token_ids.tolist() == [5, 6, 7, 8, 9, 10, 11]
    assert corpus.sentence_offsets.tolist() == [0, 3, 4, 6, 6, 7]
    assert corpus.paragraph_offsets.tolist() == [0, 2, 5]
    assert [corpus.sentence(s) for s in range(corpus.num_sentences)] == [[5, 6, 7], [8], [9, 10], [], [11]]


def test_assemble_pairs_builds_cls_a_sep_b_sep_with_segments():
    corpus = corpus_of([[[5, 6, 7], [8, 9]], [[10], [11, 12, 13]]])
    pairs = SentencePairs(
        first=torch.tensor([0, 3]), second=torch.tensor([1, 0]),
        first_len=torch.tensor([3, 2]), second_len=torch.tensor([2, 1]),  # row 2: both cut to their prefixes
        is_next=torch.tensor([True, False]),
    )
    tokens, segments, valid_lens = assemble_pairs(corpus, pairs, 10, IDS)
    assert tokens.tolist() == [[2, 5, 6, 7, 3, 8, 9, 3, 0, 0], [2, 11, 12, 3, 5, 3, 0, 0, 0, 0]]
    assert segments.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]]
    assert valid_lens.tolist() == [8, 6]


def _paragraph_of(corpus):
    return torch.repeat_interleave(torch.arange(corpus.num_paragraphs), corpus.paragraph_offsets.diff())


def test_each_successor_pair_once_true_next_or_from_another_paragraph_half_and_half():
    corpus = corpus_of(unique_paragraphs(2000))
    pairs = sample_sentence_pairs(corpus, generators().pairs, max_len=64, long_pairs="truncate")
    paragraph = _paragraph_of(corpus)
    last = corpus.paragraph_offsets[1:] - 1
    expected_first = torch.tensor([s for s in range(corpus.num_sentences) if s not in set(last.tolist())])
    assert torch.equal(pairs.first, expected_first)  # every (A, A+1) of a paragraph, once
    assert torch.equal(pairs.second[pairs.is_next], pairs.first[pairs.is_next] + 1)
    random_b = ~pairs.is_next
    assert (paragraph[pairs.second[random_b]] != paragraph[pairs.first[random_b]]).all()
    assert abs(pairs.is_next.float().mean().item() - 0.5) < 0.03  # ~5300 pairs: 4 standard deviations


def test_random_next_sentence_reaches_every_sentence_of_the_other_paragraphs_only():
    corpus = corpus_of([[[5], [6]], [[7], [8], [9]], [[10], [11]]])
    seconds = {0: set(), 2: set(), 5: set()}  # first sentence of each paragraph -> random B seen
    for epoch in range(100):
        pairs = sample_sentence_pairs(corpus, generators(epoch=epoch).pairs, max_len=64)
        for a, b, is_next in zip(pairs.first.tolist(), pairs.second.tolist(), pairs.is_next.tolist()):
            if a in seconds and not is_next:
                seconds[a].add(b)
    assert seconds == {0: {2, 3, 4, 5, 6}, 2: {0, 1, 5, 6}, 5: {0, 1, 2, 3, 4}}


def _bert_truncate(len_a, len_b, budget):
    """BERT's loop: cut one token from the longer sentence (B on ties) until the pair fits."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_truncate_longest_first_matches_berts_loop():
    grid = [(a, b, budget) for a in range(14) for b in range(14) for budget in range(1, 12)]
    len_a, len_b, budgets = (torch.tensor(column) for column in zip(*grid))
    for budget in range(1, 12):
        rows = budgets == budget
        new_a, new_b = truncate_longest_first(len_a[rows], len_b[rows], budget)
        expected = [_bert_truncate(a, b, budget) for a, b in zip(len_a[rows].tolist(), len_b[rows].tolist())]
        assert list(zip(new_a.tolist(), new_b.tolist())) == expected


def test_long_pairs_are_dropped_or_truncated():
    corpus = corpus_of(unique_paragraphs(300, max_words=12))
    lengths = corpus.sentence_offsets.diff()
    kept = sample_sentence_pairs(corpus, generators().pairs, max_len=16, long_pairs="truncate")
    dropped = sample_sentence_pairs(corpus, generators().pairs, max_len=16, long_pairs="drop")
    full = lengths[kept.first] + lengths[kept.second] + 3
    fits = full <= 16
    assert 0 < int(fits.sum()) < len(fits)  # the draw has both kinds
    assert torch.equal(dropped.first, kept.first[fits]) and torch.equal(dropped.second, kept.second[fits])
    assert torch.equal(dropped.first_len, lengths[dropped.first])  # kept pairs are whole
    assert (kept.first_len + kept.second_len + 3 <= 16).all()
    assert torch.equal(kept.first_len[fits], lengths[kept.first[fits]])  # only long pairs are cut
    assert (kept.first_len[~fits] + kept.second_len[~fits] + 3 == 16).all()


def test_pair_sampling_rejects_bad_arguments():
    corpus = corpus_of(unique_paragraphs(3))
    with pytest.raises(ValueError, match="'clip'"):
        sample_sentence_pairs(corpus, generators().pairs, 64, long_pairs="clip")
    with pytest.raises(ValueError, match="max_len"):
        sample_sentence_pairs(corpus, generators().pairs, 4)
    with pytest.raises(ValueError, match="2 paragraphs"):
        sample_sentence_pairs(corpus_of([[[5], [6]]]), generators().pairs, 64)


# ---- masked LM ----------------------------------------------------------------------------------------------------
def _random_rows(num_rows, length=64, vocab=1000, special_share=0.2, seed=0):
    """Ordinary ids 5..vocab+4 with specials sprinkled in, plus the candidate mask that excludes them."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(5, vocab + 5, (num_rows, length), generator=g)
    specials = torch.rand(num_rows, length, generator=g) < special_share
    tokens = torch.where(specials, torch.randint(0, 5, (num_rows, length), generator=g), tokens)
    tokens[:, 0] = 5  # at least one candidate per row
    return tokens, ~torch.isin(tokens, torch.tensor(list(IDS)))


def _mask(tokens, candidates, seed=0, num_slots=None):
    replacement = IDS.replacement_ids(int(tokens.max()) + 1)
    return mask_tokens(tokens, candidates, generators(seed).masks, IDS.mask, replacement, IDS.pad, 0.15, num_slots)


def test_masking_picks_15_percent_of_ordinary_tokens_and_labels_only_them():
    tokens, candidates = _random_rows(500)
    out = _mask(tokens, candidates)
    expected = torch.round(0.15 * candidates.sum(1)).long().clamp_min(1)
    assert torch.equal(out.mask.sum(1), expected)
    rows, slots = out.mask.nonzero(as_tuple=True)
    chosen = torch.zeros_like(candidates)
    chosen[rows, out.positions[rows, slots]] = True  # (N, T) chosen positions
    assert torch.equal(chosen.sum(1), expected)  # distinct positions
    assert not (chosen & ~candidates).any()  # specials never chosen
    assert torch.equal(out.labels[out.mask], tokens.gather(1, out.positions)[out.mask])
    assert (out.labels[~out.mask] == IDS.pad).all() and (out.positions[~out.mask] == 0).all()
    assert torch.equal(out.tokens[~chosen], tokens[~chosen])  # nothing else changes
    assert (out.mask[:, :-1] >= out.mask[:, 1:]).all()  # padding slots last ...
    assert (out.positions.diff(dim=1)[out.mask[:, 1:]] > 0).all()  # ... real ones ascending


def test_at_least_one_prediction_even_for_tiny_sequences():
    tokens = torch.tensor([[2, 7, 3, 0, 0, 0], [2, 7, 3, 8, 3, 0], [2, 7, 8, 3, 9, 3]])
    candidates = tokens >= 5
    for seed in range(20):
        out = _mask(tokens, candidates, seed=seed)
        assert out.mask.sum(1).tolist() == [1, 1, 1]  # round(0.15 * 3) = 0 -> 1
        assert tokens.gather(1, out.positions)[out.mask].ge(5).all()


def test_rows_without_candidates_are_an_error():
    tokens = torch.tensor([[2, 1, 3, 0], [2, 7, 3, 0]])
    with pytest.raises(ValueError, match="1 rows have no maskable token"):
        _mask(tokens, tokens >= 5)


def test_too_few_slots_is_an_error():
    tokens, candidates = _random_rows(4)
    with pytest.raises(ValueError, match="num_slots=2"):
        _mask(tokens, candidates, num_slots=2)


def test_80_10_10_mask_random_keep_on_a_large_draw():
    tokens, candidates = _random_rows(20_000, vocab=1000)
    out = _mask(tokens, candidates)
    new = out.tokens.gather(1, out.positions)[out.mask]
    old = out.labels[out.mask]
    masked, kept = (new == IDS.mask).float().mean(), (new == old).float().mean()
    replaced = (new != IDS.mask) & (new != old)
    assert len(new) > 150_000
    assert abs(masked.item() - 0.8) < 0.01
    assert abs(replaced.float().mean().item() - 0.1) < 0.01
    assert abs(kept.item() - 0.1) < 0.01  # + 0.1 / 1000 from random draws of the same id
    random_ids = new[replaced]
    assert random_ids.ge(5).all()  # drawn from the non-special vocabulary ...
    assert random_ids.min().item() == 5 and random_ids.max().item() == 1004  # ... all of it


def test_chosen_positions_are_uniform_over_the_row():
    tokens = torch.arange(5, 45).repeat(20_000, 1)  # 40 candidates -> 6 picks each
    out = _mask(tokens, torch.ones_like(tokens, dtype=torch.bool))
    counts = torch.bincount(out.positions[out.mask], minlength=40).float()
    expected = 20_000 * 6 / 40
    assert ((counts - expected).abs() < 5 * expected**0.5).all()


# ---- whole epochs -------------------------------------------------------------------------------------------------
def _epoch(corpus, seed=0, epoch=0, rank=0, split="train", max_len=32, long_pairs="drop"):
    replacement = IDS.replacement_ids(int(corpus.token_ids.max()) + 1)
    return draw_examples(corpus, IDS, replacement, generators(seed, epoch, rank, split), max_len, long_pairs)


def test_drawn_examples_are_consistent_pairs_with_gathered_targets():
    paragraphs = unique_paragraphs(1500)
    corpus = corpus_of(paragraphs)
    sentence_of = {t: s for s in range(corpus.num_sentences) for t in corpus.sentence(s)}
    paragraph = _paragraph_of(corpus).tolist()
    ex = _epoch(corpus)
    assert isinstance(ex, PretrainingBatch) and ex.mlm_positions.shape[1] == num_prediction_slots(32, 0.15) == 4
    rows, slots = ex.mlm_mask.nonzero(as_tuple=True)
    original = ex.tokens.clone()
    original[rows, ex.mlm_positions[rows, slots]] = ex.mlm_labels[rows, slots]  # undo the masking
    columns = (original.tolist(), ex.segments.tolist(), ex.valid_lens.tolist(), ex.nsp_labels.tolist())
    for row, segments, valid, label in zip(*columns):
        sep = row.index(IDS.sep)
        first, second = row[1:sep], row[sep + 1 : valid - 1]
        assert row[0] == IDS.cls and row[valid - 1] == IDS.sep and set(row[valid:]) <= {IDS.pad}
        assert segments == [0] * (sep + 1) + [1] * (valid - sep - 1) + [0] * (32 - valid)
        a, b = sentence_of[first[0]], sentence_of[second[0]]
        assert first == corpus.sentence(a) and second == corpus.sentence(b)  # whole sentences (drop policy)
        assert (b == a + 1 and paragraph[a] == paragraph[b]) if label == 1 else paragraph[a] != paragraph[b]
    expected = torch.round(0.15 * (ex.valid_lens - 3)).clamp_min(1)
    assert torch.equal(ex.mlm_mask.sum(1), expected.long())
    assert abs(ex.nsp_labels.float().mean().item() - 0.5) < 0.04
    assert not torch.equal(original[:, 1], original[:, 1].sort().values)  # shuffled: ids grow with the corpus


def test_pairs_with_nothing_to_predict_are_left_out():
    corpus = corpus_of([[[IDS.unk, IDS.unk], [IDS.unk]], [[5, 6], [7]], [[8], [9, 10]]])
    for epoch in range(20):
        ex = _epoch(corpus, epoch=epoch, long_pairs="truncate")
        assert ex.mlm_mask.any(1).all()
        assert not ((ex.tokens == IDS.unk).sum(1) == ex.valid_lens - 3).any()


def test_same_seed_same_draw_other_epoch_split_or_seed_differs_other_rank_masks_differently():
    corpus = corpus_of(unique_paragraphs(200))
    reference = _epoch(corpus, seed=3, epoch=1, rank=0)
    again = _epoch(corpus, seed=3, epoch=1, rank=0)
    assert all(torch.equal(x, y) for x, y in zip(reference, again))
    for other in (dict(epoch=2), dict(split="valid"), dict(seed=4)):
        draw = _epoch(corpus, **{"seed": 3, "epoch": 1, "rank": 0, **other})
        same_shape = draw.tokens.shape == reference.tokens.shape
        assert not (same_shape and torch.equal(draw.segments, reference.segments)), other  # other pairs
        assert not (same_shape and torch.equal(draw.nsp_labels, reference.nsp_labels)), other
    other_rank = _epoch(corpus, seed=3, epoch=1, rank=1)
    for field in ("segments", "valid_lens", "nsp_labels"):  # same pairs, same order: equal epoch lengths on all ranks
        assert torch.equal(getattr(other_rank, field), getattr(reference, field))
    assert not torch.equal(other_rank.tokens, reference.tokens)  # own masks
    assert not torch.equal(other_rank.mlm_positions, reference.mlm_positions)


def test_epoch_generators_reject_negative_values():
    with pytest.raises(ValueError, match="rank=-1"):
        epoch_generators(0, "train", 0, -1)


def test_dataset_slices_whole_batches():
    ex = _epoch(corpus_of(unique_paragraphs(50)))
    dataset = TensorExamples(ex)
    batch = dataset.__getitems__([3, 0, 7])
    longest = int(ex.valid_lens[[3, 0, 7]].max())
    assert batch.tokens.shape[1] == longest < ex.tokens.shape[1]  # all-padding columns are cut
    assert torch.equal(batch.tokens, ex.tokens[[3, 0, 7], :longest]) and torch.equal(batch.mlm_mask, ex.mlm_mask[[3, 0, 7]])
    assert torch.equal(batch.segments, ex.segments[[3, 0, 7], :longest])
    assert torch.equal(dataset[5].mlm_labels, ex.mlm_labels[5]) and len(dataset) == len(ex.nsp_labels)


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


def test_datamodule_batches_and_net_kwargs(wiki_dir):
    dm = _module(wiki_dir)
    with pytest.raises(RuntimeError, match="setup"):
        dm.net_kwargs()
    dm.setup("fit")
    assert dm.net_kwargs() == {"vocab_size": dm.tokenizer.vocab_size, "pad_id": 0, "max_len": 24}
    assert dm.tokenizer.specials == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, PretrainingBatch)
    longest = int(batch.valid_lens.max())  # batches are cut to their longest pair (at most max_len = 24)
    assert batch.tokens.shape == batch.segments.shape == (16, longest) and longest <= 24 and batch.tokens.dtype == torch.long
    assert batch.valid_lens.shape == batch.nsp_labels.shape == (16,)
    assert batch.mlm_positions.shape == batch.mlm_labels.shape == batch.mlm_mask.shape == (16, 3)
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
    assert dm.net_kwargs()["vocab_size"] <= 80 and dm.tokenizer.config["kind"] == "wordpiece"
    assert len(dm.examples("train")) == 7


def _corpora_equal(a, b):
    return all(torch.equal(x, y) for split in a for x, y in zip(a[split], b[split]))


def test_cache_is_reused_and_keyed_by_config_and_file_stat(wiki_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _module(wiki_dir, cache_dir=cache)
    first.prepare_data()
    first.setup()
    assert len(list(cache.glob("*.pt"))) == 1
    reads = []
    real_read = bert_pretraining.read_wikitext2
    monkeypatch.setattr(bert_pretraining, "read_wikitext2", lambda *a: reads.append(a) or real_read(*a))
    second = _module(wiki_dir, cache_dir=cache)
    second.setup()
    assert reads == [] and second.tokenizer == first.tokenizer and _corpora_equal(second.corpora, first.corpora)
    _module(wiki_dir, tokenizer=functools.partial(word, min_freq=2), cache_dir=cache).setup()
    assert len(reads) == 3 and len(list(cache.glob("*.pt"))) == 2  # another tokenizer config
    with (wiki_dir / "wiki.test.tokens").open("a") as f:
        f.write(" w1 w2 . w3 \n")
    changed = _module(wiki_dir, cache_dir=cache)
    changed.setup()
    assert len(reads) == 6 and len(list(cache.glob("*.pt"))) == 3  # the files changed
    assert changed.corpora["test"].num_paragraphs == first.corpora["test"].num_paragraphs + 1


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
        assert restored.net_kwargs() == trained.net_kwargs()


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


def test_trainer_gets_a_new_draw_every_epoch_and_checkpoints_the_tokenizer(wiki_dir, tmp_path):
    dm, model = _module(wiki_dir), _Recorder()
    trainer = _trainer(tmp_path, reload_every=1)
    trainer.fit(model, datamodule=dm)
    assert [epoch for epoch, _ in model.seen] == [0, 1]
    for epoch, tokens in model.seen:
        assert torch.equal(tokens, dm.examples("train", epoch=epoch, rank=0).tokens[:16, : tokens.shape[1]])
    assert not torch.equal(model.seen[0][1], model.seen[1][1])
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert checkpoint["WikiText2DataModule"] == {"tokenizer": dm.tokenizer.to_str()}


def test_trainer_without_per_epoch_reload_is_rejected(wiki_dir, tmp_path):
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=1"):
        _trainer(tmp_path, reload_every=0).fit(_Recorder(), datamodule=_module(wiki_dir))


def test_ranks_mask_the_same_pairs_differently(wiki_dir):
    dm = _module(wiki_dir)
    dm.setup()
    rank0, rank1 = dm.examples("train", 0, 0), dm.examples("train", 0, 1)
    assert torch.equal(rank0.segments, rank1.segments) and not torch.equal(rank0.mlm_positions, rank1.mlm_positions)
    assert all(torch.equal(x, y) for x, y in zip(dm.examples("train", 2, 1), dm.examples("train", 2, 1)))


def test_a_restored_training_loader_resumes_at_the_next_batch_of_the_epoch(wiki_dir):
    def loader_at(dm, epoch, rank):
        dm.trainer = SimpleNamespace(reload_dataloaders_every_n_epochs=1, current_epoch=epoch, global_rank=rank)
        return dm.train_dataloader()

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
