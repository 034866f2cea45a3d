"""BERT pretraining examples: NSP pairs, masked-LM draws, per-epoch/rank reproducibility."""
import pytest
import torch

from attnlab.data.examples import TensorExamples
from attnlab.data.pretraining_examples import (
    PretrainingBatch,
    draw_examples,
    epoch_generators,
    mask_tokens,
    num_prediction_slots,
    sample_sentence_pairs,
)
from bert_support import IDS, corpus_of, generators, paragraph_of, unique_paragraphs


# ---- sentence pairs -----------------------------------------------------------------------------------------------
def test_each_successor_pair_once_true_next_or_from_another_paragraph_half_and_half():
    corpus = corpus_of(unique_paragraphs(2000))
    pairs = sample_sentence_pairs(corpus, generators().pairs, max_len=64, long_pairs="truncate")
    paragraph = paragraph_of(corpus)
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


def test_long_pairs_are_dropped_or_truncated():
    corpus = corpus_of(unique_paragraphs(300, max_words=12))
    lengths = corpus.sentence_lengths()
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
    replacement = IDS.replacement_ids(int(corpus.sentences.ids.max()) + 1)
    return draw_examples(corpus, IDS, replacement, generators(seed, epoch, rank, split), max_len, long_pairs)


def test_drawn_examples_are_consistent_pairs_with_gathered_targets():
    paragraphs = unique_paragraphs(1500)
    corpus = corpus_of(paragraphs)
    sentence_of = {t: s for s in range(corpus.num_sentences) for t in corpus.sentence(s)}
    paragraph = paragraph_of(corpus).tolist()
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
