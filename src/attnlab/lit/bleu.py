"""BLEU (Papineni et al., 2002): sacrebleu's corpus BLEU as a distributed metric, and d2l's sentence BLEU.

Corpus BLEU is not an average of sentence scores: it pools n-gram matches over the corpus. Its sufficient
statistics (hypothesis and reference lengths, matches and totals per n-gram order) add up across batches and
devices, so the metric sums them and lets sacrebleu turn the sum into the score; the result equals
``sacrebleu.corpus_bleu`` over the whole corpus.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from sacrebleu.metrics import BLEU
from torchmetrics import Metric


class CorpusBLEU(Metric):
    """sacrebleu corpus BLEU (13a tokenisation, exp smoothing) over detokenized hypotheses and references."""

    full_state_update = False

    def __init__(self, max_ngram_order: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.bleu = BLEU(max_ngram_order=max_ngram_order, force=True)  # force: d2l text keeps " ." on purpose
        self.max_ngram_order = max_ngram_order
        # [hypothesis length, reference length, matches per order..., totals per order...]
        self.add_state("stats", torch.zeros(2 + 2 * max_ngram_order, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
        if not hypotheses:
            return
        score = self.bleu.corpus_score(list(hypotheses), [list(references)])
        stats = [score.sys_len, score.ref_len, *score.counts, *score.totals]
        self.stats += torch.tensor(stats, dtype=torch.float64, device=self.stats.device)

    def compute(self) -> torch.Tensor:
        stats = [int(x) for x in self.stats.tolist()]
        order = self.max_ngram_order
        score = BLEU.compute_bleu(
            correct=stats[2 : 2 + order], total=stats[2 + order :], sys_len=stats[0], ref_len=stats[1],
            smooth_method=self.bleu.smooth_method, smooth_value=self.bleu.smooth_value,
            effective_order=self.bleu.effective_order, max_ngram_order=order,
        )
        return torch.tensor(score.score, dtype=torch.float32)


def d2l_bleu(prediction: str, reference: str, k: int = 2) -> float:
    """d2l's sentence BLEU (d2l 10.7.6): ``exp(min(0, 1 - len_ref / len_pred)) * prod_{n<=k} p_n ^ (1 / 2^n)``,
    ``p_n`` the clipped n-gram precision, over whitespace tokens; n runs up to ``min(k, len_pred)``."""
    pred, ref = prediction.split(), reference.split()
    if not pred:
        return 0.0
    score = math.exp(min(0.0, 1.0 - len(ref) / len(pred)))
    for n in range(1, min(k, len(pred)) + 1):
        pred_ngrams = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
        ref_ngrams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        matches = sum(min(count, ref_ngrams[ngram]) for ngram, count in pred_ngrams.items())
        score *= (matches / (len(pred) - n + 1)) ** (0.5**n)
    return score
