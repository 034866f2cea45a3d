"""attnlab-train experiment=transformer_mt end to end on a tiny pair file, then attnlab-translate and attnlab-eval
on its checkpoint: the reloaded model translates and scores exactly as the trained one did, and the scores are
sacrebleu's on the files the run leaves."""
from __future__ import annotations

import csv
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import metric_history, run_attnlab
from conftest import run_dirs

from attnlab.cli.translate import main as translate_main
from attnlab.training.checkpoint import load_run_checkpoint

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


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_debug_overfit_trains_a_transformer_on_the_same_batches_every_epoch_until_it_memorises_them(tmp_path):
    """Random pairs: nothing to generalise, so only the same few batches seen again and again can be learnt."""
    rng = random.Random(0)
    pairs = tmp_path / "random.txt"
    pairs.write_text("".join(f"{' '.join(f'w{rng.randrange(40)}' for _ in range(rng.randint(2, 5)))} .\t"
                             f"{' '.join(f'f{rng.randrange(40)}' for _ in range(rng.randint(2, 5)))} .\tCC-BY 2.0\n"
                             for _ in range(300)), encoding="utf-8")
    batches, run_dir = tmp_path / "batches.json", tmp_path / "overfit"
    run_attnlab(["experiment=transformer_mt", "debug=overfit", f"data.corpus.path={pairs}", "data.batch_size=8",
                 "tokenizer.min_freq=1", "model.net.d_model=64", "model.net.num_heads=2", "model.net.block.d_ff=128",
                 "model.net.dropout=0.0", "model.label_smoothing=0.0", "model.optimizer.lr=0.003",
                 "model.scheduler.warmup_fraction=0.05", "model.decode.max_steps=8", "trainer.max_epochs=60",
                 "callbacks=none", "~callbacks.checkpoint_averaging", "~callbacks.early_stopping", "test=false",
                 "model.plot_attention=false", "model.examples=[]",
                 f"+callbacks.record={{_target_:record_batches.RecordBatches,out:'{batches}'}}",
                 f"hydra.run.dir={run_dir}"], tmp_path, timeout=600)
    epochs = json.loads(batches.read_text())
    assert len(epochs) == 60 and len(epochs[0]) == 3
    assert all(epoch == epochs[0] for epoch in epochs)  # the same pairs, in the same batches, every epoch
    losses = [value for _, value in metric_history(run_dir, "train/loss_epoch")]
    assert losses[-1] < 0.05 * losses[0] and losses[-1] < 0.1  # memorised


