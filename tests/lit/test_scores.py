"""Translation scores: sacrebleu's corpus BLEU, chrF and TER with their signatures, the files that reproduce them,
and d2l's sentence BLEU reproducing the book's numbers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from attnlab.lit.scores import corpus_scores, d2l_bleu, format_scores, write_translations

SOURCES = ["he's calm .", "i'm home .", "go .", "i lost my cat .", "we are", "hello !"]
HYPOTHESES = ["il est calme .", "je suis chez moi .", "va !", "j'ai perdu mon chat .", "nous sommes", ""]
REFERENCES = ["il est calme .", "je suis à la maison .", "va !", "j'ai perdu .", "nous sommes partis .", "bonjour !"]


def test_corpus_scores_are_sacrebleus_defaults_with_signatures():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert list(scores) == ["bleu", "chrf", "ter"]
    assert scores["bleu"].score == sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert scores["chrf"].score == sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score
    assert scores["ter"].score == sacrebleu.corpus_ter(HYPOTHESES, [REFERENCES]).score
    version = sacrebleu.__version__
    assert scores["bleu"].signature == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{version}"
    assert scores["chrf"].signature == f"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{version}"
    assert scores["ter"].signature.startswith("nrefs:1|case:lc|tok:tercom|")
    assert scores["bleu"].verbose.startswith("BLEU = ") and scores["chrf"].verbose.startswith("chrF2 = ")
    assert corpus_scores(REFERENCES, REFERENCES)["bleu"].score == pytest.approx(100.0)
    assert format_scores(scores).splitlines()[0] == f"{scores['bleu'].verbose}  [{scores['bleu'].signature}]"
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        corpus_scores(["a", "b"], ["a"])


def test_written_files_reproduce_the_scores_with_the_sacrebleu_command(tmp_path: Path):
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    report = write_translations(tmp_path, "test", SOURCES, HYPOTHESES, REFERENCES, scores)
    assert report == tmp_path / "test.scores.json"
    for suffix, lines in (("src", SOURCES), ("hyp", HYPOTHESES), ("ref", REFERENCES)):
        assert (tmp_path / f"test.{suffix}").read_text(encoding="utf-8") == "".join(f"{line}\n" for line in lines)
    saved = json.loads(report.read_text(encoding="utf-8"))
    assert saved["sentences"] == 6 and saved["bleu"] == scores["bleu"]._asdict()
    sacrebleu_cli = str(Path(sys.executable).parent / "sacrebleu")
    for metric in ("bleu", "chrf", "ter"):  # the command line with its defaults, one more decimal than it prints
        proc = subprocess.run([sacrebleu_cli, str(tmp_path / "test.ref"), "-m", metric, "-w", "4"],
                              stdin=open(tmp_path / "test.hyp"), capture_output=True, text=True, check=True)
        printed = json.loads(proc.stdout)
        assert printed["score"] == round(scores[metric].score, 4) and printed["signature"] == scores[metric].signature
    with pytest.raises(ValueError, match="line break"):
        write_translations(tmp_path, "val", ["a\nb"], ["x"], ["y"], scores)
    with pytest.raises(ValueError, match="1 sources, 2 hypotheses, 1 references"):
        write_translations(tmp_path, "val", ["a"], ["x", "z"], ["y"], scores)


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
