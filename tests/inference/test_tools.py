"""The tools are thin wrappers over ``attnlab.load``: they take a run dir, repeated ``text=``, and print what the
loaded model returns; ``attnlab-translate attention=DIR`` leaves each sentence's maps and alignment."""
from __future__ import annotations

import pytest

import attnlab
from attnlab.cli.features import main as features_main
from attnlab.cli.predict import main as predict_main
from attnlab.cli.translate import main as translate_main

SENTENCES = ["i see the red cat", "we like a big dog"]


def test_translate_writes_each_sentences_attention_grids_and_its_alignment(transformer_run, tmp_path, capsys):
    maps = tmp_path / "maps"
    translate_main([f"ckpt_path={transformer_run}", *(f"text={s}" for s in SENTENCES), f"attention={maps}"])
    loaded = attnlab.load(transformer_run)
    assert capsys.readouterr().out.splitlines() == loaded.translate(SENTENCES)
    assert sorted(path.name for path in maps.glob("*.png")) == [
        f"{n}_{kind}.png" for n in (0, 1) for kind in ("cross", "decoder_self", "encoder_self")
    ]
    lines = (maps / "alignment.txt").read_text().splitlines()
    assert lines[0] == "S-0\ti see the red cat" and lines[3] == "S-1\twe like a big dog"
    for n, sentence in enumerate(SENTENCES):
        translation = loaded.translate(sentence)
        pairs = " ".join(f"{i}-{j}" for i, j in loaded.alignment(sentence))
        assert lines[3 * n + 1 : 3 * n + 3] == [f"H-{n}\t{translation}", f"A-{n}\t{pairs}"]


def test_translate_attention_of_a_bahdanau_run_and_a_beam_search(bahdanau_run, tmp_path, capsys):
    translate_main([f"ckpt_path={bahdanau_run}", "text=i see", f"attention={tmp_path}", "decode.strategy=beam"])
    assert capsys.readouterr().out.splitlines() == [attnlab.load(bahdanau_run).translate("i see", strategy="beam")]
    assert [path.name for path in tmp_path.glob("*.png")] == ["0_additive.png"]


def test_predict_takes_a_run_dir_and_repeated_texts(classifier_run, capsys):
    texts = ["the cat sat good", "a dog ran bad park"]
    predict_main([f"ckpt_path={classifier_run}", *(f"text={t}" for t in texts), "batch_size=1"])
    expected = [f"{p.label}\t{p.probs[p.label]:.6f}" for p in attnlab.load(classifier_run).predict(texts)]
    assert capsys.readouterr().out.splitlines() == expected


def test_the_tools_name_a_checkpoint_of_another_family(nw_run, bert_run, classifier_run):
    with pytest.raises(SystemExit, match="is not a translation checkpoint: it holds a nadaraya_watson model"):
        translate_main([f"ckpt_path={nw_run}", "text=i see"])
    with pytest.raises(SystemExit, match="is not a classification checkpoint: it holds a bert_pretraining model"):
        predict_main([f"ckpt_path={bert_run}", "text=a film"])
    with pytest.raises(SystemExit, match="holds a nadaraya_watson model, which has no BERT encoder"):
        features_main([f"ckpt_path={nw_run}", "text=a film"])


def test_features_of_a_fine_tuned_encoder(classifier_run, capsys):
    features_main([f"ckpt_path={classifier_run}", "text=the cat sat good"])
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:6]] == ["[CLS]", "the", "cat", "sat", "good", "[SEP]"]
