"""WikiText-2 pretraining batches: sentence-pair labels stay with their pairs through shuffling, caching and length
bucketing; bucketed batches are complete, seeded, shard across ranks and resume mid-epoch; an overfitting trainer
gets the same batches every epoch; sentence-order prediction as the other pair objective."""
import functools
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from attnlab.data.bert_pretraining import WikiText2DataModule
from attnlab.data.pretraining_examples import PretrainingBatch
from attnlab.data.tokenizers import word

NUM_PARAGRAPHS = 60


def write_unique_corpus(directory, seed: int = 0):
    """Paragraphs of 2-5 sentences whose words occur nowhere else (``p3s1w2``), so any word names its sentence."""
    rng = torch.Generator().manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", NUM_PARAGRAPHS), ("valid", 12), ("test", 12)):
        lines = [" = heading = \n"]
        for p in range(count):
            sentences = []
            for s in range(int(torch.randint(2, 6, (1,), generator=rng))):
                length = int(torch.randint(1, 12, (1,), generator=rng))
                sentences.append(" ".join(f"{split[:2]}p{p}s{s}w{w}" for w in range(length)))
            lines.append(" " + " . ".join(sentences) + " \n")
        (directory / f"wiki.{split}.tokens").write_text("".join(lines))
    return directory


def module(directory, **kwargs) -> WikiText2DataModule:
    options = {"batch_size": 8, "max_len": 24, "long_pairs": "truncate", "seed": 3} | kwargs
    dm = WikiText2DataModule(functools.partial(word, min_freq=1), directory, **options)
    dm.setup("fit")
    return dm


def sentence_ids(dm: WikiText2DataModule) -> dict[int, tuple[int, int]]:
    """Token id -> (paragraph, sentence) of the training split (ids of the other splits are [UNK])."""
    vocabulary = {}
    for index in range(dm.tokenizer.vocab_size):
        token = dm.tokenizer.id_to_token(index)
        if token.startswith("trp"):
            paragraph, sentence = token[3:].split("w")[0].split("s")
            vocabulary[index] = (int(paragraph), int(sentence))
    return vocabulary


def unmasked(batch: PretrainingBatch) -> torch.Tensor:
    tokens = batch.tokens.clone()
    rows, slots = batch.mlm_mask.nonzero(as_tuple=True)
    tokens[rows, batch.mlm_positions[rows, slots]] = batch.mlm_labels[rows, slots]
    return tokens


def pair_labels(dm: WikiText2DataModule, batch: PretrainingBatch) -> list[tuple[int, int]]:
    """(label the batch gives, label the pair's text implies) per row: 1 when B is the sentence after A."""
    where = sentence_ids(dm)
    tokens, result = unmasked(batch), []
    for row, label in zip(tokens.tolist(), batch.nsp_labels.tolist()):
        first_sep = row.index(dm.special_ids.sep)
        (pa, sa), (pb, sb) = where[row[1]], where[row[first_sep + 1]]
        result.append((label, int(pa == pb and sb == sa + 1)))
    return result


@pytest.fixture
def corpus(tmp_path):
    return write_unique_corpus(tmp_path / "wikitext-2")


def loader_at(dm, epoch=0, rank=0, world_size=1, overfit_batches=0):
    """The training loader of ``epoch`` as Lightning makes it: ``set_epoch`` on its batch sampler."""
    dm.trainer = SimpleNamespace(overfit_batches=overfit_batches)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(epoch)
    with mock.patch("attnlab.data.samplers.rank_world", return_value=(rank, world_size)):
        len(loader)  # draws this rank's examples
    return loader


