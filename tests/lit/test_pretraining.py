"""BERT pretraining module: the loss counts only the chosen positions, it falls, metrics and optimiser policy."""
import functools
import logging
import math
import random

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from tiny_models import tiny_bert
from torch import nn

from attnlab.data.bert_pretraining import WikiText2DataModule
from attnlab.data.pretraining_examples import PretrainingBatch
from attnlab.data.tokenizers import word
from attnlab.training.optim import linear_warmup_decay
from attnlab.lit.pretraining import PretrainingModule, mean_pairwise_cosine, pretraining_losses
from attnlab.layers.norm import MaskedBatchNorm, real_tokens
from attnlab.models.bert import BertForPretraining, PretrainingOutput, prediction_rows

SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our neighbour"]
VERBS = ["sat on", "looked at", "walked to", "painted", "found"]
OBJECTS = ["the mat", "the river bank", "the red house", "a small boat", "the old bridge"]


def write_corpus(directory, paragraphs=(120, 12, 12), seed=0):
    """A tiny WikiText-2 look-alike: a heading, then paragraphs of 2-4 templated sentences."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), paragraphs):
        lines = [" = heading = \n"]
        for _ in range(count):
            sentences = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(rng.randint(2, 4))]
            lines.append(" " + " . ".join(sentences) + " . \n")
        (directory / f"wiki.{split}.tokens").write_text("".join(lines), encoding="utf-8")
    return directory


@pytest.fixture
def datamodule(tmp_path):
    data = WikiText2DataModule(
        functools.partial(word, min_freq=1), write_corpus(tmp_path / "wikitext-2"), batch_size=16, max_len=24, seed=0
    )
    data.setup("fit")
    return data


def module_for(data, lr=1e-2, scheduler=None):
    net = BertForPretraining(tiny_bert(**data.spec().as_dict(), d_model=32, num_layers=1, d_ff=64))
    return PretrainingModule(net, functools.partial(torch.optim.AdamW, lr=lr), scheduler, weight_decay=0.01,
                             plot_attention=False)  # no run dir here: plots would land in the working directory


def trainer(**overrides):
    kwargs = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0,
        inference_mode=False,  # validate() before fit() would leave inference-mode tensors in the metric states
    ) | overrides
    return pl.Trainer(**kwargs)


def _batch(mask):
    batch_size, slots = mask.shape
    return PretrainingBatch(
        tokens=torch.zeros(batch_size, 8, dtype=torch.long), segments=torch.zeros(batch_size, 8, dtype=torch.long),
        valid_lens=torch.full((batch_size,), 8), mlm_positions=torch.zeros(batch_size, slots, dtype=torch.long),
        mlm_labels=torch.randint(0, 11, (batch_size, slots)), mlm_mask=mask, nsp_labels=torch.tensor([1, 0, 1]),
    )


def with_padding_slots(batch: PretrainingBatch) -> PretrainingBatch:
    """``batch`` with the last prediction slot of every other row made a padding slot (as a shorter row has)."""
    mask = batch.mlm_mask.clone()
    mask[::2, -1] = False
    return batch._replace(mlm_mask=mask)


def test_mean_pairwise_cosine_is_the_mean_over_pairs_of_different_rows():
    vectors = torch.randn(5, 8)
    expected = [F.cosine_similarity(vectors[i], vectors[j], dim=0) for i in range(5) for j in range(5) if i != j]
    torch.testing.assert_close(mean_pairwise_cosine(vectors), torch.stack(expected).mean())
    assert mean_pairwise_cosine(torch.ones(3, 4) * torch.tensor([[1.0], [2.0], [0.5]])).item() == pytest.approx(1.0)


def test_mlm_loss_is_the_mean_over_real_slots_only():
    mask = torch.tensor([[True, True, False, False], [True, False, False, False], [True, True, True, True]])
    batch = _batch(mask)
    logits = torch.randn(3, 4, 11)  # at every slot; the net gives the real ones only
    output = PretrainingOutput(torch.zeros(3, 8, 2), torch.zeros(3, 2), logits[mask], torch.randn(3, 2))
    losses = pretraining_losses(output, batch)
    real = F.cross_entropy(logits[mask], batch.mlm_labels[mask])
    torch.testing.assert_close(losses.mlm, real)
    d2l_style = F.cross_entropy(logits.flatten(0, 1), batch.mlm_labels.flatten())  # padding slots counted
    assert not torch.allclose(losses.mlm, d2l_style)
    torch.testing.assert_close(losses.nsp, F.cross_entropy(output.nsp_logits, batch.nsp_labels))
    torch.testing.assert_close(losses.total, losses.mlm + losses.nsp)

    moved = logits.clone()
    moved[1, 0] += 5 * torch.randn(11)  # a real slot does count
    assert not torch.allclose(pretraining_losses(output._replace(mlm_logits=moved[mask]), batch).mlm, losses.mlm)


def test_loss_ignores_unchosen_positions_of_the_real_model(datamodule):
    """The head predicts only at the gathered positions: no logits exist elsewhere, and outputs at unchosen
    positions can change arbitrarily (here: the MLM head's input there) without moving the loss."""
    module = module_for(datamodule).eval()
    batch = with_padding_slots(next(iter(datamodule.val_dataloader())))
    output = module(batch)
    assert not batch.mlm_mask.all()  # padding slots exist: the net predicts at none of them
    assert output.mlm_logits.shape == (int(batch.mlm_mask.sum()), module.net.vocab_size)
    chosen = torch.zeros_like(batch.tokens, dtype=torch.bool).scatter(1, batch.mlm_positions, batch.mlm_mask)
    hidden = output.hidden.masked_fill(~chosen.unsqueeze(-1), 123.0)  # garbage at every unchosen position
    logits = module.net.mlm_head(prediction_rows(hidden, batch.mlm_positions, batch.mlm_mask))
    torch.testing.assert_close(
        pretraining_losses(output._replace(mlm_logits=logits), batch).mlm, pretraining_losses(output, batch).mlm
    )


@pytest.mark.parametrize("norm", [nn.LayerNorm, MaskedBatchNorm])
def test_head_on_the_real_slots_gives_the_loss_and_accuracy_of_the_head_on_every_slot(datamodule, norm):
    """Before issue 23 the MLM head ran on every slot (B, P), batch norm was told the real ones, and the loss and
    accuracy skipped the padding slots; the head on the real slots alone gives the same numbers."""
    torch.manual_seed(0)
    net = BertForPretraining(tiny_bert(**datamodule.spec().as_dict(), d_model=32, num_layers=1, d_ff=64, norm=norm)).train()
    batch = with_padding_slots(next(iter(datamodule.val_dataloader())))
    mask = batch.mlm_mask
    output = net(batch.tokens, batch.segments, batch.valid_lens, batch.mlm_positions, mask)
    head, hidden = net.mlm_head, output.hidden.detach()
    every_slot = hidden.gather(1, batch.mlm_positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # (B, P, D)
    with torch.no_grad(), real_tokens(mask):
        before = F.linear(head.norm(head.activation(head.dense(every_slot))), head.decoder_weight, head.bias)
    labels = batch.mlm_labels.masked_fill(~mask, -100)
    loss_before = F.cross_entropy(before.flatten(0, 1), labels.flatten(), ignore_index=-100)
    accuracy_before = ((before.argmax(-1) == batch.mlm_labels) & mask).sum() / mask.sum()
    torch.testing.assert_close(pretraining_losses(output, batch).mlm.detach(), loss_before)
    accuracy = (output.mlm_logits.argmax(-1) == batch.mlm_labels[mask]).float().mean()
    torch.testing.assert_close(accuracy, accuracy_before)


class KeepOutputs(pl.Callback):
    def __init__(self):
        self.outputs = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.outputs.append((outputs, int(batch.valid_lens.sum())))


def accuracies(module, datamodule, precision: str) -> tuple[float, float]:
    """MLM accuracy over the masked slots and NSP accuracy over the pairs of the validation set, counted here."""
    hits = slots = nsp_hits = pairs = 0
    module.eval()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16-mixed"):
        for batch in datamodule.val_dataloader():
            output = module(batch)
            hits += int((output.mlm_logits.argmax(-1) == batch.mlm_labels[batch.mlm_mask]).sum())
            slots += int(batch.mlm_mask.sum())
            nsp_hits += int((output.nsp_logits.argmax(-1) == batch.nsp_labels).sum())
            pairs += len(batch.nsp_labels)
    return hits / slots, nsp_hits / pairs


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # what trainer.precision=auto picks, either way
def test_loss_falls_and_metrics_are_logged(datamodule, precision):
    module = module_for(datamodule, lr=1e-2, scheduler=functools.partial(linear_warmup_decay, warmup_steps=2))
    keep = KeepOutputs()
    run = trainer(max_epochs=4, callbacks=[keep], precision=precision)
    before = run.validate(module, datamodule=datamodule, verbose=False)[0]
    run.fit(module, datamodule=datamodule)
    metrics = dict(run.callback_metrics)
    after = run.validate(module, datamodule=datamodule, verbose=False)[0]
    assert after["val/mlm_loss"] < before["val/mlm_loss"] - 0.5
    assert after["val/loss"] < before["val/loss"]
    losses = [outputs["loss"].item() for outputs, _ in keep.outputs]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    for stage in ("train", "val"):
        for name in ("mlm_loss", "mlm_ppl", "mlm_acc", "nsp_loss", "nsp_acc", "pooled_cos"):
            assert f"{stage}/{name}" in metrics, f"{stage}/{name}"
    assert math.isclose(float(metrics["val/mlm_ppl"]), math.exp(float(metrics["val/mlm_loss"])), rel_tol=1e-5)
    assert (after["val/mlm_acc"], after["val/nsp_acc"]) == pytest.approx(accuracies(module, datamodule, precision))
    # Throughput's contract: every training step reports its non-padding input tokens
    assert all(outputs["num_tokens"] == tokens for outputs, tokens in keep.outputs)
    # total_steps came from the trainer: the linear decay ends at zero exactly on the last step
    steps = run.estimated_stepping_batches
    assert run.global_step == steps
    assert run.lr_scheduler_configs[0].scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-2 * 1e-2)


def test_no_weight_decay_on_biases_and_norms_and_tied_weight_once(datamodule):
    module = module_for(datamodule)
    optimizer = module.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.net.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {
        "bert.embeddings.norm.weight", "bert.embeddings.norm.bias", "mlm_head.bias", "bert.pooler.dense.bias",
        "bert.encoder.blocks.0.self_norm.weight", "mlm_head.norm.weight",
    }
    everything = decay["params"] + no_decay["params"]
    assert len(everything) == len({id(p) for p in everything}) == len(list(module.net.parameters()))


def test_too_long_warmup_for_a_short_run_is_cut_with_a_warning(datamodule, caplog):
    module = module_for(datamodule, scheduler=functools.partial(linear_warmup_decay, warmup_steps=1000))
    run = trainer(max_steps=3)
    with caplog.at_level(logging.WARNING, logger="attnlab.training.optim"):
        run.fit(module, datamodule=datamodule)
    assert "warmup_steps=1000 >= total_steps=3" in caplog.text
    assert run.global_step == 3


def test_negative_weight_decay_is_rejected(datamodule):
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -1"):
        PretrainingModule(module_for(datamodule).net, torch.optim.AdamW, weight_decay=-1)


def test_the_nsp_weight_scales_the_pair_loss_in_the_total(datamodule):
    batch = next(iter(datamodule.train_dataloader()))
    module = module_for(datamodule)
    output = module(batch)
    plain, weighted = pretraining_losses(output, batch), pretraining_losses(output, batch, nsp_weight=0.25)
    assert torch.equal(plain.total, plain.mlm + plain.nsp)
    assert torch.allclose(weighted.total, plain.mlm + 0.25 * plain.nsp)
    module = PretrainingModule(module.net, torch.optim.AdamW, nsp_weight=0.25)
    assert module.hparams.nsp_weight == 0.25
    with pytest.raises(ValueError, match="nsp_weight must be >= 0, got -1"):
        PretrainingModule(module.net, torch.optim.AdamW, nsp_weight=-1)


def write_two_sentence_corpus(directory, seed=0):
    """Paragraphs of two sentences: an opening from one word set, a follow-up from another. A true next sentence is
    always a follow-up; a random sentence of another paragraph is an opening half the time, which gives it away."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    openings, follow_ups = [f"open{i}" for i in range(8)], [f"follow{i}" for i in range(8)]
    for split, count in (("train", 160), ("valid", 120), ("test", 8)):
        lines = [" = heading = \n"]
        for _ in range(count):
            sentences = [" ".join(rng.choices(words, k=rng.randint(3, 6))) for words in (openings, follow_ups)]
            lines.append(" " + " . ".join(sentences) + " . \n")
        (directory / f"wiki.{split}.tokens").write_text("".join(lines))
    return directory


def batches_of(examples: PretrainingBatch, size: int = 16):
    for start in range(0, len(examples.nsp_labels), size):
        yield PretrainingBatch(*(field[start : start + size] for field in examples))


def test_nsp_alone_learns_pairs_whose_answer_the_text_gives_away(tmp_path):
    """The [CLS] -> pooler -> NSP head path learns: an NSP-only loss beats chance on held-out pairs where B's words
    decide the answer for half of the negatives (best possible accuracy 0.75, chance 0.5)."""
    torch.manual_seed(0)
    data = WikiText2DataModule(functools.partial(word, min_freq=1), write_two_sentence_corpus(tmp_path / "wikitext-2"),
                               batch_size=16, max_len=16, seed=0)
    data.setup("fit")
    net = BertForPretraining(tiny_bert(**data.spec().as_dict(), d_model=32, num_layers=2, d_ff=64))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()
    for epoch in range(15):
        for batch in batches_of(data.examples("train", epoch)):
            output = net(batch.tokens, batch.segments, batch.valid_lens, batch.mlm_positions, batch.mlm_mask)
            loss = pretraining_losses(output, batch).nsp  # the pair task alone
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    hits = total = 0
    with torch.no_grad():
        for epoch in range(3):  # three draws of the held-out paragraphs' pairs
            for batch in batches_of(data.examples("valid", epoch)):
                output = net(batch.tokens, batch.segments, batch.valid_lens, batch.mlm_positions, batch.mlm_mask)
                hits += int((output.nsp_logits.argmax(-1) == batch.nsp_labels).sum())
                total += len(batch.nsp_labels)
    assert total == 360 and hits / total >= 0.65
