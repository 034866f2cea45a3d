"""Case 7b: model FLOP utilisation of a training step at the larger sizes: the model's matmul FLOPs per step
(forward counted by ``torch.utils.flop_counter``, times 3 for forward + backward) over the step time, divided
by this run's fp32 GEMM peak (case ``gemm``). On fixed-length synthetic batches, so no FLOP is padding.

The FLOPs are counted once, on the explicit reference (plain matmuls only; the same products as attnlab's,
attention scores included), and credited to every contender alike: the ratio is a throughput ratio.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.cases import bert_train, transformer_train
from bench.cases.common import FIXED_LEN, MT_BATCH, Context, cycle, training_step
from bench.cases.gemm import GFLOP, gemm_peak
from bench.harness import CaseResult, Contender, Figure, Goal, Row, Skip, measure

GOAL = Goal(">= 80% of GEMM peak", ">=", 80.0)


def forward_flops(forward, batch) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(batch)
    return counter.get_total_flops()


def _row(name: str, setting: str, measured: dict, flops_per_token: float, peak: float, goal: bool) -> Row:
    names = list(measured)
    scale = flops_per_token / GFLOP / peak * 100.0  # tokens/s -> % of peak
    return Row(name, setting, "MFU, % of fp32 GEMM peak", Figure.rate(measured["attnlab"], scale),
               [Figure.rate(measured[n], scale) for n in names[1:]], [GOAL] if goal else [])


def _transformer(ctx: Context, result: CaseResult, size: str, rows: int, peak: float, goal: bool) -> None:
    ids = ctx.fra_eng.spec().as_dict()
    models, loss_of, optimizer_for, dims = transformer_train.contestants(ctx, size, ids)
    batches = transformer_train.synthetic_batches(2, rows, FIXED_LEN, ids["src_vocab_size"], ids["tgt_vocab_size"],
                                                  ids["bos_id"], 4, ctx.seed)
    flops = 3 * forward_flops(models[transformer_train.EXPLICIT][1], batches[0])
    tokens = rows * FIXED_LEN
    for model, _ in models.values():
        model.train()
    contenders = transformer_train.mt_contenders(models, {name: batches for name in models}, loss_of, optimizer_for,
                                                 ids["pad_id"], 1)
    for contender in contenders:
        contender.probe_memory = False
    measured = measure(contenders, ctx.warmup, ctx.heavy_repeats())
    setting = f"{size} ({dims['d_model']}d, {dims['num_encoder_layers']}+{dims['num_decoder_layers']} layers), synthetic {rows}x{FIXED_LEN}"
    result.rows.append(_row(result.name, setting, measured, flops / tokens, peak, goal))
    result.notes.append(f"{setting}: {flops / GFLOP:.1f} GFLOP per step; attnlab "
                        f"{measured['attnlab'].rate * flops / tokens / GFLOP:.1f} GFLOP/s")


def _bert(ctx: Context, result: CaseResult, size: str, rows: int, peak: float) -> None:
    data = ctx.wikitext
    ids = data.spec().as_dict()
    runs, optimizers, dims = bert_train.contestants(ctx, size, ids)
    del runs[bert_train.HF_STANDARD]  # its extra FLOPs (logits at every position) are not model FLOPs
    slots = data.examples("valid").mlm_positions.shape[1]
    batches = bert_train.synthetic_batches(2, rows, ids["max_len"], slots, ids["vocab_size"], 5, ctx.seed)
    items = [bert_train.prepared(b) for b in batches]
    explicit, _ = runs[bert_train.EXPLICIT]
    b = batches[0]
    flops = 3 * forward_flops(lambda x: explicit(x.tokens, x.segments, x.valid_lens, x.mlm_positions), b)
    tokens = rows * ids["max_len"]
    contenders = []
    for name, (model, loss_fn) in runs.items():
        model.train()
        step = training_step(model, loss_fn, optimizers[id(model)], cycle(items), lambda item: item["useful"], 1)
        contenders.append(Contender(name, step, probe_memory=False))
    measured = measure(contenders, ctx.warmup, ctx.heavy_repeats())
    setting = f"{size} ({dims['d_model']}d, {dims['num_layers']} layers), synthetic {rows}x{ids['max_len']}"
    result.rows.append(_row(result.name, setting, measured, flops / tokens, peak, False))
    result.notes.append(f"{setting}: {flops / GFLOP:.1f} GFLOP per step; attnlab "
                        f"{measured['attnlab'].rate * flops / tokens / GFLOP:.1f} GFLOP/s")


def run(ctx: Context) -> CaseResult:
    result = CaseResult("mfu", "model FLOP utilisation at the larger sizes")
    peak = gemm_peak(ctx)
    result.notes.append(f"GEMM peak {peak:.1f} GFLOP/s (case gemm, this run)")
    mt_sizes = ["transformer"] if ctx.quick else ["transformer_small", "transformer_base"]
    rows = 16 if ctx.quick else MT_BATCH
    for size in mt_sizes:
        _transformer(ctx, result, size, rows, peak, goal=size == mt_sizes[-1])
    try:
        _bert(ctx, result, "bert" if ctx.quick else "bert_small", 16 if ctx.quick else bert_train.ROWS, peak)
    except Skip as reason:
        result.notes.append(f"BERT: skipped: {reason}")
    return result
