"""Tiny trained runs of every family, trained once per session by ``attnlab-train``'s own ``train`` on toy data:
what ``attnlab.load`` reads in these tests is what a user's run leaves."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from attnlab.cli.train import train

QUIET = ["logger=none", "callbacks.lr_monitor=null", "callbacks.progress_bar=null", "trainer.enable_model_summary=false"]
EN = "i you he she we they see like the a big small red cat dog house car".split()
FR = "je tu il elle nous ils vois aime le la grand petit rouge chat chien maison voiture".split()
SENTENCES = ["the cat sat on the mat", "the dog ran in the park", "a bird flew over the house",
             "my friend read a good book", "the sun rose over the hills"]
TRANSLATION = ["data=parallel", "tokenizer=word", "data.batch_size=16", "data.max_len=8", "tokenizer.min_freq=1", "model.decode.max_steps=10",
               "model.examples=[]", "model.plot_attention=false", *QUIET]
BERT = ["tokenizer.min_freq=1", "data.batch_size=32", "data.max_len=24", "model.net.bert.d_model=32",
        "model.net.bert.num_heads=2", "model.net.bert.num_layers=2", "model.net.bert.block.d_ff=64",
        "model.net.bert.dropout=0.0", "model.optimizer.lr=0.005", "model.scheduler.warmup_steps=2", *QUIET]


def train_run(composer, run_dir: Path, *overrides: str) -> Path:
    """``attnlab-train overrides`` with ``run_dir`` as its run dir."""
    try:
        train(composer(run_dir, *overrides))
    finally:
        HydraConfig.instance().cfg = None
    return run_dir


def write_pairs(directory: Path) -> Path:
    """English -> French word for word: ``{train,valid,test}.{en,fr}``."""
    rng = random.Random(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 300), ("valid", 8), ("test", 8)):
        ids = [[rng.randrange(len(EN)) for _ in range(rng.randint(2, 6))] for _ in range(count)]
        (directory / f"{split}.en").write_text("\n".join(" ".join(EN[i] for i in row) for row in ids) + "\n")
        (directory / f"{split}.fr").write_text("\n".join(" ".join(FR[i] for i in row) for row in ids) + "\n")
    return directory


def write_wikitext(directory: Path) -> Path:
    """WikiText-2 look-alike made of five fixed sentences: a masked word is easy to learn."""
    rng = random.Random(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 200), ("valid", 10), ("test", 10)):
        lines = [" = heading = \n"] + [
            " " + " . ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 4))) + " . \n" for _ in range(count)
        ]
        (directory / f"wiki.{split}.tokens").write_text("".join(lines))
    return directory


def write_sentiment(directory: Path) -> Path:
    """SST-2-format TSVs in which "good"/"bad" gives the label away."""
    rng = random.Random(0)
    directory.mkdir(parents=True, exist_ok=True)
    words = "the a cat dog sat ran on in mat park".split()
    for split, size in (("train", 120), ("dev", 24)):
        rows = ["sentence\tlabel"] + [
            f"{' '.join(rng.choice(words) for _ in range(3))} {'good' if i % 2 else 'bad'} {rng.choice(words)}\t{i % 2}"
            for i in range(size)
        ]
        (directory / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return directory


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inference_runs")


@pytest.fixture(scope="session")
def transformer_run(composer, runs_root) -> Path:
    data = write_pairs(runs_root / "pairs")
    return train_run(
        composer, runs_root / "transformer", "experiment=transformer_mt", "~callbacks.checkpoint_averaging", *TRANSLATION,
        f"data.corpus.train={data}/train", f"data.corpus.val={data}/valid", f"data.corpus.test={data}/test",
        "model.net.d_model=32", "model.net.num_heads=2", "model.net.block.d_ff=64", "model.net.dropout=0.0",
        "model.optimizer.lr=0.005", "model.scheduler=null", "trainer.max_epochs=4",
    )


@pytest.fixture(scope="session")
def bahdanau_run(composer, runs_root) -> Path:
    data = write_pairs(runs_root / "pairs")
    return train_run(
        composer, runs_root / "bahdanau", "experiment=seq2seq_bahdanau", *TRANSLATION, f"data.corpus.train={data}/train",
        f"data.corpus.val={data}/valid", f"data.corpus.test={data}/test", "model.net.embed_size=16",
        "model.net.hidden_size=32", "model.net.num_layers=1", "trainer.max_epochs=1",
    )


@pytest.fixture(scope="session")
def bert_run(composer, runs_root) -> Path:
    data = write_wikitext(runs_root / "data" / "wikitext-2")
    return train_run(composer, runs_root / "bert", "experiment=bert_pretrain", f"data.data_dir={data}", *BERT,
                     "trainer.max_epochs=20")


@pytest.fixture(scope="session")
def classifier_run(composer, runs_root, bert_run) -> Path:
    data = write_sentiment(runs_root / "data" / "sst2")
    return train_run(
        composer, runs_root / "classifier", "experiment=bert_finetune_sst2", f"model.pretrained={bert_run}/checkpoints/last.ckpt",
        f"data.train_file={data}/train.tsv", f"data.test_file={data}/dev.tsv", "data.max_len=16", "data.batch_size=16",
        "data.val_fraction=0.2", "trainer.max_epochs=2", *QUIET,
    )


@pytest.fixture(scope="session")
def nw_run(composer, runs_root) -> Path:
    return train_run(composer, runs_root / "nw", "experiment=nw_parametric", *QUIET)
