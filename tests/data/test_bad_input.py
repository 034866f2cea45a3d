"""Bad data files fail the same way through every reader (fra-eng, parallel, WikiText-2, classification TSVs):
an empty file names its full path and what it needs; bytes that are not UTF-8 text name the file, the line,
the byte offset and the encoding expected."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from attnlab.data.bert_pretraining import WikiText2DataModule
from attnlab.data.classification import ClassificationDataModule
from attnlab.data.corpora import FraEngCorpus, ParallelCorpus
from attnlab.data.text_io import read_paragraphs
from attnlab.data.tokenizers import word
from attnlab.data.translation import TranslationDataModule

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"  # the start of a PNG file


def fra_eng(directory: Path, content: bytes | None):
    """The reader's DataModule, with the file under test holding ``content`` after one good line."""
    path = directory / "fra.txt"
    path.write_bytes(b"" if content is None else b"Go.\tVa !\n" + content)
    return path, TranslationDataModule(FraEngCorpus(path, url="http://127.0.0.1:9/x.zip"), output_dir=directory)


def parallel(directory: Path, content: bytes | None):
    (directory / "train.fr").write_text("un\ndeux\n", encoding="utf-8")
    path = directory / "train.en"
    path.write_bytes(b"" if content is None else b"one\n" + content)
    return path, TranslationDataModule(ParallelCorpus(directory / "train", "en", "fr"), output_dir=directory)


def wikitext2(directory: Path, content: bytes | None):
    for split in ("valid", "test"):
        (directory / f"wiki.{split}.tokens").write_text(" a b . c d \n e f . g \n", encoding="utf-8")
    path = directory / "wiki.train.tokens"
    path.write_bytes(b"" if content is None else b" a b . c d \n" + content)
    return path, WikiText2DataModule(word, directory)


def classification(directory: Path, content: bytes | None):
    (directory / "test.tsv").write_text("sentence\tlabel\na film\t1\nanother\t0\n", encoding="utf-8")
    path = directory / "train.tsv"
    path.write_bytes(b"" if content is None else b"sentence\tlabel\n" + content)
    return path, ClassificationDataModule(path, directory / "test.tsv", ["sentence"], tokenizer=word)


READERS = {"fra_eng": fra_eng, "parallel": parallel, "wikitext2": wikitext2, "classification": classification}
NEEDS = {  # what each file needs, as its error says
    "fra_eng": "holds no sentence pairs; it needs one sentence pair a line: source<TAB>target",
    "parallel": "holds no sentences; it needs one sentence a line, line i translating line i of",
    "wikitext2": "holds 0 paragraphs of two or more sentences; it needs at least 2",
    "classification": "is empty; it needs a header row naming the columns ['sentence', 'label']",
}


@pytest.mark.parametrize("reader", READERS)
def test_an_empty_file_is_named_by_its_full_path_with_what_it_needs(tmp_path, reader, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, module = READERS[reader](Path("."), None)  # a relative path: the error gives the full one
    with pytest.raises(ValueError) as info:
        module.setup("fit")
    assert str(info.value).startswith(f"{tmp_path / path.name} {NEEDS[reader]}")


@pytest.mark.parametrize("reader", READERS)
def test_a_binary_file_is_named_with_line_byte_offset_and_the_encoding_expected(tmp_path, reader):
    path, module = READERS[reader](tmp_path, BINARY)
    first_line = len(path.read_bytes()) - len(BINARY)
    with pytest.raises(ValueError) as info:
        module.setup("fit")
    message = str(info.value)
    assert message.startswith(f"{path}: line 2, byte offset {first_line}: byte 0x89 (invalid start byte)")
    assert "not UTF-8 text" in message and "UTF-8 text files" in message


def test_a_header_only_tsv_says_it_has_no_examples(tmp_path):
    path, module = classification(tmp_path, b"\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} holds a header but no examples; it needs a header row")):
        module.setup("fit")


def test_nul_bytes_and_broken_gzip_are_named_too(tmp_path):
    path = tmp_path / "train.en"
    path.write_bytes("één\ntwo\x00three\n".encode())  # "één\n" is 6 bytes
    (tmp_path / "train.fr").write_text("un\ndeux\n", encoding="utf-8")
    module = TranslationDataModule(ParallelCorpus(tmp_path / "train", "en", "fr"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: line 2, byte offset 9: a NUL byte (binary data)")):
        module.setup("fit")
    fake = tmp_path / "train.tsv.gz"
    fake.write_text("sentence\tlabel\n", encoding="utf-8")  # named .gz, not compressed
    module = ClassificationDataModule(fake, fake, ["sentence"], tokenizer=word)
    with pytest.raises(ValueError, match=re.escape(f"{fake}: not a readable gzip file")):
        module.setup("fit")
    packed = tmp_path / "wiki.tokens.gz"
    with gzip.open(packed, "wb") as f:
        f.write(b" a . b \n" + BINARY)
    with pytest.raises(ValueError, match=re.escape(f"{packed}: line 2, byte offset 8: byte 0x89")):
        read_paragraphs(packed)
