"""Helpers for the CLI tests: running ``attnlab-train`` in a subprocess, reading run dirs and offline W&B runs.

The subprocesses get this dir on their PYTHONPATH, so configs can name ``pause_callback.PauseAtStep``.
"""
from __future__ import annotations

import csv
import os
import struct
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def cli_env(outputs: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: outputs and caches in ``outputs``, W&B offline and local only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        ATTNLAB_OUTPUTS=str(outputs),
        ATTNLAB_CACHE=str(outputs / ".cache"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        WANDB_DIR=str(outputs / ".wandb"),
        WANDB_CONFIG_DIR=str(outputs / ".wandb-config"),
        WANDB_CACHE_DIR=str(outputs / ".wandb-cache"),
        WANDB_DATA_DIR=str(outputs / ".wandb-data"),
        NETRC=str(outputs / "no-netrc"),  # no API key anywhere: the W&B logger must go offline by itself
        WANDB_SILENT="true",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def run_attnlab(args: list[str], outputs: Path, *, program: str = "attnlab-train", timeout: float = 300,
            check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run ``program args`` from ``outputs``; on an unexpected exit code fail with the output's tail."""
    outputs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(BIN / program), *args], cwd=outputs, env=cli_env(outputs, **env),
        capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise AssertionError(f"{program} {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return proc


def find_run_dirs(root: Path) -> list[Path]:
    """Run dirs (holding .hydra/config.yaml) under ``root``, sorted."""
    return sorted(p.parent.parent for p in root.glob("**/.hydra/config.yaml"))


def metric_history(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """``[(step, value)]`` of one metric from the run's CSV log."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return [(int(row["step"]), float(row[metric])) for row in csv.DictReader(handle) if row.get(metric)]


def metric_columns(run_dir: Path) -> list[str]:
    """The metric names (and ``step``/``epoch``) the run's CSV log has columns for."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return next(csv.reader(handle))


def write_pairs(root: Path, counts: tuple[int, int, int] = (48, 8, 8)) -> Path:
    """A tiny English -> French corpus (word-for-word, reversed order) as ``{train,valid,test}.{en,fr}``:
    by default 48 training pairs, 8 validation and 8 test pairs."""
    import random

    en = "i you he she we they go run eat see like the a big small red cat dog house car".split()
    fr = ("je tu il elle nous ils aller courir manger voir aimer le la grand petit rouge chat chien maison "
          "voiture").split()
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), counts):
        src, tgt = [], []
        for _ in range(count):
            ids = [rng.randrange(len(en)) for _ in range(rng.randint(2, 6))]
            src.append(" ".join(en[i] for i in ids))
            tgt.append(" ".join(fr[i] for i in reversed(ids)))
        (root / f"{split}.en").write_text("\n".join(src) + "\n")
        (root / f"{split}.fr").write_text("\n".join(tgt) + "\n")
    return root


def tiny_transformer_args(data: Path) -> list[str]:
    """experiment=transformer_mt on ``write_pairs`` data with a tiny net: 6 batches of 8 per epoch."""
    return [
        "experiment=transformer_mt", "data=parallel", f"data.corpus.train={data}/train",
        f"data.corpus.val={data}/valid", f"data.corpus.test={data}/test", "data.batch_size=8",
        "tokenizer=word", "tokenizer.min_freq=1", "model.net.d_model=16", "model.net.num_heads=2",
        "model.net.num_encoder_layers=1",
        "model.net.num_decoder_layers=1", "model.net.block.d_ff=32",
        "model.net.dropout=0.0",  # dropout masks come from the global RNG, which a resume does not restore
        "model.decode.max_steps=4", "model.examples=[]", "model.plot_attention=false",
        "~callbacks.checkpoint_averaging", "~callbacks.progress_bar",
    ]


def wandb_records(run_file: Path):
    """The protobuf records of an offline run's ``run-<id>.wandb`` file.

    wandb >= 0.19 dropped its Python reader; the format is LevelDB's log: a 7-byte header (``:W&B``, magic,
    version), then 32 KiB blocks of chunks, each ``crc32 (4) | length (2) | type (1) | payload`` with type
    1 = full record, 2/3/4 = first/middle/last piece; a block tail shorter than a chunk header is padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{run_file} is not a .wandb file (starts with {data[:4]!r})")
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record
        elif kind == 0 and length == 0:
            position += left - 7  # zero-filled rest of the block
