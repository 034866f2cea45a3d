"""The streaming case's measures: a process's RSS/PSS/anonymous memory, the pages of mapped files under a root,
a process tree's peaks; and the case's skip without the corpora."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.cases import streaming
from bench.cases.common import Context
from bench.harness import Skip
from bench.memory_probe import TreeSampler, mapped_files, rollup


def test_touched_pages_of_a_mapped_file_count_in_rss_and_pss(tmp_path: Path):
    path = tmp_path / "shards" / "ids.bin"
    path.parent.mkdir()
    np.arange(4 * 2**20, dtype=np.int32).tofile(path)  # 16 MiB
    mapped = np.memmap(path, dtype=np.int32, mode="r")
    before = mapped_files(str(tmp_path / "shards"))
    assert int(mapped[:: 1024].sum()) > 0  # one int a 4 KiB page: every page touched
    after = mapped_files(str(tmp_path / "shards"))
    assert before["shard_rss"] < 1 and after["shard_rss"] == pytest.approx(16, abs=0.5)
    assert 0 < after["shard_pss"] <= after["shard_rss"]
    assert mapped_files(str(tmp_path / "elsewhere")) == {"shard_rss": 0.0, "shard_pss": 0.0}
    figures = rollup()
    assert figures["rss"] >= figures["pss"] > 0 and figures["rss"] >= figures["anon"] > 0


def test_tree_sampler_sums_a_process_and_its_children():
    code = "import subprocess, sys, time; a = bytearray(64 * 2**20); subprocess.run([sys.executable, '-c', " \
           "'b = bytearray(64 * 2**20); import time; time.sleep(1.5)'])"
    proc = subprocess.Popen([sys.executable, "-c", code])
    with TreeSampler(proc.pid, interval=0.02) as sampler:
        proc.wait()
        time.sleep(0.05)
    assert sampler.peak["sum_anon"] > 128 > sampler.peak["max_anon"] > 64


def test_streaming_case_skips_without_the_corpora(tmp_path: Path):
    ctx = Context(quick=True, warmup=0, repeats=1, data_dir=tmp_path, work_dir=tmp_path / "work")
    with pytest.raises(Skip, match="wiki.train.tokens not found"):
        streaming.run(ctx)
    assert os.listdir(tmp_path) == []  # nothing made before the check
