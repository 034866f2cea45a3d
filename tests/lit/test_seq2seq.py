"""Seq2SeqModule: the masked / smoothed loss, every ablation choice of the real configs trains, and a Lightning
run on a tiny parallel corpus logs loss, token accuracy, corpus BLEU/chrF/TER scored against the raw references,
writes the files they come from, heatmaps and d2l's example BLEU."""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import sacrebleu
import torch
from hydra.utils import instantiate
from tiny_models import tiny_transformer

from attnlab.cli.validate import fill_missing
from attnlab.data.corpora import ParallelCorpus
from attnlab.data.pairs import TranslationBatch
from attnlab.data.tokenizers import word
from attnlab.data.translation import TranslationDataModule
from attnlab.lit.seq2seq import Seq2SeqModule, masked_cross_entropy
from attnlab.models.decoding import greedy_decode

PAD, BOS, EOS = 1, 2, 3  # the translation datamodule's special ids (<unk> is 0)
VOCAB = 12
TINY = ["model.net.d_model=16", "model.net.num_heads=2", "model.net.block.d_ff=32", "model.net.dropout=0.0",
        "model.net.num_encoder_layers=1", "model.net.num_decoder_layers=1", "model.net.max_len=32"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention
    yield
    torch.set_num_threads(threads)


def reverse_batch(generator: torch.Generator, size: int = 32) -> TranslationBatch:
    """Random symbol strings (ids 4..11) and their reversal, padded as the translation datamodule pads."""
    lengths = torch.randint(2, 7, (size,), generator=generator)
    width = int(lengths.max()) + 1
    src = torch.full((size, width), PAD)
    tgt_in, tgt_out = src.clone(), src.clone()
    for row, length in enumerate(lengths.tolist()):
        symbols = torch.randint(4, VOCAB, (length,), generator=generator)
        src[row, :length], src[row, length] = symbols, EOS
        tgt_in[row, 0], tgt_in[row, 1 : length + 1] = BOS, symbols.flip(0)
        tgt_out[row, :length], tgt_out[row, length] = symbols.flip(0), EOS
    return TranslationBatch(src, lengths + 1, tgt_in, tgt_out, lengths + 1, torch.arange(size))


@pytest.fixture
def compose_model(compose):
    """``compose_model(*overrides)``: the LightningModule exactly as ``attnlab-train model=transformer <overrides>``
    builds it."""

    def _compose(*overrides: str) -> Seq2SeqModule:
        cfg = compose("model=transformer", *TINY, *overrides)
        fill_missing(cfg.model, dict(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pad_id=PAD, bos_id=BOS, eos_id=EOS))
        return instantiate(cfg.model)

    return _compose


def losses_while_training(module: Seq2SeqModule, steps: int, lr: float = 3e-3) -> list[float]:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    losses = []
    for _ in range(steps):
        loss = module.compute_loss(reverse_batch(generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_trains(module: Seq2SeqModule, choice: str) -> None:
    losses = losses_while_training(module, steps=60)
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) / 5 < 0.75 * losses[0], f"{choice}: loss went {losses[0]:.3f} -> {losses[-5:]}"


def test_every_attention_option_trains(compose_model, attention_option):
    assert_trains(compose_model(f"attention={attention_option}"), attention_option)


def test_every_pos_encoding_option_trains(compose_model, pos_encoding_option):
    assert_trains(compose_model(f"pos_encoding={pos_encoding_option}"), pos_encoding_option)


def test_every_norm_option_trains(compose_model, norm_option):
    assert_trains(compose_model(f"norm={norm_option}"), norm_option)


@pytest.mark.parametrize("choice", ["norm.placement=pre", "model.net.block.activation=gelu",
                                    "model.net.share_embeddings=true", "model.net.tie_output=false"])
def test_every_other_ablation_choice_trains(compose_model, choice):
    assert_trains(compose_model(choice), choice)


def test_ablation_axes_reach_the_model(compose_model):
    module = compose_model("attention=additive", "pos_encoding=rotary", "norm=rmsnorm", "norm.placement=pre",
                           "model.net.block.activation=gelu")
    net = module.net
    block = net.decoder.blocks[0]
    assert type(block.self_attention.scorer).__name__ == "AdditiveScorer"
    assert type(block.cross_attention.scorer).__name__ == "AdditiveScorer"
    assert type(net.tgt_embed.positions).__name__ == "RotaryPositionalEncoding"
    assert type(block).__name__ == "PreNormBlock"
    assert type(block.ffn_norm).__name__ == "RMSNorm"
    assert type(net.encoder.final_norm).__name__ == "RMSNorm"
    assert type(block.feed_forward.activation).__name__ == "GELU"
    assert net.output_proj.weight is net.tgt_embed.embedding.weight


def test_a_trained_model_reverses_sequences(compose_model):
    torch.manual_seed(0)
    module = compose_model("model.net.d_model=32", "model.net.block.d_ff=64", "model.net.num_encoder_layers=2",
                           "model.net.num_decoder_layers=2")
    losses_while_training(module, steps=250, lr=5e-3)
    module.eval()
    batch = reverse_batch(torch.Generator().manual_seed(123), size=64)
    decoded = greedy_decode(module.net, batch.src, batch.src_lens, max_steps=10)
    expected = [row[: int(length) - 1].tolist() for row, length in zip(batch.tgt_out, batch.tgt_lens)]
    got = [row[: int(length)].tolist() for row, length in zip(decoded.tokens, decoded.lengths)]
    assert sum(e == g for e, g in zip(expected, got)) >= 0.8 * len(expected)


def test_masked_loss_ignores_padding():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, VOCAB, generator=generator)
    targets = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    loss = masked_cross_entropy(logits, targets, PAD)
    real = targets != PAD
    expected = -torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)[real].mean()
    torch.testing.assert_close(loss, expected)
    noisy = logits.clone()
    noisy[~real] = 100 * torch.randn(int((~real).sum()), VOCAB, generator=generator)
    torch.testing.assert_close(masked_cross_entropy(noisy, targets, PAD), loss)
    torch.testing.assert_close(masked_cross_entropy(noisy, targets, PAD, 0.1), masked_cross_entropy(logits, targets, PAD, 0.1))


