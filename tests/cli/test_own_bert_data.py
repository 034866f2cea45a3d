"""BERT on one's own data, end to end: pretraining on a plain text file of documents, then fine-tuning on a TSV whose
string labels are inferred (``experiment=bert_finetune``), which ``attnlab-predict`` prints."""
from __future__ import annotations

import random

import pytest
from cli_support import find_run_dirs, metric_columns, run_attnlab
from raw_corpora import sentence_pair

TINY_BERT = ["model.net.bert.d_model=16", "model.net.bert.num_heads=2", "model.net.bert.block.d_ff=32",
             "model.net.bert.num_layers=1", "~callbacks.progress_bar", "trainer.enable_model_summary=false"]


def write_documents(path, paragraphs: int, seed: int = 0) -> None:
    """Raw English text as a user has it: paragraphs of 2-5 cased, punctuated sentences, blank lines between."""
    rng = random.Random(seed)
    blocks = [" ".join(sentence_pair(rng, "es")[0] for _ in range(rng.randint(2, 5))) for _ in range(paragraphs)]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def write_labelled_tsv(path, rows: int, seed: int) -> None:
    """``text<TAB>label`` with string labels that a word in the text gives away."""
    rng = random.Random(seed)
    cue = {"positive": "Wonderful!", "negative": "Terrible.", "neutral": "Okay."}
    lines = ["text\tlabel"]
    for i in range(rows):
        label = sorted(cue)[i % 3]
        lines.append(f"{sentence_pair(rng, 'de')[0]} {cue[label]} {sentence_pair(rng, 'de')[0]}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow  # three CLI processes
def test_bert_pretrains_on_a_text_file_then_fine_tunes_on_a_tsv_with_inferred_labels(tmp_path):
    text = tmp_path / "my_documents.txt"
    write_documents(text, paragraphs=80)
    run_attnlab(["experiment=bert_pretrain_cram", f"data.text={text}", "tokenizer.vocab_size=400", *TINY_BERT,
                 "data.batch_size=16", "data.bucket_size=64", "data.max_len=64", "trainer.max_epochs=1", "test=false"],
                tmp_path / "out")
    (pretrain_dir,) = find_run_dirs(tmp_path / "out")
    assert "val/mlm_acc" in metric_columns(pretrain_dir)
    pretrained = pretrain_dir / "checkpoints" / "last.ckpt"

    write_labelled_tsv(tmp_path / "train.tsv", 90, seed=1)
    write_labelled_tsv(tmp_path / "test.tsv", 30, seed=2)
    run_attnlab(["experiment=bert_finetune", f"model.pretrained={pretrained}", f"data.train_file={tmp_path / 'train.tsv'}",
                 f"data.test_file={tmp_path / 'test.tsv'}", "data.batch_size=16", "trainer.max_epochs=2", *TINY_BERT],
                tmp_path / "finetune")
    (run_dir,) = find_run_dirs(tmp_path / "finetune")
    assert "test/acc" in metric_columns(run_dir)
    assert "sorted: ['negative', 'neutral', 'positive']" in (run_dir / "train.log").read_text()  # inferred, logged

    (tmp_path / "new.txt").write_text("Tom found the car. Wonderful!\nI lost my keys. Terrible.\n", encoding="utf-8")
    proc = run_attnlab([f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"input={tmp_path / 'new.txt'}"],
                       tmp_path / "predict", program="attnlab-predict")
    labels = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert len(labels) == 2 and set(labels) <= {"negative", "neutral", "positive"}


def test_bert_finetune_names_the_files_it_needs(tmp_path):
    proc = run_attnlab(["experiment=bert_finetune", "model.pretrained=null"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "required config values are missing (???): data.test_file, data.train_file" in proc.stderr
    assert "Epoch" not in proc.stdout
