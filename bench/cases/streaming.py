"""Case: training from token shards as the corpus grows to 1x, 10x and 50x WikiText-2 (``--cases streaming``).

The corpus is grown from the shared fra-eng pairs (seeded shuffles of every pair, as many copies as make the
training text k times WikiText-2's 2.05M training words, counting both sides; a fraction of a copy for k below one
copy's words, as the test suite's smoke run uses) in a temp dir under the bench's
work dir, deleted afterwards; validation and test are 1,000 fixed pairs each, so only the training shards grow.
For each size, in subprocesses as a user runs them: ``attnlab-prepare`` (wall time, peak RSS), then
``attnlab-train experiment=transformer_mt data=parallel`` for a fixed number of steps on the shards, its memory
polled from outside (:mod:`bench.memory_probe`: peak RSS, PSS, anonymous memory, shard pages) and its useful
tokens/s taken between the ends of training steps (data loading included), after a warm-up.
References: the in-memory path (``data.cache_dir=null``: the same Arrow tables, prepared in the training process,
not mapped from disk) at 1x, and at the largest size one process against two ``trainer=ddp_cpu`` ranks.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.cases.common import REPO_ROOT, Context, compose_train
from bench.harness import CaseResult, Contender, Figure, Goal, Row, measure
from bench.memory_probe import TreeSampler

SIZES, QUICK_SIZES = (1, 10, 50), (1, 2)
HELD_OUT = 1000  # pairs of validation and of test, fixed
BATCH = 32  # rows a training batch: small, so that reading and collating weigh more in a step
BIN = Path(sys.executable).parent


def _grow(pairs: list[tuple[str, str]], root: Path, rows: int, seed: int) -> Path:
    """``root/train.{en,fr}``: ``rows`` pairs, seeded shuffles of ``pairs`` one after another (the last one cut
    short); returns the prefix ``root/train``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(root / "train.en", "w") as en, open(root / "train.fr", "w") as fr:
        for start in range(0, rows, len(pairs)):
            order = list(range(len(pairs)))
            rng.shuffle(order)
            order = order[: rows - start]
            en.write("".join(pairs[i][0] + "\n" for i in order))
            fr.write("".join(pairs[i][1] + "\n" for i in order))
    return root / "train"


def _write_split(pairs: list[tuple[str, str]], prefix: Path) -> Path:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for side, suffix in ((0, "en"), (1, "fr")):
        Path(f"{prefix}.{suffix}").write_text("".join(pair[side] + "\n" for pair in pairs))
    return prefix


