"""Case 1: a Transformer MT training step (forward, loss, backward, clipping, optimizer) in useful tokens/s.

attnlab trains on its own length-bucketed fra-eng batches; the references see the very same sentences padded
to the fixed length ``FIXED_LEN`` (d2l's ``num_steps`` style). Beside them, fixed-length synthetic batches
without padding compare the implementations alone. Every contender uses attnlab's loss (label-smoothed,
padding-masked cross-entropy) and optimizer from ``experiment=transformer_mt``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bench.cases.common import FIXED_LEN, MT_BATCH, Context, build_net, compose_train, cycle, first, num_parameters, training_step
from bench.harness import CaseResult, Contender, Figure, Goal, Row, measure
from bench.reference.explicit_transformer import ExplicitTransformer
from bench.reference.torch_transformer import TorchTransformerMT

TORCH = "torch.nn.Transformer"
EXPLICIT = "explicit (d2l-style)"
DIMS = ("d_model", "num_heads", "num_encoder_layers", "num_decoder_layers", "dropout", "max_len", "tie_output")
BLOCK_DIMS = ("d_ff", "activation")


def sizes(ctx: Context) -> list[str]:
    return ["transformer"] if ctx.quick else ["transformer", "transformer_small"]


def pad_to(batch, length: int, pad_id: int):
    """The same sentences padded to ``length`` columns (the references' fixed-length batches)."""

    def widen(x: Tensor) -> Tensor:
        out = torch.full((x.shape[0], length), pad_id, dtype=x.dtype)
        out[:, : x.shape[1]] = x
        return out

    return batch._replace(src=widen(batch.src), tgt_in=widen(batch.tgt_in), tgt_out=widen(batch.tgt_out))


def shrink(batch, rows: int):
    """The first ``rows`` sentences of a batch, trimmed to their own longest (quick mode's small batches)."""
    src_len, tgt_len = int(batch.src_lens[:rows].max()), int(batch.tgt_lens[:rows].max())
    return batch._replace(src=batch.src[:rows, :src_len], src_lens=batch.src_lens[:rows],
                          tgt_in=batch.tgt_in[:rows, :tgt_len], tgt_out=batch.tgt_out[:rows, :tgt_len],
                          tgt_lens=batch.tgt_lens[:rows], index=batch.index[:rows])


def synthetic_batches(count: int, rows: int, length: int, src_vocab: int, tgt_vocab: int, bos_id: int,
                      specials: int, seed: int):
    """Full-length random batches: no padding anywhere, so every position is a useful token."""
    from attnlab.data.pairs import TranslationBatch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        src = torch.randint(specials, src_vocab, (rows, length), generator=generator)
        tgt = torch.randint(specials, tgt_vocab, (rows, length + 1), generator=generator)
        tgt[:, 0] = bos_id
        lens = torch.full((rows,), length)
        index = torch.arange(rows)
        batches.append(TranslationBatch(src, lens, tgt[:, :-1].contiguous(), tgt[:, 1:].contiguous(), lens, index))
    return batches


def mt_contenders(models: dict, batches: dict, loss_of, optimizer_for, pad_id: int, per_sample: int) -> list[Contender]:
    contenders = []
    for name, (model, forward) in models.items():
        items = [(b, int((b.tgt_out != pad_id).sum())) for b in batches[name]]
        optimizer = optimizer_for(model)

        def loss_fn(item, forward=forward):
            batch = item[0]
            return loss_of(forward(batch), batch.tgt_out)

        useful = lambda item: item[1]  # noqa: E731
        step = training_step(model, loss_fn, optimizer, cycle(items), useful, per_sample)
        probe = training_step(model, loss_fn, optimizer, cycle(items[:1]), useful, 1)
        contenders.append(Contender(name, step, memory_step=probe))
    return contenders


def contestants(ctx: Context, size: str, ids: dict):
    """attnlab's Transformer of ``model=<size>`` and the two references at its sizes: ``{name: (model,
    forward(batch) -> logits)}``, the shared loss and optimizer factory, and the sizes."""
    from attnlab.lit.seq2seq import masked_cross_entropy

    cfg = compose_train(ctx, "experiment=transformer_mt", f"model={size}")
    torch.manual_seed(ctx.seed)
    net = build_net(cfg, **ids)
    dims = {key: cfg.model.net[key] for key in DIMS} | {key: cfg.model.net.block[key] for key in BLOCK_DIMS}
    vocab = (ids["src_vocab_size"], ids["tgt_vocab_size"], ids["pad_id"])
    torch_ref = TorchTransformerMT(*vocab, **dims)
    explicit = ExplicitTransformer(*vocab, **dims)
    models = {
        "attnlab": (net, lambda b: net(b.src, b.src_lens, b.tgt_in).logits),
        TORCH: (torch_ref, lambda b: torch_ref(b.src, b.src_lens, b.tgt_in)),
        EXPLICIT: (explicit, lambda b: explicit(b.src, b.src_lens, b.tgt_in)),
    }
    smoothing, pad_id, options = float(cfg.model.label_smoothing), ids["pad_id"], cfg.model.optimizer

    def loss_of(logits: Tensor, target: Tensor) -> Tensor:
        return masked_cross_entropy(logits, target, pad_id, smoothing)

    def optimizer_for(model) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=options.lr, betas=tuple(options.betas), eps=options.eps)

    return models, loss_of, optimizer_for, dims