@pytest.mark.slow  # four CLI processes: about a minute on a small CPU
def test_transformer_mt_trains_then_translates_and_evaluates_from_its_checkpoint(run_cli, tmp_path):
    pairs = tmp_path / "fra.txt"
    write_pairs(pairs)
    trained = run_cli(
        "attnlab-train", "experiment=transformer_mt", f"data.corpus.path={pairs}", "data.batch_size=16",
        "tokenizer.min_freq=1", "model.net.d_model=32", "model.net.num_heads=2", "model.net.block.d_ff=64",
        "model.optimizer.lr=0.005", "model.scheduler.warmup_steps=5", "model.scheduler.warmup_fraction=null", "model.decode.max_steps=10",
        "trainer.max_epochs=1", env=THREADS,
    )
    (run_dir,) = run_dirs(tmp_path, "transformer_mt")
    checkpoints = run_dir / "checkpoints"
    last = checkpoints / "last.ckpt"
    assert last.is_file() and (checkpoints / "averaged.ckpt").is_file() and list((checkpoints / "averaging").glob("*.ckpt"))
    for name in ("encoder_self", "decoder_self", "cross"):
        assert (run_dir / "plots" / f"attention_{name}.png").is_file()
    config = load_run_checkpoint(last)["attnlab_config"]
    assert config["model"]["net"]["_target_"] == "attnlab.models.transformer.Transformer"
    assert config["model"]["net"]["tgt_vocab_size"] > 4  # filled in from the data before saving
    assert config["monitor"] == "val/bleu" and config["trainer"]["gradient_clip_val"] == 1.0

    # the averaged and the last weights were scored on validation; the better one was tested
    selected = json.loads((checkpoints / "selected.json").read_text())
    assert selected["monitor"] == "val/bleu" and set(selected["scores"]) == {"averaged", "last"}
    assert selected["scores"][selected["name"]] == max(selected["scores"].values())
    chosen = checkpoints / selected["checkpoint"]
    assert chosen.is_file()

    # d2l's examples as the trained model translated them at the end of its test
    before = examples(trained.stdout)
    assert list(before) == D2L_SOURCES
    trained_csv = run_dir / "csv" / "metrics.csv"
    train_bleu = metric(trained_csv, "test/bleu")
    assert metric(trained_csv, "val/bleu") >= 0 and metric(trained_csv, "train/tokens_per_s") > 0
    assert metric(trained_csv, "val/bleu_averaged") == selected["scores"]["averaged"]

    # the test scores come from the files in the run dir, as the sacrebleu command computes them
    translations = run_dir / "translations"
    report = json.loads((translations / "test.scores.json").read_text())
    assert report["bleu"]["score"] == pytest.approx(train_bleu, abs=1e-9)
    assert metric(trained_csv, "test/chrf") == pytest.approx(report["chrf"]["score"], abs=1e-9)
    sacrebleu_cli = str(Path(sys.executable).parent / "sacrebleu")
    printed = subprocess.run([sacrebleu_cli, str(translations / "test.ref"), "-w", "6"], capture_output=True, text=True,
                             stdin=open(translations / "test.hyp"), check=True).stdout
    assert json.loads(printed)["score"] == round(train_bleu, 6)
    fra = [line.split("\t") for line in lines(pairs)]
    test_sources, test_references = lines(translations / "test.src"), lines(translations / "test.ref")
    assert len(test_sources) == len(test_references) == len(lines(translations / "test.hyp")) > 0
    assert all([source, reference] in [pair[:2] for pair in fra] for source, reference in zip(test_sources, test_references))

    translated = run_cli("attnlab-translate", f"ckpt_path={chosen}", *(f"text={s}" for s in D2L_SOURCES), env=THREADS)
    outputs = translated.stdout.splitlines()
    assert len(outputs) == 4 and any(outputs)

    evaluated = run_cli("attnlab-eval", f"ckpt_path={run_dir}", env=THREADS)  # a run dir: its chosen checkpoint
    assert f"checkpoint: {chosen}" in evaluated.stdout
    assert [before[s] for s in D2L_SOURCES] == outputs == [examples(evaluated.stdout)[s] for s in D2L_SOURCES]
    (eval_dir,) = run_dirs(tmp_path, "eval")
    assert metric(eval_dir / "csv" / "metrics.csv", "test/bleu") == pytest.approx(train_bleu, abs=1e-9)
    assert lines(eval_dir / "translations" / "test.hyp") == lines(translations / "test.hyp")
    assert f"{report['bleu']['verbose']}  [{report['bleu']['signature']}]" in evaluated.stdout
    assert report["chrf"]["signature"] in evaluated.stdout and report["ter"]["signature"] in evaluated.stdout

    # attnlab-translate ref=FILE scores its output the same way
    scored = run_cli("attnlab-translate", f"ckpt_path={chosen}", f"input={translations / 'test.src'}",
                     f"ref={translations / 'test.ref'}", env=THREADS)
    assert scored.stdout.splitlines() == lines(translations / "test.hyp")
    assert scored.stderr.splitlines()[-3:] == [f"{report[m]['verbose']}  [{report[m]['signature']}]" for m in report
                                               if m != "sentences"]


def test_translate_names_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match="unexpected argument 'txt=go .'"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "txt=go ."])
    with pytest.raises(SystemExit, match="nothing to translate"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}"])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "text=go ."])
    with pytest.raises(SystemExit, match="decode.beam_size='many' is not a valid int"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "text=go .", "decode.beam_size=many"])
    with pytest.raises(SystemExit, match="ref file not found"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "text=go .", f"ref={tmp_path / 'missing.txt'}"])
    (tmp_path / "ref.txt").write_text("va !\nallez !\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="ref=.*ref.txt holds 2 lines for 1 sentences"):
        translate_main([f"ckpt_path={tmp_path / 'x.ckpt'}", "text=go .", f"ref={tmp_path / 'ref.txt'}"])
