"""Memory and throughput of a training *process*, for the streaming case.

What RSS counts: every resident page a process maps, its own (anonymous: heap, tensors, Python objects) and
file-backed ones, among them the pages of memory-mapped shards it has touched. Those are page cache: shared
with every other process mapping the same file, and dropped by the kernel under memory pressure. So four
measures, from ``/proc/<pid>/smaps_rollup``:

- ``rss``: all resident pages (what ``top`` shows; counts shared shard pages in full in every rank);
- ``pss``: proportional set size, each shared page divided by the number of processes mapping it (summed over
  ranks it counts a shared page once: the honest total of a job);
- ``anon``: anonymous memory only, what the process itself allocated and the kernel cannot drop;
- ``shard_rss`` / ``shard_pss``: the part of RSS / PSS that maps the shard files (from ``/proc/<pid>/smaps``).

:class:`TreeSampler` polls a process and its descendants (DDP ranks) from outside for the peaks;
:class:`StepClock`, a Lightning callback put into the run, stamps every training step and, at the end, its own
shard mappings.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytorch_lightning as pl

MEASURES = ("rss", "pss", "anon")


def rollup(pid: int | str = "self") -> dict[str, float]:
    """MiB resident, proportional and anonymous of one process (empty when it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return {}
    fields = {name: int(value.split()[0]) / 1024 for name, value in (line.split(":", 1) for line in lines)}
    return {"rss": fields["Rss"], "pss": fields["Pss"], "anon": fields["Anonymous"]}


def mapped_files(prefix: str, pid: int | str = "self") -> dict[str, float]:
    """MiB of RSS and PSS of the mappings of files under ``prefix``."""
    totals, inside = {"shard_rss": 0.0, "shard_pss": 0.0}, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:  # a mapping's header line
            inside = len(head) == 6 and head[5].startswith(prefix)
        elif inside and head[0] in ("Rss:", "Pss:"):
            totals["shard_" + head[0][:-1].lower()] += int(head[1]) / 1024
    return totals


def descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                stack.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


class TreeSampler:
    """Peaks, every ``interval`` s, of each measure of the biggest process and of the sum over the tree."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak = {f"{scope}_{m}": 0.0 for scope in ("max", "sum") for m in MEASURES}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            figures = [f for f in map(rollup, descendants(self.pid)) if f]
            for m in MEASURES:
                values = [f[m] for f in figures] or [0.0]
                self.peak[f"max_{m}"] = max(self.peak[f"max_{m}"], max(values))
                self.peak[f"sum_{m}"] = max(self.peak[f"sum_{m}"], sum(values))
            self._stop.wait(self.interval)


class StepClock(pl.Callback):
    """Writes ``{"starts", "times", "tokens", <rank's shard mappings>}`` to ``out`` (one file a rank) when training
    ends: ``starts[k] - times[k - 1]`` is what step k waited for its batch (reading, collating, the loop)."""

    def __init__(self, out: str, shard_root: str):
        self.out, self.shard_root = out, shard_root
        self.starts: list[float] = []
        self.times: list[float] = []
        self.tokens: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())
        self.tokens.append(int(outputs["num_tokens"]))

    def on_train_end(self, trainer, pl_module) -> None:
        record = {"starts": self.starts, "times": self.times, "tokens": self.tokens, **rollup(),
                  **mapped_files(self.shard_root)}
        Path(f"{self.out}.rank{trainer.global_rank}.json").write_text(json.dumps(record))
