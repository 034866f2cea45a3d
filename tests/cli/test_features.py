"""End to end: `attnlab-train experiment=bert_pretrain` on a tiny corpus, then BERT features from its checkpoint."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import attnlab
from attnlab.cli.features import main, parse_arguments
from attnlab.training.checkpoint import CONFIG_KEY, load_run_checkpoint

BIN = Path(sys.executable).parent
SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our neighbour"]
VERBS = ["sat on", "looked at", "walked to", "painted", "found"]
OBJECTS = ["the mat", "the red house", "a small boat", "the old bridge", "the garden"]
MONEY = ["she put money in the bank", "he robbed the bank", "the bank lent him money"]
RIVER = ["they fished from the bank of the river", "the river flooded its bank", "we sat on the grassy bank"]
TRAIN_OVERRIDES = [
    "experiment=bert_pretrain", "tokenizer.min_freq=1", "data.batch_size=16", "data.max_len=24",
    "model.net.bert.d_model=32", "model.net.bert.num_heads=2", "model.net.bert.num_layers=1",
    "model.net.bert.block.d_ff=64", "model.net.bert.dropout=0.0", "model.optimizer.lr=0.01", "model.scheduler.warmup_steps=2", "trainer.max_epochs=3",
    "logger=csv",
]


def write_corpus(directory: Path, paragraphs=(150, 12, 12), seed=0) -> None:
    """WikiText-2 look-alike with "bank" in money and in river contexts."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), paragraphs):
        lines = [" = heading = \n"]
        for _ in range(count):
            sentences = []
            for _ in range(rng.randint(2, 4)):
                roll = rng.random()
                if roll < 0.2:
                    sentences.append(rng.choice(MONEY))
                elif roll < 0.4:
                    sentences.append(rng.choice(RIVER))
                else:
                    sentences.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}")
            lines.append(" " + " . ".join(sentences) + " . \n")
        (directory / f"wiki.{split}.tokens").write_text("".join(lines), encoding="utf-8")


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs the real CLI once; yields (last.ckpt path, env, work dir)."""
    root = tmp_path_factory.mktemp("bert_e2e")
    write_corpus(root / "data" / "wikitext-2")
    env = dict(os.environ, DATA_DIR=str(root / "data"), ATTNLAB_OUTPUTS=str(root / "outputs"),
               ATTNLAB_CACHE=str(root / "cache"))
    env.setdefault("OMP_NUM_THREADS", "1")  # a tiny model: more threads only contend
    result = run([str(BIN / "attnlab-train"), *TRAIN_OVERRIDES], root, env)
    checkpoints = sorted((root / "outputs" / "bert_pretrain").glob("*/checkpoints/last.ckpt"))
    assert len(checkpoints) == 1, result.stdout[-2000:]
    return checkpoints[0], env, root, result.stdout


def test_pretraining_cli_writes_a_self_contained_checkpoint_and_metrics(trained):
    checkpoint_path, _, _, stdout = trained
    assert "test/mlm_loss" in stdout and "val/mlm_ppl" in stdout
    checkpoint = load_run_checkpoint(checkpoint_path)
    config = checkpoint[CONFIG_KEY]
    assert config["model"]["net"]["_target_"] == "attnlab.models.bert.BertForPretraining"
    assert config["model"]["net"]["bert"]["activation"] == "gelu" and config["norm"]["placement"] == "post"
    assert config["model"]["net"]["bert"]["block"]["_target_"] == "attnlab.layers.blocks.PostNormBlock"
    assert config["monitor"] == "val/mlm_loss"
    assert "tokenizer" in checkpoint["WikiText2DataModule"]
    metrics = (checkpoint_path.parents[1] / "csv" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    for name in ("train/mlm_loss", "val/mlm_loss", "val/mlm_ppl", "val/mlm_acc", "val/nsp_acc", "train/tokens_per_s"):
        assert name in header, name
    losses = [float(row.split(",")[header.index("val/mlm_loss")]) for row in metrics[1:]
              if row.split(",")[header.index("val/mlm_loss")]]
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_features_cli_prints_and_saves(trained, tmp_path, capsys):
    checkpoint_path, env, root, _ = trained
    main([f"ckpt_path={checkpoint_path}", "text=she put money in the bank", "text_b=the river flooded its bank"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[CLS]") and printed[6].startswith("bank ") and printed[7].startswith("[SEP]")
    assert "seg 1" in printed[8] and printed[13].startswith("[SEP]")
    output = tmp_path / "feats.pt"  # the installed console script, as a user runs it
    run([str(BIN / "attnlab-features"), f"ckpt_path={checkpoint_path}", "text=she put money in the bank",
         f"output={output}"], root, env)
    saved = torch.load(output, weights_only=True)
    assert saved["tokens"] == ["[CLS]", "she", "put", "money", "in", "the", "bank", "[SEP]"]
    assert saved["vectors"].shape == (8, 32)
    torch.testing.assert_close(saved["cls"], saved["vectors"][0])


def test_same_word_gets_different_vectors_in_different_contexts(trained):
    bert = attnlab.load(trained[0])
    money = bert.features("she put money in the bank")
    river = bert.features("we sat on the grassy bank")
    bank_money = money.hidden[money.tokens.index("bank")]
    bank_river = river.hidden[river.tokens.index("bank")]
    assert not torch.allclose(bank_money, bank_river, atol=1e-3)
    again = bert.features("She put MONEY in the bank")  # inputs are lowercased like the training text
    torch.testing.assert_close(again.hidden, money.hidden)
    assert money.pooled.shape == (32,)


def test_pair_segments_and_unknown_words(trained):
    bert = attnlab.load(trained[0])
    pair = bert.features("he robbed the bank", "zebras fly")
    assert pair.tokens == ["[CLS]", "he", "robbed", "the", "bank", "[SEP]", "[UNK]", "[UNK]", "[SEP]"]
    assert pair.segments.tolist() == [0] * 6 + [1] * 3
    single = bert.features("he robbed the bank")
    assert not torch.allclose(single.hidden[4], pair.hidden[4])  # B is part of A's context


def test_long_inputs_are_cut_and_errors_are_clear(trained, tmp_path, capsys):
    long = attnlab.load(trained[0]).features(" ".join(["the cat"] * 20))
    assert long.truncated and len(long.tokens) == 24 and long.tokens[-1] == "[SEP]"
    main([f"ckpt_path={trained[0]}", f"text={' '.join(['the cat'] * 20)}"])
    assert "note: the input was cut to the model's 24 positions" in capsys.readouterr().err
    not_a_run = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, not_a_run)
    with pytest.raises(SystemExit, match="not an attnlab training checkpoint"):
        main([f"ckpt_path={not_a_run}", "text=hello"])
    with pytest.raises(SystemExit, match="missing ckpt_path"):
        main(["text=hello"])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main([f"ckpt_path={tmp_path / 'nope.ckpt'}", "text=hello"])
    with pytest.raises(ValueError, match="allowed keys: ckpt_path, text, text_b"):
        parse_arguments(["ckpt=x", "text=y"])
    assert parse_arguments(["ckpt_path=a", 'text="a, b = c"'])["text"] == "a, b = c"