@pytest.mark.parametrize("bucket_size", [None, 64])
def test_pair_labels_stay_with_their_pairs_through_shuffling_caching_and_bucketing(corpus, tmp_path, bucket_size):
    module(corpus, cache_dir=tmp_path / "cache")  # writes the cache
    dm = module(corpus, cache_dir=tmp_path / "cache", bucket_size=bucket_size)  # reads it
    assert list((tmp_path / "cache").iterdir())
    checked = []
    for epoch in (0, 1):
        for batch in loader_at(dm, epoch):
            checked += pair_labels(dm, batch)
    assert all(given == implied for given, implied in checked)
    assert 0.35 < sum(given for given, _ in checked) / len(checked) < 0.65  # both labels occur, half and half
    # the check has teeth: the same labels one row out of place disagree with the texts
    rolled = [(a, b) for (a, _), (_, b) in zip(checked, checked[1:])]
    assert sum(a != b for a, b in rolled) > len(rolled) / 4


def test_sentence_order_negatives_are_the_true_pair_swapped(corpus):
    dm = module(corpus, objective="sop")
    where = sentence_ids(dm)
    for batch in loader_at(dm):
        for row, label in zip(unmasked(batch).tolist(), batch.nsp_labels.tolist()):
            (pa, sa), (pb, sb) = where[row[1]], where[row[row.index(dm.special_ids.sep) + 1]]
            assert pa == pb and sb - sa == (1 if label else -1)
    with pytest.raises(ValueError, match="objective must be one of \\('nsp', 'sop'\\), got 'mlm'"):
        module(corpus, objective="mlm")


def test_bucketed_batches_hold_every_pair_once_with_less_padding(corpus):
    def epoch(dm):
        batches = list(loader_at(dm, epoch=2))
        pairs = sorted(tuple(t for t in row if t != dm.special_ids.pad) for b in batches for row in unmasked(b).tolist())
        return sum(batch.tokens.numel() for batch in batches), pairs

    padded_cells, padded_pairs = epoch(module(corpus))
    bucketed_cells, bucketed_pairs = epoch(module(corpus, bucket_size=64))
    assert bucketed_pairs == padded_pairs  # the same pairs, each once ...
    assert bucketed_cells < 0.85 * padded_cells  # ... in fewer padded cells


def test_bucketed_batches_are_seeded_by_epoch_and_shard_across_ranks(corpus):
    dm = module(corpus, bucket_size=64)
    first = [batch.tokens for batch in loader_at(dm, epoch=1)]
    assert all(torch.equal(a, b) for a, b in zip(first, (batch.tokens for batch in loader_at(dm, epoch=1))))
    assert not torch.equal(first[0], next(iter(loader_at(dm, epoch=2))).tokens)
    examples = dm.examples("train", 1, 0)
    ranks = [dm.batches(examples, 1, rank, world_size=2) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])  # equal step counts, or DDP hangs
    assert {i for batch in ranks[0] + ranks[1] for i in batch} == set(range(len(examples.valid_lens)))


def test_a_bucketed_loader_resumes_mid_epoch_at_the_next_batch(corpus):
    dm = module(corpus, bucket_size=64)
    full = list(loader_at(dm, epoch=1))
    loader = loader_at(module(corpus, bucket_size=64), epoch=1)
    loader.load_state_dict({"batches_served": 3})
    rest = list(loader)
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a.tokens, b.tokens) and torch.equal(a.mlm_labels, b.mlm_labels) for a, b in zip(rest, full[3:]))


def test_an_overfitting_trainer_gets_the_same_batches_every_epoch(corpus):
    dm = module(corpus, bucket_size=64)
    epochs = [list(loader_at(dm, epoch=epoch, overfit_batches=3)) for epoch in (0, 1, 5)]
    for batches in epochs[1:]:
        assert all(torch.equal(x, y) for a, b in zip(epochs[0], batches) for x, y in zip(a, b))
    assert not torch.equal(epochs[0][0].tokens, next(iter(loader_at(dm, epoch=1))).tokens)  # without: new draws


def test_bucket_size_below_the_batch_size_is_rejected(corpus):
    with pytest.raises(ValueError, match="bucket_size must be None or >= batch_size=8, got 4"):
        module(corpus, bucket_size=4)
