"""WikiText-2 reading: d2l's paragraph/sentence preparation, zip-member fetch, clear missing-file error."""
import hashlib
import zipfile

import pytest

from attnlab.data import wikitext
from attnlab.data.text_io import paragraphs_from_lines
from attnlab.data.wikitext import read_wikitext2, split_documents, wikitext2_file

LINES = [
    " \n",
    " = Valkyria Chronicles = \n",  # heading: one "sentence"
    " \n",
    " The Game began in 2010 . It was Praised . Sales were <unk> . \n",
    " A single sentence without a break . \n",  # d2l's raw-line test would keep this one
    " Two @-@ part . Paragraph \n",
    " = = Plot = = \n",
]


def test_paragraphs_are_lowercased_split_on_periods_and_need_two_sentences():
    assert paragraphs_from_lines(LINES) == [
        ["the game began in 2010", "it was praised", "sales were <unk> ."],  # last keeps its " ." as in d2l
        ["two @-@ part", "paragraph"],
    ]


def test_only_space_period_space_separates_sentences():
    assert paragraphs_from_lines([" u.s. forces , 3.5 km . next one \n"]) == [["u.s. forces , 3.5 km", "next one"]]


def _write_splits(directory, text_by_split):
    directory.mkdir(parents=True, exist_ok=True)
    for split, text in text_by_split.items():
        (directory / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")


def test_read_wikitext2_reads_each_split_and_needs_two_paragraphs(tmp_path):
    _write_splits(tmp_path, {"train": "".join(LINES), "valid": " X y . Z \n A . B \n", "test": " X y . Z \n"})
    assert read_wikitext2(tmp_path, "train")[1] == ["two @-@ part", "paragraph"]
    assert read_wikitext2(tmp_path, "valid") == [["x y", "z"], ["a", "b"]]
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'wiki.test.tokens'} holds 1 paragraphs .* needs at least 2"):
        read_wikitext2(tmp_path, "test")  # next-sentence prediction draws from another paragraph


def test_unknown_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="'dev'"):
        wikitext2_file(tmp_path, "dev")


def test_fetches_from_d2l_zip_url():
    assert wikitext.WIKITEXT2_URL == "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"


def test_absent_files_are_fetched_from_the_zip_members(tmp_path, monkeypatch):
    archive = tmp_path / "wikitext-2-v1.zip"
    texts = {split: f" {split} one . {split} two \n {split} three . four \n" for split in wikitext.WIKITEXT2_SPLITS}
    with zipfile.ZipFile(archive, "w") as zf:
        for split, text in texts.items():
            zf.writestr(f"wikitext-2/wiki.{split}.tokens", text)
    monkeypatch.setattr(wikitext, "WIKITEXT2_URL", archive.as_uri())
    hashes = {split: hashlib.sha256(text.encode()).hexdigest() for split, text in texts.items()}
    monkeypatch.setattr(wikitext, "WIKITEXT2_SHA256", hashes)
    target = tmp_path / "data" / "wikitext-2"
    assert read_wikitext2(target, "valid") == [["valid one", "valid two"], ["valid three", "four"]]
    assert (target / "wiki.valid.tokens").read_text() == texts["valid"]


def test_missing_file_error_names_the_path_and_how_to_get_it(tmp_path, monkeypatch):
    unreachable = "http://127.0.0.1:9/wikitext-2-v1.zip"  # never touch the network in tests
    monkeypatch.setattr(wikitext, "WIKITEXT2_URL", unreachable)
    with pytest.raises(FileNotFoundError) as info:
        read_wikitext2(tmp_path / "nowhere", "train")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "wiki.train.tokens") in message
    assert unreachable in message and "DATA_DIR" in message


def test_own_text_is_split_by_paragraph_seeded_and_needs_enough_paragraphs(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("\n\n".join(f"Paragraph {i} starts. It ends." for i in range(60)), encoding="utf-8")
    splits = split_documents(text, seed=0)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [54, 3, 3]  # 5 % each, rounded
    firsts = [paragraph[0] for split in splits.values() for paragraph in split]
    assert sorted(firsts) == sorted(f"Paragraph {i} starts." for i in range(60))  # each paragraph in one split
    assert split_documents(text, seed=0) == splits and split_documents(text, seed=1) != splits
    text.write_text("One. Two.\n\nThree. Four.\n\nFive. Six.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{text} holds 3 paragraphs of two or more sentences; .* at least 6"):
        split_documents(text, seed=0)