def _run(program: str, args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds and memory peaks of ``program args`` and its child processes; fails with its output's tail."""
    log = cwd / f"{program}.log"
    start = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen([str(BIN / program), *args], cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        with TreeSampler(proc.pid) as sampler:
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{program} {' '.join(args)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start, sampler.peak


def _rate(clock_prefix: Path, warmup: int) -> tuple[float, float, list[dict]]:
    """Useful tokens/s over the steps after ``warmup``, summed over ranks; the median ms a step waited for its
    batch; each rank's record."""
    records = [json.loads(p.read_text()) for p in sorted(clock_prefix.parent.glob(f"{clock_prefix.name}.rank*.json"))]
    rates = [sum(r["tokens"][warmup:]) / (r["times"][-1] - r["times"][warmup - 1]) for r in records]
    waits = [1000 * (start - end) for r in records for start, end in zip(r["starts"][warmup:], r["times"][warmup - 1:])]
    return sum(rates), statistics.median(waits), records


def _loaders_interleaved(ctx: Context, data: list[str], shard_root: Path) -> dict:
    """Rows/s of the training loader (reading + collating, no model) from the shards and from the in-memory
    tables, in this one process, interleaved: the data path's own cost, apart from a busy machine's noise."""
    from hydra.utils import instantiate
    from omegaconf import open_dict

    loaders = {}
    for name, cache_dir in (("shards", shard_root), ("in-memory", None)):
        cfg = compose_train(ctx, *data, f"data.batch_size={BATCH}")
        with open_dict(cfg):
            cfg.data.cache_dir = None if cache_dir is None else str(cache_dir)
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        loaders[name] = datamodule.train_dataloader()

    def contender(name: str) -> Contender:
        batches = iter(())

        def step() -> float:
            nonlocal batches
            rows = 0
            for _ in range(50):
                batch = next(batches, None)
                if batch is None:
                    batches = iter(loaders[name])
                    batch = next(batches)
                rows += len(batch.src_lens)
            return rows

        return Contender(name, step, probe_memory=False)

    return measure([contender("shards"), contender("in-memory")], ctx.warmup, max(ctx.repeats, 5))


def run(ctx: Context) -> CaseResult:
    from attnlab.data.text_io import read_tab_pairs

    result = CaseResult("streaming", "training from token shards, 1x / 10x / 50x WikiText-2")
    wiki_words = len(ctx.require("wikitext-2/wiki.train.tokens").read_text().split())
    pairs = list(zip(*read_tab_pairs(ctx.require("fra-eng/fra.txt"))))
    pair_words = sum(len(en.split()) + len(fr.split()) for en, fr in pairs)
    sizes, steps, warmup = (QUICK_SIZES, 8, 3) if ctx.quick else (SIZES, 30, 5)
    sizes = ctx.sizes or sizes
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="streaming-", dir=ctx.work_dir))
    env = {**os.environ, "ATTNLAB_OUTPUTS": str(root / "outputs"), "ATTNLAB_CACHE": str(root / "shards"),
           "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    val, test = _write_split(pairs[:HELD_OUT], root / "held" / "val"), _write_split(pairs[HELD_OUT : 2 * HELD_OUT],
                                                                                   root / "held" / "test")
    measured: dict[str, dict] = {}
    partial = ctx.work_dir / "streaming-partial.json"

    def train(name: str, data: list[str], *extra: str) -> dict:
        clock = root / f"clock-{name}"
        args = [*data, "callbacks=none", "~callbacks.checkpoint_averaging", "~callbacks.early_stopping",
                "logger=none", "test=false", "optimized_metric=null", "+trainer.enable_checkpointing=false",
                f"data.batch_size={BATCH}",
                f"trainer.max_steps={steps}", "trainer.limit_val_batches=0", "model.plot_attention=false",
                "model.examples=[]", f"hydra.run.dir={root / 'runs' / name}",
                f"+callbacks.clock={{_target_:bench.memory_probe.StepClock,out:'{clock}',"
                f"shard_root:'{root / 'shards'}'}}",
                *extra]
        seconds, peak = _run("attnlab-train", args, env, root)
        rate, wait, records = _rate(clock, warmup)
        measured[name] = {"seconds": seconds, "tokens_per_s": rate, "batch_wait_ms": wait, **peak,
                          "shard_pss_sum": sum(r["shard_pss"] for r in records),
                          "shard_rss_max": max(r["shard_rss"] for r in records)}
        partial.write_text(json.dumps(measured, indent=1))  # what a long run measured so far, if it is cut short
        return measured[name]

    try:
        for k in sizes:
            copies = k * wiki_words / pair_words
            copies = round(copies) if copies >= 0.5 else copies  # whole copies, or a share of one for a smoke test
            train_prefix = _grow(pairs, root / f"corpus-{k}x", max(1, round(copies * len(pairs))), ctx.seed + k)
            data = ["experiment=transformer_mt", "data=parallel", f"data.corpus.train={train_prefix}",
                    f"data.corpus.val={val}", f"data.corpus.test={test}", "data.corpus.src_lang=en",
                    "data.corpus.tgt_lang=fr", "data.preprocess=true", "tokenizer=word", f"seed={ctx.seed}"]
            prep_seconds, prep_peak = _run("attnlab-prepare", data, env, root)
            measured[f"prepare {k}x"] = {"seconds": prep_seconds, **prep_peak, "copies": copies,
                                         "words": round(copies * pair_words)}
            partial.write_text(json.dumps(measured, indent=1))
            train(f"{k}x", data)
            if k == sizes[0]:
                train("in-memory", data, "data.cache_dir=null")
                loader_rates = _loaders_interleaved(ctx, data, root / "shards")
            if k == sizes[-1]:
                train(f"{k}x ddp_cpu", data, "trainer=ddp_cpu")
            shutil.rmtree(root / f"corpus-{k}x")
            shutil.rmtree(root / "shards")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    first, last = f"{sizes[0]}x", f"{sizes[-1]}x"
    for k in sizes:
        name, prep = f"{k}x", measured[f"prepare {k}x"]
        setting = f"{k}x WikiText-2 ({prep['words'] / 1e6:.3g}M words, {prep['copies']:.3g} fra-eng copies)"
        result.rows.append(Row(result.name, f"attnlab-prepare, {setting}", "seconds (peak RSS MiB)",
                               Figure("shards", prep["seconds"], peak_mib=prep["max_rss"])))
        for key, label in (("max_rss", "peak RSS"), ("max_pss", "peak PSS"), ("max_anon", "peak anonymous")):
            goals = [Goal("<= 1.2x 1x", "<=", 1.2, first)] if name == last and key == "max_rss" else []
            refs = [Figure(first, measured[first][key])] if name != first else []
            result.rows.append(Row(result.name, f"training process, {setting}", f"{label} MiB",
                                   Figure("shards", measured[name][key]), refs, goals))
        refs = [Figure("in-memory", measured["in-memory"]["tokens_per_s"])] if name == first else []
        goals = [Goal(">= 0.95x in-memory", ">=", 0.95, "in-memory")] if refs else []
        result.rows.append(Row(result.name, f"training, {setting}", "useful tokens/s",
                               Figure("shards", measured[name]["tokens_per_s"]), refs, goals))
        if name == first:
            result.rows.append(Row(result.name, f"training loader alone, {setting}, interleaved in one process",
                                   "rows/s (read + collate)", Figure.rate(loader_rates["shards"]),
                                   [Figure.rate(loader_rates["in-memory"])]))
        refs = [Figure("in-memory", measured["in-memory"]["batch_wait_ms"])] if name == first else []
        result.rows.append(Row(result.name, f"training, {setting}", "ms a step waits for its batch (median)",
                               Figure("shards", measured[name]["batch_wait_ms"]), refs))
    ddp, one = measured[f"{last} ddp_cpu"], measured[last]
    result.rows.append(Row(result.name, f"2 ddp_cpu ranks vs 1 process, {last}", "peak PSS MiB, all processes",
                           Figure("2 ranks", ddp["sum_pss"]), [Figure("1 rank", one["sum_pss"])],
                           [Goal("<= 1.3x 1 rank", "<=", 1.3, "1 rank")]))
    result.rows.append(Row(result.name, f"2 ddp_cpu ranks vs 1 process, {last}", "shard pages PSS MiB, all processes",
                           Figure("2 ranks", ddp["shard_pss_sum"]), [Figure("1 rank", one["shard_pss_sum"])],
                           [Goal("<= 1.3x 1 rank", "<=", 1.3, "1 rank")]))
    result.notes.append(
        f"{steps} training steps a run (d2l Transformer, batch {BATCH}, length-bucketed), tokens/s over the last "
        f"{steps - warmup}; "
        "RSS counts the touched shard pages (shared page cache), PSS divides them among the processes mapping them, "
        "anonymous memory leaves them out. Raw figures: " + json.dumps(measured))
    return result
