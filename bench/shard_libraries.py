"""Which library writes and serves attnlab's token shards: Hugging Face ``datasets`` (Arrow, memory-mapped) or
LitData (``optimize`` -> ``StreamingDataset``), measured on the access pattern attnlab needs.

attnlab's translation batches are length-bucketed over the whole epoch (a seeded permutation, sorted within
chunks, shuffled batches, every rank taking its own batches), so the shards are read by *random access*: a batch
is 64 rows at indices spread over the corpus. This script writes the same synthetic ragged pairs with both
libraries and measures, each in its own process: write time, disk size, random-access read throughput
(rows/s, each row turned into two torch tensors), and the memory of one reader and of two concurrent readers
(RSS, PSS and private memory from /proc/<pid>/smaps_rollup after reading).

    python bench/shard_libraries.py --rows 1600000      # ~10x WikiText-2 in tokens (both sides)

Needs ``litdata`` and ``datasets`` installed, neither one of attnlab's dependencies (``datasets`` comes with the
``bench`` extra; attnlab writes Arrow IPC itself since ``bench/shard_formats.py``). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

BATCH, BATCHES = 64, 300


def synthetic_pairs(rows: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Ragged (ids, offsets) for a source and a target side, lengths like fra-eng's (3..30 tokens)."""
    rng = np.random.default_rng(seed)
    sides = {}
    for side in ("src", "tgt"):
        lengths = np.clip(rng.poisson(5.0, rows) + 2, 2, 30)
        offsets = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        sides[side] = (rng.integers(4, 20_000, int(offsets[-1]), dtype=np.int32), offsets)
    return sides


def smaps_rollup() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024  # MiB
    return {"rss": fields["Rss"], "pss": fields["Pss"], "private": fields["Private_Clean"] + fields["Private_Dirty"],
            "anon": fields["Anonymous"]}


def write_datasets(sides, out: Path, shard_rows: int) -> None:
    import pyarrow as pa
    from datasets import Dataset

    rows = len(sides["src"][1]) - 1
    for shard, start in enumerate(range(0, rows, shard_rows)):
        stop = min(start + shard_rows, rows)
        columns = {}
        for side, (ids, offsets) in sides.items():
            part = offsets[start : stop + 1]
            columns[side] = pa.ListArray.from_arrays(pa.array((part - part[0]).astype(np.int32)),
                                                     pa.array(ids[part[0] : part[-1]]))
        Dataset(pa.table(columns)).save_to_disk(str(out / f"shard-{shard:05d}"))


def _litdata_items(start: int, sides, shard_rows: int):
    rows = len(sides["src"][1]) - 1
    for i in range(start, min(start + shard_rows, rows)):
        yield {side: ids[offsets[i] : offsets[i + 1]] for side, (ids, offsets) in sides.items()}


def write_litdata(sides, out: Path, shard_rows: int) -> None:
    from litdata import optimize

    rows = len(sides["src"][1]) - 1
    optimize(fn=partial(_litdata_items, sides=sides, shard_rows=shard_rows), inputs=list(range(0, rows, shard_rows)),
             output_dir=str(out), chunk_bytes="64MB", num_workers=1, verbose=False)


def reader(library: str, out: Path, rows: int, seed: int, queue, sequential: bool = False) -> None:
    import torch

    rng = np.random.default_rng(seed)
    batches = [rng.choice(rows, BATCH, replace=False) for _ in range(BATCHES)]
    if library == "datasets":
        from datasets import concatenate_datasets, load_from_disk

        ds = concatenate_datasets([load_from_disk(str(p)) for p in sorted(out.glob("shard-*"))]).with_format("numpy")

        def fetch(index):
            got = ds[index.tolist()]
            return [(torch.from_numpy(s), torch.from_numpy(t)) for s, t in zip(got["src"], got["tgt"])]
    else:
        from litdata import StreamingDataset

        ds = StreamingDataset(str(out))

        def fetch(index):
            return [(torch.as_tensor(item["src"]), torch.as_tensor(item["tgt"])) for item in map(ds.__getitem__, index.tolist())]

    start = time.perf_counter()
    if sequential:  # LitData's own path: stream the chunks in order
        total = sum(1 for _ in zip(range(BATCH * BATCHES), ds))
    else:
        fetch(batches[0])
        start = time.perf_counter()
        total = sum(len(fetch(index)) for index in batches)
    seconds = time.perf_counter() - start
    queue.put({"rows_per_s": total / seconds, **smaps_rollup()})


def measure_readers(library: str, out: Path, rows: int, processes: int, sequential: bool = False) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=reader, args=(library, out, rows, seed, queue, sequential)) for seed in range(processes)]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_600_000)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--library", choices=("datasets", "litdata"), help="measure one (each runs in its own process)")
    args = parser.parse_args(argv)
    if args.library is None:  # LitData's optimize installs signal handlers that end its host: one process each
        lines = [subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--shard-rows",
                                 str(args.shard_rows), "--library", library], check=True, capture_output=True,
                                text=True).stdout.strip() for library in ("datasets", "litdata")]
        print(f"rows {args.rows:,}, random batches of {BATCH} rows, {BATCHES} batches\n")
        print("| library | write s | disk MiB | read rows/s, 1 reader | RSS / PSS / private / anon MiB, 1 reader "
              "| PSS MiB each, 2 readers | rows/s each, 2 readers | sequential rows/s |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(lines))
        return 0
    sides = synthetic_pairs(args.rows)
    out = Path(tempfile.mkdtemp(prefix=f"shards-{args.library}-"))
    try:
        start = time.perf_counter()
        (write_datasets if args.library == "datasets" else write_litdata)(sides, out, args.shard_rows)
        seconds = time.perf_counter() - start
        disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
        one = measure_readers(args.library, out, args.rows, 1)[0]
        two = measure_readers(args.library, out, args.rows, 2)
        sequential = measure_readers(args.library, out, args.rows, 1, sequential=True)[0]
        print(json.dumps({"library": args.library, "write_s": seconds, "disk_mib": disk, "one": one, "two": two,
                          "sequential": sequential}), file=sys.stderr)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    pss_two = " · ".join(f"{r['pss']:.0f}" for r in two)
    rate_two = " · ".join(f"{r['rows_per_s']:,.0f}" for r in two)
    print(f"| {args.library} | {seconds:.1f} | {disk:.0f} | {one['rows_per_s']:,.0f} | {one['rss']:.0f} / "
          f"{one['pss']:.0f} / {one['private']:.0f} / {one['anon']:.0f} | {pss_two} | {rate_two} | "
          f"{sequential['rows_per_s']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
