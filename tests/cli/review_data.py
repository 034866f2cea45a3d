"""Tiny made-up text for the BERT runs: WikiText-2-format paragraphs and SST-2-format labelled reviews. Plain
Python (no attnlab), so that tests/fixtures/make_checkpoints.py can write the same data with an older attnlab."""
from __future__ import annotations

import gzip
import random

WORDS = "the a film movie story actor plot scene music long short old new".split()
POSITIVE, NEGATIVE = ["good", "great", "funny"], ["bad", "dull", "boring"]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))


def write_data(root, seed=0):
    """``wikitext-2/`` for pretraining and ``sst2/`` with a word that gives the label away."""
    rng = random.Random(seed)
    (root / "wikitext-2").mkdir(parents=True)
    for split, paragraphs in (("train", 40), ("valid", 6), ("test", 6)):
        lines = [" " + " . ".join(sentence(rng) for _ in range(3)) + " . \n" for _ in range(paragraphs)]
        (root / "wikitext-2" / f"wiki.{split}.tokens").write_text("".join(lines))
    (root / "sst2").mkdir()
    for split, size in (("train", 120), ("dev", 24)):
        rows = ["sentence\tlabel"]
        for i in range(size):
            label = i % 2
            rows.append(f"{sentence(rng)} {rng.choice(POSITIVE if label else NEGATIVE)} {sentence(rng)} \t{label}")
        with gzip.open(root / "sst2" / f"{split}.tsv.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
