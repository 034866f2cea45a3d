"""Case 5: the cost of the framework: one Lightning training epoch of attnlab's LightningModule against a plain
PyTorch loop doing the same work (forward, loss, backward, clipping, optimizer and LR-schedule steps) over the
same model and the same pre-collated batches, at d2l's sizes.

The Lightning figure is the epoch itself (``on_train_epoch_start`` to ``on_train_epoch_end``): it includes the
module's logging and metrics, not the one-time set-up of ``fit`` (reported in the notes). The trainer runs bare:
no logger, checkpointing, progress bar or model summary.
"""
from __future__ import annotations

import logging
import time
import warnings

import torch
from torch.utils.data import DataLoader

from bench.cases.common import Context, build_net, compose_train, first
from bench.harness import CaseResult, Contender, Figure, Goal, Row, measure


class EpochTimer:
    """A Lightning callback recording the wall time of each training epoch (built lazily: Lightning import)."""

    def __new__(cls):
        import pytorch_lightning as pl

        class _EpochTimer(pl.Callback):
            def __init__(self):
                self.seconds = None
                self._start = None

            def on_train_epoch_start(self, trainer, pl_module):
                self._start = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):
                self.seconds = time.perf_counter() - self._start

        return _EpochTimer()


def lightning_epoch(build_module, loader, clip: float | None, fit_overheads: list[float]):
    """A timed sample: ``(1 epoch, its seconds)``; the rest of ``fit``'s wall time goes to ``fit_overheads``."""
    import pytorch_lightning as pl

    def step():
        timer = EpochTimer()
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            gradient_clip_val=clip, callbacks=[timer],
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(build_module(), train_dataloaders=loader)
        fit_overheads.append(time.perf_counter() - start - timer.seconds)
        return 1, timer.seconds

    return step


def plain_epoch(net, loss_fn, make_optimizer, loader, clip: float | None):
    def step() -> float:
        optimizer, scheduler = make_optimizer()
        for batch in loader:
            loss = loss_fn(batch)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
        return 1

    return step


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _mt(ctx: Context, num_batches: int):
    from hydra.utils import instantiate

    from attnlab.lit.seq2seq import masked_cross_entropy

    data = ctx.fra_eng
    ids = data.spec().as_dict()
    cfg = compose_train(ctx, "experiment=transformer_mt")
    torch.manual_seed(ctx.seed)
    net = build_net(cfg, **ids)
    loader = DataLoader(first(data.train_dataloader(), num_batches), batch_size=None)
    smoothing = float(cfg.model.label_smoothing)
    optimizer_factory, scheduler_factory = instantiate(cfg.model.optimizer), instantiate(cfg.model.scheduler)

    def make_optimizer():
        optimizer = optimizer_factory(params=net.parameters())
        return optimizer, scheduler_factory(optimizer=optimizer, total_steps=num_batches)

    def loss_fn(batch):
        logits = net(batch.src, batch.src_lens, batch.tgt_in).logits
        return masked_cross_entropy(logits, batch.tgt_out, ids["pad_id"], smoothing)

    return cfg, net, loader, loss_fn, make_optimizer, lambda: instantiate(cfg.model, net=net)


def _bert(ctx: Context, num_batches: int, rows: int):
    from hydra.utils import instantiate

    from attnlab.training.optim import weight_decay_groups
    from attnlab.lit.pretraining import pretraining_losses

    data = ctx.wikitext
    cfg = compose_train(ctx, "experiment=bert_pretrain")
    torch.manual_seed(ctx.seed)
    net = build_net(cfg, **data.spec().as_dict())
    epoch = data.examples("train", epoch=0)
    batches = [type(epoch)(*(field[i * rows:(i + 1) * rows] for field in epoch)) for i in range(num_batches)]
    loader = DataLoader(batches, batch_size=None)
    optimizer_factory, scheduler_factory = instantiate(cfg.model.optimizer), instantiate(cfg.model.scheduler)
    warmup = min(cfg.model.scheduler.warmup_steps, num_batches // 10)  # as PretrainingModule cuts it for short runs

    def make_optimizer():
        optimizer = optimizer_factory(params=weight_decay_groups(net, cfg.model.weight_decay))
        return optimizer, scheduler_factory(optimizer=optimizer, warmup_steps=warmup, total_steps=num_batches)

    def loss_fn(batch):
        out = net(batch.tokens, batch.segments, batch.valid_lens, batch.mlm_positions, batch.mlm_mask)
        return pretraining_losses(out, batch).total

    return cfg, net, loader, loss_fn, make_optimizer, lambda: instantiate(cfg.model, net=net)


def run(ctx: Context) -> CaseResult:
    _quiet_lightning()
    result = CaseResult("lightning_overhead", "Lightning epoch vs plain PyTorch loop")
    mt_batches, bert_batches, bert_rows = (3, 2, 16) if ctx.quick else (10, 4, 128)
    setups = {
        f"transformer_mt (d2l sizes), {mt_batches} fra-eng batches of 128": lambda: _mt(ctx, mt_batches),
        f"bert_pretrain (d2l sizes), {bert_batches} WikiText-2 batches of {bert_rows}": lambda: _bert(ctx, bert_batches, bert_rows),
    }
    for setting, setup in setups.items():
        cfg, net, loader, loss_fn, make_optimizer, build_module = setup()
        clip = cfg.trainer.get("gradient_clip_val")
        fit_overheads: list[float] = []
        contenders = [
            Contender("Lightning epoch", lightning_epoch(build_module, loader, clip, fit_overheads), probe_memory=False),
            Contender("plain PyTorch loop", plain_epoch(net, loss_fn, make_optimizer, loader, clip), probe_memory=False),
        ]
        measured = measure(contenders, ctx.warmup, ctx.heavy_repeats())
        result.rows.append(Row(
            result.name, setting, "seconds per epoch (lower is better)", Figure.seconds(measured["Lightning epoch"]),
            [Figure.seconds(measured["plain PyTorch loop"])], [Goal("<= 1.10x plain loop", "<=", 1.10, "plain PyTorch loop")],
        ))
        result.notes.append(f"{setting}: fit() set-up and tear-down outside the epoch: median "
                            f"{sorted(fit_overheads)[len(fit_overheads) // 2]:.2f} s per fit")
    return result
