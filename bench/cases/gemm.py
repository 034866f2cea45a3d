"""Case 7a: the fp32 GEMM peak of this machine, measured with large square matmuls in this run.

The best median over the sizes is the peak that model FLOP utilisation (``mfu``) divides by.
"""
from __future__ import annotations

import torch

from bench.cases.common import Context
from bench.harness import CaseResult, Contender, Figure, Row, gemm_flops, measure

GFLOP = 1e9


def measure_peak(ctx: Context) -> tuple[CaseResult, float]:
    result = CaseResult("gemm", "fp32 GEMM peak of this machine")
    plan = {256: 16, 512: 4} if ctx.quick else {1024: 16, 2048: 3, 3072: 1}  # n: matmuls per timed sample
    generator = torch.Generator().manual_seed(ctx.seed)
    contenders = []
    for n, count in plan.items():
        a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
        out = torch.empty(n, n)

        def step(a=a, b=b, out=out, n=n, count=count) -> float:
            for _ in range(count):
                torch.mm(a, b, out=out)
            return count * gemm_flops(n) / GFLOP

        contenders.append(Contender(f"torch.mm {n}x{n}", step, probe_memory=False))
    measured = measure(contenders, ctx.warmup, ctx.repeats)
    for contender in contenders:
        result.rows.append(Row(result.name, contender.name, "GFLOP/s (fp32)", Figure.rate(measured[contender.name])))
    peak = max(m.rate for m in measured.values())
    result.notes.append(f"peak {peak:.1f} GFLOP/s on {torch.get_num_threads()} threads (best median over sizes)")
    return result, peak


def gemm_peak(ctx: Context) -> float:
    """This run's GEMM peak in GFLOP/s, measured once (by this case, or on demand by ``mfu``)."""
    if "gemm_peak" not in ctx.shared:
        ctx.shared["gemm_result"], ctx.shared["gemm_peak"] = measure_peak(ctx)
    return ctx.shared["gemm_peak"]


def run(ctx: Context) -> CaseResult:
    gemm_peak(ctx)
    return ctx.shared["gemm_result"]
