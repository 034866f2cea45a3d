"""The one place where attnlab's DataModules open a data file: UTF-8 text, plain or gzip-compressed (``.gz``).

Lines end at ``"\\n"`` only (a ``"\\r"`` before it is stripped), so a line number in an error is the one an
editor shows. Every reader names the file by its full path when it is empty, lacks what the format needs, or holds
bytes that are not UTF-8 text (or a NUL byte: binary data), then with the line and byte offset.
"""
from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from attnlab import MissingFileError

SENTENCE_SEPARATOR = " . "  # WikiText's tokenized full stop between the sentences of a paragraph
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # raw text: a sentence ends at . ! or ? followed by white space
ENCODING = "UTF-8"  # of every text file attnlab reads (gzip-compressed when its name ends in .gz)


class LabelledTexts(NamedTuple):
    """One split as read from its file: one list of texts per text column (A, or A and B) and the labels."""

    columns: list[list[str]]  # 1 or 2 lists of N texts
    labels: Tensor  # (N,) class index
    classes: list[str]  # the label, as written in the file, of each class index

    def take(self, indices: Sequence[int]) -> LabelledTexts:
        """The examples at ``indices``, in that order."""
        columns = [[column[i] for i in indices] for column in self.columns]
        return LabelledTexts(columns, self.labels[indices], self.classes)


def empty_file_error(path: str | os.PathLike, needs: str, what: str = "is empty") -> ValueError:
    """``<full path> <what>; it needs <needs>``."""
    return ValueError(f"{Path(path).absolute()} {what}; it needs {needs}")


def existing_file(path: str | os.PathLike, how_to_get: str | None = None) -> Path:
    """``path``, or a ``FileNotFoundError`` naming it (and how to get it)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}" + (f". How to get it: {how_to_get}" if how_to_get else ""))
    return path


def iter_lines(path: str | os.PathLike, how_to_get: str | None = None) -> Iterator[str]:
    """Each line of a text file without its line end."""
    path = existing_file(path, how_to_get)
    offset = 0  # bytes before the current line (of the decompressed stream for .gz)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):  # binary lines end at b"\n" only
                yield _decode(raw, path, number, offset).rstrip("\r\n")
                offset += len(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path.absolute()}: not a readable gzip file ({err}); a name ending in .gz is read as gzip-compressed "
            f"{ENCODING} text"
        ) from None


def _decode(raw: bytes, path: Path, number: int, offset: int) -> str:
    try:
        text = raw.decode("utf-8")
        if "\0" not in text:
            return text
        start, bad = raw.index(b"\0"), "a NUL byte (binary data)"
    except UnicodeDecodeError as err:
        start, bad = err.start, f"byte 0x{raw[err.start]:02x} ({err.reason})"
    raise ValueError(
        f"{path.absolute()}: line {number}, byte offset {offset + start}: {bad}; this is not {ENCODING} text. "
        f"attnlab reads {ENCODING} text files (gzip-compressed when the name ends in .gz): convert it, e.g. "
        f"`iconv -f <encoding> -t UTF-8`, or point the config at the text file"
    )


def read_lines(path: str | os.PathLike) -> list[str]:
    """Every line of a file without its line end (split on "\\n" only, unlike ``str.splitlines``)."""
    return list(iter_lines(path))


def read_tab_pairs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``source TAB target [TAB attribution]`` lines (the manythings.org / Tatoeba format); blank lines skipped."""
    sources, targets = [], []
    for number, line in enumerate(iter_lines(path), start=1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {line[:80]!r}")
        sources.append(fields[0])
        targets.append(fields[1])
    if not sources:
        raise empty_file_error(path, "one sentence pair a line: source<TAB>target (a third field is ignored)",
                               what="holds no sentence pairs")
    return sources, targets


def read_aligned(src_path: str | os.PathLike, tgt_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Two line-aligned files: line i of one translates line i of the other."""
    sources, targets = read_lines(src_path), read_lines(tgt_path)
    for path, lines, other in ((src_path, sources, tgt_path), (tgt_path, targets, src_path)):
        if not any(line.strip() for line in lines):
            raise empty_file_error(path, f"one sentence a line, line i translating line i of {Path(other).absolute()}",
                                   what="holds no sentences")
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
    classes: Sequence[str] | None = None,
    how_to_get: str = "",
) -> LabelledTexts:
    """Rows of a TSV with a header, split on tabs only (quotes are text). ``classes``: the labels as written, in
    class-index order (any other label is an error); ``None``: the file's distinct labels, sorted."""
    wanted = [*text_columns, label_column]
    needs = f"a header row naming the columns {wanted} (tab-separated) and one example a row"
    lines = iter_lines(path, how_to_get or "see the data config")
    header = next(lines, None)
    if header is None:
        raise empty_file_error(path, needs)
    header = header.split("\t")
    if absent := [name for name in wanted if name not in header]:
        raise ValueError(f"{path}: header {header} lacks the columns {absent}; expected {wanted}")
    where = [header.index(name) for name in wanted]
    rows = []  # (text, ..., label as written in the file)
    for number, line in enumerate(lines, start=2):
        fields = line.split("\t")
        if fields == [""]:
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}:{number}: expected {len(header)} tab-separated fields, got {len(fields)}")
        *texts, label = row = [fields[index] for index in where]
        if classes is not None and label not in classes:
            raise ValueError(f"{path}:{number}: label {label!r} is not one of {list(classes)}")
        if not all(text.strip() for text in texts):
            raise ValueError(f"{path}:{number}: empty text in {line.rstrip()!r}")
        rows.append(row)
    if not rows:
        raise empty_file_error(path, needs, what="holds a header but no examples")
    *columns, written = map(list, zip(*rows))
    classes = sorted(set(written)) if classes is None else list(classes)
    index = {label: i for i, label in enumerate(classes)}
    return LabelledTexts(columns, torch.tensor([index[label] for label in written]), classes)


def paragraphs_from_lines(lines: Iterable[str]) -> list[list[str]]:
    """One lowercased paragraph a line, split into sentences on `` . `` (the last keeps its final `` .``, as in
    d2l 15.9); paragraphs of fewer than two sentences are dropped (d2l tests the raw line instead)."""
    paragraphs = (line.strip().lower().split(SENTENCE_SEPARATOR) for line in lines)
    return [sentences for sentences in paragraphs if len(sentences) >= 2]


def read_paragraphs(path: str | os.PathLike) -> list[list[str]]:
    """Paragraphs (lists of sentences) of a paragraph-a-line file such as WikiText's ``wiki.*.tokens``."""
    return paragraphs_from_lines(iter_lines(path))


def text_files(path: str | os.PathLike) -> list[Path]:
    """``path`` itself, or every file under the directory ``path`` (sorted, hidden files left out)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {path.absolute()}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise empty_file_error(path, "text files (plain or .gz)", what="is a directory without files")
    return files


def read_documents(path: str | os.PathLike) -> list[list[str]]:
    """Paragraphs (lists of sentences) of raw text in a file or directory: a paragraph is a block of non-blank
    lines, a sentence ends at ``.``, ``!`` or ``?`` before white space or a line end. Paragraphs of fewer than two
    sentences are dropped: next-sentence prediction needs a successor within the paragraph."""
    paragraphs: list[list[str]] = []
    for file in text_files(path):
        block: list[str] = []
        for line in [*iter_lines(file), ""]:  # a final blank line closes the last block
            if line.strip():
                block += [sentence for sentence in SENTENCE_END.split(line.strip()) if sentence]
                continue
            if len(block) >= 2:
                paragraphs.append(block)
            block = []
    return paragraphs
