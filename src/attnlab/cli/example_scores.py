"""Per-example statistics a run's evaluation left on disk, from which its corpus score can be recomputed on any
resample of the examples: what makes a paired bootstrap over the test set possible.

- Translation (``<split>/bleu``, ``chrf``, ``ter``): ``translations/<split>.{hyp,ref}``, scored with the settings of
  :mod:`attnlab.lit.scores`; the statistics are sacrebleu's per-sentence sufficient statistics, the ones its own
  paired tests resample.
- Classification (``<split>/acc``): ``predictions/<split>.tsv`` (:mod:`attnlab.lit.predictions`): a hit (0/1) and a
  count (1) per example.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from attnlab.lit.predictions import PREDICTIONS_DIR, read_predictions
from attnlab.lit.scores import TRANSLATIONS_DIR, sacrebleu_metrics


class ExampleStats(NamedTuple):
    stats: np.ndarray  # (N, k): what each example adds to the corpus statistics
    references: str  # fingerprint of the examples' references: runs are paired only on the same test set
    source: Path  # the file read


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _fingerprint(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def read_example_stats(run_dir: Path, metric: str) -> ExampleStats | None:
    """The per-example statistics behind ``metric`` (``test/bleu``, ``test/acc``, ...), or None when the run left
    no such file or the metric has no per-example form."""
    split, _, name = metric.partition("/")
    hyp, ref = (run_dir / TRANSLATIONS_DIR / f"{split}.{side}" for side in ("hyp", "ref"))
    if name in sacrebleu_metrics() and hyp.is_file() and ref.is_file():
        hypotheses, references = _lines(hyp), _lines(ref)
        if len(hypotheses) != len(references):
            raise ValueError(f"{hyp} has {len(hypotheses)} lines but {ref} has {len(references)}")
        stats = sacrebleu_metrics()[name]._extract_corpus_statistics(hypotheses, [references])
        return ExampleStats(np.asarray(stats, dtype=np.float64), _fingerprint(references), hyp)
    predictions = run_dir / PREDICTIONS_DIR / f"{split}.tsv"
    if name == "acc" and predictions.is_file():
        labels, predicted = read_predictions(predictions)
        hits = np.asarray([[float(a == b), 1.0] for a, b in zip(labels, predicted)])
        return ExampleStats(hits, _fingerprint(labels), predictions)
    return None


def score_from_sums(metric: str):
    """``(R, k)`` summed statistics -> ``(R,)`` scores, for the metric :func:`read_example_stats` read."""
    name = metric.partition("/")[2]
    if name in sacrebleu_metrics():
        scorer = sacrebleu_metrics()[name]
        return lambda sums: np.array([scorer._compute_score_from_stats(list(row)).score for row in sums])
    if name == "acc":
        return lambda sums: sums[:, 0] / sums[:, 1]
    raise ValueError(f"metric {metric!r} has no per-example statistics; known: <split>/bleu, chrf, ter, acc")
