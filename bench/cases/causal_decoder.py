"""Case: the Transformer MT training step (forward, loss, backward, clipping, Adam) with decoder self-attention on
SDPA's ``is_causal`` path, against the explicit-mask path it took before issue 12 (``bench.reference.
explicit_mask``: the target padding mask as key mask, hence an explicit (B, 1, T, T) causal & padding mask).

Both contenders are the same network with the same weights (``experiment=transformer_mt`` sizes, one copy
each so each has its own Adam state); only the decoder's mask differs. Batches are synthetic and right-padded
as the translation data pads them (target lengths uniform in [T/2, T]), so no corpus is needed; the case checks
that both give the same logits at every real target position. Figures: useful (non-padding) target tokens/s.

With ``--device cuda`` the nets and batches live on the GPU, at larger sizes, in fp32 and under bf16 autocast
(Lightning's ``bf16-mixed``); a note per setting names, for each path's decoder self-attention, the SDPA kernel
it runs by default (the aten op the profiler records) and the backends that can run it alone (``sdpa_kernel``),
with SDPA's reason where one cannot.
"""
from __future__ import annotations

import copy
import warnings
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode
from torch.profiler import ProfilerActivity, profile

from bench.cases.common import Context, build_net, compose_train, cycle, num_parameters, training_step
from bench.harness import CaseResult, Contender, Figure, Row, measure
from bench.reference.explicit_mask import explicit_mask_logits

IDS = dict(src_vocab_size=8000, tgt_vocab_size=8000, pad_id=1, bos_id=2, eos_id=3)  # fra-eng-sized vocabularies
SPECIALS = 4  # ids below this are <unk>, <pad>, <bos>, <eos>
EXPLICIT = "explicit mask (before)"
FP32, BF16 = "fp32", "bf16-mixed"
BACKENDS = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH)


def settings(ctx: Context) -> list[tuple[str, int, int, float | None, str]]:
    """(model size, rows, target length T, dropout (None: the recipe's), precision): fra-eng's short sentences,
    then longer ones where attention weighs more; without dropout CPU SDPA runs its fused kernels (with it, its
    math path). A GPU gets longer targets and larger models, each in fp32 and bf16-mixed."""
    cuda = ctx.device.type == "cuda"
    if ctx.quick:
        sizes = [("transformer", 16, 16, None)]
    elif cuda:
        sizes = [("transformer", 128, 16, None), ("transformer_small", 64, 128, None),
                 ("transformer_base", 32, 256, None), ("transformer_base", 16, 512, None)]
    else:
        sizes = [("transformer", 128, 16, None), ("transformer", 16, 128, None), ("transformer", 16, 128, 0.0),
                 ("transformer", 8, 256, 0.0), ("transformer_small", 32, 64, None)]
    return [(*size, precision) for size in sizes for precision in ((FP32, BF16) if cuda else (FP32,))]


class SdpaCalls(TorchFunctionMode):
    """Records the arguments of every ``scaled_dot_product_attention`` call made inside it."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[tuple, dict]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.calls.append((args, kwargs))
        return func(*args, **kwargs)


def sdpa_kernels(forward: Callable[[], object]) -> str:
    """For the first causal SDPA call of ``forward()`` (decoder self-attention: ``is_causal`` or a (B, 1, T, T)
    mask), replayed with its backward: the kernel SDPA picks by default (its aten op, as the profiler records it),
    the backends that can run it alone (each tried under ``sdpa_kernel``) and SDPA's reason for each that cannot."""
    with torch.no_grad(), SdpaCalls() as recorder:
        forward()
    (q, k, v), kwargs = next((args, kwargs) for args, kwargs in recorder.calls
                             if kwargs.get("is_causal") or getattr(kwargs.get("attn_mask"), "shape", (1, 1))[-2] > 1)

    def step():
        leaves = [t.detach().requires_grad_() for t in (q, k, v)]
        F.scaled_dot_product_attention(*leaves, **kwargs).float().sum().backward()

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    prefix = "aten::_scaled_dot_product_"
    ops = sorted({e.key.removeprefix(prefix) for e in prof.key_averages() if e.key.startswith(prefix)})
    usable, refused = [], []
    for backend in BACKENDS:
        with warnings.catch_warnings(record=True) as caught, sdpa_kernel(backend):
            warnings.simplefilter("always")
            try:
                step()
                usable.append(backend.name)
            except RuntimeError as error:
                reasons = [str(w.message).split(" (Triggered internally")[0] for w in caught]  # one per check
                reason = " ".join(r for r in reasons if "disabled" not in r and not r.endswith("because:"))
                refused.append(f"{backend.name} ({(reason or str(error))[:200]})")
    return f"runs {', '.join(ops)}; can run alone: {', '.join(usable)}; cannot: {'; '.join(refused) or 'none'}"


