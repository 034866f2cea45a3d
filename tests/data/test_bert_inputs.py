"""BERT's input format: the flat encoded corpus, [CLS] A [SEP] B [SEP] assembly, longest-first truncation."""
import torch

from attnlab.data.bert_inputs import SentencePairs, assemble_pairs, truncate_longest_first
from bert_support import IDS, corpus_of


def test_encoded_corpus_flattens_sentences_and_paragraphs():
    corpus = corpus_of([[[5, 6, 7], [8]], [[9, 10], [], [11]]])
    assert corpus.sentences.ids.tolist() == [5, 6, 7, 8, 9, 10, 11]
    assert corpus.sentences.offsets.tolist() == [0, 3, 4, 6, 6, 7]
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
