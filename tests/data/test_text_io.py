"""Text files: plain and .gz alike, "\\n"-only lines, tab pairs, aligned files, labelled TSVs, paragraphs."""
import gzip

import pytest

from attnlab.data.text_io import (
    iter_lines,
    read_aligned,
    read_documents,
    read_labelled_tsv,
    read_lines,
    read_paragraphs,
    read_tab_pairs,
)


def write(path, text):
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("name", ["plain.txt", "packed.txt.gz"])
def test_lines_end_at_newline_only_plain_or_gz(tmp_path, name):
    path = write(tmp_path / name, "café\r\nun\rdeux\n\nlast")
    assert read_lines(path) == ["café", "un\rdeux", "", "last"]  # "\r\n" ends a line, a lone "\r" is text


def test_missing_file_names_the_path_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^no such file: .*absent.txt$"):
        read_lines(tmp_path / "absent.txt")
    with pytest.raises(FileNotFoundError, match=r"absent.txt. How to get it: download it"):
        list(iter_lines(tmp_path / "absent.txt", "download it"))


def test_read_tab_pairs_ignores_attribution_and_blank_lines_and_rejects_bad_lines(tmp_path):
    path = write(tmp_path / "fra.txt.gz", "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org\n\nHi.\tSalut\u202f!\n")
    assert read_tab_pairs(path) == (["Go.", "Hi."], ["Va !", "Salut\u202f!"])
    bad = write(tmp_path / "bad.txt", "Go.\tVa !\nno tab here\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'source<TAB>target', got 'no tab here'"):
        read_tab_pairs(bad)


def test_aligned_files_pair_line_by_line_or_name_both_counts(tmp_path):
    src, tgt = write(tmp_path / "a.en", "one\ntwo\n"), write(tmp_path / "a.fr.gz", "un\ndeux\n")
    assert read_aligned(src, tgt) == (["one", "two"], ["un", "deux"])
    short = write(tmp_path / "b.fr", "un\n")
    with pytest.raises(ValueError, match=r"a.en has 2 lines, .*b.fr has 1 lines"):
        read_aligned(src, short)


def test_tsv_rows_split_on_tabs_keep_quotes_and_map_labels(tmp_path):
    path = write(tmp_path / "dev.tsv.gz", 'label\tsentence1\tsentence2\nneutral\tA man says "hi".\tHe is happy.\n'
                                          'contradiction\tTwo dogs run\t "Cats" sleep\n')
    texts = read_labelled_tsv(path, ["sentence1", "sentence2"], "label", {"entailment": 0, "neutral": 1, "contradiction": 2})
    assert texts.columns == [['A man says "hi".', "Two dogs run"], ["He is happy.", ' "Cats" sleep']]
    assert texts.labels.tolist() == [1, 2]


def test_unknown_label_bad_rows_and_empty_files_name_the_line(tmp_path):
    path = write(tmp_path / "t.tsv", "sentence\tlabel\nfine\t1\nodd\t2\n")
    with pytest.raises(ValueError, match=r"t.tsv:3: label '2' is not one of \['0', '1'\]"):
        read_labelled_tsv(path, ["sentence"], "label", {"0": 0, "1": 1})
    path = write(tmp_path / "u.tsv", "sentence\tlabel\na\tb\t1\n")
    with pytest.raises(ValueError, match=r"u.tsv:2: expected 2 tab-separated fields, got 3"):
        read_labelled_tsv(path, ["sentence"], "label", {"0": 0, "1": 1})
    with pytest.raises(ValueError, match=r"lacks the columns \['sentence2'\]"):
        read_labelled_tsv(path, ["sentence", "sentence2"], "label", {"0": 0, "1": 1})
    with pytest.raises(ValueError, match=r"v.tsv holds a header but no examples; it needs a header row"):
        read_labelled_tsv(write(tmp_path / "v.tsv", "sentence\tlabel\n\n"), ["sentence"], "label", {"0": 0, "1": 1})
    with pytest.raises(FileNotFoundError, match=r"w.tsv. How to get it: see the data config"):
        read_labelled_tsv(tmp_path / "w.tsv", ["sentence"], "label", {"0": 0, "1": 1})


def test_paragraphs_read_the_same_from_plain_and_gz(tmp_path):
    text = " = Heading = \n The Cat sat . It Slept . \n One sentence only . \n"
    expected = [["the cat sat", "it slept ."]]
    assert read_paragraphs(write(tmp_path / "p.tokens", text)) == expected
    assert read_paragraphs(write(tmp_path / "p.tokens.gz", text)) == expected


def test_documents_are_blocks_of_lines_split_into_sentences_from_a_file_or_a_directory(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    write(tmp_path / "docs" / "a.txt", "Dr. Who came. He left! Why?\n\nOne sentence only.\n\nFirst line.\nSecond line\n")
    write(tmp_path / "docs" / "sub" / "b.txt.gz", "It's 3.5 km away. We walked.")
    write(tmp_path / "docs" / ".hidden", "Not. Read.")
    assert read_documents(tmp_path / "docs") == [
        ["Dr.", "Who came.", "He left!", "Why?"],  # a period before a space ends a sentence, abbreviation or not
        ["First line.", "Second line"],  # a block's lines: one sentence a line works too; case is kept
        ["It's 3.5 km away.", "We walked."],  # the one-sentence paragraph is dropped; "3.5" is no sentence end
    ]
    assert read_documents(tmp_path / "docs" / "a.txt")[1] == ["First line.", "Second line"]
    with pytest.raises(FileNotFoundError, match=f"no such file or directory: {tmp_path / 'nowhere'}"):
        read_documents(tmp_path / "nowhere")