def test_label_smoothing_mixes_in_the_uniform_distribution():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, VOCAB, generator=generator)
    targets = torch.tensor([[5, EOS, PAD], [6, 7, EOS]])
    real = targets != PAD
    log_probs = torch.log_softmax(logits, -1)[real]  # (N, V)
    nll = -log_probs.gather(-1, targets[real].unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(-1)
    eps = 0.1
    torch.testing.assert_close(masked_cross_entropy(logits, targets, PAD, eps), ((1 - eps) * nll + eps * uniform).mean())
    net = tiny_transformer(VOCAB, VOCAB, pad_id=PAD, bos_id=BOS, eos_id=EOS)
    module = Seq2SeqModule(net, partial(torch.optim.Adam, lr=1e-3), label_smoothing=eps)
    batch = reverse_batch(torch.Generator().manual_seed(3))
    out = module.compute_loss(batch)
    torch.testing.assert_close(out.loss, masked_cross_entropy(out.logits, batch.tgt_out, PAD, eps))
    assert module.compute_loss(batch, label_smoothing=0.0).loss < out.loss  # what val/loss reports
    assert out.num_tokens == int(batch.tgt_lens.sum())
    with pytest.raises(ValueError, match="label_smoothing must lie in \\[0, 1\\), got 1.5"):
        Seq2SeqModule(net, partial(torch.optim.Adam), label_smoothing=1.5)
    with pytest.raises(ValueError, match="unknown decode options \\['beams'\\]"):
        Seq2SeqModule(net, partial(torch.optim.Adam), decode={"beams": 4})


# ---- a Lightning run on a tiny parallel corpus -----------------------------------------------------------------
def write_reverse_corpus(directory, num_pairs: int = 240, rare_words: bool = False, max_words: int = 5) -> str:
    """Random sentences and their word-reversed "translation" (``w`` -> ``w_fr``). With ``rare_words`` a third of
    the pairs carry a name seen once in the whole corpus (``<unk>`` under min_freq 2) on both sides."""
    rng = random.Random(0)
    words = "go home calm lost i he is am we see cat dog".split()
    sources, targets = [], []
    for number in range(num_pairs):
        sentence = [rng.choice(words) for _ in range(rng.randint(1, max_words))]
        if rare_words and number % 3 == 0:
            sentence.insert(rng.randint(0, len(sentence)), f"name{number}")
        sources.append(" ".join(sentence))
        targets.append(" ".join(f"{w}_fr" for w in reversed(sentence)))
    (directory / "train.en").write_text("\n".join(sources) + "\n")
    (directory / "train.fr").write_text("\n".join(targets) + "\n")
    return str(directory / "train")


def reverse_datamodule(directory, min_freq: int = 1, max_len: int | None = None, **kwargs) -> TranslationDataModule:
    corpus = ParallelCorpus(write_reverse_corpus(directory, **kwargs), "en", "fr")
    module = TranslationDataModule(corpus, tokenizer=partial(word, min_freq=min_freq), preprocess=False,
                                   max_len=max_len, batch_size=16, val_fraction=0.15, test_fraction=0.15, output_dir=directory, seed=0)
    module.setup("fit")
    return module


@pytest.fixture
def datamodule(tmp_path) -> TranslationDataModule:
    return reverse_datamodule(tmp_path)


def make_module(datamodule, **kwargs) -> Seq2SeqModule:
    """The module as attnlab-train wires it: sized by the data's spec, evaluating through its text."""
    sizes = datamodule.spec().as_dict()
    net = tiny_transformer(**sizes, d_model=32, d_ff=64, num_encoder_layers=1, num_decoder_layers=1)
    module = Seq2SeqModule(net, partial(torch.optim.Adam, lr=5e-3), **kwargs)
    module.text = datamodule.task_text()
    return module


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


def read_lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # what trainer.precision=auto picks, either way
def test_lightning_run_logs_metrics_bleu_heatmaps_and_examples(datamodule, tmp_path, capsys, precision):
    pl.seed_everything(0)
    module = make_module(datamodule, decode={"strategy": "beam", "beam_size": 3, "max_steps": 8},
                         examples=[["go home", "home_fr go_fr"], ["he is calm", "calm_fr is_fr he_fr"]],
                         plot_attention=False)  # plotting every epoch only costs time here
    trainer = quiet_trainer(tmp_path, max_epochs=8, gradient_clip_val=1.0, precision=precision)
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    assert {"train/loss_epoch", "val/loss", "val/token_acc", "val/bleu", "val/chrf", "val/ter"} <= set(metrics)
    # val/bleu is sacrebleu's corpus BLEU of the whole split, in corpus order, against the raw references
    by_index = {}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):  # as validation decoded
        for batch in datamodule.val_dataloader():  # batched by length: batch.index puts them back in corpus order
            translations = datamodule.decode_target(module.translate(batch.src, batch.src_lens).tokens)
            by_index.update(zip(batch.index.tolist(), translations))
    _, references = datamodule.texts("val")
    assert sorted(by_index) == list(range(len(references))) and len(references) == len(datamodule.datasets["val"]) > 16
    hypotheses = [by_index[i] for i in range(len(references))]
    assert read_lines(tmp_path / "translations" / "val.hyp") == hypotheses
    assert float(metrics["val/bleu"]) == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-3)
    assert float(metrics["val/chrf"]) == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score, abs=1e-3)
    # (above chance, 1/12 a token; held-out sources never occur among the training sources)
    assert float(metrics["val/bleu"]) > 20 and float(metrics["val/token_acc"]) > 0.4

    module.plot_attention = True
    results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    assert {"test/loss", "test/token_acc", "test/bleu", "test/chrf", "test/ter", "test/d2l_bleu"} <= set(results)
    printed = capsys.readouterr().out
    assert "go home => " in printed and "he is calm => " in printed and ", bleu " in printed
    for name in ("encoder_self", "decoder_self", "cross"):
        assert (tmp_path / "plots" / f"attention_{name}.png").stat().st_size > 2000


