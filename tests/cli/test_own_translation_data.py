"""Translation defaults that hold on someone else's data, end to end through ``attnlab-train``: a raw-text parallel
corpus gets a tokenizer that splits punctuation and leaves (almost) no ``<unk>``, with the choice logged; d2l's four
example sentences are translated on fra-eng only."""
from __future__ import annotations

import re

import pytest
from cli_support import find_run_dirs, metric_columns, run_attnlab
from raw_corpora import write_raw_corpus
from test_translation_cli import D2L_SOURCES, examples
from test_translation_cli import write_pairs as write_fra_txt

from attnlab.data.tokenizers import TextTokenizer

TINY_MT = ["experiment=transformer_mt", "model.net.d_model=16", "model.net.num_heads=2", "model.net.block.d_ff=32",
           "model.net.num_encoder_layers=1", "model.net.num_decoder_layers=1", "model.decode.max_steps=8",
           "model.plot_attention=false", "trainer.max_epochs=1", "~callbacks.checkpoint_averaging",
           "~callbacks.progress_bar"]
# what the preparation logs per split, e.g. "val 40 pairs, tokens/word src 1.39 tgt 1.34, <unk> src 0.00% tgt 0.00%"
SPLIT_STATS = re.compile(r"(train|val|test) \d+ pairs, tokens/word src ([\d.]+) tgt ([\d.]+), "
                         r"<unk> src ([\d.]+)% tgt ([\d.]+)%")


def token_stats(log: str, kind: str) -> dict[str, tuple[float, ...]]:
    """Per split ``(tokens/word src, tgt, <unk> % src, tgt)`` from the line the preparation logs for ``kind``."""
    (line,) = [line for line in log.splitlines() if f"tokenizer {{'kind': '{kind}'" in line and "tokens/word" in line]
    return {split: tuple(map(float, values)) for split, *values in SPLIT_STATS.findall(line)}


@pytest.mark.parametrize("language", ["de", "es"])
def test_parallel_data_defaults_to_a_tokenizer_for_raw_text(tmp_path, language):
    corpus = write_raw_corpus(tmp_path / "corpus", language)
    data = ["data=parallel", f"data.corpus.train={corpus}/train", f"data.corpus.val={corpus}/valid",
            f"data.corpus.test={corpus}/test", f"data.corpus.tgt_lang={language}", "data.batch_size=32"]
    proc = run_attnlab([*TINY_MT, *data], tmp_path / "out")
    (run_dir,) = find_run_dirs(tmp_path / "out")
    log = (run_dir / "train.log").read_text()

    stats = token_stats(log, "bpe")  # the default, named in the log with its settings
    assert "'split_punctuation': True" in log and set(stats) == {"train", "val", "test"}
    for split, (src_per_word, tgt_per_word, src_unk, tgt_unk) in stats.items():
        assert 1.0 < src_per_word < 2.0 and 1.0 < tgt_per_word < 2.0, (split, stats)  # punctuation split, no chars
        assert src_unk < 1.0 and tgt_unk < 1.0, (split, stats)
    assert "are <unk>" not in log
    tokenizer = TextTokenizer.load(run_dir / "tokenizer_src.json")
    (ids,) = tokenizer.encode_batch(["I checked the date."])
    pieces = [tokenizer.id_to_token(i) for i in ids]
    assert pieces[-1] == "." and "<unk>" not in pieces and tokenizer.decode_batch([ids]) == ["I checked the date."]

    # d2l's fra-eng sentences belong to fra-eng: not translated, printed or scored on someone else's corpus
    assert not examples(proc.stdout) and "test/d2l_bleu" not in metric_columns(run_dir)
    assert "test/bleu" in metric_columns(run_dir)

    # the whitespace word vocabulary on the same raw text: <unk>-ridden, and the log says so
    run_attnlab([*TINY_MT, *data, "tokenizer=word", "train=false", "test=false"], tmp_path / "word")
    (word_dir,) = find_run_dirs(tmp_path / "word")
    word_log = (word_dir / "train.log").read_text()
    assert token_stats(word_log, "word")["val"][2] > 5.0
    assert "of the val source tokens are <unk> under tokenizer {'kind': 'word'" in word_log


def test_d2l_examples_are_translated_on_fra_eng(tmp_path):
    write_fra_txt(tmp_path / "fra.txt")
    proc = run_attnlab([*TINY_MT, f"data.corpus.path={tmp_path / 'fra.txt'}", "data.batch_size=64",
                        "tokenizer.min_freq=1"], tmp_path / "out")
    (run_dir,) = find_run_dirs(tmp_path / "out")
    assert sorted(examples(proc.stdout)) == sorted(D2L_SOURCES) and "test/d2l_bleu" in metric_columns(run_dir)
    assert "tokenizer {'kind': 'word'" in (run_dir / "train.log").read_text()  # fra-eng keeps d2l's word vocabulary