def padded_batches(count: int, rows: int, length: int, seed: int, device: torch.device):
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
        batch = TranslationBatch(src, src_lens, tgt_in, tgt_out, tgt_lens, index)
        batches.append(TranslationBatch(*(t.to(device) for t in batch)))
    return batches


def run(ctx: Context) -> CaseResult:
    from attnlab.lit.seq2seq import masked_cross_entropy

    result = CaseResult("causal_decoder", "decoder training step: SDPA is_causal vs explicit mask")
    count, per_sample = (2, 1) if ctx.quick else (6, 2)
    result.notes.append(
        f"synthetic right-padded batches (lengths uniform in [T/2, T]), vocabularies {IDS['src_vocab_size']}; "
        f"{per_sample} step(s) per timed sample; label smoothing and Adam as experiment=transformer_mt"
    )
    for size, rows, length, dropout, precision in settings(ctx):
        overrides = [] if dropout is None else [f"model.net.dropout={dropout}"]  # the blocks' too (interpolated)
        cfg = compose_train(ctx, "experiment=transformer_mt", f"model={size}", *overrides)
        torch.manual_seed(ctx.seed)
        net = build_net(cfg, **IDS).to(ctx.device)
        before = copy.deepcopy(net)
        batches = padded_batches(count, rows, length, ctx.seed, ctx.device)
        tokens = {id(batch): int(batch.tgt_lens.sum()) for batch in batches}  # on CUDA a read per step would sync
        useful = lambda batch: tokens[id(batch)]  # noqa: E731
        probe = batches[0]
        real = probe.tgt_in != IDS["pad_id"]
        with torch.no_grad():  # in eval mode: no dropout, so the two forwards are comparable
            ours = net.eval()(probe.src, probe.src_lens, probe.tgt_in).logits[real]
            same = torch.allclose(ours, explicit_mask_logits(before.eval(), probe.src, probe.src_lens, probe.tgt_in)[real],
                                  atol=1e-4, rtol=1e-4)
        net.train()
        before.train()
        note = f"{size} T={length}: {num_parameters(net):,} parameters; logits equal at real positions: {same}"
        smoothing, options = float(cfg.model.label_smoothing), cfg.model.optimizer
        forwards = {
            "attnlab": (net, lambda model, b: model(b.src, b.src_lens, b.tgt_in).logits),
            EXPLICIT: (before, lambda model, b: explicit_mask_logits(model, b.src, b.src_lens, b.tgt_in)),
        }
        contenders = []
        for name, (model, forward) in forwards.items():
            optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, betas=tuple(options.betas), eps=options.eps)

            def loss_fn(batch, model=model, forward=forward):
                # forward and loss under autocast, backward outside (as Lightning's bf16-mixed)
                with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=precision == BF16):
                    return masked_cross_entropy(forward(model, batch), batch.tgt_out, IDS["pad_id"], smoothing)

            if ctx.device.type == "cuda":
                note += f"; {precision} {name} decoder self-attention: {sdpa_kernels(partial(loss_fn, probe))}"
            step = training_step(model, loss_fn, optimizer, cycle(batches), useful, per_sample)
            contenders.append(Contender(name, step, memory_step=training_step(
                model, loss_fn, optimizer, cycle(batches[:1]), useful, 1)))
        result.notes.append(note)
        repeats = ctx.repeats if size == "transformer" else ctx.heavy_repeats()
        measured = measure(contenders, ctx.warmup, repeats, device=ctx.device)
        dims = cfg.model.net
        result.rows.append(Row(
            result.name, f"{size} ({dims.d_model}d, {dims.num_encoder_layers}+{dims.num_decoder_layers} layers, "
            f"dropout {dims.dropout}), {rows}x{length} targets, {precision}", "useful target tokens/s",
            Figure.rate(measured["attnlab"]),
            [Figure.rate(measured[EXPLICIT])],
        ))
    return result
