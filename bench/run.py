"""``make bench`` / ``python bench/run.py [--cases a,b] [--quick] [--device cuda]``: run the cases, print one table.

Every case measures attnlab beside its references in this one process, interleaved, after warm-up, as medians
of repeated rounds; the table (Markdown) and the raw figures (JSON) go to ``outputs/bench/latest.{md,json}``
plus timestamped copies. Cases whose dependency is missing (``transformers``, the corpora) are reported as
skipped with the reason.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler (memory probes) quiet; before torch loads

if __package__ in (None, ""):  # run as a script: make the repo root importable for ``bench.*``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.cases.common import REPO_ROOT, Context, default_data_dir  # noqa: E402
from bench.environment import machine_info, peak_rss_mib  # noqa: E402
from bench.harness import CaseResult, Skip  # noqa: E402
from bench.report import as_json, markdown  # noqa: E402

# name -> title; run in this order (gemm first: mfu reads its peak)
CASES = {
    "gemm": "fp32 GEMM peak of this machine",
    "attention_memory": "attention memory, forward + backward",
    "transformer_train": "Transformer MT training step",
    "causal_decoder": "decoder training step: SDPA is_causal vs the explicit mask before",
    "bert_train": "BERT pretraining step (MLM + NSP)",
    "bert_bucketing": "BERT pretraining step: length-bucketed vs drawn-order batches",
    "precision": "training step: fp32 vs bf16-mixed",
    "decoding": "greedy and beam-4 decoding, KV cache vs recomputation",
    "data_prep": "data preparation, cold and cached",
    "lightning_overhead": "Lightning epoch vs plain PyTorch loop",
    "mfu": "model FLOP utilisation at the larger sizes",
    "streaming": "training from token shards, 1x / 10x / 50x WikiText-2",
}
OPTIONAL_MODULES = ("attnlab.", "transformers")  # a case needing one that is absent is skipped, not failed

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, help="timed interleaved rounds (default 5, quick 2)")
    parser.add_argument("--warmup", type=int, help="untimed samples of each contender first (default 1)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--data-dir", type=Path, default=None, help="corpora root (default $DATA_DIR or ../shared/data)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench", help="where the tables go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where causal_decoder runs (the other cases run on the CPU)")
    parser.add_argument("--sizes", type=lambda text: tuple(float(k) for k in text.split(",")), default=None,
                        help="corpus sizes of the streaming case, in WikiText-2s (default 1,10,50; quick 1,2; "
                             "fractions such as 0.02 for a smoke test)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        parser.error(f"unknown cases {unknown or names}; choose from {', '.join(CASES)}")
    args.cases = [name for name in CASES if name in names]
    for flag in ("repeats", "warmup", "threads"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "warmup" else 1):
            parser.error(f"--{flag} must be {'>= 0' if flag == 'warmup' else '>= 1'}, got {value}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: torch {torch.__version__} sees no CUDA GPU")
    args.device = torch.device(args.device)
    return args


def run_case(name: str, ctx: Context) -> CaseResult:
    start, load = time.perf_counter(), os.getloadavg()[0]
    log.info("case %s ...", name)
    try:
        module = importlib.import_module(f"bench.cases.{name}")
        torch.manual_seed(ctx.seed)
        result = module.run(ctx)
    except Skip as reason:
        result = CaseResult(name, CASES[name], status="skipped", reason=str(reason))
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith(OPTIONAL_MODULES):
            raise
        result = CaseResult(name, CASES[name], status="skipped", reason=f"{error.name} is not available")
    except Exception as error:  # one broken case must not hide the others' figures
        traceback.print_exc()
        result = CaseResult(name, CASES[name], status="error", reason=f"{type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - start
    result.load_average = (load, os.getloadavg()[0])
    log.info("case %s: %s in %.0f s", name, result.status, result.seconds)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out.resolve()
    ctx = Context(
        quick=args.quick,
        warmup=1 if args.warmup is None else args.warmup,
        repeats=args.repeats or (2 if args.quick else 5),
        data_dir=(args.data_dir or default_data_dir()).resolve(),
        work_dir=out / "work",
        seed=args.seed,
        device=args.device,
        sizes=args.sizes,
    )
    machine = machine_info()
    start = time.perf_counter()
    cases = [run_case(name, ctx) for name in args.cases]
    meta = {
        "machine": machine,
        "mode": "quick" if args.quick else "full",
        "device": str(ctx.device),
        "warmup": ctx.warmup,
        "repeats": ctx.repeats,
        "cases": args.cases,
        "data_dir": str(ctx.data_dir),
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    table = markdown(meta, cases)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = json.dumps(as_json(meta, cases), indent=2)
    for stem in ("latest", stamp):
        (out / f"{stem}.md").write_text(table)
        (out / f"{stem}.json").write_text(report)
    log.info("wrote %s and %s", out / "latest.md", out / f"{stamp}.md")
    return 1 if any(case.status == "error" for case in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
