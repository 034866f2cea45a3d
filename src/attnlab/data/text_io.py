"""Reading the text files of every corpus: the one place where attnlab's DataModules open a data file.

Files are UTF-8, plain or gzip-compressed (``.gz``), and lines end at ``"\\n"`` only (a ``"\\r"`` before it is
stripped; a lone ``"\\r"`` is text), so a line number in an error message is the one an editor shows.
Formats: tab-separated pairs, line-aligned files, labelled TSVs with a header, and paragraph-per-line text
(WikiText).
"""
from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import torch
from torch import Tensor

SENTENCE_SEPARATOR = " . "  # WikiText's tokenized full stop between the sentences of a paragraph


class LabelledTexts(NamedTuple):
    """One split as read from its file: one list of texts per text column (A, or A and B) and the labels."""

    columns: list[list[str]]  # 1 or 2 lists of N texts
    labels: Tensor  # (N,) class index


def open_text(path: str | os.PathLike, how_to_get: str | None = None) -> IO[str]:
    """``path`` opened for reading text; a missing file is a ``FileNotFoundError`` naming it (and how to get it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}" + (f". How to get it: {how_to_get}" if how_to_get else ""))
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def read_lines(path: str | os.PathLike) -> list[str]:
    """Every line of a file without its line end (iteration splits on "\\n" only, unlike ``str.splitlines``)."""
    with open_text(path) as f:
        return [line.rstrip("\r\n") for line in f]


def read_tab_pairs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``source TAB target [TAB attribution]`` lines (the manythings.org / Tatoeba format); blank lines skipped."""
    sources, targets = [], []
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {line[:80]!r}")
            sources.append(fields[0])
            targets.append(fields[1])
    return sources, targets


def read_aligned(src_path: str | os.PathLike, tgt_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Two line-aligned files (plain or .gz): line i of one translates line i of the other."""
    sources, targets = read_lines(src_path), read_lines(tgt_path)
    if len(sources) != len(targets):
        raise ValueError(
            f"parallel files are not line-aligned: {src_path} has {len(sources)} lines, "
            f"{tgt_path} has {len(targets)} lines"
        )
    return sources, targets


def read_labelled_tsv(
    path: str | os.PathLike,
    text_columns: Sequence[str],
    label_column: str,
    labels: Mapping[str, int],
    how_to_get: str = "",
) -> LabelledTexts:
    """Rows of a TSV with a header (plain or ``.gz``), split on tabs only: quote characters are ordinary text.

    ``labels`` maps each label as written in the file to its class index; any other label is an error.
    """
    with open_text(path, how_to_get or "see the data config") as lines:
        header = next(lines, "").rstrip("\r\n").split("\t")
        wanted = [*text_columns, label_column]
        absent = [name for name in wanted if name not in header]
        if absent:
            raise ValueError(f"{path}: header {header} lacks the columns {absent}; expected {wanted}")
        where = [header.index(name) for name in wanted]
        columns: list[list[str]] = [[] for _ in text_columns]
        classes = []
        for number, line in enumerate(lines, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path}:{number}: expected {len(header)} tab-separated fields, got {len(fields)}")
            *texts, label = (fields[index] for index in where)
            if label not in labels:
                raise ValueError(f"{path}:{number}: label {label!r} is not one of {list(labels)}")
            if not all(text.strip() for text in texts):
                raise ValueError(f"{path}:{number}: empty text in {line.rstrip()!r}")
            for column, text in zip(columns, texts):
                column.append(text)
            classes.append(labels[label])
    if not classes:
        raise ValueError(f"{path} holds no examples")
    return LabelledTexts(columns, torch.tensor(classes))


def paragraphs_from_lines(lines: Iterable[str]) -> list[list[str]]:
    """One lowercased paragraph per line, split into sentences on `` . ``; paragraphs of < 2 sentences are dropped.

    As in d2l 15.9 the last sentence keeps its final `` .``. d2l tests the raw line, which keeps a one-sentence
    line ending in `` . `` as a "paragraph" that yields no sentence pair; we test the sentences themselves.
    """
    paragraphs = (line.strip().lower().split(SENTENCE_SEPARATOR) for line in lines)
    return [sentences for sentences in paragraphs if len(sentences) >= 2]


def read_paragraphs(path: str | os.PathLike) -> list[list[str]]:
    """Paragraphs (lists of sentence strings) of a paragraph-per-line file such as WikiText's ``wiki.*.tokens``."""
    with open_text(path) as lines:
        return paragraphs_from_lines(lines)
