"""WikiText-2 (Merity et al., 2016) read as d2l 15.9 does for BERT pretraining, or one's own text in its splits."""
from __future__ import annotations

from pathlib import Path

from attnlab.data.corpora import split_indices
from attnlab.data.download import ensure_file
from attnlab.data.text_io import empty_file_error, read_documents, read_paragraphs

WIKITEXT2_URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
WIKITEXT2_SPLITS = ("train", "valid", "test")
HELD_OUT_FRACTION = 0.05  # of one's own text's paragraphs, for each of valid and test (at least 2 paragraphs each)
# sha256 of the zip's members; their sha1s match GluonNLP's published ones for this zip
WIKITEXT2_SHA256 = {
    "train": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
    "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
}


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


def read_wikitext2(data_dir: str | Path, split: str) -> list[list[str]]:
    """Paragraphs (lists of sentence strings) of one WikiText-2 split, at least two."""
    path = wikitext2_file(data_dir, split)
    return _at_least(2, read_paragraphs(path), path, "one paragraph a line, its sentences separated by ' . ' as in "
                     "WikiText's wiki.*.tokens: next-sentence prediction draws its random next sentences from another "
                     "paragraph")


def split_documents(path: str | Path, seed: int) -> dict[str, list[list[str]]]:
    """Paragraphs of one's own raw text (a file or a directory) in WikiText-2's splits: valid and test each take a
    seeded :data:`HELD_OUT_FRACTION` (at least two), train the rest."""
    paragraphs = read_documents(path)
    held_out = max(2, round(HELD_OUT_FRACTION * len(paragraphs)))
    _at_least(3 * held_out, paragraphs, path, f"train, valid and test take {held_out} or more each; a paragraph is a "
              "block of non-blank lines, its sentences ending at . ! or ?")
    fraction = held_out / len(paragraphs)
    index = split_indices(len(paragraphs), {"valid": fraction, "test": fraction}, seed)
    return {split: [paragraphs[i] for i in index[split]] for split in WIKITEXT2_SPLITS}


def _at_least(count: int, paragraphs: list[list[str]], path: str | Path, why: str) -> list[list[str]]:
    if len(paragraphs) < count:
        raise empty_file_error(path, f"at least {count} ({why})",
                               what=f"holds {len(paragraphs)} paragraphs of two or more sentences")
    return paragraphs
