"""Which way attnlab stores a prepared corpus: Arrow IPC files written directly (pyarrow, today's
:mod:`attnlab.data.shards`), Hugging Face ``datasets``' ``save_to_disk``/``load_from_disk`` (attnlab up to
commit 219b02a), or ``datasets``' own fingerprinted cache (``load_dataset`` + ``map``, cached by fingerprint).

Each measurement is a fresh process, as a user runs one: ``cold`` prepares into an empty cache dir (read, train the
tokenizer, encode, write), ``warm`` opens what ``cold`` wrote (what every training run and rank does). Reported:
wall seconds (imports included, and the import seconds alone), peak RSS (``ru_maxrss``) and the bytes on disk.

    python bench/shard_formats.py --data-dir /work/shared/data --old-src /path/to/attnlab-219b02a/src

``--old-src`` is a checkout of attnlab's ``src/`` at 219b02a (the ``datasets`` way); the ``datasets`` package is
needed for that and for the fingerprinted-cache way, and is no longer one of attnlab's dependencies.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPORA = ("wikitext-2", "fra-eng")

ONE = r"""
import json, resource, sys, time
start = time.perf_counter()
way, corpus, data, cache = sys.argv[1:5]
from functools import partial
if way == "fingerprint":
    import datasets
    from tokenizers import Tokenizer
    imported = time.perf_counter()
    datasets.disable_progress_bars()
    text = datasets.load_dataset("text", data_files=f"{data}/wikitext-2/wiki.train.tokens", cache_dir=cache)["train"]
    saved = f"{cache}/tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(saved)
    except Exception:
        from attnlab.data.bert_inputs import SPECIAL_TOKENS
        from attnlab.data.tokenizers import word
        tokenizer = word(min_freq=3).train(text["text"], SPECIAL_TOKENS)._trained()
        tokenizer.save(saved)
    ids = text.map(lambda b: {"ids": [e.ids for e in tokenizer.encode_batch(b["text"])]}, batched=True)
    rows = len(ids)
else:
    from attnlab.data.tokenizers import word
    if corpus == "wikitext-2":
        from attnlab.data.bert_pretraining import WikiText2DataModule
        dm = WikiText2DataModule(partial(word, min_freq=3), f"{data}/wikitext-2", cache_dir=cache)
    else:
        from attnlab.data.corpora import FraEngCorpus
        from attnlab.data.translation import TranslationDataModule
        dm = TranslationDataModule(FraEngCorpus(f"{data}/fra-eng/fra.txt"), partial(word, min_freq=2), cache_dir=cache,
                                   output_dir=cache)
    imported = time.perf_counter()
    dm.setup("fit")
    rows = sum(len(d) for d in dm.datasets.values()) if hasattr(dm, "datasets") else len(dm.corpora["train"].sentences)
print(json.dumps({"seconds": time.perf_counter() - start, "import_s": imported - start, "rows": rows,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_one(way: str, corpus: str, data: Path, cache: Path, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", ONE, way, corpus, str(data), str(cache)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def disk_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix != ".lock") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--old-src", type=Path, required=True, help="attnlab's src/ at 219b02a (the datasets way)")
    args = parser.parse_args()
    new_src = Path(__file__).resolve().parents[1] / "src"
    ways = [("arrow-ipc", new_src, CORPORA), ("datasets save_to_disk", args.old_src, CORPORA),
            ("datasets fingerprint cache", new_src, ("wikitext-2",))]
    print("| corpus | way | cold s (import s) | cold peak RSS MiB | warm s (import s) | warm peak RSS MiB | disk MiB |")
    print("|---|---|---|---|---|---|---|")
    for corpus in CORPORA:
        for name, src, corpora in ways:
            if corpus not in corpora:
                continue
            cache = Path(tempfile.mkdtemp(prefix="shard-formats-"))
            try:
                way = "fingerprint" if "fingerprint" in name else "datamodule"
                cold, warm = (run_one(way, corpus, args.data_dir, cache, src) for _ in range(2))
                print(f"| {corpus} | {name} | {cold['seconds']:.1f} ({cold['import_s']:.1f}) | "
                      f"{cold['peak_rss_mib']:.0f} | {warm['seconds']:.2f} ({warm['import_s']:.1f}) | "
                      f"{warm['peak_rss_mib']:.0f} | {disk_mib(cache):.1f} |", flush=True)
            finally:
                shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
