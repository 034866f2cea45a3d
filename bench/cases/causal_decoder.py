"""Case: the Transformer MT training step (forward, loss, backward, clipping, Adam) with decoder self-attention on
SDPA's ``is_causal`` path, against the explicit-mask path it took before issue 12 (``bench.reference.
explicit_mask``: the target padding mask as key mask, hence an explicit (B, 1, T, T) causal & padding mask).

Both contenders are the same network with the same weights (``experiment=transformer_mt`` sizes, one copy
each so each has its own Adam state); only the decoder's mask differs. Batches are synthetic and right-padded
as the translation data pads them (target lengths uniform in [T/2, T]), so no corpus is needed; the case checks
that both give the same logits at every real target position. Figures: useful (non-padding) target tokens/s.
"""
from __future__ import annotations

import copy

import torch

from bench.cases.common import Context, build_net, compose_train, cycle, num_parameters, training_step
from bench.harness import CaseResult, Contender, Figure, Row, measure
from bench.reference.explicit_mask import explicit_mask_logits

IDS = dict(src_vocab_size=8000, tgt_vocab_size=8000, pad_id=1, bos_id=2, eos_id=3)  # fra-eng-sized vocabularies
SPECIALS = 4  # ids below this are <unk>, <pad>, <bos>, <eos>
EXPLICIT = "explicit mask (before)"


def settings(ctx: Context) -> list[tuple[str, int, int, float | None]]:
    """(model size, rows, target length T, dropout; None: the recipe's): fra-eng's short sentences, then longer
    ones where attention weighs more; without dropout CPU SDPA runs its fused kernels (with it, its math path)."""
    if ctx.quick:
        return [("transformer", 16, 16, None)]
    return [("transformer", 128, 16, None), ("transformer", 16, 128, None), ("transformer", 16, 128, 0.0),
            ("transformer", 8, 256, 0.0), ("transformer_small", 32, 64, None)]


def padded_batches(count: int, rows: int, length: int, seed: int):
    """Right-padded source/target batches: every row its own length in [length/2, length]."""
    from attnlab.data.pairs import TranslationBatch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        src_lens = torch.randint(length // 2, length + 1, (rows,), generator=generator)
        tgt_lens = torch.randint(length // 2, length + 1, (rows,), generator=generator)
        src = torch.randint(SPECIALS, IDS["src_vocab_size"], (rows, length), generator=generator)
        tgt = torch.randint(SPECIALS, IDS["tgt_vocab_size"], (rows, length + 1), generator=generator)
        tgt[:, 0] = IDS["bos_id"]
        positions = torch.arange(length + 1)
        src[positions[:length] >= src_lens[:, None]] = IDS["pad_id"]
        tgt[positions >= tgt_lens[:, None] + 1] = IDS["pad_id"]  # <bos> + tgt_lens tokens
        index = torch.arange(rows)  # (B,) row of each pair in its split
        tgt_in, tgt_out = tgt[:, :-1].contiguous(), tgt[:, 1:].contiguous()
        batches.append(TranslationBatch(src, src_lens, tgt_in, tgt_out, tgt_lens, index))
    return batches


def run(ctx: Context) -> CaseResult:
    from attnlab.lit.seq2seq import masked_cross_entropy

    result = CaseResult("causal_decoder", "decoder training step: SDPA is_causal vs explicit mask")
    count, per_sample = (2, 1) if ctx.quick else (6, 2)
    result.notes.append(
        f"synthetic right-padded batches (lengths uniform in [T/2, T]), vocabularies {IDS['src_vocab_size']}; "
        f"{per_sample} step(s) per timed sample; label smoothing and Adam as experiment=transformer_mt"
    )
    for size, rows, length, dropout in settings(ctx):
        overrides = [] if dropout is None else [f"model.net.dropout={dropout}"]  # the blocks' too (interpolated)
        cfg = compose_train(ctx, "experiment=transformer_mt", f"model={size}", *overrides)
        torch.manual_seed(ctx.seed)
        net = build_net(cfg, **IDS)
        before = copy.deepcopy(net)
        batches = padded_batches(count, rows, length, ctx.seed)
        probe = batches[0]
        real = probe.tgt_in != IDS["pad_id"]
        with torch.no_grad():  # in eval mode: no dropout, so the two forwards are comparable
            ours = net.eval()(probe.src, probe.src_lens, probe.tgt_in).logits[real]
            same = torch.allclose(ours, explicit_mask_logits(before.eval(), probe.src, probe.src_lens, probe.tgt_in)[real],
                                  atol=1e-4, rtol=1e-4)
        net.train()
        before.train()
        result.notes.append(f"{size} T={length}: {num_parameters(net):,} parameters; logits equal at real "
                            f"positions: {same}")
        smoothing, options = float(cfg.model.label_smoothing), cfg.model.optimizer
        forwards = {
            "attnlab": (net, lambda model, b: model(b.src, b.src_lens, b.tgt_in).logits),
            EXPLICIT: (before, lambda model, b: explicit_mask_logits(model, b.src, b.src_lens, b.tgt_in)),
        }
        contenders = []
        for name, (model, forward) in forwards.items():
            optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, betas=tuple(options.betas), eps=options.eps)

            def loss_fn(batch, model=model, forward=forward):
                return masked_cross_entropy(forward(model, batch), batch.tgt_out, IDS["pad_id"], smoothing)

            useful = lambda batch: int(batch.tgt_lens.sum())  # noqa: E731
            step = training_step(model, loss_fn, optimizer, cycle(batches), useful, per_sample)
            contenders.append(Contender(name, step, memory_step=training_step(
                model, loss_fn, optimizer, cycle(batches[:1]), useful, 1)))
        repeats = ctx.repeats if size == "transformer" else ctx.heavy_repeats()
        measured = measure(contenders, ctx.warmup, repeats)
        dims = cfg.model.net
        result.rows.append(Row(
            result.name, f"{size} ({dims.d_model}d, {dims.num_encoder_layers}+{dims.num_decoder_layers} layers, "
            f"dropout {dims.dropout}), {rows}x{length} targets", "useful target tokens/s", Figure.rate(measured["attnlab"]),
            [Figure.rate(measured[EXPLICIT])],
        ))
    return result
