"""WikiText-2 (Merity et al., 2016) prepared as d2l 15.9 does for BERT pretraining.

The token files hold one paragraph (or heading, or blank) per line, already word-tokenized. A paragraph is
lowercased and split into sentences on `` . ``; lines with fewer than two sentences (headings, blanks,
one-sentence paragraphs) are dropped, as next-sentence prediction needs a successor within the paragraph.
Like d2l, the last sentence keeps its final `` .``.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from attnlab.data.download import ensure_file

WIKITEXT2_URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
WIKITEXT2_SPLITS = ("train", "valid", "test")
# sha256 of the zip's members; their sha1s match GluonNLP's published ones for this zip
WIKITEXT2_SHA256 = {
    "train": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
    "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
}
SENTENCE_SEPARATOR = " . "


def wikitext2_file(data_dir: str | Path, split: str) -> Path:
    """Path of ``wiki.<split>.tokens`` under ``data_dir``, fetched from d2l's zip when absent."""
    if split not in WIKITEXT2_SPLITS:
        raise ValueError(f"split must be one of {WIKITEXT2_SPLITS}, got {split!r}")
    name = f"wiki.{split}.tokens"
    return ensure_file(
        Path(data_dir) / name,
        url=WIKITEXT2_URL,
        sha256=WIKITEXT2_SHA256[split],
        member=f"wikitext-2/{name}",
        how_to_get=(
            f"download {WIKITEXT2_URL} and unzip it so that {Path(data_dir) / name} exists "
            "(the zip holds wikitext-2/wiki.*.tokens), or set DATA_DIR to a directory holding wikitext-2/"
        ),
    )


def paragraphs_from_lines(lines: Iterable[str]) -> list[list[str]]:
    """One lowercased paragraph per line, split into sentences; paragraphs of < 2 sentences are dropped.

    d2l tests the raw line, which keeps a one-sentence line ending in `` . `` as a "paragraph" that yields
    no sentence pair; we test the sentences themselves.
    """
    paragraphs = (line.strip().lower().split(SENTENCE_SEPARATOR) for line in lines)
    return [sentences for sentences in paragraphs if len(sentences) >= 2]


def read_wikitext2(data_dir: str | Path, split: str) -> list[list[str]]:
    """Paragraphs (lists of sentence strings) of one WikiText-2 split."""
    with wikitext2_file(data_dir, split).open(encoding="utf-8") as lines:
        return paragraphs_from_lines(lines)