def run(ctx: Context) -> CaseResult:
    result = CaseResult("transformer_train", "Transformer MT training step")
    data = ctx.fra_eng
    ids = data.spec().as_dict()
    pad_id = ids["pad_id"]
    num_batches, per_sample, rows = (2, 1, 32) if ctx.quick else (12, 3, MT_BATCH)
    real = [shrink(b, rows) for b in first(data.train_dataloader(), num_batches)]
    padded = [pad_to(b, FIXED_LEN, pad_id) for b in real]
    useful = sum(int((b.tgt_out != pad_id).sum()) for b in real)
    computed = sum(b.tgt_out.numel() for b in real)
    fixed = sum(b.tgt_out.numel() for b in padded)
    synthetic = synthetic_batches(num_batches, rows, FIXED_LEN, ids["src_vocab_size"], ids["tgt_vocab_size"],
                                  ids["bos_id"], 4, ctx.seed)
    result.notes.append(
        f"fra-eng train batches of {rows} sentences (max_len {FIXED_LEN}, longer ones truncated): target "
        f"positions computed per useful token: attnlab bucketed {computed / useful:.2f}, references padded to "
        f"{FIXED_LEN} {fixed / useful:.2f}; synthetic batches {rows}x{FIXED_LEN}, no padding"
    )
    result.notes.append(f"{per_sample} step(s) per timed sample; vocab src/tgt {ids['src_vocab_size']}/{ids['tgt_vocab_size']}")
    for size in sizes(ctx):
        models, loss_of, optimizer_for, dims = contestants(ctx, size, ids)
        counts = {name: num_parameters(model) for name, (model, _) in models.items()}
        result.notes.append(f"{size}: parameters " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        label = f"{size} ({dims['d_model']}d, {dims['num_encoder_layers']}+{dims['num_decoder_layers']} layers, FFN {dims['d_ff']})"
        for setting, batches in (
            (f"{label}, fra-eng: attnlab bucketed, refs padded to {FIXED_LEN}",
             {"attnlab": real, TORCH: padded, EXPLICIT: padded}),
            (f"{label}, synthetic {rows}x{FIXED_LEN} (no padding)",
             {name: synthetic for name in models}),
        ):
            for model, _ in models.values():
                model.train()
            repeats = ctx.repeats if size == "transformer" else ctx.heavy_repeats()  # larger: slower steps
            measured = measure(mt_contenders(models, batches, loss_of, optimizer_for, pad_id, per_sample),
                               ctx.warmup, repeats)
            goals = []
            if "fra-eng" in setting:
                goals = [Goal(">= 2x explicit", ">=", 2.0, EXPLICIT), Goal(">= 1.0x nn.Transformer", ">=", 1.0, TORCH)]
            result.rows.append(Row(
                result.name, setting, "useful target tokens/s", Figure.rate(measured["attnlab"]),
                [Figure.rate(measured[TORCH]), Figure.rate(measured[EXPLICIT])], goals,
            ))
    return result
