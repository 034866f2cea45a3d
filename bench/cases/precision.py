"""Case: fp32 vs bf16-mixed training steps, side by side (what ``trainer.precision=auto`` chooses between).

The same net (two copies of one initialisation) trains on the same batches in fp32 and under
``torch.autocast("cpu", bfloat16)`` (Lightning's ``bf16-mixed``: fp32 weights and optimizer, bf16 matrix
products, losses in fp32), for the Transformer MT step and the BERT pretraining step, at d2l's sizes and a
larger one. Batches are synthetic (full length, no padding), so the case needs no corpus. A bf16 GEMM row
shows what the hardware offers; the choice ``auto`` makes here is in the notes.
"""
from __future__ import annotations

import copy
from contextlib import nullcontext

import torch

from bench.cases.bert_train import synthetic_batches as bert_batches
from bench.cases.common import Context, build_net, compose_train, cycle, training_step
from bench.cases.transformer_train import synthetic_batches as mt_batches
from bench.harness import CaseResult, Contender, Figure, Row, gemm_flops, measure

FP32, BF16 = "fp32", "bf16-mixed"
MT_IDS = {"src_vocab_size": 8000, "tgt_vocab_size": 8000, "pad_id": 1, "bos_id": 2, "eos_id": 3}
BERT_IDS = {"vocab_size": 20000, "pad_id": 0, "max_len": 64}


def settings(ctx: Context) -> list[tuple[str, str, int, int]]:
    """(experiment, model, rows, length) per measured setting."""
    if ctx.quick:
        return [("transformer_mt", "transformer", 16, 16), ("bert_pretrain", "bert", 8, 64)]
    return [("transformer_mt", "transformer", 128, 16), ("transformer_mt", "transformer_small", 64, 32),
            ("bert_pretrain", "bert", 128, 64), ("bert_pretrain", "bert_small", 64, 64)]


def steps(ctx: Context, experiment: str, size: str, rows: int, length: int):
    """The net of ``experiment=<experiment> model=<size>``, its loss on one batch, its batches and useful tokens."""
    from attnlab.lit.pretraining import pretraining_losses
    from attnlab.lit.seq2seq import masked_cross_entropy

    cfg = compose_train(ctx, f"experiment={experiment}", f"model={size}")
    count = 2 if ctx.quick else 4
    torch.manual_seed(ctx.seed)
    if experiment == "transformer_mt":
        net = build_net(cfg, **MT_IDS)
        batches = mt_batches(count, rows, length, MT_IDS["src_vocab_size"], MT_IDS["tgt_vocab_size"],
                             MT_IDS["bos_id"], 4, ctx.seed)
        smoothing = float(cfg.model.label_smoothing)

        def loss_of(model, b):
            return masked_cross_entropy(model(b.src, b.src_lens, b.tgt_in).logits, b.tgt_out, MT_IDS["pad_id"], smoothing)

        return net, loss_of, batches, lambda b: int(b.tgt_lens.sum()), cfg
    net = build_net(cfg, **BERT_IDS)
    batches = bert_batches(count, rows, length, 9, BERT_IDS["vocab_size"], 5, ctx.seed)

    def bert_loss(model, b):
        return pretraining_losses(model(b.tokens, b.segments, b.valid_lens, b.mlm_positions, b.mlm_mask), b).total

    return net, bert_loss, batches, lambda b: int(b.valid_lens.sum()), cfg


def bf16_gemm_row(ctx: Context) -> Row:
    n = 512 if ctx.quick else 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    contenders = [Contender(name, lambda x=x, y=y: (x @ y, gemm_flops(n) / 1e9)[1], probe_memory=False)
                  for name, (x, y) in ((BF16, (a.bfloat16(), b.bfloat16())), (FP32, (a, b)))]
    measured = measure(contenders, ctx.warmup, ctx.repeats)
    return Row("precision", f"GEMM {n}x{n}: bf16 vs fp32", "GFLOP/s", Figure.rate(measured[BF16]),
               [Figure.rate(measured[FP32])])


def run(ctx: Context) -> CaseResult:
    from attnlab.training.precision import choose_precision

    result = CaseResult("precision", "training step: fp32 vs bf16-mixed")
    choice = choose_precision("cpu")
    result.notes.append(f"trainer.precision=auto here: {choice.precision} ({choice.reason})")
    result.rows.append(bf16_gemm_row(ctx))
    for experiment, size, rows, length in settings(ctx):
        net, loss_of, batches, useful, cfg = steps(ctx, experiment, size, rows, length)
        contenders = []
        for name in (BF16, FP32):
            model = copy.deepcopy(net).train()
            options = cfg.model.optimizer
            optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr)

            def loss_fn(batch, model=model, name=name):
                autocast = torch.autocast("cpu", dtype=torch.bfloat16) if name == BF16 else nullcontext()
                with autocast:  # forward and loss under autocast, backward outside (as Lightning's bf16-mixed)
                    return loss_of(model, batch)

            contenders.append(Contender(name, training_step(model, loss_fn, optimizer, cycle(batches), useful, 1)))
        repeats = ctx.repeats if size in ("transformer", "bert") else ctx.heavy_repeats()
        measured = measure(contenders, ctx.warmup, repeats)
        dims = cfg.model.net.get("bert", cfg.model.net)
        result.rows.append(Row(
            result.name, f"{size} ({dims.d_model}d), synthetic {rows}x{length}", "useful tokens/s",
            Figure.rate(measured[BF16]), [Figure.rate(measured[FP32])],
        ))
    result.notes.append("bf16-mixed is the attnlab column, fp32 the reference: the ratio is bf16's speed-up")
    return result
