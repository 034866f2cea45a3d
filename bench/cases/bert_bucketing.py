"""Case: the BERT pretraining step on the data module's own WikiText-2 batches, length-bucketed
(``data.bucket_size``) against the drawn order (each batch cut to its longest pair, as without bucketing).

The same net (two copies of one initialisation), the same epoch's pairs and masks, the optimizer and loss of
``experiment=bert_pretrain``; a timed sample trains on every one of the first ``count`` batches of the epoch, so
both sides see batches of a whole epoch's length mix. Needs only attnlab (no reference library).
"""
from __future__ import annotations

import copy
import itertools

import torch

from bench.cases.bert_train import ROWS, prepared, sizes
from bench.cases.common import Context, build_net, compose_train, cycle, training_step
from bench.harness import CaseResult, Contender, Figure, Row, measure

BUCKET_SIZE = 4096  # pairs sorted by length together (of ~44k an epoch)
ORDERS = {"bucketed": BUCKET_SIZE, "drawn order": None}


def epoch_batches(ctx: Context, rows: int, bucket_size: int | None, count: int) -> list:
    """The first ``count`` training batches of epoch 0 as ``experiment=bert_pretrain`` serves them."""
    from hydra.utils import instantiate

    bucketing = f"data.bucket_size={'null' if bucket_size is None else bucket_size}"
    cfg = compose_train(ctx, "experiment=bert_pretrain", f"data.batch_size={rows}", bucketing)
    data = instantiate(cfg.data)
    data.setup("fit")
    return list(itertools.islice(data.train_dataloader(), count))


def run(ctx: Context) -> CaseResult:
    from attnlab.lit.pretraining import pretraining_losses

    result = CaseResult("bert_bucketing", "BERT pretraining step: length-bucketed vs drawn-order batches")
    data = ctx.wikitext  # skips without WikiText-2
    rows, count = (16, 2) if ctx.quick else (ROWS, 16)
    served = {name: epoch_batches(ctx, rows, bucket_size, count) for name, bucket_size in ORDERS.items()}
    for name, batches in served.items():
        cells, real = sum(b.tokens.numel() for b in batches), sum(int(b.valid_lens.sum()) for b in batches)
        slots = sum(b.mlm_positions.shape[1] for b in batches) / count
        result.notes.append(f"{name}: {count} batches of {rows} pairs (max_len {data.max_len}), {real / cells:.0%} of "
                            f"the positions real, {slots:.1f} prediction slots per row")
    for size in sizes(ctx):
        cfg = compose_train(ctx, "experiment=bert_pretrain", f"model={size}")
        torch.manual_seed(ctx.seed)
        net = build_net(cfg, **data.spec().as_dict())
        contenders = []
        for name, batches in served.items():
            model = copy.deepcopy(net).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.model.optimizer.lr)

            def loss_fn(item, model=model):
                b = item["batch"]
                out = model(b.tokens, b.segments, b.valid_lens, b.mlm_positions, b.mlm_mask)
                return pretraining_losses(out, b).total

            step = training_step(model, loss_fn, optimizer, cycle([prepared(b) for b in batches]),
                                 lambda item: item["useful"], count)
            contenders.append(Contender(name, step, probe_memory=False))
        measured = measure(contenders, min(ctx.warmup, 1), ctx.heavy_repeats())
        dims = cfg.model.net.bert
        result.rows.append(Row(
            result.name, f"{size} ({dims.d_model}d, {dims.num_layers} layers), WikiText-2 epoch 0, {rows} pairs a batch: "
            f"bucketed (bucket_size {BUCKET_SIZE}) vs drawn order", "non-padding input tokens/s",
            Figure.rate(measured["bucketed"]), [Figure.rate(measured["drawn order"])],
        ))
    return result
