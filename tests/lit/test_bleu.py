"""Corpus BLEU pooled over batches equals sacrebleu's; d2l's sentence BLEU reproduces the book's numbers."""
from __future__ import annotations

import pytest
import sacrebleu

from attnlab.lit.bleu import CorpusBLEU, d2l_bleu

HYPOTHESES = ["il est calme .", "je suis chez moi .", "va !", "j'ai perdu mon chat .", "nous sommes", ""]
REFERENCES = ["il est calme .", "je suis à la maison .", "va !", "j'ai perdu .", "nous sommes partis .", "bonjour !"]


def test_corpus_bleu_over_chunks_equals_sacrebleu_on_the_whole_corpus():
    metric = CorpusBLEU()
    for start in (0, 2, 5):
        end = {0: 2, 2: 5, 5: 6}[start]
        metric.update(HYPOTHESES[start:end], REFERENCES[start:end])
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-4)
    # not the mean of per-chunk scores
    chunks = [sacrebleu.corpus_bleu(HYPOTHESES[a:b], [REFERENCES[a:b]]).score for a, b in ((0, 2), (2, 5), (5, 6))]
    assert expected != pytest.approx(sum(chunks) / 3, abs=1e-2)
    metric.reset()
    metric.update(REFERENCES, REFERENCES)
    assert float(metric.compute()) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        metric.update(["a", "b"], ["a"])


def test_d2l_sentence_bleu_matches_the_book():
    # d2l 10.7.6 prints these for its four sentences
    assert d2l_bleu("va !", "va !", k=2) == pytest.approx(1.0)
    assert d2l_bleu("j'ai perdu .", "j'ai perdu .", k=2) == pytest.approx(1.0)
    assert d2l_bleu("il est malade .", "il est calme .", k=2) == pytest.approx(0.658, abs=1e-3)
    assert d2l_bleu("je suis chez moi .", "je suis chez moi .", k=2) == pytest.approx(1.0)
    # brevity penalty exp(1 - 4/2), p1 = 1, p2 = 1
    assert d2l_bleu("il est", "il est calme .", k=2) == pytest.approx(0.36787944, abs=1e-6)
    # clipped matches: "va va va" against "va !" has p1 = 1/3
    assert d2l_bleu("va va va", "va !", k=1) == pytest.approx((1 / 3) ** 0.5)
    assert d2l_bleu("", "va !") == 0.0
