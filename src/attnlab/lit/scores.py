"""Translation scores a reviewer can recompute: sacrebleu's corpus BLEU, chrF and TER, and d2l's sentence BLEU.

``corpus_scores`` scores detokenized hypotheses against raw references with sacrebleu's default settings, the
ones its command line uses (``sacrebleu ref.txt < hyp.txt``; ``-m chrf``, ``-m ter``): BLEU with 13a
tokenisation and exp smoothing (Papineni et al., 2002; Post, 2018), chrF2 over character 6-grams (Popović,
2015) and TER (Snover et al., 2006). Each score comes with sacrebleu's signature, which names those settings
and the version. ``write_translations`` leaves the inputs of a score beside it, so that the score can be
recomputed from the files alone.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from sacrebleu.metrics import BLEU, CHRF, TER

TRANSLATIONS_DIR = "translations"  # in the run dir: <split>.src/.hyp/.ref and <split>.scores.json


class MetricScore(NamedTuple):
    score: float  # sacrebleu's score, 0..100 (TER: edits per 100 reference words, lower is better)
    signature: str  # sacrebleu's signature of the settings, e.g. nrefs:1|case:mixed|eff:no|tok:13a|...
    verbose: str  # sacrebleu's one-line report, e.g. "BLEU = 23.45 56.1/30.2/... (BP = ...)"


def sacrebleu_metrics() -> dict[str, BLEU | CHRF | TER]:
    # force=True only silences BLEU's "tokenized period" warning (d2l's text keeps " ." on purpose); it is not
    # part of the signature and does not change the score
    return {"bleu": BLEU(force=True), "chrf": CHRF(), "ter": TER()}


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, MetricScore]:
    """Corpus BLEU, chrF and TER of ``hypotheses`` against one reference each, with sacrebleu's defaults."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    hypotheses, references = list(hypotheses), list(references)
    scores = {}
    for name, metric in sacrebleu_metrics().items():
        result = metric.corpus_score(hypotheses, [references])
        scores[name] = MetricScore(float(result.score), str(metric.get_signature()), result.format(width=2))
    return scores


def format_scores(scores: dict[str, MetricScore]) -> str:
    """One line per metric: sacrebleu's report and its signature."""
    return "\n".join(f"{score.verbose}  [{score.signature}]" for score in scores.values())


def write_translations(
    directory: str | Path, split: str, sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str],
    scores: dict[str, MetricScore],
) -> Path:
    """Write ``<split>.src``, ``.hyp``, ``.ref`` (one sentence a line) and ``<split>.scores.json`` in
    ``directory``; returns the scores file. ``sacrebleu <split>.ref < <split>.hyp`` prints the BLEU in it."""
    if not len(sources) == len(hypotheses) == len(references):
        raise ValueError(f"{len(sources)} sources, {len(hypotheses)} hypotheses, {len(references)} references")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for suffix, lines in (("src", sources), ("hyp", hypotheses), ("ref", references)):
        bad = next((line for line in lines if "\n" in line or "\r" in line), None)
        if bad is not None:
            raise ValueError(f"a {split}.{suffix} sentence holds a line break, which would shift the file: {bad!r}")
        (directory / f"{split}.{suffix}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    report = {"sentences": len(hypotheses), **{name: score._asdict() for name, score in scores.items()}}
    path = directory / f"{split}.scores.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


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
