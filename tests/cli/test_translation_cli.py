"""attnlab-train experiment=transformer_mt end to end on a tiny pair file, then attnlab-translate and attnlab-eval
on its checkpoint: the reloaded model translates and scores exactly as the trained one did."""
from __future__ import annotations

import csv
import random
import re

import pytest
from conftest import run_dirs

from attnlab.cli.translate import main as translate_main
from attnlab.lit.checkpoint import load_run_checkpoint

D2L_SOURCES = ["go .", "i lost .", "he's calm .", "i'm home ."]
WORDS = {"i": "je", "you": "tu", "he": "il", "we": "nous", "see": "vois", "like": "aime", "the": "le", "cat": "chat",
         "dog": "chien", "big": "grand", "small": "petit", "red": "rouge"}
THREADS = {"OMP_NUM_THREADS": "1"}  # tiny model: one thread avoids contention on small machines


def write_pairs(path) -> None:
    """``English TAB French TAB attribution`` lines (fra.txt format): a word-for-word toy language plus d2l's
    four sentences, so that every source word is in the vocabulary."""
    rng = random.Random(0)
    lines = []
    for _ in range(400):
        sentence = [rng.choice(list(WORDS)) for _ in range(rng.randint(1, 5))]
        lines.append(f"{' '.join(sentence)} .\t{' '.join(WORDS[w] for w in sentence)} .\tCC-BY 2.0")
    for source, target in zip(D2L_SOURCES, ["va !", "j'ai perdu .", "il est calme .", "je suis chez moi ."]):
        lines += [f"{source}\t{target}\tCC-BY 2.0"] * 3
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def examples(stdout: str) -> dict[str, str]:
    """``source => translation, bleu x.xxx`` lines printed after a test."""
    return dict(re.findall(r"^(.+?) => (.*), bleu \d\.\d{3}$", stdout, flags=re.MULTILINE))


def metric(csv_path, name: str) -> float:
    values = [row[name] for row in csv.DictReader(open(csv_path)) if row.get(name)]
    assert values, f"{name} not logged in {csv_path}"
    return float(values[-1])


@pytest.mark.slow  # three CLI processes: about a minute on a small CPU
def test_transformer_mt_trains_then_translates_and_evaluates_from_its_checkpoint(run_cli, tmp_path):
    pairs = tmp_path / "fra.txt"
    write_pairs(pairs)
    trained = run_cli(
        "attnlab-train", "experiment=transformer_mt", f"data.corpus.path={pairs}", "data.batch_size=16",
        "tokenizer.min_freq=1", "model.net.d_model=32", "model.net.num_heads=2", "model.net.block.d_ff=64",
        "model.optimizer.lr=0.005", "model.scheduler.warmup_steps=5", "model.decode.max_steps=10",
        "trainer.max_epochs=1", env=THREADS,
    )
    (run_dir,) = run_dirs(tmp_path, "transformer_mt")
    checkpoints = run_dir / "checkpoints"
    last = checkpoints / "last.ckpt"
    assert last.is_file() and (checkpoints / "averaged.ckpt").is_file() and list((checkpoints / "recent").glob("*.ckpt"))
    for name in ("encoder_self", "decoder_self", "cross"):
        assert (run_dir / "plots" / f"attention_{name}.png").is_file()
    config = load_run_checkpoint(last)["attnlab_config"]
    assert config["model"]["net"]["_target_"] == "attnlab.models.transformer.Transformer"
    assert config["model"]["net"]["tgt_vocab_size"] > 4  # filled in from the data before saving
    assert config["monitor"] == "val/bleu" and config["trainer"]["gradient_clip_val"] == 1.0

    # d2l's examples as the trained model translated them at the end of its test (one epoch: best = last)
    before = examples(trained.stdout)
    assert list(before) == D2L_SOURCES
    trained_csv = run_dir / "csv" / "metrics.csv"
    train_bleu = metric(trained_csv, "test/bleu")
    assert metric(trained_csv, "val/bleu") >= 0 and metric(trained_csv, "train/tokens_per_s") > 0

    translated = run_cli("attnlab-translate", f"ckpt_path={last}", *(f"text={s}" for s in D2L_SOURCES), env=THREADS)
    lines = translated.stdout.splitlines()
    assert len(lines) == 4 and any(lines)

    evaluated = run_cli("attnlab-eval", f"ckpt_path={last}", env=THREADS)
    assert [before[s] for s in D2L_SOURCES] == lines == [examples(evaluated.stdout)[s] for s in D2L_SOURCES]
    (eval_dir,) = run_dirs(tmp_path, "eval")
    assert metric(eval_dir / "csv" / "metrics.csv", "test/bleu") == pytest.approx(train_bleu, abs=1e-6)
    assert "test/bleu" in evaluated.stdout


def test_translate_names_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match="unexpected argument 'txt=go .'"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "txt=go ."])
    with pytest.raises(SystemExit, match="nothing to translate"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}"])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "text=go ."])
    with pytest.raises(SystemExit, match="decode.beam_size='many' is not a valid int"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "text=go .", "decode.beam_size=many"])
