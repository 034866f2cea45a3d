"""Measurement primitives shared by every case: interleaved timing, allocator peak memory, result rows.

Timing: every contender is warmed up, then the contenders run in rounds A B C, A B C, ... (interleaved, so
a slow spell of a shared machine hits all of them alike); each figure is the median over the rounds.

Peak memory (CPU): the torch profiler records every allocation and free of the c10 CPU allocator; the peak
of their running sum during one unit of work is the extra memory that work needs on top of what already
existed (parameters, inputs). Exact and deterministic, unlike RSS, which malloc caching and other processes
blur. On CUDA the caching allocator's own peak counter gives the same figure, and every timed sample ends
with a synchronize, since kernels run asynchronously.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

MIB = 2.0**20


class Skip(Exception):
    """A case (or part of one) cannot run here; the message says why (missing package or data)."""


@dataclass
class Contender:
    """One implementation under test. ``step`` does one timed sample of work and returns the work done
    (tokens, sentences, or 1 for "one run"), or ``(work, seconds)`` when it times the relevant part itself
    (a Lightning epoch inside ``fit``). Its peak allocation is probed once, outside the timed rounds,
    on ``memory_step`` (default: ``step``) unless ``probe_memory`` is off."""

    name: str
    step: Callable[[], float | tuple[float, float]]
    memory_step: Callable[[], object] | None = None
    probe_memory: bool = True
    note: str = ""


@dataclass
class Measurement:
    name: str
    seconds: list[float]  # one per round
    work: list[float]  # one per round
    peak_bytes: int | None = None
    note: str = ""

    @property
    def rates(self) -> list[float]:
        return [w / s for w, s in zip(self.work, self.seconds)]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def time(self) -> float:
        return statistics.median(self.seconds)

    def spread(self, values: list[float]) -> float:
        """Half the interquartile range over the median: the +- of a figure, relative."""
        if len(values) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return (q3 - q1) / 2 / statistics.median(values)


def _timed(step: Callable[[], float | tuple[float, float]], finish: Callable[[], None]) -> tuple[float, float]:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        work = step()
        finish()
        seconds = time.perf_counter() - start
    finally:
        gc.enable()
    if isinstance(work, tuple):
        work, seconds = work
    return seconds, float(work)


def measure(
    contenders: list[Contender], warmup: int, repeats: int, *, device: torch.device | None = None
) -> dict[str, Measurement]:
    """Warm every contender up ``warmup`` times, then time ``repeats`` interleaved rounds; probe peaks.
    ``device``: where the contenders' work runs (default: the CPU)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must be unique, got {names}")
    for contender in contenders:
        for _ in range(warmup):
            contender.step()
    on_cuda = device is not None and device.type == "cuda"
    finish = partial(torch.cuda.synchronize, device) if on_cuda else lambda: None
    peak = partial(cuda_peak_allocated, device=device) if on_cuda else peak_allocated
    results = {c.name: Measurement(c.name, [], [], note=c.note) for c in contenders}
    for _ in range(repeats):
        for contender in contenders:
            seconds, work = _timed(contender.step, finish)
            results[contender.name].seconds.append(seconds)
            results[contender.name].work.append(work)
    for contender in contenders:
        if contender.probe_memory:
            results[contender.name].peak_bytes = peak(contender.memory_step or contender.step)
    return results


def peak_allocated(fn: Callable[[], object]) -> int:
    """Peak bytes the CPU allocator holds during ``fn()`` beyond what was allocated before it."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def cuda_peak_allocated(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes the CUDA caching allocator hands out during ``fn()`` beyond what it held before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def gemm_flops(n: int) -> float:
    return 2.0 * n**3


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x: 1 for linear growth, 2 for quadratic."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


# ---- result rows ---------------------------------------------------------------------------------------------
@dataclass
class Figure:
    """One contender's figure in a row."""

    name: str
    value: float
    spread: float = 0.0  # relative half-IQR over the rounds
    peak_mib: float | None = None

    @classmethod
    def rate(cls, m: Measurement, scale: float = 1.0) -> Figure:
        return cls(m.name, m.rate * scale, m.spread(m.rates), _mib(m.peak_bytes))

    @classmethod
    def seconds(cls, m: Measurement) -> Figure:
        return cls(m.name, m.time, m.spread(m.seconds), _mib(m.peak_bytes))


def _mib(nbytes: int | None) -> float | None:
    return None if nbytes is None else nbytes / MIB


@dataclass
class Goal:
    """``ratio >= target`` (or ``<=``) against a named reference, or ``value <= / >= target`` (absolute)."""

    text: str  # as the issue states it, e.g. ">= 2x explicit"
    op: str  # ">=" | "<="
    target: float
    reference: str | None = None  # None: the goal bounds the attnlab figure itself

    def met(self, row: Row) -> bool | None:
        if self.reference is None:
            value = row.attnlab.value
        else:
            value = row.ratio(self.reference)
            if value is None:
                return None
        return value >= self.target if self.op == ">=" else value <= self.target


@dataclass
class Row:
    case: str
    setting: str  # size and data, e.g. "d2l sizes, fra-eng (bucketed vs padded to 16)"
    metric: str  # e.g. "useful tokens/s"
    attnlab: Figure
    references: list[Figure] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    comparable: bool = True  # False: the references' figures are shown, but a ratio would mean nothing

    def ratio(self, reference: str) -> float | None:
        if not self.comparable:
            return None
        for figure in self.references:
            if figure.name == reference and figure.value:
                return self.attnlab.value / figure.value
        return None


@dataclass
class CaseResult:
    name: str
    title: str
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load_average: tuple[float, float] | None = None  # 1-min load at start and end
