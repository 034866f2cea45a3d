"""``trainer.precision=auto``: bf16 mixed precision where the hardware multiplies bf16 matrices natively, fp32 elsewhere.

On an Intel Xeon with AMX a 2048² bf16 matmul runs ~7x faster than fp32 on one thread, and a Transformer training
step under bf16 autocast 1.5x (d2l size) to 2.4x (base size) faster; on a CPU without bf16 units (e.g. AMD EPYC
with AVX2 only) bf16 is emulated and slower. The CPU's flags decide where they are clear (``amx_bf16``: yes; no
bf16 flag at all: no); where they are not (AVX512-BF16 dot products without AMX, ARM's ``bf16``, or no readable
flags, as on macOS) a one-off matmul timing decides. GPUs: bf16 from compute capability 8.0 (Ampere) on; older GPUs
only emulate it (``torch.cuda.is_bf16_supported()`` counts emulation), so they get fp32.
"""
from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch

log = logging.getLogger(__name__)

BF16 = "bf16-mixed"
FP32 = "32-true"
NATIVE_FLAGS = ("amx_bf16",)  # bf16 matrix units
PARTIAL_FLAGS = ("avx512_bf16", "bf16")  # bf16 dot-product instructions (x86 AVX512-BF16, ARMv8.6 BF16): time them
MIN_SPEEDUP = 2.0  # of a bf16 over an fp32 GEMM, for autocast's casts to pay off in a training step
CPUINFO = Path("/proc/cpuinfo")
X86 = ("x86_64", "amd64", "i386", "i686")  # platform.machine() names of the CPUs torch's bf16 probes describe
NATIVE_CUDA_BF16 = (8, 0)  # the first compute capability with bf16 tensor cores (Ampere)


class PrecisionChoice(NamedTuple):
    precision: str  # a Lightning precision: "bf16-mixed" or "32-true"
    reason: str  # why, for the log


def read_cpu_flags(cpuinfo: Path = CPUINFO) -> set[str] | None:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``) from ``/proc/cpuinfo``; None where unreadable."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def torch_cpu_flags() -> set[str] | None:
    """The same flags as torch's own CPU probes report them (a fallback where ``/proc/cpuinfo`` is absent)."""
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    if not all(hasattr(torch.cpu, probe) for probe in probes.values()):
        return None
    return {flag for flag, probe in probes.items() if getattr(torch.cpu, probe)()}


def detect_cpu_flags() -> set[str] | None:
    """``/proc/cpuinfo``'s flags, else on x86 torch's probes, else None (an ARM CPU without ``/proc/cpuinfo``,
    e.g. Apple M2+: torch only probes x86 features, so its empty answer would wrongly mean "no bf16")."""
    flags = read_cpu_flags()
    if flags is not None:
        return flags
    return torch_cpu_flags() if platform.machine().lower() in X86 else None


def cuda_native_bf16() -> bool:
    """Whether the current CUDA GPU multiplies bf16 natively (compute capability >= 8.0), emulation not counted."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= NATIVE_CUDA_BF16


def bf16_matmul_speedup(size: int = 1024, repeats: int = 3) -> float:
    """fp32 time / bf16 time of a ``size``² matmul, best of ``repeats`` each after one warm-up (~0.1-2 s)."""

    def best(dtype: torch.dtype) -> float:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        a @ b
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        return min(times)

    return best(torch.float32) / best(torch.bfloat16)


def choose_cpu_precision(
    flags: set[str] | None, speedup: Callable[[], float] = bf16_matmul_speedup
) -> PrecisionChoice:
    """bf16 with bf16 matrix units, fp32 without any bf16 instructions, else by a one-off timing (``speedup``)."""
    if flags is not None and any(flag in flags for flag in NATIVE_FLAGS):
        return PrecisionChoice(BF16, "CPU has bf16 matrix units (amx_bf16)")
    if flags is not None and not any(flag in flags for flag in PARTIAL_FLAGS):
        return PrecisionChoice(FP32, "CPU has no bf16 instructions (no amx_bf16, avx512_bf16 or bf16 flag)")
    measured = speedup()
    known = "unknown CPU flags" if flags is None else f"CPU flags {sorted(f for f in flags if f in PARTIAL_FLAGS)}"
    precision = BF16 if measured >= MIN_SPEEDUP else FP32
    return PrecisionChoice(precision, f"{known}; a bf16 matmul ran {measured:.2f}x fp32's (bf16 from {MIN_SPEEDUP}x)")


def choose_precision(
    accelerator: str,
    *,
    cpu_flags: Callable[[], set[str] | None] = detect_cpu_flags,
    cuda_bf16: Callable[[], bool] = cuda_native_bf16,
    speedup: Callable[[], float] = bf16_matmul_speedup,
) -> PrecisionChoice:
    """The precision ``trainer.precision=auto`` means for the trainer's ``accelerator`` on this machine."""
    if accelerator in ("gpu", "cuda") or accelerator == "auto" and torch.cuda.is_available():
        if cuda_bf16():
            return PrecisionChoice(BF16, "the GPU multiplies bf16 natively (compute capability >= 8.0)")
        return PrecisionChoice(FP32, "the GPU has no native bf16 (compute capability < 8.0: emulated at best)")
    if accelerator in ("cpu", "auto"):
        return choose_cpu_precision(cpu_flags(), speedup)
    return PrecisionChoice(FP32, f"accelerator={accelerator!r}: fp32 unless trainer.precision says otherwise")


def resolve_precision(precision: str, accelerator: str, **probes) -> str:
    """``precision`` itself, or for ``auto`` the choice for this machine (logged with its reason)."""
    if precision != "auto":
        return precision
    choice = choose_precision(accelerator, **probes)
    log.info("trainer.precision=auto: %s (%s)", choice.precision, choice.reason)
    return choice.precision
