"""Case 6: peak memory of one multi-head self-attention forward + backward against sequence length.

Method: the allocator peak (torch profiler memory events) of the forward and backward pass beyond the inputs
and parameters that exist before it, in this process; deterministic, so one probe per point. At d2l's
Transformer width (256, 4 heads), batch 1, the last eighth of the keys padded.
"""
from __future__ import annotations

import torch

from bench.cases.common import Context
from bench.harness import MIB, CaseResult, Figure, Goal, Row, loglog_slope, peak_allocated
from bench.reference.explicit import ExplicitMultiHeadAttention

D_MODEL, HEADS, TRAIN_DROPOUT = 256, 4, 0.1
FUSED = "attnlab (SDPA)"
FUSED_DROPOUT = f"attnlab (SDPA, dropout {TRAIN_DROPOUT})"
ATTNLAB_EXPLICIT = "attnlab explicit path (need_weights)"
EXPLICIT = "explicit (d2l-style)"


def lengths(ctx: Context) -> list[int]:
    return [128, 256, 512] if ctx.quick else [128, 256, 512, 1024, 2048, 4096]


def run(ctx: Context) -> CaseResult:
    from attnlab.attention.multihead import MultiHeadAttention
    from attnlab.attention.scorers import ScaledDotProductScorer

    result = CaseResult("attention_memory", "attention memory, forward + backward")
    torch.manual_seed(ctx.seed)
    fused = MultiHeadAttention(D_MODEL, HEADS, ScaledDotProductScorer, dropout=0.0)
    dropped = MultiHeadAttention(D_MODEL, HEADS, ScaledDotProductScorer, dropout=TRAIN_DROPOUT)
    explicit = ExplicitMultiHeadAttention(D_MODEL, HEADS, dropout=0.0)
    peaks: dict[str, list[float]] = {FUSED: [], FUSED_DROPOUT: [], ATTNLAB_EXPLICIT: [], EXPLICIT: []}
    for length in lengths(ctx):
        x = torch.randn(1, length, D_MODEL, requires_grad=True)
        valid = torch.tensor([length - length // 8])
        keep = torch.arange(length) < valid[:, None]  # (1, T) True = real key
        runs = {
            FUSED: lambda: fused(x, x, x, key_padding_mask=keep).output,
            FUSED_DROPOUT: lambda: dropped(x, x, x, key_padding_mask=keep).output,
            ATTNLAB_EXPLICIT: lambda: fused(x, x, x, key_padding_mask=keep, need_weights=True).output,
            EXPLICIT: lambda: explicit(x, x, x, valid),
        }
        for name, forward in runs.items():
            def step(forward=forward):
                forward().sum().backward()
                for module in (fused, dropped, explicit):  # no gradients exist between probes
                    module.zero_grad(set_to_none=True)
                x.grad = None

            step()  # warm-up: lazily built kernels and buffers are not part of the peak
            peaks[name].append(peak_allocated(step) / MIB)
        result.rows.append(Row(
            result.name, f"T={length}, width {D_MODEL}, {HEADS} heads, batch 1", "peak MiB (lower is better)",
            Figure(FUSED, peaks[FUSED][-1]), [Figure(name, values[-1]) for name, values in list(peaks.items())[1:]],
        ))
    slopes = {name: loglog_slope(lengths(ctx), values) for name, values in peaks.items()}
    result.rows.append(Row(
        result.name, f"T={lengths(ctx)[0]}..{lengths(ctx)[-1]}", "growth exponent of peak memory (1 linear, 2 quadratic)",
        Figure(FUSED, slopes[FUSED]), [Figure(name, slopes[name]) for name in list(slopes)[1:]],
        [Goal("<= 1.2 (linear)", "<=", 1.2)], comparable=False,
    ))
    result.notes.append(
        "method: allocator peak during forward + backward (torch profiler memory events), beyond inputs and "
        "parameters; CPU SDPA uses its fused flash kernel only without attention dropout: in training with "
        "dropout > 0 it falls back to the math path, which materialises the (B, H, T, T) weights"
    )
    return result