def test_scores_use_the_raw_references_despite_unknown_words_and_truncation(tmp_path):
    """Rare names are <unk> in the vocabulary and long pairs are truncated to max_len: the references rebuilt from
    target ids lose both, the scored references keep them. The logged scores are sacrebleu's on the written files."""
    datamodule = reverse_datamodule(tmp_path, min_freq=2, max_len=7, num_pairs=300, rare_words=True, max_words=7)
    pl.seed_everything(0)
    module = make_module(datamodule, decode={"max_steps": 9}, plot_attention=False)
    trainer = quiet_trainer(tmp_path, max_epochs=6, gradient_clip_val=1.0)
    trainer.fit(module, datamodule=datamodule)

    sources, references = datamodule.texts("val")
    assert sum("name" in line for line in references) > 5 and max(len(line.split()) for line in references) > 7
    translated, rebuilt = {}, {}  # by the pairs' index; rebuilt: the references decoded from target ids
    for batch in datamodule.val_dataloader():
        hypotheses = datamodule.decode_target(module.translate(batch.src, batch.src_lens).tokens)
        translated.update(zip(batch.index.tolist(), hypotheses))
        rebuilt.update(zip(batch.index.tolist(), datamodule.decode_target(batch.tgt_out)))
    hypotheses, rebuilt = [translated[i] for i in range(len(references))], [rebuilt[i] for i in range(len(references))]
    logged = float(trainer.callback_metrics["val/bleu"])
    assert logged == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-9)
    assert logged > 10
    # the references rebuilt from ids lose the names and the cut words, and score differently
    assert rebuilt != references
    assert abs(sacrebleu.corpus_bleu(hypotheses, [rebuilt]).score - logged) > 0.5

    directory = tmp_path / "translations"  # the logged figures are those of the files the run leaves
    assert read_lines(directory / "val.src") == sources and read_lines(directory / "val.ref") == references
    assert read_lines(directory / "val.hyp") == hypotheses

    report = json.loads((directory / "val.scores.json").read_text())
    assert report["sentences"] == len(references)
    assert report["bleu"]["score"] == pytest.approx(logged, abs=1e-9)
    assert report["bleu"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert report["chrf"]["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    assert report["ter"]["score"] == pytest.approx(float(trainer.callback_metrics["val/ter"]), abs=1e-9)
    # the sacrebleu command line with its defaults prints the same BLEU (to its one decimal)
    proc = subprocess.run([str(Path(sys.executable).parent / "sacrebleu"), str(directory / "val.ref")],
                          stdin=open(directory / "val.hyp"), capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["score"] == round(logged, 1)


class RecordOutputs(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append((outputs, batch))


def test_training_step_reports_useful_tokens_and_scheduler_gets_the_run_length(datamodule, tmp_path):
    seen = {}

    def schedule(optimizer, warmup_steps, total_steps):
        seen.update(warmup=warmup_steps, total=total_steps)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    module = make_module(datamodule, scheduler=partial(schedule, warmup_steps=2), plot_attention=False)
    record = RecordOutputs()
    trainer = quiet_trainer(tmp_path, max_epochs=2, limit_train_batches=3, limit_val_batches=1, callbacks=[record])
    trainer.fit(module, datamodule=datamodule)
    assert seen == {"warmup": 2, "total": 6}
    assert len(record.seen) == 6
    for outputs, batch in record.seen:
        assert outputs["num_tokens"] == int((batch.tgt_out != PAD).sum()) == int(batch.tgt_lens.sum())
        assert torch.isfinite(outputs["loss"])


def test_checkpoint_hyperparameters_are_plain_data():
    net = tiny_transformer(VOCAB, VOCAB, pad_id=PAD, bos_id=BOS, eos_id=EOS, dropout=0.2)
    module = Seq2SeqModule(net, partial(torch.optim.Adam), decode={"strategy": "beam"}, examples=[("go .", "va !")])
    assert dict(module.hparams) == {
        "label_smoothing": 0.0, "decode": {"strategy": "beam"}, "examples": [["go .", "va !"]],
        "plot_attention": True, "compile": False, "weight_decay": None,
    }


def test_evaluation_reads_its_text_and_no_datamodule(datamodule, tmp_path):
    """Given plain loaders (no datamodule), the module scores, writes and plots through the text handed to it."""
    module = make_module(datamodule, decode={"max_steps": 8})
    trainer = quiet_trainer(tmp_path)
    trainer.validate(module, dataloaders=datamodule.val_dataloader(), verbose=False)
    assert {"val/loss", "val/token_acc", "val/bleu", "val/chrf", "val/ter"} <= set(trainer.callback_metrics)
    assert read_lines(tmp_path / "translations" / "val.ref") == datamodule.texts("val")[1]
    assert (tmp_path / "plots" / "attention_cross.png").is_file()
    module.text = None
    with pytest.raises(ValueError, match=r"module.text = datamodule.task_text\(\)"):
        trainer.validate(module, dataloaders=datamodule.val_dataloader(), verbose=False)


def test_the_loss_counts_the_target_tokens_collation_counted(datamodule):
    """Whatever sits past a pair's ``tgt_lens`` is padding: the loss and its token count ignore it."""
    module = make_module(datamodule).eval()
    batch = next(iter(datamodule.train_dataloader()))
    past = torch.arange(batch.tgt_out.shape[1]) >= batch.tgt_lens[:, None]  # (B, T)
    assert past.any()
    scrambled = batch._replace(tgt_out=batch.tgt_out.masked_fill(past, EOS))
    with torch.no_grad():
        plain, other = module.compute_loss(batch), module.compute_loss(scrambled)
    torch.testing.assert_close(other.loss, plain.loss)
    assert int(other.num_tokens) == int(batch.tgt_lens.sum())
